//! `drover update` (issue 14): a new drover binary (the same build copied to another
//! path, which `ping` and /proc/<pid>/exe tell apart) takes over the running supervisor
//! in its own process while load hits the workers; the workers, their counters, their
//! listeners and their log lines carry on. Every way the new binary can fail leaves
//! the old supervisor serving.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover::protocol::{Request, Response, UpdateInfo};

use crate::harness::*;

/// The drover binary copied to `name` in the home: the "newly installed version".
fn copy_of_drover(d: &Daemon, name: &str) -> PathBuf {
    let path = d.home.path().join(name);
    std::fs::copy(DROVER, &path).unwrap();
    path
}

/// A shell script at `name` in the home, executable.
fn script(d: &Daemon, name: &str, body: &str) -> PathBuf {
    let path = d.home.write(name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// What `ping` says: the supervisor's pid, its binary, its last update.
fn pong(d: &Daemon) -> (u32, String, Option<UpdateInfo>) {
    match d.call(&Request::Ping).0 {
        Ok(Response::Pong {
            pid,
            binary,
            last_update,
            ..
        }) => (pid, binary.expect("the binary"), last_update.map(|u| *u)),
        other => panic!("ping: {other:?}"),
    }
}

fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

/// Each worker's id → (pid, restarts, uptime in ms).
fn workers(d: &Daemon) -> BTreeMap<u64, (i64, u64, u64)> {
    d.list()
        .iter()
        .map(|w| {
            (
                w["id"].as_u64().unwrap(),
                (
                    w["pid"].as_i64().unwrap_or(0),
                    w["restarts"].as_u64().unwrap(),
                    w["uptime_ms"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The pids and restart counts only.
fn pids_and_restarts(d: &Daemon) -> BTreeMap<u64, (i64, u64)> {
    workers(d)
        .into_iter()
        .map(|(id, (pid, restarts, _))| (id, (pid, restarts)))
        .collect()
}

/// The stdout log of a one-instance app (PM2 names it without an instance suffix).
fn out_log(d: &Daemon, app: &str) -> PathBuf {
    d.home.path().join(format!("logs/{app}-out.log"))
}

/// The numbers of the `line <n> of <count>` lines in `path`, how often each came, and
/// any line that is neither such a line nor `done`.
fn numbered(path: &Path) -> (BTreeMap<u32, u32>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = BTreeMap::new();
    let mut other = Vec::new();
    for line in text.lines() {
        let n = line
            .strip_prefix("line ")
            .and_then(|rest| rest.split_once(" of "))
            .and_then(|(n, _)| n.parse::<u32>().ok());
        match n {
            Some(n) => *seen.entry(n).or_insert(0) += 1,
            None if line == "done" => {}
            None => other.push(line.to_owned()),
        }
    }
    (seen, other)
}

const LINES: u32 = 4000;

/// The issue's scenario: four Node workers under load (their watchdog pings cross the
/// update on the handed-over IPC channels), a worker writing numbered lines (half lines
/// in the pipe at any moment), `drover update` to another binary. No request fails; the
/// pids, restart counts and uptimes go on; the supervisor's executable is the new one;
/// every line is in the log exactly once. Afterwards crash detection, the memory limit
/// and a reload work as before.
#[test]
fn update_under_load_keeps_every_worker_its_counters_and_every_log_line() {
    let d = Daemon::new();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: {}\n    instances: 4\n    listen: 127.0.0.1:0\n    watchdog: 1s\n    max_memory_restart: 100M\n  - name: counter\n    script: {}\n    args: ['{LINES}']\n",
            fixture("http_worker.js").display(),
            fixture("numbered_lines.js").display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let addr = listen_of(&d.wait_online("web", 4)[0]);
    wait_serving(addr);
    let log = out_log(&d, "counter");
    wait_for("the counter part-way", DEADLINE, || {
        (numbered(&log).0.len() >= 300).then_some(())
    });
    let (pid, old_binary, _) = pong(&d);
    let before = workers(&d);
    let new_binary = copy_of_drover(&d, "drover-new");

    let load = Load::start(addr, 4);
    let out = d.ok(&["update", "--binary", new_binary.to_str().unwrap()]);
    let updated_at = Instant::now();
    assert!(out.contains("updated in place"), "{out}");
    let written = numbered(&log).0.len();
    assert!(
        written < LINES as usize,
        "the counter was still writing when the update was done ({written} lines)"
    );
    let (pid_after, binary, update) = pong(&d);
    assert_eq!(pid_after, pid, "the same supervisor process");
    assert_eq!(exe_of(pid), new_binary, "it runs the new binary");
    assert_eq!(binary, new_binary.display().to_string());
    let update = update.expect("ping reports the update");
    assert_eq!(update.failure, None);
    assert_eq!(update.from_binary, old_binary);
    assert_eq!(update.to_binary, new_binary.display().to_string());

    // The counter finishes under the new binary; every line once, none torn.
    wait_for("the counter done", DEADLINE, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l == "done")
            .then_some(())
    });
    let (seen, other) = numbered(&log);
    assert!(other.is_empty(), "lines that are not whole: {other:?}");
    let missing: Vec<u32> = (1..=LINES).filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<(&u32, &u32)> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "missing {missing:?}, not once {twice:?}"
    );

    // A watchdog period (1 s) and more under the new binary: pings still reach it over
    // the handed-over channels, so nobody was replaced.
    let watchdog = Duration::from_millis(1500);
    std::thread::sleep(watchdog.saturating_sub(updated_at.elapsed()));
    let tally = load.finish();
    assert!(
        tally.clean(),
        "requests failed across the update: {} refused, {:?}",
        tally.refused,
        tally.failed
    );
    assert!(tally.ok > 0);
    let after = workers(&d);
    for (id, (pid, restarts, uptime)) in &before {
        let (pid_now, restarts_now, uptime_now) = after[id];
        assert_eq!(
            (pid_now, restarts_now),
            (*pid, *restarts),
            "worker {id}: {before:?} → {after:?}"
        );
        assert!(
            uptime_now > *uptime,
            "worker {id}'s uptime goes on: {uptime} → {uptime_now}"
        );
    }

    // Crash detection: a killed worker is restarted.
    let web: Vec<_> = d
        .list()
        .into_iter()
        .filter(|w| w["name"] == "web")
        .collect();
    let victim = web[0]["pid"].as_i64().unwrap() as i32;
    let id = web[0]["id"].as_u64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the killed worker restarted", DEADLINE, || {
        let w = d.list().into_iter().find(|w| w["id"] == id)?;
        (w["status"] == "online" && w["pid"] != victim && w["restarts_by_cause"]["crash"] == 1)
            .then_some(())
    });
    // The memory limit: a leaking worker is replaced.
    let leaker = pid_of(&get_json(addr, "/leak"));
    wait_for("the leaking worker replaced", DEADLINE, || {
        let w = d
            .list()
            .into_iter()
            .find(|w| w["restarts_by_cause"]["memory"] == 1)?;
        (w["status"] == "online" && w["pid"] != leaker).then_some(())
    });
    // A reload under load: no request lost, every worker new.
    let before = pids_and_restarts(&d);
    let load = Load::start(addr, 4);
    d.ok(&["reload", "web"]);
    let tally = load.finish();
    assert!(
        tally.clean(),
        "the reload after the update: {} refused, {:?}",
        tally.refused,
        tally.failed
    );
    let after = pids_and_restarts(&d);
    let web_ids: Vec<u64> = d
        .list()
        .iter()
        .filter(|w| w["name"] == "web")
        .map(|w| w["id"].as_u64().unwrap())
        .collect();
    for id in web_ids {
        assert_ne!(after[&id].0, before[&id].0, "worker {id} reloaded");
    }
}

/// A worker killed while no image of drover runs (between the old image's exec and
/// the new image's first look: the wrapper "binary" kills it, then execs drover) is a
/// zombie the new image reaps: it is seen and restarted.
#[test]
fn a_worker_killed_during_the_hand_over_is_restarted_after_it() {
    let d = Daemon::new();
    let addr = d.start_http("web", 2, &[]);
    let victim_file = d.home.path().join("victim");
    // The wrapper kills the worker, waits until it is a zombie (dead, its exit not yet
    // collected), then execs drover: the exit happens while no image of drover runs and
    // waits for the new image. Python, not a shell: a shell may reap a child it did not
    // start (on SIGCHLD), and the exit would be lost to the test, not to drover.
    let wrapper = d.home.write(
        "drover-killing",
        &format!(
            r#"#!/usr/bin/env python3
import os, sys, time
if os.environ.get("DROVER_UPGRADE_STATE_FD"):
    victim = int(open("{victim}").read())
    os.kill(victim, 9)
    deadline = time.monotonic() + 10
    while open(f"/proc/{{victim}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the worker did not die"
        time.sleep(0.005)
os.execv("{DROVER}", ["{DROVER}"] + sys.argv[1:])
"#,
            victim = victim_file.display()
        ),
    );
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let web = d.wait_online("web", 2);
    let victim = web[0]["pid"].as_i64().unwrap();
    let id = web[0]["id"].as_u64().unwrap();
    std::fs::write(&victim_file, victim.to_string()).unwrap();
    let other = (
        web[1]["id"].as_u64().unwrap(),
        web[1]["pid"].as_i64().unwrap(),
    );

    let out = d.ok(&["update", "--binary", wrapper.to_str().unwrap()]);
    assert!(out.contains("updated in place"), "{out}");
    let w = wait_for("the killed worker restarted", DEADLINE, || {
        let w = d.list().into_iter().find(|w| w["id"] == id)?;
        (w["status"] == "online" && w["pid"] != victim).then_some(w)
    });
    assert_eq!(w["restarts_by_cause"]["crash"], 1, "{w}");
    let still = d.list().into_iter().find(|w| w["id"] == other.0).unwrap();
    assert_eq!(still["pid"], other.1, "the other worker is untouched");
    assert_eq!(still["restarts"], 0);
    wait_serving(addr);
    let log = d.home.read("drover.log");
    assert!(
        log.contains(&format!("pid {victim} exited (signal SIGKILL)")),
        "{log}"
    );
}

/// Every way the new binary can fail leaves the old supervisor serving, untouched: the
/// update exits non-zero with the reason; the pid, the binary, the workers are the same;
/// a load running through all of it sees no failure.
#[test]
fn each_failing_binary_leaves_the_old_supervisor_serving() {
    let d = Daemon::new();
    let addr = d.start_http("web", 2, &[]);
    let (pid, binary, _) = pong(&d);
    let workers_before = pids_and_restarts(&d);
    let not_executable = d.home.write("drover-noexec", "");
    let format = script(
        &d,
        "drover-format",
        "echo '{\"format\":99,\"version\":\"9.0.0\",\"apps\":0,\"workers\":0}'",
    );
    let refuses = script(
        &d,
        "drover-refuses",
        "echo 'drover 0.0.1: hand-over state format 1; this drover reads format 0' >&2; exit 3",
    );
    let crashes = script(&d, "drover-crashes", "kill -SEGV $$");
    let hangs = script(&d, "drover-hangs", "exec sleep 60");
    // A wrapper whose child outlives it, holding its stdout: the check is killed with
    // that child, so the supervisor waits 5 s, not the child's 120.
    let orphan_pid = d.home.path().join("orphan.pid");
    let hangs_with_a_child = script(
        &d,
        "drover-hangs-with-a-child",
        &format!("sleep 120 &\necho $! > {}\nwait", orphan_pid.display()),
    );
    // Passes the check (it is drover), then is gone when the supervisor executes it.
    let vanishes = script(
        &d,
        "drover-vanishes",
        &format!("rm -f \"$0\"\nexec {DROVER} \"$@\""),
    );
    let missing = d.home.path().join("drover-missing");

    let load = Load::start(addr, 2);
    let cases: Vec<(&Path, i32, &str)> = vec![
        (&missing, 2, "No such file or directory"),
        (&not_executable, 2, "not executable"),
        (
            &format,
            1,
            "reads hand-over state format 99; this supervisor writes format 1",
        ),
        (
            &refuses,
            1,
            "cannot take over: drover 0.0.1: hand-over state format 1",
        ),
        (&crashes, 1, "crashed reading the state (SIGSEGV)"),
        (&hangs, 1, "did not read the state within 5 s (killed)"),
        (
            &hangs_with_a_child,
            1,
            "did not read the state within 5 s (killed)",
        ),
        (&vanishes, 1, "cannot execute"),
    ];
    for (bad, code, reason) in cases {
        let out = d
            .home
            .output(&["update", "--binary", bad.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: {}{}",
            bad.display(),
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains(reason),
            "{}: {:?} lacks {reason:?}",
            bad.display(),
            out.stderr
        );
        let (pid_now, binary_now, last) = pong(&d);
        assert_eq!((pid_now, &binary_now), (pid, &binary), "{}", bad.display());
        if code == 1 {
            let last = last.expect("ping reports the failed update");
            assert!(
                last.failure.as_deref().is_some_and(|f| f.contains(reason)),
                "{last:?}"
            );
        }
        assert_eq!(pids_and_restarts(&d), workers_before, "{}", bad.display());
        assert_eq!(exe_of(pid), PathBuf::from(DROVER));
    }
    let orphan: i32 = std::fs::read_to_string(&orphan_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the hung check's child killed", DEADLINE, || {
        // Gone, or a zombie its new parent has yet to reap.
        std::fs::read_to_string(format!("/proc/{orphan}/stat"))
            .map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .then_some(())
    });
    let tally = load.finish();
    assert!(
        tally.clean(),
        "{} refused, {:?}",
        tally.refused,
        tally.failed
    );
    assert!(tally.ok > 0);
    // And it still updates.
    let good = copy_of_drover(&d, "drover-good");
    d.ok(&["update", "--binary", good.to_str().unwrap()]);
    assert_eq!(exe_of(pid), good);
    assert_eq!(pids_and_restarts(&d), workers_before);
}

/// An update waits for the operation under way (a reload whose new worker takes its
/// time to be ready) and refuses changes meanwhile; a second update is refused as
/// busy; a file change in a watched directory meanwhile is held back, and the new image
/// reloads the app; then the first update goes through.
#[test]
fn an_update_waits_for_a_reload_and_is_the_only_one() {
    let d = Daemon::new();
    let watched = d.home.path().join("src");
    std::fs::create_dir(&watched).unwrap();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: slow\n    script: {}\n    listen: 127.0.0.1:0\n    wait_ready: true\n    listen_timeout: 20000\n    watch: [{}]\n    watch_delay: 50\n    env:\n      WAIT_READY: '1'\n      READY_DELAY_MS: '1500'\n",
            fixture("http_worker.js").display(),
            watched.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    d.wait_online("slow", 1);
    let (pid, _, _) = pong(&d);
    let new_binary = copy_of_drover(&d, "drover-new");
    let reload = d.spawn(&["reload", "slow"]);
    wait_for("the reload under way", DEADLINE, || {
        let log = d.home.read("drover.log");
        (log.matches("slow#0 started pid").count() >= 2).then_some(())
    });
    let update = d.spawn(&["update", "--binary", new_binary.to_str().unwrap()]);
    wait_for("the update waiting", DEADLINE, || {
        d.home
            .read("drover.log")
            .contains("handing over to")
            .then_some(())
    });
    let second = d.fails(&["update", "--binary", new_binary.to_str().unwrap()]);
    assert!(second.contains("already under way"), "{second}");
    let change = d.fails(&["restart", "slow"]);
    assert!(change.contains("being updated in place"), "{change}");
    std::fs::write(watched.join("changed.js"), "").unwrap();
    wait_for("the change held back", DEADLINE, || {
        d.home
            .read("drover.log")
            .contains("slow: its files changed (src/changed.js): reloading after the update")
            .then_some(())
    });
    let reloaded = reload.join().unwrap();
    assert!(
        reloaded.status.success(),
        "{}{}",
        reloaded.stdout,
        reloaded.stderr
    );
    let updated = update.join().unwrap();
    assert!(
        updated.status.success(),
        "{}{}",
        updated.stdout,
        updated.stderr
    );
    assert_eq!(exe_of(pid), new_binary);
    let log = d.home.read("drover.log");
    let reloaded_at = log.find("reloaded: pid").expect("the reload in the log");
    let handed_at = log.find(" frozen in ").expect("the hand-over in the log");
    assert!(
        reloaded_at < handed_at,
        "the update waited for the reload:\n{log}"
    );
}

/// `drover update` with no supervisor is nothing to do; with the default binary it is
/// the drover that runs it.
#[test]
fn without_a_supervisor_there_is_nothing_to_update() {
    let home = Home::new();
    let out = home.output(&["update"]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("nothing to update"), "{}", out.stdout);
    assert!(
        !home.path().join("drover.sock").exists(),
        "no supervisor was started"
    );
}

/// `drover logs` following the stream goes on with the new image: it says so once, and
/// lines written after the update reach it.
#[test]
fn logs_following_the_stream_carry_on_across_an_update() {
    let d = Daemon::new();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    env:\n      LOG_CONNECTIONS: '1'\n",
            fixture("http_worker.js").display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let addr = listen_of(&d.wait_online("web", 2)[0]);
    wait_serving(addr);
    let follower = d
        .home
        .spawn_wrapped(&["env"], &["logs", "web", "--lines", "0"]);
    wait_for("the follower subscribed", DEADLINE, || {
        let _ = get_json(addr, "/");
        follower.stdout().contains("connection pid=").then_some(())
    });
    let new_binary = copy_of_drover(&d, "drover-new");
    d.ok(&["update", "--binary", new_binary.to_str().unwrap()]);
    follower.wait_stderr("updated in place; following on");
    let seen = follower.stdout().matches("connection pid=").count();
    wait_for("a line written after the update", DEADLINE, || {
        let _ = get_json(addr, "/");
        (follower.stdout().matches("connection pid=").count() > seen).then_some(())
    });
    assert_eq!(
        follower.count_stderr("following on"),
        1,
        "{}",
        follower.stderr()
    );
}
