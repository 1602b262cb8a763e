//! Samples the RSS and CPU of each worker's whole process tree and tells a slot when its
//! tree is over `max_memory_restart`. It never kills: the slot's policy decides.
//!
//! What it costs is what it reads from /proc, so it reads little, and rarely:
//! - every second, the trees of workers with a memory limit (the limit reacts within
//!   about a second);
//! - every [`DISPLAY_EVERY`] seconds, every tree (the figures `list` and the metrics
//!   show);
//! - every [`SCAN_EVERY`] seconds, and whenever a worker it has not seen appears, one pass
//!   over every process's parent pid to find the trees' members: this kernel may lack
//!   /proc/<pid>/task/<tid>/children, and reading every process each second is what made
//!   200 idle workers cost 7× PM2 (BENCHMARKS.md).
//!
//! Between scans a tree is the members the last scan found (a process they start meanwhile
//! counts from the next scan); members that exit drop out at once. A member is read with
//! one read of /proc/<pid>/stat: CPU time and RSS.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// How often the sampler wakes.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Every tree is sampled every this many wake-ups; trees with a memory limit every one.
pub const DISPLAY_EVERY: u32 = 5;
/// The trees' members are found again every this many wake-ups.
pub const SCAN_EVERY: u32 = 10;

/// Resource use of one worker's process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Resident set size summed over the tree, in bytes.
    pub rss: u64,
    /// CPU use summed over the tree, in percent of one core, over the last interval it
    /// was sampled in.
    pub cpu: f32,
    /// CPU time the tree has used, in seconds (its members' at their last sample, and
    /// those that have exited).
    pub cpu_seconds: f64,
}

/// What the sampler watches and whom it tells: the supervisor implements it, so the
/// sampler knows nothing of slots or messages.
pub trait Watched: Send + Sync + 'static {
    /// The roots of the trees to sample, each with its memory limit in bytes.
    fn roots(&self) -> Vec<(Pid, Option<u64>)>;
    /// One sample of some roots (those not in `usage` keep their last figures), and the
    /// roots over their limit with their RSS.
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
            let mut sampler = Sampler::default();
            let mut tick = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(INTERVAL);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tick = tick.wrapping_add(1);
                sample_once(&*watched, &mut sampler, tick);
            }
        })?;
    Ok(())
}

fn sample_once(watched: &dyn Watched, sampler: &mut Sampler, tick: u32) {
    let roots = watched.roots();
    if roots.is_empty() {
        return;
    }
    let every = tick.is_multiple_of(DISPLAY_EVERY);
    // A worker not sampled yet is, at once: `list` shows its figures from its first
    // second.
    let wanted: Vec<Pid> = roots
        .iter()
        .filter(|(pid, limit)| every || limit.is_some() || !sampler.knows(*pid))
        .map(|(pid, _)| *pid)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let all: Vec<Pid> = roots.iter().map(|(pid, _)| *pid).collect();
    sampler.find_members(&all, tick.is_multiple_of(SCAN_EVERY));
    let usage = sampler.sample(&wanted);
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

/// The CPU time and RSS of one process alone (not its children): the supervisor's own
/// figures for the metrics. `cpu` is 0: one read gives no interval.
pub fn process_usage(pid: i32) -> Option<Usage> {
    let stat = read_stat(pid)?;
    let units = Sampler::default();
    Some(Usage {
        rss: stat.rss_pages * units.page_size,
        cpu: 0.0,
        cpu_seconds: stat.cpu_ticks as f64 / units.ticks_per_second,
    })
}

/// When a process started: the boot time (`btime` of /proc/stat) plus its start in
/// clock ticks since boot (field 22 of /proc/<pid>/stat).
pub fn process_start(pid: i32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let since_boot = Duration::from_secs_f64(ticks as f64 / Sampler::default().ticks_per_second);
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
}

/// One process's counters, from /proc/<pid>/stat.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    ppid: i32,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the command name (which may hold spaces and parentheses) start at field
/// 3 (state): ppid is 4, utime 14, stime 15, rss 24.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    Some(Stat {
        ppid: i32::try_from(field(4)?).ok()?,
        cpu_ticks: u64::try_from(field(14)? + field(15)?).ok()?,
        rss_pages: u64::try_from(field(24)?).unwrap_or(0),
    })
}

/// The process trees of the roots, and what was last read of each member.
pub struct Sampler {
    /// Each root's tree (the root first), as the last scan found it.
    members: HashMap<Pid, Vec<Pid>>,
    /// The CPU ticks of each member at its last read, and when that was.
    last: HashMap<Pid, (u64, Instant)>,
    /// CPU ticks of members that have exited since, by root: still the tree's time.
    gone_ticks: HashMap<Pid, u64>,
    ticks_per_second: f64,
    page_size: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100);
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096);
        Sampler {
            members: HashMap::new(),
            last: HashMap::new(),
            gone_ticks: HashMap::new(),
            ticks_per_second: ticks.max(1) as f64,
            page_size: page.max(1) as u64,
        }
    }
}

impl Sampler {
    /// Whether `root`'s tree has been found (and so sampled since).
    fn knows(&self, root: Pid) -> bool {
        self.members.contains_key(&root)
    }

    /// Makes sure every root has a tree: with `rescan`, or when a root is new, one pass
    /// over every process finds the members again. Roots no longer given are forgotten.
    pub fn find_members(&mut self, roots: &[Pid], rescan: bool) {
        let wanted: HashSet<Pid> = roots.iter().copied().collect();
        self.members.retain(|root, _| wanted.contains(root));
        self.gone_ticks.retain(|root, _| wanted.contains(root));
        if !rescan && roots.iter().all(|root| self.members.contains_key(root)) {
            return;
        }
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                if let Some(stat) = read_stat(pid) {
                    children.entry(stat.ppid).or_default().push(pid);
                }
            }
        }
        for root in roots {
            let mut tree = vec![root.as_raw()];
            let mut next = 0;
            while next < tree.len() {
                if let Some(kids) = children.get(&tree[next]) {
                    tree.extend(kids.iter().copied());
                }
                next += 1;
            }
            self.members
                .insert(*root, tree.into_iter().map(Pid::from_raw).collect());
        }
    }

    /// Usage of the trees of `roots` (each must have been given to
    /// [`find_members`](Self::find_members)). A tree's first sample has no CPU percent
    /// (0): it needs an interval.
    pub fn sample(&mut self, roots: &[Pid]) -> HashMap<Pid, Usage> {
        let now = Instant::now();
        let mut usage = HashMap::new();
        for root in roots {
            let Some(tree) = self.members.get_mut(root) else {
                continue;
            };
            let mut total = Usage::default();
            let mut spent_ticks = 0u64;
            let mut interval: Option<Duration> = None;
            let mut alive_ticks = 0u64;
            tree.retain(|pid| {
                let Some(stat) = read_stat(pid.as_raw()) else {
                    // Exited (or the pid is another process's now, when its parent
                    // differs: then it is just not ours).
                    if let Some((ticks, _)) = self.last.remove(pid) {
                        *self.gone_ticks.entry(*root).or_default() += ticks;
                    }
                    return false;
                };
                total.rss += stat.rss_pages * self.page_size;
                alive_ticks += stat.cpu_ticks;
                // A member seen for the first time spent its time so far over a span we
                // do not know: it counts from its next read (it is in `cpu_seconds`).
                if let Some((before, at)) = self.last.insert(*pid, (stat.cpu_ticks, now)) {
                    spent_ticks += stat.cpu_ticks.saturating_sub(before);
                    let span = now.saturating_duration_since(at);
                    interval = Some(interval.map_or(span, |i| i.max(span)));
                }
                true
            });
            if let Some(span) = interval.filter(|s| !s.is_zero()) {
                let spent = spent_ticks as f64 / self.ticks_per_second;
                total.cpu = (spent / span.as_secs_f64() * 100.0) as f32;
            }
            let gone = self.gone_ticks.get(root).copied().unwrap_or(0);
            total.cpu_seconds = (alive_ticks + gone) as f64 / self.ticks_per_second;
            usage.insert(*root, total);
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn stat_lines_are_read_whatever_the_command_name() {
        let line = "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123 1000000 321 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                cpu_ticks: 300,
                rss_pages: 321
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_started_a_moment_ago_and_has_used_some_memory() {
        let me = std::process::id() as i32;
        let started = process_start(me).unwrap();
        let age = std::time::SystemTime::now()
            .duration_since(started)
            .unwrap();
        // The test binary started within the last hour (btime has 1 s resolution).
        assert!(age < Duration::from_secs(3600), "{age:?}");
        let usage = process_usage(me).unwrap();
        assert!(usage.rss > 0 && usage.cpu_seconds >= 0.0, "{usage:?}");
        assert_eq!(process_start(-1), None);
    }

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
        let deadline = Instant::now() + Duration::from_secs(5);
        let (alone, tree) = loop {
            sampler.find_members(&[root], true);
            let usage = sampler.sample(&[root]);
            let alone = read_stat(root.as_raw()).map_or(0, |s| s.rss_pages * sampler.page_size);
            let tree = usage[&root].rss;
            if tree > alone || Instant::now() > deadline {
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
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        // Over 200 ms intervals: a spinning process shows well over half a core even
        // when the machine is busy; an idle one would show ~0. The busy child appears
        // in the tree at a later scan, as between scans a new member counts from then.
        let spins = loop {
            sampler.find_members(&[root], true);
            let usage = sampler.sample(&[root])[&root];
            seen.push(usage.cpu);
            if usage.cpu > 40.0 && usage.cpu_seconds > 0.0 || Instant::now() > deadline {
                break usage.cpu > 40.0;
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
