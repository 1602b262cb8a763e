//! `drover run` as a container's entrypoint: PID 1 of a PID namespace of its own
//! (`unshare --pid --fork --mount-proc`, as `docker run` makes it), reaping the orphans
//! a worker leaves behind, stopping on SIGTERM within kill_timeout with status 0, and
//! status 3 when every app ended errored; and `-i max` counting the CPUs the process
//! may use (its affinity, its cgroup's quota), not the host's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// A worker that leaves an orphan: a subshell starts `sleep 300` in the background,
/// writes its pid (as the namespace numbers it) to $ORPHAN_FILE and exits at once, so
/// the sleep's parent is gone and the kernel hands it to the namespace's init.
const ORPHAN_WORKER: &str = r#"#!/usr/bin/env bash
( sleep 300 >/dev/null 2>&1 & echo $! > "$ORPHAN_FILE.tmp"; mv "$ORPHAN_FILE.tmp" "$ORPHAN_FILE" )
trap 'kill "$child" 2>/dev/null; exit 0' TERM
sleep 300 & child=$!
wait "$child"
"#;

/// `unshare` in a PID namespace of its own, drover its PID 1; `--kill-child` so that
/// whatever happens to the test, the namespace dies with unshare.
const UNSHARE: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

/// Every /proc/<pid> of this (the host's) view.
fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A field of /proc/<pid>/status ("PPid", "NSpid", "State"), as the host numbers it.
fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

fn pid_namespace(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The processes in the PID namespace `init` (a host pid) is the init of.
fn namespace_members(init: i32) -> Vec<i32> {
    let Some(ns) = pid_namespace(init) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|&p| pid_namespace(p).as_ref() == Some(&ns))
        .collect()
}

/// The host pid of the process the namespace of `init` numbers `ns_pid`.
fn host_pid_of(init: i32, ns_pid: i32) -> Option<i32> {
    namespace_members(init).into_iter().find(|&p| {
        status_field(p, "NSpid").and_then(|v| v.split_whitespace().last()?.parse().ok())
            == Some(ns_pid)
    })
}

/// drover's host pid: the child of `unshare` (whose pid the harness knows).
fn namespace_init(running: &Running) -> i32 {
    let unshare = running.pid().as_raw();
    wait_for("unshare to fork drover", DEADLINE, || {
        all_pids().into_iter().find(|&p| {
            status_field(p, "PPid").and_then(|v| v.parse().ok()) == Some(unshare)
                && status_field(p, "NSpid")
                    .is_some_and(|v| v.split_whitespace().last() == Some("1"))
        })
    })
}

fn orphan_app(home: &Home, kill_timeout_ms: u64) -> PathBuf {
    let worker = home.write("orphan.sh", ORPHAN_WORKER);
    std::fs::set_permissions(&worker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: leaver\n    script: {}\n    kill_signal: SIGTERM\n    kill_timeout: {kill_timeout_ms}\n    env:\n      ORPHAN_FILE: {}\n",
            worker.display(),
            home.path().join("orphan.pid").display()
        ),
    )
}

#[test]
fn as_pid_1_drover_reaps_orphans_and_sigterm_ends_everything_with_status_0() {
    let home = Home::new();
    let kill_timeout = Duration::from_millis(1000);
    let eco = orphan_app(&home, kill_timeout.as_millis() as u64);
    let mut running = home.spawn_wrapped(UNSHARE, &["run", eco.to_str().unwrap()]);
    let init = namespace_init(&running);
    running.remember(init);

    let ns_pid: i32 = wait_for("the worker to leave an orphan", DEADLINE, || {
        home.read("orphan.pid").trim().parse().ok()
    });
    let orphan = wait_for("the orphan's host pid", DEADLINE, || {
        host_pid_of(init, ns_pid)
    });
    running.remember(orphan);
    // Its parent exited: the kernel gave it to the namespace's init, drover.
    wait_for("the orphan to be re-parented to drover", DEADLINE, || {
        (status_field(orphan, "PPid").and_then(|v| v.parse().ok()) == Some(init)).then_some(())
    });

    // The orphan dies: drover, its parent now, must reap it, or it stays a zombie.
    kill(Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    wait_for("drover to reap the orphan", DEADLINE, || {
        (!Path::new(&format!("/proc/{orphan}")).exists()).then_some(())
    });
    let zombies: Vec<i32> = namespace_members(init)
        .into_iter()
        .filter(|&p| status_field(p, "State").is_some_and(|s| s.starts_with('Z')))
        .collect();
    assert!(zombies.is_empty(), "zombies in the namespace: {zombies:?}");
    assert!(
        namespace_members(init).len() >= 2,
        "drover and its worker still run"
    );

    // `docker stop`: SIGTERM to PID 1, which stops the worker gracefully and exits 0.
    let signalled = Instant::now();
    kill(Pid::from_raw(init), Signal::SIGTERM).unwrap();
    let status = running.wait_exit(DEADLINE);
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", running.stderr());
    assert!(
        took < kill_timeout + Duration::from_secs(4),
        "SIGTERM to exit took {took:?}"
    );
    assert!(
        running.stderr().contains("SIGTERM received"),
        "{}",
        running.stderr()
    );
    assert!(is_gone(init));
}

#[test]
fn as_pid_1_drover_exits_3_when_every_app_errored() {
    let home = Home::new();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: crashy\n    script: {}\n    max_restarts: 2\n    env:\n      CRASH_COUNT_FILE: /dev/null\n",
            fixture("crasher.sh").display()
        ),
    );
    let mut running = home.spawn_wrapped(UNSHARE, &["run", eco.to_str().unwrap()]);
    let status = running.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(3), "{}", running.stderr());
    assert!(
        running.stderr().contains("crashy#0"),
        "the errored worker is named: {}",
        running.stderr()
    );
}

/// The "<app> listening on <addr> (<socket>, <n> workers)" line's worker count.
fn workers_started(running: &Running, app: &str) -> u32 {
    let line = running.wait_stderr(&format!("{app} listening on "));
    let inside = line.rsplit_once('(').unwrap().1;
    inside
        .split(", ")
        .nth(1)
        .and_then(|w| w.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no worker count in {line:?}"))
}

fn max_workers_under(home: &Home, wrapper: &[&str]) -> u32 {
    let script = fixture("http_worker.js");
    let running = home.spawn_wrapped(
        wrapper,
        &[
            "run",
            script.to_str().unwrap(),
            "-i",
            "max",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "counted",
        ],
    );
    workers_started(&running, "counted")
}

#[test]
fn instances_max_counts_the_cpus_of_the_affinity_mask() {
    let cpus = drover::cpus::usable();
    assert!(cpus >= 1);
    assert_eq!(max_workers_under(&Home::new(), &["taskset", "-c", "0"]), 1);
    if cpus >= 2 {
        // Two CPUs allowed: two workers (the count follows the mask, it is no constant).
        assert_eq!(
            max_workers_under(&Home::new(), &["taskset", "-c", "0,1"]),
            2
        );
    }
}

/// A cgroup v1 `cpu` group of this test's own, removed on drop (once its processes are
/// gone, which the kernel requires).
struct CpuCgroup {
    dir: PathBuf,
}

impl CpuCgroup {
    /// None when this machine has no writable cgroup v1 `cpu` hierarchy (a cgroup v2
    /// host, or not root); the quota parsing is covered by `cpus`' unit tests there.
    fn create(quota_us: u64) -> Option<CpuCgroup> {
        let mount = Path::new("/sys/fs/cgroup/cpu");
        if !mount.join("cpu.cfs_quota_us").exists() {
            return None;
        }
        let dir = mount.join(format!("drover-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let group = CpuCgroup { dir };
        std::fs::write(group.dir.join("cpu.cfs_period_us"), "100000").unwrap();
        std::fs::write(group.dir.join("cpu.cfs_quota_us"), quota_us.to_string()).unwrap();
        Some(group)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn instances_max_counts_the_cgroup_cpu_quota_rounded_up() {
    if drover::cpus::usable() < 2 {
        eprintln!("one CPU only: a quota cannot lower the count; see the cpus unit tests");
        return;
    }
    // Half a CPU: rounded up, one worker (the host would give two).
    let Some(group) = CpuCgroup::create(50_000) else {
        eprintln!("no writable cgroup v1 cpu hierarchy here; see the cpus unit tests");
        return;
    };
    let procs = group.dir.join("cgroup.procs");
    let enter = format!("echo $$ > {} && exec \"$@\"", procs.display());
    let home = Home::new();
    assert_eq!(max_workers_under(&home, &["sh", "-c", &enter, "sh"]), 1);
    drop(home);
    // 1.5 CPUs round up to 2: std's available_parallelism would say 1.
    std::fs::write(group.dir.join("cpu.cfs_quota_us"), "150000").unwrap();
    assert_eq!(
        max_workers_under(&Home::new(), &["sh", "-c", &enter, "sh"]),
        2
    );
}
