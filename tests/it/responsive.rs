//! The supervisor never stops answering: while a stop waits on a worker that ignores
//! its kill signal, and while a scale-down drains, `list`, `ping` and `describe` answer
//! at once, other apps start, and SIGTERM stops everything. Commands that wait mean it:
//! `restart` returns once the new worker is started, `stop` once the old one is gone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use drover::ipc::client::ClientError;
use drover::protocol::{ErrorKind, Request, Response, Target};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// The supervisor's answer times to `list`, `ping` and `describe <name>`, 5 rounds.
/// Returns the median and the slowest.
fn answer_times(d: &Daemon, name: &str) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..5 {
        for request in [
            Request::List,
            Request::Ping,
            Request::Describe {
                target: Target::Name(name.into()),
            },
        ] {
            let (answer, took) = d.call(&request);
            assert!(answer.is_ok(), "{request:?}: {answer:?}");
            times.push(took);
        }
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// Median well under 100 ms; a blocked loop would take the whole kill_timeout (8 s).
fn assert_prompt(d: &Daemon, name: &str, while_what: &str) {
    let (median, slowest) = answer_times(d, name);
    assert!(
        median < Duration::from_millis(100) && slowest < Duration::from_secs(1),
        "while {while_what}: median {median:?}, slowest {slowest:?}"
    );
}

fn start_stubborn(d: &Daemon, kill_timeout: &str) -> i64 {
    d.ok(&[
        "start",
        fixture("ignore_sigint.js").to_str().unwrap(),
        "--name",
        "stubborn",
        "--listen",
        "127.0.0.1:0",
        "--kill-timeout",
        kill_timeout,
    ]);
    d.wait_online("stubborn", 1)[0]["pid"].as_i64().unwrap()
}

#[test]
fn a_stop_waiting_on_a_stubborn_worker_holds_up_nothing() {
    let d = Daemon::new();
    let pid = start_stubborn(&d, "8s");
    let started = Instant::now();
    let stop = d.spawn(&["stop", "stubborn"]);
    wait_for("the worker to be stopping", DEADLINE, || {
        (d.statuses("stubborn") == ["stopping"]).then_some(())
    });
    assert_prompt(&d, "stubborn", "a stop waits on kill_timeout");

    // Another app starts and serves meanwhile.
    d.ok(&[
        "start",
        fixture("http_worker.js").to_str().unwrap(),
        "--name",
        "other",
        "--listen",
        "127.0.0.1:0",
    ]);
    let other = listen_of(&d.wait_online("other", 1)[0]);
    wait_serving(other);

    // `list` shows `stopping` for the whole kill window (SIGKILL comes 8 s after the
    // slot got the stop, so after `started` + 8 s), then `stopped` with the worker gone.
    while !stop.is_finished() {
        let statuses = d.statuses("stubborn");
        if statuses == ["stopping"] {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(statuses, ["stopped"]);
        assert!(
            started.elapsed() >= Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        assert!(
            is_gone(pid as i32),
            "stopped, but the worker is still there"
        );
        break;
    }
    let out = stop.join().unwrap();
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(is_gone(pid as i32));
    assert_eq!(d.statuses("stubborn"), ["stopped"]);
}

#[test]
fn sigterm_during_a_pending_stop_stops_everything_within_kill_timeout() {
    let d = Daemon::new();
    let pid = start_stubborn(&d, "3s");
    let supervisor = d.supervisor_pid().expect("supervisor pid");
    let stop = d.spawn(&["stop", "stubborn"]);
    wait_for("the worker to be stopping", DEADLINE, || {
        (d.statuses("stubborn") == ["stopping"]).then_some(())
    });
    let signalled = Instant::now();
    kill(Pid::from_raw(supervisor), Signal::SIGTERM).unwrap();
    // Shutting down, it still answers: it shows, and refuses changes (exit 6).
    wait_for("a start to be refused as shutting down", DEADLINE, || {
        let out = d
            .home
            .output(&["start", fixture("http_worker.js").to_str().unwrap()]);
        (out.status.code() == Some(6) && out.stderr.contains("shutting down")).then_some(())
    });
    let (answer, took) = d.call(&Request::List);
    assert!(
        matches!(&answer, Ok(Response::Workers { workers }) if workers.len() == 1),
        "{answer:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    wait_for("the supervisor to exit", DEADLINE, || {
        is_gone(supervisor).then_some(())
    });
    let took = signalled.elapsed();
    assert!(is_gone(pid as i32), "the worker outlived its supervisor");
    // 3 s of kill_timeout, counted from the stop; plus reaping and the log drain.
    assert!(
        took < Duration::from_secs(3) + Duration::from_secs(5),
        "{took:?}"
    );
    // The pending stop got its answer: the worker is stopped.
    let out = stop.join().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("stopped stubborn"), "{}", out.stdout);
}

/// Waits until `name` is in the middle of a change (a delete, a scale-down): `scale 0`
/// is then refused as busy, and before that as a bad request, changing nothing.
fn wait_until_busy(d: &Daemon, name: &str) {
    wait_for(&format!("{name} to be busy"), DEADLINE, || {
        let (answer, _) = d.call(&Request::Scale {
            name: name.into(),
            instances: 0,
        });
        match answer {
            Err(ClientError::Supervisor {
                kind: ErrorKind::Busy,
                ..
            }) => Some(()),
            Err(ClientError::Supervisor {
                kind: ErrorKind::BadRequest,
                ..
            }) => None,
            other => panic!("scale {name} 0: {other:?}"),
        }
    })
}

/// Sends a request on a new connection, which the worker of some slot accepts (or not)
/// later; read the answer with [`answer`].
fn send_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    s
}

fn answer(mut s: TcpStream) -> String {
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_draining_scale_down_holds_up_nothing_and_resets_no_queued_connection() {
    let d = Daemon::new();
    d.ok(&[
        "start",
        fixture("http_worker.js").to_str().unwrap(),
        "--name",
        "web",
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
    ]);
    let workers = d.wait_online("web", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    let leaving = workers
        .iter()
        .find(|w| w["instance"] == 1)
        .and_then(|w| w["pid"].as_i64())
        .unwrap() as i32;
    // The leaving worker accepts nothing for now: what reaches its queue stays there,
    // and its listener cannot drain.
    kill(Pid::from_raw(leaving), Signal::SIGSTOP).unwrap();
    let held: Vec<TcpStream> = (0..24).map(|_| send_request(addr)).collect();

    let scale = d.spawn(&["scale", "web", "1"]);
    wait_until_busy(&d, "web");
    assert_prompt(&d, "web", "a scale-down drains");
    // A second change of the app is refused with its own exit code while this one runs.
    let busy = d.home.output(&["scale", "web", "3"]);
    assert_eq!(busy.status.code(), Some(7), "{}", busy.stderr);
    assert!(busy.stderr.contains("busy"), "{}", busy.stderr);

    kill(Pid::from_raw(leaving), Signal::SIGCONT).unwrap();
    let out = scale.join().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(d.wait_online("web", 1).len(), 1);
    // Every connection made before the scale-down is answered, by one worker or the other.
    for s in held {
        let response = answer(s);
        assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    }
}

fn pid_of_slow(d: &Daemon) -> i64 {
    d.wait_online("slow", 1)[0]["pid"].as_i64().unwrap()
}

#[test]
fn back_to_back_restarts_each_replace_the_worker() {
    let d = Daemon::new();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: slow\n    script: {}\n    listen: 127.0.0.1:0\n    env:\n      STOP_DELAY_MS: '1000'\n",
            fixture("http_worker.js").display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let mut pids = vec![pid_of_slow(&d)];
    for round in 1..=3 {
        let before = *pids.last().unwrap();
        let out = d.ok(&["restart", "slow"]);
        // Returned once the old worker is gone and the new one started, never while
        // the old one is still stopping.
        let workers = d.list();
        assert_ne!(
            workers[0]["status"], "stopping",
            "round {round}: {workers:?}"
        );
        assert!(
            is_gone(before as i32),
            "round {round}: old pid {before} still there"
        );
        let now = workers[0]["pid"].as_i64().expect("a new pid");
        assert_ne!(now, before, "round {round}");
        // It says which worker it replaced with which, as `reload` does.
        assert_eq!(
            out.trim(),
            format!("restarted slow: slow#0: pid {before} → {now}"),
            "round {round}"
        );
        pids.push(now);
    }
    assert_eq!(d.list()[0]["restarts"], 3);
    // A reload right after a restart accounts for every worker (the new one is either
    // replaced or, still launching, already the new code).
    let out = d.ok(&["reload", "all"]);
    assert!(out.contains("reloaded all: slow#0"), "{out}");
}

#[test]
fn a_restart_during_a_stop_wins() {
    let d = Daemon::new();
    start_stubborn(&d, "2s");
    let stop = d.spawn(&["stop", "stubborn"]);
    wait_for("the worker to be stopping", DEADLINE, || {
        (d.statuses("stubborn") == ["stopping"]).then_some(())
    });
    let out = d.ok(&["restart", "stubborn"]);
    assert!(out.contains("restarted stubborn"), "{out}");
    // The stop it overtook says so, and fails: the app is not stopped.
    let stopped = stop.join().unwrap();
    assert_eq!(stopped.status.code(), Some(1), "{}", stopped.stdout);
    assert!(stopped.stderr.contains("superseded"), "{}", stopped.stderr);
    assert_eq!(d.wait_online("stubborn", 1).len(), 1);
}

#[test]
fn a_reload_during_a_stop_wins() {
    let d = Daemon::new();
    start_stubborn(&d, "2s");
    let stop = d.spawn(&["stop", "stubborn"]);
    wait_for("the worker to be stopping", DEADLINE, || {
        (d.statuses("stubborn") == ["stopping"]).then_some(())
    });
    let out = d.ok(&["reload", "stubborn"]);
    assert!(out.contains("reloaded stubborn"), "{out}");
    let stopped = stop.join().unwrap();
    assert_eq!(stopped.status.code(), Some(1), "{}", stopped.stdout);
    assert!(stopped.stderr.contains("superseded"), "{}", stopped.stderr);
    assert_eq!(d.wait_online("stubborn", 1).len(), 1);
}

#[test]
fn a_delete_during_a_stop_removes_the_app_and_a_second_delete_is_busy() {
    let d = Daemon::new();
    let pid = start_stubborn(&d, "3s");
    let stop = d.spawn(&["stop", "stubborn"]);
    wait_for("the worker to be stopping", DEADLINE, || {
        (d.statuses("stubborn") == ["stopping"]).then_some(())
    });
    let delete = d.spawn(&["delete", "stubborn"]);
    wait_until_busy(&d, "stubborn");
    // Busy, not "no such app": the app is there, on its way out.
    for args in [
        &["delete", "stubborn"][..],
        &["restart", "stubborn"],
        &["stop", "stubborn"],
    ] {
        let again = d.home.output(args);
        assert_eq!(again.status.code(), Some(7), "{args:?}: {}", again.stderr);
    }
    let out = delete.join().unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(d.statuses("stubborn").is_empty());
    assert!(is_gone(pid as i32));
    let _ = stop.join();
    let (answer, _) = d.call(&Request::List);
    assert!(matches!(answer, Ok(Response::Workers { workers }) if workers.is_empty()));
}
