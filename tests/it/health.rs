//! Readiness and health steer traffic (issue 13): a worker that is not ready or not
//! healthy takes no new connection on the shared port, and an unhealthy one is replaced
//! without a gap. Real workers, real sockets on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::*;

/// The workers of `name` from `list --json`.
fn workers_of(d: &Daemon, name: &str) -> Vec<serde_json::Value> {
    d.list().into_iter().filter(|w| w["name"] == name).collect()
}

fn pids_of(d: &Daemon, name: &str) -> BTreeSet<i64> {
    workers_of(d, name)
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .collect()
}

/// Waits until worker `pid` of `name` is gone and the app has `n` online workers again,
/// one of them replaced for its health; returns the `list --json` entry of the slot
/// that was replaced.
fn replaced_for_health(d: &Daemon, name: &str, pid: i64, n: usize) -> serde_json::Value {
    wait_for(
        &format!("pid {pid} of {name} replaced for its health"),
        DEADLINE,
        || {
            let workers = workers_of(d, name);
            let done = workers.len() == n
                && workers
                    .iter()
                    .all(|w| w["status"] == "online" && w["pid"] != pid);
            let slot = workers
                .into_iter()
                .find(|w| w["restarts_by_cause"]["health"].as_u64() == Some(1));
            slot.filter(|_| done)
        },
    )
}

/// An unmodified Node app whose event loop blocks forever (a `while (true) {}` in a
/// handler) stops the shim's watchdog pings: the worker is steered out and replaced
/// while fresh-connection load on the port keeps being served. The only requests lost
/// are those the blocked worker had already read.
#[test]
fn a_node_worker_whose_event_loop_blocks_is_steered_out_and_replaced_under_load() {
    let d = Daemon::new();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: blocky\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    kill_timeout: 500\n    watchdog: 1s\n",
            fixture("http_worker.js").display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let workers = d.wait_online("blocky", 2);
    let addr_blocky = listen_of(&workers[0]);
    wait_serving(addr_blocky);

    let before = pids_of(&d, "blocky");
    let load = Load::start(addr_blocky, 4);
    // One request blocks the worker it lands on; its answer never comes.
    let blocker = std::thread::spawn(move || get(addr_blocky, "/block"));
    let slot = wait_for("the blocked worker replaced", DEADLINE, || {
        let workers = workers_of(&d, "blocky");
        let settled = workers.len() == 2 && workers.iter().all(|w| w["status"] == "online");
        let slot = workers
            .into_iter()
            .find(|w| w["restarts_by_cause"]["health"].as_u64() == Some(1));
        slot.filter(|_| settled)
    });
    let gone: Vec<i64> = before.difference(&pids_of(&d, "blocky")).copied().collect();
    assert_eq!(gone.len(), 1, "one worker replaced: {before:?} → {gone:?}");
    let blocked = gone[0];
    // Both workers serve again, the load still running.
    let answered: BTreeSet<i32> = (0..100)
        .map(|_| pid_of(&get_json(addr_blocky, "/")))
        .collect();
    assert!(!answered.contains(&(blocked as i32)));
    let tally = load.finish();
    let _ = blocker.join();
    assert_eq!(tally.refused, 0, "{tally:?}");
    // A fresh-connection client has one request in flight: at most one per client can
    // have been read by the worker before it blocked.
    assert!(
        tally.failed.len() <= 4,
        "only requests the blocked worker had read may be lost: {tally:?}"
    );
    assert!(tally.ok > 0, "{tally:?}");
    let describe = d.ok(&["describe", "blocky"]);
    assert!(describe.contains("watchdog           1s"), "{describe}");
    assert_eq!(slot["restarts_by_cause"]["crash"], 0, "{slot}");
    let log = d.home.read("drover.log");
    assert!(
        log.contains(&format!(
            "pid {blocked} is unhealthy: no WATCHDOG=1 for 1000 ms"
        )),
        "{log}"
    );
}

/// A worker of any language says WATCHDOG=1 on $NOTIFY_SOCKET (sd_notify) with the
/// variables systemd sets; one that stops is replaced, and `describe` says why.
#[test]
fn a_worker_that_stops_pinging_its_watchdog_is_replaced() {
    let d = Daemon::new();
    let script = d.home.write(
        "pinger.py",
        r#"import os, socket, time
assert os.environ['WATCHDOG_PID'] == str(os.getpid()), os.environ.get('WATCHDOG_PID')
period = int(os.environ['WATCHDOG_USEC']) / 1e6
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ['NOTIFY_SOCKET'])
marker = os.path.join(os.environ['HOME_DIR'], 'pinged')
first = not os.path.exists(marker)
for _ in range(10 if first else 10**9):
    s.send(b'WATCHDOG=1')
    time.sleep(period / 4)
open(marker, 'w').close()
print('silent now', flush=True)
time.sleep(3600)
"#,
    );
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: pinger\n    script: {}\n    watchdog: 400ms\n    kill_timeout: 300\n    env:\n      HOME_DIR: {}\n",
            script.display(),
            d.home.path().display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let first = d.wait_online("pinger", 1)[0]["pid"].as_i64().unwrap();
    let slot = replaced_for_health(&d, "pinger", first, 1);
    assert_eq!(slot["restarts"], 1, "{slot}");
    // The successor pings for ever: it stays, and the reason goes once it has pinged.
    let again = slot["pid"].as_i64().unwrap();
    let describe = wait_for("the reason to clear", DEADLINE, || {
        let text = d.ok(&["describe", "pinger"]);
        (!text.contains("unhealthy")).then_some(text)
    });
    assert!(describe.contains("watchdog           400ms"), "{describe}");
    assert_eq!(pids_of(&d, "pinger"), BTreeSet::from([again]));
    let log = d.home.read("drover.log");
    assert!(
        log.contains(&format!(
            "pid {first} is unhealthy: no WATCHDOG=1 for 400 ms"
        )),
        "{log}"
    );
}

/// `health: {exec}` runs with the worker's environment and DROVER_WORKER_PID: failing
/// for one worker replaces that one only; `health: {http}` GETs each worker itself
/// through the shared port, and a worker answering 503 is replaced, the other kept.
#[test]
fn failing_exec_and_http_checks_replace_their_worker_only() {
    let d = Daemon::new();
    let sick_dir = d.home.path().join("sick");
    std::fs::create_dir(&sick_dir).unwrap();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: byexec\n    script: {js}\n    instances: 2\n    listen: 127.0.0.1:0\n    health:\n      exec: [sh, -c, 'test ! -e {dir}/$DROVER_WORKER_PID']\n      interval: 200ms\n      timeout: 200ms\n      failures: 2\n\
             \x20 - name: byhttp\n    script: {js}\n    instances: 2\n    listen: 127.0.0.1:0\n    health:\n      http: /health\n      interval: 200ms\n      timeout: 200ms\n      failures: 2\n",
            js = fixture("http_worker.js").display(),
            dir = sick_dir.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let exec_workers = d.wait_online("byexec", 2);
    let http_workers = d.wait_online("byhttp", 2);
    // Healthy workers stay: a few intervals pass with nothing replaced.
    let before = (pids_of(&d, "byexec"), pids_of(&d, "byhttp"));
    let settled = std::time::Instant::now() + Duration::from_millis(1500);
    wait_for("a few health intervals", DEADLINE, || {
        (std::time::Instant::now() >= settled).then_some(())
    });
    assert_eq!((pids_of(&d, "byexec"), pids_of(&d, "byhttp")), before);

    // exec: one worker's marker makes its check fail.
    let victim = exec_workers[1]["pid"].as_i64().unwrap();
    let keeper = exec_workers[0]["pid"].as_i64().unwrap();
    std::fs::write(sick_dir.join(victim.to_string()), "").unwrap();
    replaced_for_health(&d, "byexec", victim, 2);
    assert!(pids_of(&d, "byexec").contains(&keeper));
    let describe = d.ok(&["describe", "byexec"]);
    assert!(
        describe.contains("sh -c 'test ! -e") && describe.contains("every 200ms"),
        "{describe}"
    );

    // http: the worker that answers /sick fails GET /health from then on.
    let addr = listen_of(&http_workers[0]);
    let sick = get_json(addr, "/sick");
    let victim = pid_of(&sick) as i64;
    let keeper = *pids_of(&d, "byhttp")
        .iter()
        .find(|&&p| p != victim)
        .unwrap();
    let slot = replaced_for_health(&d, "byhttp", victim, 2);
    assert!(pids_of(&d, "byhttp").contains(&keeper));
    assert_eq!(slot["restarts_by_cause"]["health"], 1);
    let log = d.home.read("drover.log");
    assert!(
        log.contains(&format!(
            "pid {victim} is unhealthy: GET /health: HTTP/1.1 503"
        )),
        "{log}"
    );
}

/// A worker that never says it is ready takes no connection while another can: not
/// while it boots, and not after listen_timeout either, when `list` shows it online (as
/// PM2) but not ready.
#[test]
fn a_worker_that_is_never_ready_gets_no_connection() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let out = d
        .home
        .command(&[
            "start",
            script.to_str().unwrap(),
            "-i",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "web",
            "--wait-ready",
            "--listen-timeout",
            "1500",
        ])
        .env("WAIT_READY", "1")
        .env("WAIT_READY_INSTANCES", "0")
        .env("LOG_CONNECTIONS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ready = wait_for("instance 0 online", DEADLINE, || {
        workers_of(&d, "web")
            .into_iter()
            .find(|w| w["instance"] == 0 && w["status"] == "online" && w["ready"] == true)
    });
    let addr = listen_of(&ready);
    let ready_pid = ready["pid"].as_i64().unwrap();
    let never = workers_of(&d, "web")
        .into_iter()
        .find(|w| w["instance"] == 1)
        .unwrap();
    let never_pid = never["pid"].as_i64().unwrap();
    assert_eq!(never["ready"], false, "{never}");
    let count = |pid: i64| {
        d.home
            .read("logs/web-out-0.log")
            .lines()
            .chain(d.home.read("logs/web-out-1.log").lines())
            .filter(|l| *l == format!("connection pid={pid}"))
            .count()
    };
    let before = count(never_pid);
    for _ in 0..100 {
        assert_eq!(pid_of(&get_json(addr, "/")) as i64, ready_pid);
    }
    // Past listen_timeout it is listed online, and still gets nothing.
    let listed = wait_for("instance 1 listed online", DEADLINE, || {
        workers_of(&d, "web")
            .into_iter()
            .find(|w| w["instance"] == 1 && w["status"] == "online")
    });
    assert_eq!(listed["ready"], false, "{listed}");
    for _ in 0..100 {
        assert_eq!(pid_of(&get_json(addr, "/")) as i64, ready_pid);
    }
    assert_eq!(
        count(never_pid),
        before,
        "the never-ready worker accepted connections"
    );
    assert!(count(ready_pid) >= 200);
}

/// A health command that hangs or floods its output is killed at its timeout and
/// counts as a failure; the supervisor stays responsive throughout.
#[test]
fn a_hanging_or_flooding_check_is_killed_and_counted() {
    let d = Daemon::new();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: hangs\n    script: {js}\n    listen: 127.0.0.1:0\n    health:\n      exec: [sleep, '60']\n      interval: 300ms\n      timeout: 300ms\n      failures: 2\n\
             \x20 - name: floods\n    script: {js}\n    listen: 127.0.0.1:0\n    health:\n      exec: [yes]\n      interval: 300ms\n      timeout: 300ms\n      failures: 2\n",
            js = fixture("http_worker.js").display(),
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let hangs = d.wait_online("hangs", 1)[0]["pid"].as_i64().unwrap();
    let floods = d.wait_online("floods", 1)[0]["pid"].as_i64().unwrap();
    replaced_for_health(&d, "hangs", hangs, 1);
    replaced_for_health(&d, "floods", floods, 1);
    let (answer, took) = d.call(&drover::protocol::Request::List);
    assert!(answer.is_ok());
    assert!(took < Duration::from_secs(1), "list took {took:?}");
    let log = d.home.read("drover.log");
    assert!(
        log.contains("sleep: no answer within 300ms (killed)"),
        "{log}"
    );
    // No check command outlives its timeout: at most the one running now.
    let running = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 60$"])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&running.stdout).lines().count();
    assert!(running <= 1, "{running} checks left running");
}
