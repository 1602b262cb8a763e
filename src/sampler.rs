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
            let mut sampler = Sampler::default();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(INTERVAL);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tick(&*watched, &mut sampler);
            }
        })?;
    Ok(())
}

fn tick(watched: &dyn Watched, sampler: &mut Sampler) {
    let roots = watched.roots();
    if roots.is_empty() {
        return;
    }
    let pids: Vec<Pid> = roots.iter().map(|(pid, _)| *pid).collect();
    let usage = sampler.sample(&pids);
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

/// Samples process trees; CPU is each tree's CPU time over the time since the last
/// sample (sysinfo's own `cpu_usage` measures from its last refresh, which the pass that
/// finds descendants has just done).
#[derive(Default)]
pub struct Sampler {
    sys: System,
    /// CPU time (ms) of every pid seen in the last sample, and when it was taken.
    cpu_ms: HashMap<sysinfo::Pid, u64>,
    at: Option<std::time::Instant>,
}

impl Sampler {
    /// Usage of the process tree rooted at each of `roots`. The first sample has no CPU
    /// figure (0): it needs an interval.
    pub fn sample(&mut self, roots: &[Pid]) -> HashMap<Pid, Usage> {
        let sys = &mut self.sys;
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing(),
        );
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
        let now = std::time::Instant::now();
        let elapsed_ms = self
            .at
            .map(|then| now.saturating_duration_since(then).as_secs_f64() * 1000.0);
        let mut cpu_ms = HashMap::new();
        let usage = trees
            .into_iter()
            .map(|(root, tree)| {
                let mut usage = Usage::default();
                let mut spent_ms = 0u64;
                for pid in tree {
                    if let Some(p) = sys.process(pid) {
                        usage.rss += p.memory();
                        let total = p.accumulated_cpu_time();
                        // A pid not seen last time was born since: all its time is new.
                        spent_ms +=
                            total.saturating_sub(self.cpu_ms.get(&pid).copied().unwrap_or(0));
                        cpu_ms.insert(pid, total);
                    }
                }
                if let Some(elapsed) = elapsed_ms.filter(|e| *e > 0.0) {
                    usage.cpu = (spent_ms as f64 / elapsed * 100.0) as f32;
                }
                (root, usage)
            })
            .collect();
        self.cpu_ms = cpu_ms;
        self.at = Some(now);
        usage
    }
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
        let mut sampler = Sampler::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let (alone, tree) = loop {
            let usage = sampler.sample(&[root]);
            let alone = sampler
                .sys
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

    #[test]
    fn a_spinning_tree_shows_about_one_core() {
        // sh → a busy loop in a child sh: the CPU is the grandchild's, counted for the root.
        let mut child = Command::new("sh")
            .args(["-c", "sh -c 'while :; do :; done' & wait"])
            .spawn()
            .unwrap();
        let root = Pid::from_raw(child.id() as i32);
        let mut sampler = Sampler::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        // Over 200 ms intervals: a spinning process shows well over half a core even
        // when the machine is busy; an idle one would show ~0.
        let spins = loop {
            let cpu = sampler.sample(&[root])[&root].cpu;
            seen.push(cpu);
            if cpu > 40.0 || std::time::Instant::now() > deadline {
                break cpu > 40.0;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &child.id().to_string()])
            .status();
        let _ = nix::sys::signal::kill(root, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        assert!(spins, "cpu samples {seen:?}");
        assert!(
            seen.iter().all(|c| *c < 250.0),
            "one busy loop is about one core: {seen:?}"
        );
    }
}
