//! How many CPUs this process may use, for `instances: max` (and 0, -N): the CPUs of its
//! affinity mask (`taskset`, `docker --cpuset-cpus`), capped by its cgroup's CPU quota
//! (`docker --cpus`, Kubernetes `limits.cpu`; cgroup v2 `cpu.max`, v1
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`), a fractional quota rounded up, at least 1.
//! A container limited to 2 CPUs on a 64-core host runs 2 workers.
//!
//! `std::thread::available_parallelism` reads both too, but rounds a quota down (1.5
//! CPUs gives 1 worker, leaving half a CPU unused) and finds cgroup v2 only at
//! `/sys/fs/cgroup`; here the hierarchies are found from `/proc/self/mountinfo`, as
//! systemd and the JVM do. The parsing is pure functions over the files' text, tested
//! on samples; [`usable`] reads the real files.

use std::path::{Path, PathBuf};

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;

/// The CPUs this process may use: affinity ∩ cgroup quota, at least 1.
pub fn usable() -> u32 {
    let affinity = affinity().unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
    });
    let quota = read_to_string("/proc/self/cgroup")
        .zip(read_to_string("/proc/self/mountinfo"))
        .and_then(|(cgroup, mountinfo)| cgroup_quota(&cgroup, &mountinfo, Path::new("/")));
    combine(affinity, quota)
}

/// Affinity capped by the quota (rounded up), at least 1.
pub fn combine(affinity: u32, quota: Option<Quota>) -> u32 {
    let cap = quota.map_or(u32::MAX, Quota::cpus);
    affinity.min(cap).max(1)
}

/// The CPUs in this process's affinity mask.
fn affinity() -> Option<u32> {
    let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let count = (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count();
    u32::try_from(count).ok().filter(|&n| n > 0)
}

fn read_to_string(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A CPU bandwidth limit: `quota` µs of CPU time every `period` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub quota: u64,
    pub period: u64,
}

impl Quota {
    /// Whole CPUs, rounded up: 1.5 CPUs of quota keep 2 workers busy part-time, which
    /// uses the quota; 1 worker would leave a third of it idle. At least 1.
    pub fn cpus(self) -> u32 {
        let cpus = self.quota.div_ceil(self.period.max(1)).max(1);
        u32::try_from(cpus).unwrap_or(u32::MAX)
    }

    /// The tighter of two limits (a parent cgroup's quota caps its children's).
    fn min(self, other: Quota) -> Quota {
        // Compare quota/period without division: a.q * b.p < b.q * a.p.
        let a = u128::from(self.quota) * u128::from(other.period);
        let b = u128::from(other.quota) * u128::from(self.period);
        if a <= b { self } else { other }
    }
}

/// cgroup v2 `cpu.max`: `"<quota> <period>"`, or `"max <period>"` for no limit.
pub fn parse_cpu_max(text: &str) -> Option<Quota> {
    let mut words = text.split_whitespace();
    let quota = words.next()?.parse().ok()?;
    let period = words.next()?.parse().ok()?;
    (quota > 0 && period > 0).then_some(Quota { quota, period })
}

/// cgroup v1 `cpu.cfs_quota_us` (`-1` for no limit) and `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Option<Quota> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    let quota = u64::try_from(quota).ok()?;
    (quota > 0 && period > 0).then_some(Quota { quota, period })
}

/// Which kind of hierarchy a cgroup line or a mount belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    /// cgroup v2: one unified hierarchy (`0::/path`, fstype `cgroup2`).
    Unified,
    /// cgroup v1 with the `cpu` controller (`4:cpu,cpuacct:/path`, fstype `cgroup`
    /// with `cpu` among its super options).
    V1Cpu,
}

/// The process's cgroup path in each hierarchy that can limit its CPU, from
/// `/proc/self/cgroup` (`hierarchy-id:controllers:path` per line).
fn own_cgroups(cgroup: &str) -> Vec<(Hierarchy, &str)> {
    cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            let kind = if controllers.is_empty() {
                Hierarchy::Unified
            } else if controllers.split(',').any(|c| c == "cpu") {
                Hierarchy::V1Cpu
            } else {
                return None;
            };
            Some((kind, path))
        })
        .collect()
}

/// A cgroup filesystem from `/proc/self/mountinfo`: the cgroup its root shows (a
/// container sees its own cgroup as `/` or as the host path it was bind-mounted from),
/// and where it is mounted.
#[derive(Debug, PartialEq, Eq)]
struct CgroupMount<'a> {
    kind: Hierarchy,
    root: &'a str,
    mount_point: String,
}

/// mountinfo(5): `id parent major:minor root mount-point options [optional…] - fstype
/// source super-options`; paths escape space, tab, newline and backslash as `\ooo`.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split(' ');
            let root = fields.nth(3)?;
            let mount_point = unescape_octal(fields.next()?);
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let _source = after.next()?;
            let options = after.next().unwrap_or("");
            let kind = match fstype {
                "cgroup2" => Hierarchy::Unified,
                "cgroup" if options.split(',').any(|o| o == "cpu") => Hierarchy::V1Cpu,
                _ => return None,
            };
            Some(CgroupMount {
                kind,
                root,
                mount_point,
            })
        })
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match code {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8) + (b - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tightest CPU quota on the process's cgroup and its ancestors, in every hierarchy
/// that has a CPU controller, or None when there is none. `fs_root` prefixes every path
/// read (`/` for the real files; a directory of samples in tests).
pub fn cgroup_quota(cgroup: &str, mountinfo: &str, fs_root: &Path) -> Option<Quota> {
    let mounts = cgroup_mounts(mountinfo);
    let mut tightest: Option<Quota> = None;
    for (kind, path) in own_cgroups(cgroup) {
        for mount in mounts.iter().filter(|m| m.kind == kind) {
            let Some(dir) = cgroup_dir(mount, path, fs_root) else {
                continue;
            };
            let top = rooted(fs_root, &mount.mount_point);
            if let Some(q) = quota_up_from(kind, &dir, &top) {
                tightest = Some(tightest.map_or(q, |t| t.min(q)));
            }
        }
    }
    tightest
}

/// `fs_root` + an absolute path.
fn rooted(fs_root: &Path, path: &str) -> PathBuf {
    fs_root.join(path.trim_start_matches('/'))
}

/// The directory of cgroup `path` under `mount`: the mount shows the hierarchy from its
/// `root` down, so `path` is taken relative to that root. A path outside the root (a
/// cgroup namespace shows `/` while the mount's root names the host's path) falls back
/// to the path under the mount point, then to the mount point itself.
fn cgroup_dir(mount: &CgroupMount<'_>, path: &str, fs_root: &Path) -> Option<PathBuf> {
    let top = rooted(fs_root, &mount.mount_point);
    let relative = Path::new(path)
        .strip_prefix(mount.root)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| Some(PathBuf::from(path.trim_start_matches('/'))))?;
    let dir = top.join(relative);
    if dir.is_dir() {
        Some(dir)
    } else if top.is_dir() {
        Some(top)
    } else {
        None
    }
}

/// The tightest quota from `dir` up to `top` (the mount point), inclusive.
fn quota_up_from(kind: Hierarchy, dir: &Path, top: &Path) -> Option<Quota> {
    let mut tightest: Option<Quota> = None;
    let mut dir = dir.to_path_buf();
    loop {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let here = match kind {
            Hierarchy::Unified => read("cpu.max").as_deref().and_then(parse_cpu_max),
            Hierarchy::V1Cpu => read("cpu.cfs_quota_us")
                .zip(read("cpu.cfs_period_us"))
                .and_then(|(q, p)| parse_cfs(&q, &p)),
        };
        if let Some(q) = here {
            tightest = Some(tightest.map_or(q, |t| t.min(q)));
        }
        if dir == top || !dir.pop() || !dir.starts_with(top) {
            return tightest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(quota: u64, period: u64) -> Quota {
        Quota { quota, period }
    }

    #[test]
    fn a_fractional_quota_rounds_up_and_never_reaches_zero() {
        assert_eq!(q(150_000, 100_000).cpus(), 2);
        assert_eq!(q(200_000, 100_000).cpus(), 2);
        assert_eq!(q(50_000, 100_000).cpus(), 1);
        assert_eq!(q(1, 100_000).cpus(), 1);
        assert_eq!(combine(64, Some(q(200_000, 100_000))), 2);
        assert_eq!(
            combine(1, Some(q(400_000, 100_000))),
            1,
            "affinity is tighter"
        );
        assert_eq!(combine(8, None), 8);
        assert_eq!(combine(0, None), 1);
    }

    #[test]
    fn cpu_max_and_cfs_files_parse_and_no_limit_is_none() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(q(150_000, 100_000)));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs("50000\n", "100000\n"), Some(q(50_000, 100_000)));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("garbage", "100000"), None);
    }

    /// A fake filesystem root holding `files` (path → text).
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    /// This machine's layout: cgroup v1 with `cpu` mounted on its own, the process in a
    /// child of a limited group, and a v2 line with nothing mounted for it.
    #[test]
    fn v1_takes_the_tightest_quota_of_the_group_and_its_ancestors() {
        let cgroup = "9:name=systemd:/\n4:memory:/x\n2:cpuacct:/\n1:cpu:/outer/inner\n0::/\n";
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
";
        let root = tree(&[
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
            ("/sys/fs/cgroup/cpu/outer/cpu.cfs_quota_us", "150000\n"),
            ("/sys/fs/cgroup/cpu/outer/cpu.cfs_period_us", "100000\n"),
            (
                "/sys/fs/cgroup/cpu/outer/inner/cpu.cfs_quota_us",
                "300000\n",
            ),
            (
                "/sys/fs/cgroup/cpu/outer/inner/cpu.cfs_period_us",
                "100000\n",
            ),
        ]);
        let quota = cgroup_quota(cgroup, mountinfo, root.path());
        assert_eq!(quota, Some(q(150_000, 100_000)));
        assert_eq!(combine(64, quota), 2);
    }

    /// Docker on cgroup v1: `cpu,cpuacct` mounted together, the mount's root is the
    /// container's host path, which /proc/self/cgroup also shows.
    #[test]
    fn v1_in_a_container_maps_the_host_path_through_the_mount_root() {
        let cgroup = "3:cpu,cpuacct:/docker/abc\n";
        let mountinfo = "700 690 0:40 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n";
        let root = tree(&[
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        let quota = cgroup_quota(cgroup, mountinfo, root.path());
        assert_eq!(quota, Some(q(200_000, 100_000)));
    }

    /// cgroup v2 (a systemd host or a container with its own cgroup namespace), mounted
    /// somewhere else than /sys/fs/cgroup, with the limit on a parent slice.
    #[test]
    fn v2_reads_cpu_max_up_to_the_mount_wherever_it_is_mounted() {
        let cgroup = "0::/app.slice/web.service\n";
        let mountinfo = "29 23 0:26 / /mnt/cg2\\040dir rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let root = tree(&[
            ("/mnt/cg2 dir/cpu.max", "max 100000\n"),
            ("/mnt/cg2 dir/app.slice/cpu.max", "250000 100000\n"),
            ("/mnt/cg2 dir/app.slice/web.service/cpu.max", "max 100000\n"),
        ]);
        let quota = cgroup_quota(cgroup, mountinfo, root.path());
        assert_eq!(quota, Some(q(250_000, 100_000)));
        assert_eq!(combine(64, quota), 3);
    }

    #[test]
    fn no_limit_anywhere_or_no_cgroup_files_is_none() {
        let root = tree(&[("/sys/fs/cgroup/cpu.max", "max 100000\n")]);
        let mountinfo = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_quota("0::/\n", mountinfo, root.path()), None);
        assert_eq!(cgroup_quota("0::/\n", "", root.path()), None);
        assert_eq!(cgroup_quota("", mountinfo, root.path()), None);
    }

    #[test]
    fn the_real_files_give_at_least_one_cpu_and_no_more_than_the_affinity() {
        let n = usable();
        assert!(n >= 1);
        assert!(n <= affinity().unwrap_or(u32::MAX));
    }
}
