//! `drover run`: an app as N workers sharing one port, kept alive, with merged logs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

fn node_worker_app(home: &Home, extra: &str) -> std::path::PathBuf {
    home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n{extra}",
            fixture("http_worker.js").display()
        ),
    )
}

/// Sends requests until `n` distinct pids answered (or the deadline); returns the pids.
fn distinct_pids(running: &Running, addr: std::net::SocketAddr, n: usize) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    wait_for(&format!("{n} distinct workers answering"), DEADLINE, || {
        for _ in 0..20 {
            if let Reply::Ok(body) = get(addr, "/") {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                pids.insert(pid_of(&v));
                running.remember(pid_of(&v));
            }
        }
        (pids.len() >= n).then_some(())
    });
    pids
}

fn requests_spread_over_both_workers(socket: &str) {
    let home = Home::new();
    let eco = node_worker_app(&home, &format!("    socket: {socket}\n"));
    let running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    let pids = distinct_pids(&running, addr, 2);
    assert_eq!(pids.len(), 2, "{socket}: both workers answer on one port");
}

#[test]
fn reuseport_spreads_requests_over_the_workers() {
    requests_spread_over_both_workers("reuseport");
}

#[test]
fn shared_socket_spreads_requests_over_the_workers() {
    requests_spread_over_both_workers("shared");
}

#[test]
fn unmodified_node_app_from_the_cli_shares_the_port() {
    let home = Home::new();
    let running = home.run(&[
        fixture("http_worker.js").to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "api",
    ]);
    let addr = running.listen_addr("api");
    let reply = wait_serving(addr);
    assert_eq!(
        reply["port"].as_u64(),
        Some(u64::from(addr.port())),
        "PORT is the bound port"
    );
    assert_eq!(distinct_pids(&running, addr, 2).len(), 2);
}

#[test]
fn run_takes_several_scripts_and_files_in_one_command() {
    // PM2's `pm2-runtime start a.js b.js`: each script one app, an ecosystem file its
    // apps, all under one supervisor.
    let home = Home::new();
    let line = |word: &str| format!("console.log('{word} up'); setInterval(() => {{}}, 1000);\n");
    let a = home.write("a.js", &line("a"));
    let b = home.write("b.js", &line("b"));
    home.write("c.js", &line("c"));
    let eco = home.write("eco.yaml", "apps:\n  - name: c\n    script: c.js\n");
    let running = home.run(&[
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        eco.to_str().unwrap(),
    ]);
    for word in ["a#0 | a up", "b#0 | b up", "c#0 | c up"] {
        wait_for(word, DEADLINE, || {
            running.stdout().contains(word).then_some(())
        });
    }
}

#[test]
fn listen_pid_is_the_workers_own_pid_for_node_and_python() {
    let home = Home::new();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: js\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n  - name: py\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n",
            fixture("http_worker.js").display(),
            fixture("fd3_worker.py").display()
        ),
    );
    let running = home.run(&[eco.to_str().unwrap()]);
    for app in ["js", "py"] {
        let addr = running.listen_addr(app);
        wait_serving(addr);
        for _ in 0..10 {
            let reply = get_json(addr, "/");
            running.remember(pid_of(&reply));
            assert_eq!(
                reply["listen_pid"].as_i64(),
                Some(i64::from(pid_of(&reply))),
                "{app}: {reply}"
            );
        }
    }
}

#[test]
fn kill_9_of_a_worker_under_requests_refuses_no_connection() {
    let home = Home::new();
    let eco = node_worker_app(&home, "");
    let running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    let before = distinct_pids(&running, addr, 2);

    // A bounded client: new connection per request, until told to stop or 2000 requests.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut ok, mut refused, mut failed) = (0u32, 0u32, 0u32);
            let mut pids = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) && ok + refused + failed < 2000 {
                match get(addr, "/") {
                    Reply::Ok(body) => {
                        ok += 1;
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        pids.insert(pid_of(&v));
                    }
                    Reply::Refused => refused += 1,
                    Reply::Failed(_) => failed += 1,
                }
            }
            (ok, refused, failed, pids)
        })
    };
    let victim = *before.iter().next().unwrap();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    // Keep the load on until a replacement answers.
    let replacement = wait_for("a replacement worker", DEADLINE, || {
        let reply = get_json(addr, "/");
        running.remember(pid_of(&reply));
        (!before.contains(&pid_of(&reply))).then(|| pid_of(&reply))
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, refused, failed, _) = client.join().unwrap();
    assert_eq!(
        refused, 0,
        "no connection refused ({ok} ok, {failed} failed)"
    );
    // Only what the killed worker itself held can fail: one request at a time here.
    assert!(
        failed <= 1,
        "{failed} requests failed besides the killed worker's own"
    );
    assert!(ok > 0);
    assert_ne!(replacement, victim);
    assert!(is_gone(victim));
}

#[test]
fn two_workers_writing_50k_lines_each_then_exiting_lose_no_line() {
    let home = Home::new();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: spam\n    script: {}\n    args: ['50000']\n    instances: 2\n    merge_logs: true\n    log_date_format: 'YYYY-MM-DD HH:mm:ss Z'\n    out_file: spam.log\n    autorestart: false\n    log_rotate: false\n",
            fixture("log_spammer.js").display()
        ),
    );
    // 13 MB of lines, past the default rotation size: one file, so it can be read whole
    // (tests/it/log_rotation.rs checks lines across rotations).
    let mut running = home.run(&[eco.to_str().unwrap()]);
    // Every worker exits; with nothing left to supervise, drover run exits by itself.
    let status = running.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "drover run exit: {status:?}\n{}",
        running.stderr()
    );

    let log = home.read("spam.log");
    let stamp = regex_lite_stamp();
    let mut seen: BTreeMap<(String, u32), u32> = BTreeMap::new();
    let mut lines = 0;
    for line in log.lines() {
        lines += 1;
        let (ts, msg) = line.split_at(
            line.find(": ")
                .unwrap_or_else(|| panic!("no timestamp: {line:?}")),
        );
        assert!(stamp(ts), "timestamp {ts:?} is not YYYY-MM-DD HH:mm:ss Z");
        let mut words = msg[2..].split_whitespace();
        let worker = words.next().unwrap().to_owned();
        assert_eq!(words.next(), Some("line"), "torn line: {line:?}");
        let n: u32 = words
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("torn line: {line:?}"));
        *seen.entry((worker, n)).or_default() += 1;
    }
    assert_eq!(lines, 100_000, "every line of both workers landed");
    assert_eq!(seen.len(), 100_000, "each line exactly once");
    assert!(seen.values().all(|&c| c == 1));
}

/// `2026-11-27 10:00:00 +00:00`
fn regex_lite_stamp() -> impl Fn(&str) -> bool {
    |ts: &str| {
        let b = ts.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
        b.len() == 26
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b' '
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && b[19] == b' '
            && (b[20] == b'+' || b[20] == b'-')
            && digits(21..23)
            && b[23] == b':'
            && digits(24..26)
    }
}

#[test]
fn a_crash_loop_ends_in_errored_after_max_restarts() {
    let home = Home::new();
    let count = home.path().join("starts");
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: crashy\n    script: {}\n    max_restarts: 4\n    env:\n      CRASH_COUNT_FILE: {}\n",
            fixture("crasher.sh").display(),
            count.display()
        ),
    );
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let status = running.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(3),
        "errored exits 3\n{}",
        running.stderr()
    );
    running.wait_stderr("crashy#0 errored");
    let starts = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(
        starts, 5,
        "the first run and max_restarts restarts (PM2's count), then errored"
    );
}

/// `drover stop` is the user's doing, not the app's: `drover run` does not take it for
/// "every worker has stopped on its own" (and exit), but stays up for a `start`, also
/// once `delete` has emptied it; a signal still ends it.
#[test]
fn a_stop_or_a_delete_leaves_drover_run_up_for_a_start() {
    let home = Home::new();
    let eco = node_worker_app(&home, "");
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    let stop = home.output(&["stop", "web"]);
    assert!(stop.status.success(), "{}", stop.stderr);
    let start = home.output(&["start", "web"]);
    assert!(
        start.status.success(),
        "{}{}\n{}",
        start.stdout,
        start.stderr,
        running.stderr()
    );
    wait_serving(addr);
    let delete = home.output(&["delete", "web"]);
    assert!(delete.status.success(), "{}", delete.stderr);
    let again = home.output(&["start", eco.to_str().unwrap()]);
    assert!(
        again.status.success(),
        "{}{}\n{}",
        again.stdout,
        again.stderr,
        running.stderr()
    );
    assert!(running.stderr().lines().all(|l| !l.contains("exiting")));
    running.signal(Signal::SIGTERM);
    let status = running.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", running.stderr());
}

/// The README's first command, `drover run ecosystem.example.yaml`: the file as shipped,
/// but on a port from the OS, answers from both workers.
#[test]
fn the_readme_example_cluster_answers_from_both_workers() {
    let home = Home::new();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ecosystem.example.yaml"),
    )
    .unwrap();
    assert!(shipped.contains("listen: 127.0.0.1:3000") && shipped.contains("./examples/hello.js"));
    let eco = home.write(
        "ecosystem.example.yaml",
        &shipped
            .replace("listen: 127.0.0.1:3000", "listen: 127.0.0.1:0")
            .replace("./examples/hello.js", example("hello.js").to_str().unwrap()),
    );
    let running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("hello");
    let mut pids = BTreeSet::new();
    wait_for("both workers answering", DEADLINE, || {
        if let Reply::Ok(body) = get(addr, "/") {
            // "hello from worker 0 pid 1234"
            let pid: i32 = body.trim().rsplit(' ').next()?.parse().ok()?;
            running.remember(pid);
            pids.insert(pid);
        }
        (pids.len() == 2).then_some(())
    });
}

#[test]
fn sigterm_stops_every_worker_and_grandchild_and_exits_0() {
    let home = Home::new();
    let eco = node_worker_app(&home, "");
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    let workers = distinct_pids(&running, addr, 2);
    let mut all: BTreeSet<i32> = workers.clone();
    // Each worker starts a grandchild (`sleep 300`).
    wait_for("both workers to start a grandchild", DEADLINE, || {
        let reply = get_json(addr, "/grandchild");
        let g = reply["grandchild_pid"].as_i64().unwrap() as i32;
        running.remember(g);
        all.insert(g);
        (all.len() >= 4).then_some(())
    });
    running.signal(Signal::SIGTERM);
    let status = running.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", running.stderr());
    for pid in all {
        wait_for(
            &format!("pid {pid} to be gone"),
            Duration::from_secs(5),
            || is_gone(pid).then_some(()),
        );
    }
}

#[test]
fn a_worker_that_ignores_sigint_is_killed_after_kill_timeout() {
    let home = Home::new();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: stubborn\n    script: {}\n    listen: 127.0.0.1:0\n    kill_timeout: 300ms\n",
            fixture("ignore_sigint.js").display()
        ),
    );
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("stubborn");
    let pid = pid_of(&wait_serving(addr));
    running.remember(pid);
    let t = Instant::now();
    running.signal(Signal::SIGINT);
    let status = running.wait_exit(DEADLINE);
    assert!(status.success(), "{}", running.stderr());
    assert!(is_gone(pid));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "SIGKILL came only after kill_timeout"
    );
    running.wait_stderr("signal SIGKILL");
}

#[test]
fn a_worker_over_max_memory_restart_is_replaced_while_the_other_serves() {
    let home = Home::new();
    let eco = node_worker_app(&home, "    max_memory_restart: 150M\n");
    let running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    let before = distinct_pids(&running, addr, 2);
    let leaker = pid_of(&get_json(addr, "/leak"));
    let other = *before.iter().find(|&&p| p != leaker).unwrap();
    // The leaker grows ~20 MB/s: over 150M in a few seconds, then replaced.
    let mut other_answered = 0;
    wait_for(
        "the leaking worker to be replaced",
        Duration::from_secs(30),
        || {
            let reply = get_json(addr, "/");
            running.remember(pid_of(&reply));
            if pid_of(&reply) == other {
                other_answered += 1;
            }
            (is_gone(leaker) && !before.contains(&pid_of(&reply))).then_some(())
        },
    );
    assert!(other_answered > 0, "the other worker kept serving");
    assert!(!is_gone(other), "the other worker was not touched");
    running.wait_stderr("over max_memory_restart");
}

#[test]
fn fork_mode_increment_var_gives_each_instance_its_own_port() {
    let home = Home::new();
    // Two consecutive free ports, from the OS.
    let base = wait_for("two consecutive free ports", DEADLINE, || {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        let b = std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
        drop((a, b));
        Some(port)
    });
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: self-bind\n    script: {}\n    instances: 2\n    exec_mode: fork\n    increment_var: PORT\n    env:\n      PORT: {base}\n",
            fixture("fd3_worker.py").display()
        ),
    );
    let running = home.run(&[eco.to_str().unwrap()]);
    for i in 0..2u16 {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], base + i));
        let reply = wait_serving(addr);
        running.remember(pid_of(&reply));
        assert_eq!(
            reply["instance"].as_str(),
            Some(i.to_string().as_str()),
            "{reply}"
        );
        assert!(
            reply["listen_pid"].is_null(),
            "fork mode without listen gets no fd 3"
        );
    }
}

#[test]
fn gunicorn_takes_the_socket_through_listen_fds() {
    let home = Home::new();
    let gunicorn = wait_for("gunicorn on PATH", Duration::from_secs(1), || {
        let out = std::process::Command::new("sh")
            .args(["-c", "command -v gunicorn"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: gu\n    script: {gunicorn}\n    args: ['--workers', '2', 'wsgi_app:app']\n    cwd: {}\n    listen: 127.0.0.1:0\n",
            fixture("").display()
        ),
    );
    let running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("gu");
    let reply = wait_serving(addr);
    assert_eq!(reply["server"].as_str(), Some("gunicorn"));
    running.remember(pid_of(&reply));
}

#[test]
fn stopping_gunicorn_lets_a_request_in_flight_finish() {
    // SIGINT is gunicorn's quick shutdown (the request would get no answer): with no
    // kill_signal set, drover sends gunicorn SIGTERM, its graceful one.
    let home = Home::new();
    let marker = home.path().join("slow-started");
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: gu\n    script: gunicorn\n    args: ['--workers', '1', 'wsgi_app:app']\n    cwd: {}\n    listen: 127.0.0.1:0\n    kill_timeout: 10s\n    env:\n      SLOW_MARKER: {}\n",
            fixture("").display(),
            marker.display()
        ),
    );
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("gu");
    running.remember(pid_of(&wait_serving(addr)));
    let slow = std::thread::spawn(move || get(addr, "/slow"));
    wait_for("the slow request to be handled", DEADLINE, || {
        marker.exists().then_some(())
    });
    running.signal(Signal::SIGTERM);
    let reply = slow.join().unwrap();
    assert!(
        matches!(&reply, Reply::Ok(body) if body.contains("\"slow\": true")),
        "{reply:?}\n{}",
        running.stderr()
    );
    assert_eq!(running.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn sigint_exits_0_and_workers_output_is_prefixed_on_the_console() {
    let home = Home::new();
    let eco = node_worker_app(&home, "");
    let mut running = home.run(&[eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    wait_serving(addr);
    wait_for("both workers' start lines on stdout", DEADLINE, || {
        let out = running.stdout();
        (out.contains("web#0 | started pid=") && out.contains("web#1 | started pid=")).then_some(())
    });
    running.signal(Signal::SIGINT);
    assert_eq!(running.wait_exit(DEADLINE).code(), Some(0));
    // Per-instance log files by default (no merge_logs).
    assert!(home.read("logs/web-out-0.log").contains("started pid="));
    assert!(home.read("logs/web-out-1.log").contains("started pid="));
}

#[test]
fn a_compiled_rust_worker_takes_fd3_through_listenfd() {
    let home = Home::new();
    let worker = rust_worker();
    let running = home.run(&[
        worker.to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "rs",
    ]);
    let addr = running.listen_addr("rs");
    let mut pids = BTreeSet::new();
    wait_for("both rust workers answering", DEADLINE, || {
        if let Reply::Ok(body) = get(addr, "/") {
            let pid: i32 = body.trim().rsplit(' ').next()?.parse().ok()?;
            running.remember(pid);
            pids.insert(pid);
        }
        (pids.len() == 2).then_some(())
    });
}

#[test]
fn script_args_after_double_dash_reach_the_worker() {
    let home = Home::new();
    let spammer = fixture("log_spammer.js");
    let mut running = home.run(&[
        spammer.to_str().unwrap(),
        "--no-autorestart",
        "--name",
        "few",
        "-o",
        "few.log",
        "--",
        "7",
    ]);
    assert!(
        running.wait_exit(DEADLINE).success(),
        "{}",
        running.stderr()
    );
    assert_eq!(
        home.read("few.log").lines().count(),
        7,
        "the worker got `7` as its argument"
    );
}

#[test]
fn python_output_is_unbuffered_and_unix_listen_works() {
    let home = Home::new();
    let sock = home.path().join("py.sock");
    let running = home.run(&[
        fixture("fd3_worker.py").to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        &format!("unix:{}", sock.display()),
        "--name",
        "py",
    ]);
    // The worker prints its start line and then blocks serving: only an unbuffered
    // stdout gets it to the console.
    wait_for("both python start lines", DEADLINE, || {
        let out = running.stdout();
        (out.contains("py#0 | started pid=") && out.contains("py#1 | started pid=")).then_some(())
    });
    let body = wait_for("an answer on the unix socket", DEADLINE, || {
        let mut stream = std::os::unix::net::UnixStream::connect(&sock).ok()?;
        use std::io::{Read, Write};
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    });
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    running.remember(pid_of(&reply));
}
