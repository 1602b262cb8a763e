//! Faults from outside: workers SIGKILLed at random under load, the supervisor itself
//! SIGKILLed, the log disk full.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// xorshift64*: a fixed seed gives the same choices every run, no crate needed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// A process: its pid and start time (pids are reused, quickly with pid_max 32768).
type Proc = (i32, u64);

fn proc_of(pid: i32) -> Option<Proc> {
    Some((pid, start_time(pid)?))
}

/// Whether that process is gone (its pid free, a zombie, or another process's now).
fn proc_gone((pid, started): Proc) -> bool {
    is_gone(pid) || start_time(pid) != Some(started)
}

/// SIGKILLs on drop the processes it holds that are still there: what a failing test
/// would otherwise leak.
struct Reap(Vec<Proc>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &p in &self.0 {
            if !proc_gone(p) {
                let _ = kill(Pid::from_raw(p.0), Signal::SIGKILL);
            }
        }
    }
}

/// The pids of `name`'s workers that `list` shows online.
fn online_pids(d: &Daemon, name: &str) -> Vec<i32> {
    d.list()
        .iter()
        .filter(|w| w["name"] == name && w["status"] == "online")
        .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
        .collect()
}

/// For `duration`, every 300 ms, SIGKILLs a random online worker of `name` under the
/// load of 2 clients. Adds every pid it killed to `killed`; returns what the clients saw.
fn chaos(
    d: &Daemon,
    name: &str,
    addr: SocketAddr,
    rng: &mut Rng,
    duration: Duration,
    killed: &mut Vec<Proc>,
) -> Tally {
    let load = Load::start(addr, 2);
    let period = Duration::from_millis(300);
    let end = Instant::now() + duration;
    let mut next = Instant::now();
    while next + period < end {
        // Pacing, not synchronisation: a kill every 300 ms whatever the supervisor does;
        // a tick missed on a slow machine is skipped, never made up in a burst.
        next += period;
        while next < Instant::now() {
            next += period;
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
        let alive: Vec<Proc> = online_pids(d, name)
            .into_iter()
            .filter_map(proc_of)
            .filter(|p| !killed.contains(p))
            .collect();
        if alive.is_empty() {
            continue;
        }
        let victim = alive[rng.below(alive.len())];
        // `list` may be a moment old: make sure the pid is still one of our Node workers.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", victim.0)).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("http_worker.js") {
            continue;
        }
        match kill(Pid::from_raw(victim.0), Signal::SIGKILL) {
            Ok(()) => killed.push(victim),
            Err(Errno::ESRCH) => {}
            Err(e) => panic!("kill {}: {e}", victim.0),
        }
    }
    load.finish()
}

/// Waits until each of the app's `n` slots is online with a worker that was not killed
/// (`list` may show the last victim online until its death is processed).
fn all_back(d: &Daemon, name: &str, n: usize, killed: &[Proc]) -> Vec<serde_json::Value> {
    wait_for(
        &format!("every slot of {name} online with a new worker"),
        DEADLINE,
        || {
            let workers: Vec<_> = d.list().into_iter().filter(|w| w["name"] == name).collect();
            let fresh = |w: &serde_json::Value| {
                w["status"] == "online"
                    && w["pid"]
                        .as_i64()
                        .and_then(|p| proc_of(p as i32))
                        .is_some_and(|p| !killed.contains(&p))
            };
            (workers.len() == n && workers.iter().all(fresh)).then_some(workers)
        },
    )
}

/// Polls until the supervisor's RSS and fd count are back within bounds of `before`
/// (RSS ±10%, fds ±10% or ±3); returns the last (rss kB, fds) seen and whether they were.
fn settles_near(pid: i32, before: (u64, usize)) -> ((u64, usize), bool) {
    let (rss0, fd0) = before;
    let fd_slack = (fd0 / 10).max(3);
    let within =
        |(rss, fds): (u64, usize)| rss.abs_diff(rss0) * 10 <= rss0 && fds.abs_diff(fd0) <= fd_slack;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (vm_rss_kb(pid), fd_count(pid));
        if within(now) || Instant::now() >= deadline {
            return (now, within(now));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn random_kill_9_of_workers_for_30s_refuses_no_connection_and_leaks_nothing() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    // The chaos kills workers younger than min_uptime on purpose; 16 such unstable runs
    // in a row would (rightly) leave a slot errored, so max_restarts is out of the way.
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "-i",
        "4",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "chaos",
        "--max-restarts",
        "100000",
    ]);
    let addr = listen_of(&d.wait_online("chaos", 4)[0]);
    wait_serving(addr);
    let supervisor = d.supervisor_pid().expect("supervisor pid from ping");
    let mut rng = Rng(0x5EED_D20E_C4A0_5000);
    let mut killed = Vec::new();

    // Warm-up with the same load and kills, so buffers allocated on first use are in
    // the "before" figures.
    let warm = chaos(
        &d,
        "chaos",
        addr,
        &mut rng,
        Duration::from_secs(3),
        &mut killed,
    );
    assert_eq!(warm.refused, 0, "warm-up: {warm:?}");
    all_back(&d, "chaos", 4, &killed);
    let before = (vm_rss_kb(supervisor), fd_count(supervisor));
    let warm_kills = killed.len();

    let tally = chaos(
        &d,
        "chaos",
        addr,
        &mut rng,
        Duration::from_secs(30),
        &mut killed,
    );
    let kills = killed.len() - warm_kills;
    assert!(kills >= 50, "only {kills} workers killed in 30 s");
    assert_eq!(
        tally.refused,
        0,
        "no connection refused ({} ok, {} failed, {kills} kills)",
        tally.ok,
        tally.failed.len()
    );
    // Each client has one request in flight: a kill can fail at most those two.
    assert!(
        tally.failed.len() <= 2 * kills,
        "{} requests failed for {kills} kills; first: {:?}",
        tally.failed.len(),
        &tally.failed[..tally.failed.len().min(5)]
    );
    assert!(tally.ok > 0);
    eprintln!(
        "chaos: {kills} kills, {} ok, {} failed ({:?}…), 0 refused",
        tally.ok,
        tally.failed.len(),
        &tally.failed[..tally.failed.len().min(2)]
    );

    // Every slot back online, every killed worker gone, each kill counted once.
    let workers = all_back(&d, "chaos", 4, &killed);
    for &p in &killed {
        wait_for(&format!("killed worker {} gone", p.0), DEADLINE, || {
            proc_gone(p).then_some(())
        });
    }
    let restarts: u64 = workers
        .iter()
        .map(|w| w["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        restarts,
        killed.len() as u64,
        "one restart per kill, no other: {workers:?}"
    );
    wait_serving(addr);

    // The supervisor neither grew nor leaked descriptors.
    let (after, ok) = settles_near(supervisor, before);
    assert!(
        ok,
        "supervisor (rss kB, fds) before the chaos {before:?}, after {after:?}"
    );
    eprintln!("supervisor (rss kB, fds): before {before:?}, after {after:?}");
    assert_eq!(d.supervisor_pid(), Some(supervisor));
}

#[test]
fn a_sigkilled_supervisor_takes_its_workers_along_and_resurrect_brings_them_back() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "api",
    ]);
    let workers = d.wait_online("api", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    let procs: Vec<Proc> = workers
        .iter()
        .filter_map(|w| proc_of(w["pid"].as_i64()? as i32))
        .collect();
    assert_eq!(procs.len(), 2, "{workers:?}");
    let _reap = Reap(procs.clone());
    d.ok(&["save"]);

    let supervisor = d
        .supervisor_pid()
        .and_then(proc_of)
        .expect("supervisor pid from ping");
    kill(Pid::from_raw(supervisor.0), Signal::SIGKILL).unwrap();
    wait_for("the supervisor to be gone", DEADLINE, || {
        proc_gone(supervisor).then_some(())
    });
    for &p in &procs {
        wait_for(
            &format!("worker {} to die with its supervisor", p.0),
            DEADLINE,
            || proc_gone(p).then_some(()),
        );
    }
    wait_for("the port to be free", DEADLINE, || {
        matches!(get(addr, "/"), Reply::Refused).then_some(())
    });
    drop(TcpListener::bind(addr).unwrap_or_else(|e| {
        panic!("{addr} still taken after the supervisor and its workers died: {e}")
    }));

    // The socket file is left behind by the dead supervisor; resurrect starts anew.
    d.ok(&["resurrect"]);
    let back = d.wait_online("api", 2);
    assert_eq!(listen_of(&back[0]), addr, "same address as before");
    let reply = wait_serving(addr);
    let answered = proc_of(pid_of(&reply));
    assert!(
        answered.is_some_and(|p| !procs.contains(&p)),
        "a new worker answers: {reply}"
    );
    let new_supervisor = d.supervisor_pid().and_then(proc_of);
    assert!(
        new_supervisor.is_some_and(|p| p != supervisor),
        "a new supervisor: {new_supervisor:?}"
    );
}

/// A 1 MB tmpfs, lazily unmounted (and its directory removed) on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("dfull")
            .tempdir_in("/tmp")
            .expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a 1 MB tmpfs (root with CAP_SYS_ADMIN): \
             `mount -t tmpfs -o size=1m tmpfs {}` failed: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn dropped_log_lines(d: &Daemon, app: &str) -> u64 {
    let out = d.ok(&["describe", app, "--json"]);
    let apps: serde_json::Value = serde_json::from_str(&out).unwrap();
    apps[0]["dropped_log_lines"]
        .as_u64()
        .unwrap_or_else(|| panic!("no dropped_log_lines in {out}"))
}

/// Whole lines `chatty <instance> <n> xxx…` in the file.
fn chatty_lines(path: &PathBuf) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .split_inclusive('\n')
        .filter(|l| l.len() == 200 && l.starts_with("chatty "))
        .count()
}

/// Every request answers: `n` GETs, each on a new connection.
fn serves(addr: SocketAddr, n: usize) {
    for i in 0..n {
        match get(addr, "/") {
            Reply::Ok(_) => {}
            other => panic!("request {i} of {n} while the log disk is full: {other:?}"),
        }
    }
}

#[test]
fn a_full_log_disk_drops_lines_but_not_the_workers_and_logging_resumes_when_freed() {
    // Declared first, dropped last: the supervisor is gone before the unmount.
    let disk = SmallDisk::mount();
    let d = Daemon::new();
    let log = disk.path().join("chatty.log");
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: chatty\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    merge_logs: true\n    out_file: {}\n",
            fixture("chatty_worker.js").display(),
            log.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let workers = d.wait_online("chatty", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    let supervisor = d.supervisor_pid().expect("supervisor pid from ping");

    // The workers write ~800 KB/s between them: the disk fills within seconds.
    let dropped = wait_for("dropped_log_lines > 0", DEADLINE, || {
        let n = dropped_log_lines(&d, "chatty");
        (n > 0).then_some(n)
    });
    // While it stays full, lines keep being read and dropped (no worker blocks on its
    // pipe), every request answers, and the supervisor answers.
    wait_for("more lines dropped", DEADLINE, || {
        serves(addr, 5);
        (dropped_log_lines(&d, "chatty") >= dropped + 2000).then_some(())
    });
    serves(addr, 20);
    assert_eq!(d.supervisor_pid(), Some(supervisor), "the same supervisor");
    let still: Vec<_> = d.list().iter().map(|w| w["pid"].clone()).collect();
    let first: Vec<_> = workers.iter().map(|w| w["pid"].clone()).collect();
    assert_eq!(still, first, "no worker was replaced");

    // Free the space: lines reach the file again.
    let out = d.ok(&["flush", "chatty"]);
    assert!(out.contains("emptied"), "{out}");
    let after_flush = wait_for("new lines in the emptied log file", DEADLINE, || {
        let n = chatty_lines(&log);
        (n >= 100).then_some(n)
    });
    eprintln!(
        "full disk: {} lines dropped; {after_flush} whole lines in the file after flush",
        dropped_log_lines(&d, "chatty")
    );
    serves(addr, 5);
    assert_eq!(d.supervisor_pid(), Some(supervisor));
}
