//! Samples the RSS and CPU of each worker's whole process tree about once a second and
//! tells a slot when its tree is over `max_memory_restart`. It never kills: the slot's
//! policy decides.
//!
//! The kernel here may lack /proc/<pid>/task/<tid>/children, so descendants are found from
//! every process's parent pid (one cheap pass reading only /proc/<pid>/stat), and memory
//! and CPU are then read for the tree pids only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::unistd::Pid;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

pub const INTERVAL: Duration = Duration::from_secs(1);

/// Resource use of one worker's process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident set size summed over the tree, in bytes.
    pub rss: u64,
    /// CPU use summed over the tree, in percent of one core.
    pub cpu: f32,
}

/// What the sampler watches and whom it tells: the supervisor implements it, so the
/// sampler knows nothing of slots or messages.
pub trait Watched: Send + Sync + 'static {
    /// The roots of the trees to sample, each with its memory limit in bytes.
    fn roots(&self) -> Vec<(Pid, Option<u64>)>;
    /// One sample: every root's usage, and the roots over their limit with their RSS.
    fn sampled(&self, usage: HashMap<Pid, Usage>, over_limit: Vec<(Pid, u64)>);
}

/// Starts the sampler on a thread of its own, which sleeps between samples: a tokio
/// interval on the supervisor's runtime wakes it about twice a second (the timer wheel
/// fires early and re-parks), a sleeping thread exactly once. It ends soon after `stop`
/// is set.
pub fn spawn(watched: Arc<dyn Watched>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            // sysinfo otherwise keeps /proc/<pid>/stat open for every process on the machine,
            // so the supervisor's fd count would follow the machine's process count.
            sysinfo::set_open_files_limit(0);
            let mut sys = System::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(INTERVAL);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tick(&*watched, &mut sys);
            }
        })?;
    Ok(())
}

fn tick(watched: &dyn Watched, sys: &mut System) {
    let roots = watched.roots();
    if roots.is_empty() {
        return;
    }
    let pids: Vec<Pid> = roots.iter().map(|(pid, _)| *pid).collect();
    let usage = sample(sys, &pids);
    let over_limit = roots
        .iter()
        .filter_map(|(pid, limit)| {
            let rss = usage.get(pid)?.rss;
            limit
                .is_some_and(|limit| rss > limit)
                .then_some((*pid, rss))
        })
        .collect();
    watched.sampled(usage, over_limit);
}

/// Usage of the process tree rooted at each of `roots`.
pub fn sample(sys: &mut System, roots: &[Pid]) -> HashMap<Pid, Usage> {
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    let mut children: HashMap<sysinfo::Pid, Vec<sysinfo::Pid>> = HashMap::new();
    for (pid, process) in sys.processes() {
        // Threads show up as processes on Linux; their memory is the process's.
        if process.thread_kind().is_some() {
            continue;
        }
        if let Some(parent) = process.parent() {
            children.entry(parent).or_default().push(*pid);
        }
    }
    let trees: Vec<(Pid, Vec<sysinfo::Pid>)> = roots
        .iter()
        .map(|root| {
            let mut tree = vec![sysinfo::Pid::from_u32(root.as_raw() as u32)];
            let mut next = 0;
            while next < tree.len() {
                if let Some(kids) = children.get(&tree[next]) {
                    tree.extend(kids.iter().copied());
                }
                next += 1;
            }
            (*root, tree)
        })
        .collect();
    let all: Vec<sysinfo::Pid> = trees.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&all),
        false,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    trees
        .into_iter()
        .map(|(root, tree)| {
            let mut usage = Usage::default();
            for pid in tree {
                if let Some(p) = sys.process(pid) {
                    usage.rss += p.memory();
                    usage.cpu += p.cpu_usage();
                }
            }
            (root, usage)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_tree_counts_its_grandchildren() {
        // sh → sleep: the tree of sh includes sleep's RSS.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let root = Pid::from_raw(child.id() as i32);
        let mut sys = System::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let (alone, tree) = loop {
            let usage = sample(&mut sys, &[root]);
            let alone = sys
                .process(sysinfo::Pid::from_u32(child.id()))
                .map(|p| p.memory())
                .unwrap_or(0);
            let tree = usage[&root].rss;
            if tree > alone || std::time::Instant::now() > deadline {
                break (alone, tree);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The grandchild first, while it is still sh's child and can be found by parent.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &child.id().to_string()])
            .status();
        let _ = nix::sys::signal::kill(root, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        assert!(
            alone > 0 && tree > alone,
            "tree {tree} should exceed the root's own {alone}"
        );
    }
}
