//! The background supervisor and PM2's command line: start, stop, restart, delete,
//! scale, list, describe, logs, save/resurrect, kill; protocol and permissions.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::harness::*;

fn start_api(d: &Daemon, instances: &str) -> std::net::SocketAddr {
    d.start_http("api", instances.parse().unwrap(), &[])
}

fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(get(addr, "/"), Reply::Refused)
}

#[test]
fn the_whole_lifecycle_of_an_app() {
    let d = Daemon::new();
    let addr = start_api(&d, "2");
    let workers = d.list();
    assert_eq!(workers.len(), 2);
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["instance"], i as u64);
        assert_eq!(w["mode"], "cluster");
        assert!(w["pid"].as_u64().is_some());
        assert_eq!(w["restarts"], 0);
        assert!(
            w["uptime_ms"].as_u64().is_some()
                && w["cpu"].as_f64().is_some()
                && w["memory"].as_u64().is_some()
        );
    }
    assert_ne!(workers[0]["id"], workers[1]["id"]);
    wait_serving(addr);

    // stop: kept in the list, port released.
    d.ok(&["stop", "api"]);
    let stopped = d.list();
    assert!(
        stopped
            .iter()
            .all(|w| w["status"] == "stopped" && w["pid"].is_null()),
        "{stopped:?}"
    );
    wait_for("the port to be released", DEADLINE, || {
        refused(addr).then_some(())
    });

    // restart: back on the same address, ids kept, each worker's ↺ counted.
    d.ok(&["restart", "api"]);
    let back = d.wait_online("api", 2);
    assert_eq!(listen_of(&back[0]), addr);
    assert_eq!(back[0]["id"], workers[0]["id"]);
    wait_serving(addr);
    let pids: Vec<_> = back.iter().map(|w| w["pid"].clone()).collect();
    d.ok(&["restart", "0"]);
    let again = d.wait_online("api", 2);
    assert_ne!(again[0]["pid"], pids[0], "worker 0 replaced");
    assert_eq!(again[1]["pid"], pids[1], "worker 1 untouched");
    assert!(again[0]["restarts"].as_u64().unwrap() >= 1);

    // scale up and down.
    d.ok(&["scale", "api", "3"]);
    assert_eq!(d.wait_online("api", 3).len(), 3);
    d.ok(&["scale", "api", "1"]);
    assert_eq!(d.wait_online("api", 1).len(), 1);
    wait_serving(addr);

    // delete: gone from the list, port closed.
    d.ok(&["delete", "api"]);
    assert!(d.list().is_empty());
    wait_for("the port to close", DEADLINE, || {
        refused(addr).then_some(())
    });

    // kill: the supervisor is gone and its socket removed.
    let pid = d.supervisor_pid().unwrap();
    d.ok(&["kill"]);
    assert!(!d.home.path().join("drover.sock").exists());
    wait_for("the supervisor to exit", DEADLINE, || {
        is_gone(pid).then_some(())
    });
    let out = d.home.output(&["kill"]);
    assert!(
        !out.status.success() && out.stderr.contains("no supervisor"),
        "{}",
        out.stderr
    );
}

#[test]
fn starting_a_running_name_says_so_instead_of_doubling_it() {
    let d = Daemon::new();
    start_api(&d, "1");
    let out = d.home.output(&[
        "start",
        fixture("http_worker.js").to_str().unwrap(),
        "--name",
        "api",
    ]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("already running"), "{}", out.stderr);
    assert_eq!(d.list().len(), 1);
}

#[test]
fn unknown_names_and_ids_fail_with_one_clear_line() {
    let d = Daemon::new();
    start_api(&d, "1");
    for args in [
        &["stop", "nope"][..],
        &["restart", "42"],
        &["delete", "nope"],
        &["describe", "nope"],
        &["scale", "nope", "2"],
    ] {
        let out = d.home.output(args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: no such app");
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("nope") || out.stderr.contains("42"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn describe_json_gives_the_resolved_spec_and_every_instance() {
    let d = Daemon::new();
    let addr = start_api(&d, "2");
    let out = d.ok(&["describe", "api", "--json"]);
    let apps: serde_json::Value = serde_json::from_str(&out).unwrap();
    let app = &apps[0];
    assert_eq!(app["spec"]["name"], "api");
    assert_eq!(app["spec"]["instances"], 2);
    assert_eq!(app["spec"]["kill_timeout_ms"], 1600);
    assert_eq!(app["listen"], addr.to_string());
    assert_eq!(app["workers"].as_array().unwrap().len(), 2);
}

#[test]
fn logs_print_history_with_prefixes_then_follow_new_lines() {
    let d = Daemon::new();
    start_api(&d, "2");
    let out = wait_for("both start lines in the logs", DEADLINE, || {
        let out = d.ok(&["logs", "api", "--nostream", "--lines", "5"]);
        (out.matches("started pid=").count() == 2).then_some(out)
    });
    assert!(
        out.lines()
            .any(|l| l.contains("|api") && l.contains("started pid=")),
        "{out}"
    );

    let json = d.ok(&["logs", "--nostream", "--json", "--out"]);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["app"], "api");
        assert_eq!(v["stream"], "out");
    }

    // Follow: a new line written after `logs` started reaches it.
    let mut follower = d
        .home
        .command(&["logs", "api", "--lines", "0", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        lines.find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.ok()?).ok()?;
            v["message"]
                .as_str()?
                .contains("started pid=")
                .then(|| v["timestamp"].as_str().map(str::to_owned))
        })
    });
    // Restarting a worker makes it print its start line again; repeat until the follower
    // (which may not have subscribed yet) sees one.
    wait_for("the follower to see a new line", DEADLINE, || {
        d.ok(&["restart", "0"]);
        // Online: it has printed its start line (a worker restarted again while still
        // launching may be stopped before it prints).
        d.wait_online("api", 2);
        reader.is_finished().then_some(())
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let stamp = reader.join().unwrap().flatten();
    assert!(
        stamp.is_some_and(|t| t.contains('T')),
        "followed lines carry a timestamp"
    );
}

#[test]
fn save_kill_resurrect_brings_back_the_same_apps_and_ports() {
    let d = Daemon::new();
    let addr = start_api(&d, "2");
    d.ok(&["save"]);
    let dump = d.home.path().join("dump.yaml");
    assert_eq!(
        std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777,
        0o600
    );
    d.ok(&["save"]);
    assert!(
        d.home.path().join("dump.yaml.bak").exists(),
        "the previous dump is kept"
    );
    d.ok(&["kill"]);
    assert!(refused(addr));
    d.ok(&["resurrect"]);
    let workers = d.wait_online("api", 2);
    assert_eq!(listen_of(&workers[0]), addr, "same port as before");
    wait_serving(addr);
}

/// PM2 issue #2653: a save with nothing running must not wipe the dump of a save with
/// apps, and a dump drover cannot read is never overwritten.
#[test]
fn save_keeps_a_dump_with_apps_and_a_dump_it_cannot_read() {
    let d = Daemon::new();
    start_api(&d, "1");
    d.ok(&["save"]);
    let dump = d.home.path().join("dump.yaml");
    let with_apps = std::fs::read(&dump).unwrap();
    d.ok(&["delete", "api"]);
    let out = d.home.output(&["save"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read(&dump).unwrap(), with_apps);
    d.ok(&["save", "--force"]);
    assert_eq!(
        std::fs::read(dump.with_extension("yaml.bak")).unwrap(),
        with_apps
    );

    std::fs::write(&dump, "format: 99\ndrover: 9.9.9\napps: []\n").unwrap();
    for cmd in [&["save", "--force"][..], &["resurrect"]] {
        let out = d.home.output(cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {}", out.stderr);
        assert!(out.stderr.contains("format 99"), "{cmd:?}: {}", out.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(&dump).unwrap(),
        "format: 99\ndrover: 9.9.9\napps: []\n"
    );
}

#[test]
fn two_concurrent_first_starts_spawn_one_supervisor() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let spawn = |name: &str| {
        d.home
            .command(&[
                "start",
                script.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    d.wait_online("a", 1);
    d.wait_online("b", 1);
    // A daemon that lost the race exits at once; wait for that, then count.
    let daemons = wait_for("one supervisor left", DEADLINE, || {
        let daemons = daemons_for(d.home.path());
        (daemons.len() == 1).then_some(daemons)
    });
    assert_eq!(Some(daemons[0]), d.supervisor_pid());
}

#[test]
fn home_socket_and_dump_are_private() {
    let d = Daemon::new();
    // A home drover creates itself.
    let home = d.home.path().join("h");
    let out = std::process::Command::new(DROVER)
        .arg("ping")
        .env("DROVER_HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("drover.sock")), 0o600);
    let out = std::process::Command::new(DROVER)
        .arg("save")
        .env("DROVER_HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(mode(&home.join("dump.yaml")), 0o600);
    let _ = std::process::Command::new(DROVER)
        .arg("kill")
        .env("DROVER_HOME", &home)
        .output();
}

#[test]
fn a_foreign_uid_is_refused_even_with_the_socket_open_to_it() {
    use std::os::unix::process::CommandExt;
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs as root to switch to nobody"
    );
    let d = Daemon::new();
    start_api(&d, "1");
    // Open the door on purpose: the socket linked into a home of nobody's own (which
    // nobody's CLI accepts) and made 0666, so only the supervisor's peer-uid check is left.
    let theirs = Home::new();
    nix::unistd::chown(theirs.path(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let socket = d.home.path().join("drover.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::hard_link(&socket, theirs.path().join("drover.sock")).unwrap();
    let drover = world_executable_copy_of_drover();
    let out = std::process::Command::new(drover.path().join("drover"))
        .args(["stop", "api"])
        .env("DROVER_HOME", theirs.path())
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The supervisor's refusal, not the CLI's own checks.
    assert!(
        stderr.contains("permission denied: uid 65534 is not the supervisor's user"),
        "{stderr}"
    );
    assert_eq!(d.list()[0]["status"], "online", "nothing was stopped");
}

/// A copy of the drover binary that any user can run, in a fresh 0755 directory under
/// /tmp (removed on drop): the checkout, and so the target dir with DROVER in it, may sit
/// below a directory only its owner can enter (a clone in `mktemp -d`), where nobody
/// gets "Permission denied" from exec.
fn world_executable_copy_of_drover() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("drover-bin")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Copied by a child process, not std::fs::copy: a writable fd open in this process
    // could leak into a child another test thread forks meanwhile, and exec of the copy
    // would then fail with ETXTBSY. `install` has closed its fd once it has exited.
    let status = std::process::Command::new("install")
        .args(["-m", "0755", DROVER])
        .arg(dir.path().join("drover"))
        .status()
        .expect("run install");
    assert!(status.success(), "install {DROVER}: {status}");
    dir
}

/// Sends raw bytes on the control socket and returns what came back (bounded).
/// Without a final newline the message is only known to be cut short at EOF, so the
/// write side is closed after it.
fn raw(d: &Daemon, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(d.home.path().join("drover.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = stream.write_all(bytes);
    if !bytes.ends_with(b"\n") {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[test]
fn malformed_protocol_input_never_harms_the_supervisor() {
    let d = Daemon::new();
    let addr = start_api(&d, "1");
    let big = vec![b'x'; 5 << 20];
    let cases: Vec<(&[u8], &str)> = vec![
        (b"garbage\n", "bad_request"),
        (b"\xff\xfe\x00\x01\n", "bad_request"),
        (b"{\"v\":2,\"cmd\":\"explode\"}\n", "bad_request"),
        (b"{\"v\":3,\"cmd\":\"ping\"}\n", "version"),
        (b"{\"v\":2,\"cmd\":\"stop\"", "bad_request"),
        (&big, "bad_request"),
        (b"", ""),
    ];
    for (bytes, kind) in cases {
        let out = raw(&d, bytes);
        if !kind.is_empty() {
            assert!(
                out.contains(kind),
                "{:?}… → {out:?}",
                &bytes[..bytes.len().min(20)]
            );
        }
    }
    // A Start whose app no drover client would send (it validates first): a bad signal
    // name or address is a bad request naming the field, and nothing starts.
    let described: serde_json::Value =
        serde_json::from_str(&d.ok(&["describe", "api", "--json"])).unwrap();
    for (field, bad) in [("kill_signal", "SIGNOPE"), ("listen", "localhost:3000")] {
        let mut app = described[0]["spec"].clone();
        app["name"] = "other".into();
        app[field] = bad.into();
        let request = serde_json::json!({
            "v": drover::protocol::VERSION, "cmd": "start", "apps": [app], "env": {}, "update_env": false
        });
        let out = raw(&d, format!("{request}\n").as_bytes());
        assert!(
            out.contains("bad_request") && out.contains(field),
            "{field}: {out}"
        );
    }
    assert_eq!(d.list().len(), 1, "nothing started");
    // A client that connects and says nothing does not block others.
    let _silent = UnixStream::connect(d.home.path().join("drover.sock")).unwrap();
    assert_eq!(d.list()[0]["status"], "online");
    let good = raw(&d, b"{\"v\":2,\"cmd\":\"ping\"}\n");
    assert!(good.contains("pong"), "{good}");
    wait_serving(addr);
}

#[test]
fn update_env_takes_the_callers_environment_anew() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let start = d
        .home
        .command(&[
            "start",
            script.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "envy",
        ])
        .env("GREETING", "one")
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "{}",
        String::from_utf8_lossy(&start.stderr)
    );
    let addr = listen_of(&d.wait_online("envy", 1)[0]);
    wait_serving(addr);
    let value = || get_json(addr, "/env?name=GREETING")["value"].clone();
    assert_eq!(value(), "one");

    // Without --update-env the worker keeps the environment it was started with.
    let plain = d
        .home
        .command(&["restart", "envy"])
        .env("GREETING", "two")
        .output()
        .unwrap();
    assert!(plain.status.success());
    wait_serving(addr);
    assert_eq!(value(), "one");

    let updated = d
        .home
        .command(&["restart", "envy", "--update-env"])
        .env("GREETING", "two")
        .output()
        .unwrap();
    assert!(updated.status.success());
    wait_serving(addr);
    assert_eq!(value(), "two");

    // A variable removed from the caller's environment is removed from the worker's.
    let removed = d
        .home
        .command(&["restart", "envy", "--update-env"])
        .env_remove("GREETING")
        .output()
        .unwrap();
    assert!(removed.status.success());
    wait_serving(addr);
    assert!(value().is_null());

    // A reload too, with no gap: the new worker has the new environment once it is in.
    let reloaded = d
        .home
        .command(&["reload", "envy", "--update-env"])
        .env("GREETING", "three")
        .output()
        .unwrap();
    assert!(
        reloaded.status.success(),
        "{}",
        String::from_utf8_lossy(&reloaded.stderr)
    );
    wait_for("the reloaded worker's environment", DEADLINE, || {
        (value() == "three").then_some(())
    });
}

/// Why an app is errored is told where a PM2 user looks, not only in drover.log:
/// `describe` names the last exit and the crash loop, `list --json` has both.
#[test]
fn describe_and_list_tell_why_a_worker_is_errored() {
    let d = Daemon::new();
    let count = d.home.path().join("starts");
    let eco = d.home.write(
        "crashy.yaml",
        &format!(
            "apps:\n  - name: crashy\n    script: {}\n    max_restarts: 2\n    env:\n      CRASH_COUNT_FILE: {}\n",
            fixture("crasher.sh").display(),
            count.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let worker = wait_for("crashy errored", DEADLINE, || {
        d.list()
            .into_iter()
            .find(|w| w["name"] == "crashy" && w["status"] == "errored")
    });
    assert_eq!(worker["last_exit"], "exit code 1", "{worker}");
    assert!(
        worker["errored_why"]
            .as_str()
            .is_some_and(|w| w.starts_with("2 restarts in a row")),
        "{worker}"
    );
    let listed = d.ok(&["list"]);
    assert!(
        listed.contains("crashy#0 errored (last: exit code 1): 2 restarts in a row"),
        "{listed}"
    );
    let described = d.ok(&["describe", "crashy"]);
    assert!(
        described.contains("crashy#0 errored (last: exit code 1): 2 restarts in a row, each after a run shorter than min_uptime"),
        "{described}"
    );
}

#[test]
fn list_and_stop_work_against_a_foreground_run() {
    let home = Home::new();
    let running = home.run(&[
        fixture("http_worker.js").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--name",
        "fg",
    ]);
    let addr = running.listen_addr("fg");
    wait_serving(addr);
    let out = home.output(&["list", "--json"]);
    let workers: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(workers[0]["name"], "fg");
    // A second supervisor for the same home is refused.
    let second = home.output(&["daemon"]);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    assert!(daemons_for(home.path()).is_empty());
}

#[test]
fn daemon_resurrect_starts_the_saved_apps_in_the_foreground() {
    let d = Daemon::new();
    let addr = start_api(&d, "2");
    d.ok(&["save"]);
    d.ok(&["kill"]);
    // What a systemd unit runs: `drover daemon --resurrect`, in the foreground.
    let mut daemon = d
        .home
        .command(&["daemon", "--resurrect"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.home.path().join("foreground.log")).unwrap())
        .spawn()
        .unwrap();
    // `list` starts a background supervisor when none answers, which would race this
    // one for the lock: first wait for the foreground one's socket.
    let socket = d.home.path().join("drover.sock");
    wait_for("the foreground supervisor's socket", DEADLINE, || {
        socket.exists().then_some(())
    });
    let workers = wait_for("the resurrected workers", DEADLINE, || {
        let workers = d.list();
        (workers.len() == 2 && workers.iter().all(|w| w["status"] == "online")).then_some(workers)
    });
    assert_eq!(
        listen_of(&workers[0]),
        addr,
        "{}",
        d.home.read("foreground.log")
    );
    wait_serving(addr);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_for("the daemon to exit on SIGTERM", DEADLINE, || {
        daemon.try_wait().unwrap()
    });
    assert!(status.success());
    assert!(refused(addr), "its workers are gone");
}

#[test]
fn resurrect_falls_back_on_the_backup_when_the_dump_is_damaged() {
    let d = Daemon::new();
    let addr = start_api(&d, "1");
    d.ok(&["save"]);
    d.ok(&["save"]);
    d.ok(&["kill"]);
    std::fs::write(d.home.path().join("dump.yaml"), "apps: [\n").unwrap();
    let out = d.ok(&["resurrect"]);
    assert!(out.contains("resurrected 1 app from the backup"), "{out}");
    assert!(out.contains("dump.yaml.bak instead"), "{out}");
    assert_eq!(
        d.home.read("dump.yaml.damaged"),
        "apps: [\n",
        "the damaged dump is kept aside"
    );
    // Back on the same port, as from the dump itself.
    assert_eq!(listen_of(&d.wait_online("api", 1)[0]), addr);
}

#[test]
fn a_node_app_without_a_port_or_wait_ready_may_call_process_send() {
    // PM2 always gives Node apps an IPC channel; an app written for it calls
    // process.send('ready') whatever its settings.
    let d = Daemon::new();
    let app = d.home.write(
        "sends.js",
        "process.send('ready'); console.log('sent ready');\nsetInterval(() => {}, 1000);\n",
    );
    d.ok(&["start", app.to_str().unwrap(), "--name", "sends"]);
    let workers = d.wait_online("sends", 1);
    let pid = workers[0]["pid"].as_i64().unwrap();
    wait_for("its log line", DEADLINE, || {
        d.home
            .read("logs/sends-out.log")
            .contains("sent ready")
            .then_some(())
    });
    let worker = &d.list()[0];
    assert_eq!(worker["restarts"], 0, "{worker}");
    assert_eq!(worker["pid"].as_i64(), Some(pid));
    assert!(
        !d.home
            .read("logs/sends-error.log")
            .contains("not a function")
    );
}

#[test]
fn shutdown_with_message_asks_a_node_app_to_stop_over_its_channel() {
    // PM2's shutdown_with_message: the app's process.on('message') gets 'shutdown'
    // instead of a signal (SIGINT is ignored here, so only the message can stop it).
    let d = Daemon::new();
    let app = d.home.write(
        "polite.js",
        concat!(
            "process.on('SIGINT', () => console.log('got SIGINT'));\n",
            "process.on('message', (m) => {\n",
            "  console.log('got message ' + JSON.stringify(m));\n",
            "  if (m === 'shutdown') setTimeout(() => process.exit(0), 10);\n",
            "});\n",
            "console.log('up');\n",
        ),
    );
    for (name, flag) in [("polite", "--shutdown-with-message"), ("plain", "--time")] {
        d.ok(&["start", app.to_str().unwrap(), "--name", name, flag]);
        d.wait_online(name, 1);
    }
    // The log pump may write a worker's last lines a moment after `stop` returns.
    let logged = |file: &str, line: &str| {
        wait_for(&format!("{line} in {file}"), DEADLINE, || {
            let log = d.home.read(file);
            log.contains(line).then_some(log)
        })
    };
    d.ok(&["stop", "polite"]);
    let log = logged("logs/polite-out.log", "got message \"shutdown\"");
    assert!(!log.contains("got SIGINT"), "{log}");
    // Without the key the signal is sent, as before (and it ignores it: SIGKILL ends it).
    d.ok(&["stop", "plain"]);
    let log = logged("logs/plain-out.log", "got SIGINT");
    assert!(!log.contains("got message"), "{log}");

    // Only Node workers have the channel: anything else is refused up front.
    let py = d.home.write("app.py", "import time\ntime.sleep(60)\n");
    let out = d
        .home
        .output(&["start", py.to_str().unwrap(), "--shutdown-with-message"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("--shutdown-with-message: needs a Node app"),
        "{}",
        out.stderr
    );
}

#[test]
fn pm2_flags_node_args_stop_exit_codes_and_relative_scale() {
    let d = Daemon::new();
    d.start_http(
        "api",
        1,
        &[
            "--node-args",
            "--max-old-space-size=128",
            "--stop-exit-codes",
            "0,3",
        ],
    );
    let described: serde_json::Value =
        serde_json::from_str(&d.ok(&["describe", "api", "--json"])).unwrap();
    let spec = &described[0]["spec"];
    assert_eq!(
        spec["interpreter_args"],
        serde_json::json!(["--max-old-space-size=128"])
    );
    assert_eq!(spec["stop_exit_codes"], serde_json::json!([0, 3]));
    d.ok(&["scale", "api", "+2"]);
    d.wait_online("api", 3);
    d.ok(&["scale", "api", "-1"]);
    d.wait_online("api", 2);
    for (count, code) in [("-5", 2), ("lots", 2)] {
        let out = d.home.output(&["scale", "api", count]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "scale {count}: {}",
            out.stderr
        );
    }
    let out = d.home.output(&["scale", "nope", "+1"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
}

#[test]
fn start_of_a_known_name_or_id_restarts_it_and_names_come_before_ids() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    // An app named like an id, and another app whose worker has that id.
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "web",
        "--listen",
        "127.0.0.1:0",
    ]);
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "1",
        "--listen",
        "127.0.0.1:0",
    ]);
    d.wait_online("web", 1);
    d.wait_online("1", 1);
    let web_id = d.list().iter().find(|w| w["name"] == "web").unwrap()["id"].clone();
    d.ok(&["stop", "web"]);
    assert_eq!(d.statuses("web"), ["stopped"]);
    // PM2: `start <name>` of a stopped app starts it again (no script named web here):
    // it was stopped, so it is started, not restarted.
    let out = d.ok(&["start", "web"]);
    let pid = d.wait_online("web", 1)[0]["pid"].clone();
    assert_eq!(
        out.trim(),
        format!("started web: web#0: pid {pid}"),
        "{out}"
    );
    // So is the script given again for the stopped app.
    d.ok(&["stop", "web"]);
    let out = d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "web",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.contains("started web again"), "{out}");
    d.wait_online("web", 1);
    // `stop 1` is the app named 1, not worker id 1.
    let out = d.ok(&["stop", "1"]);
    assert!(out.contains("stopped 1"), "{out}");
    assert_eq!(d.statuses("1"), ["stopped"]);
    assert_eq!(d.statuses("web"), ["online"]);
    // And `start <id>` restarts by id, saying the old and the new pid.
    let old = d.list().iter().find(|w| w["name"] == "web").unwrap()["pid"].clone();
    let out = d.ok(&["start", &web_id.to_string()]);
    let new = d.list().iter().find(|w| w["name"] == "web").unwrap()["pid"].clone();
    assert_eq!(
        out.trim(),
        format!("restarted {web_id}: web#0: pid {old} → {new}"),
        "{out}"
    );
}

#[test]
fn several_workers_with_no_address_to_share_are_warned_about() {
    // Not Node: a Node app in cluster mode shares the port its workers listen on.
    let d = Daemon::new();
    let app = d.home.write("idle.py", "import time\ntime.sleep(300)\n");
    let out = d.home.output(&["start", app.to_str().unwrap(), "-i", "2"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: app idle: 2 workers and no address to share"),
        "{}",
        out.stderr
    );
    let out = d.home.output(&[
        "start",
        app.to_str().unwrap(),
        "-i",
        "2",
        "--name",
        "shared",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn several_targets_in_one_command() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    for name in ["a", "b", "c"] {
        d.ok(&[
            "start",
            script.to_str().unwrap(),
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
        ]);
        d.wait_online(name, 1);
    }
    let out = d.ok(&["stop", "a", "b"]);
    assert!(
        out.contains("stopped a") && out.contains("stopped b"),
        "{out}"
    );
    assert_eq!(d.statuses("a"), ["stopped"]);
    assert_eq!(d.statuses("b"), ["stopped"]);
    assert_eq!(d.statuses("c"), ["online"]);
    // One unknown name: the others are still done, and the exit status says what failed.
    let out = d.home.output(&["restart", "a", "nope", "b"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("no app named nope"), "{}", out.stderr);
    d.wait_online("a", 1);
    d.wait_online("b", 1);
    // A /regex/ names every app that matches, as PM2's.
    let out = d.ok(&["stop", "/^[ab]$/"]);
    assert!(out.contains("stopped /^[ab]$/ (2 workers)"), "{out}");
    assert_eq!(d.statuses("c"), ["online"]);
    let out = d.home.output(&["stop", "/^z/"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    let out = d.home.output(&["stop", "/(/"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    d.ok(&["delete", "a", "b", "c"]);
    assert!(d.list().is_empty());
}

#[test]
fn start_of_a_running_ecosystem_file_reloads_it_with_the_new_settings() {
    // PM2 users' deploy step: `pm2 startOrReload ecosystem.config.js` (drover: `start FILE`).
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let eco = |greeting: &str, instances: u32| {
        format!(
            "apps:\n  - name: web\n    script: {}\n    instances: {instances}\n    listen: 127.0.0.1:0\n    env:\n      GREETING: {greeting}\n",
            script.display()
        )
    };
    let file = d.home.write("eco.yaml", &eco("one", 2));
    d.ok(&["start", file.to_str().unwrap()]);
    let addr = listen_of(&d.wait_online("web", 2)[0]);
    wait_serving(addr);
    let before: Vec<i64> = d.list().iter().filter_map(|w| w["pid"].as_i64()).collect();

    d.home.write("eco.yaml", &eco("two", 3));
    let load = Load::start(addr, 1);
    let out = d.ok(&["start", file.to_str().unwrap()]);
    let tally = load.finish();
    assert!(out.contains("reloaded web"), "{out}");
    assert!(tally.clean(), "{:?}", tally.failed);
    let workers = d.wait_online("web", 3);
    assert!(
        workers
            .iter()
            .all(|w| !before.contains(&w["pid"].as_i64().unwrap())),
        "every worker replaced: {before:?} → {workers:?}"
    );
    // Each worker answers with the file's new settings.
    wait_for("the new environment", DEADLINE, || {
        (get_json(addr, "/env?name=GREETING")["value"] == "two").then_some(())
    });

    // startOrRestart, and a smaller count.
    d.home.write("eco.yaml", &eco("three", 1));
    let out = d.ok(&["startOrRestart", file.to_str().unwrap()]);
    assert!(out.contains("restarted web"), "{out}");
    d.wait_online("web", 1);
    assert_eq!(get_json(addr, "/env?name=GREETING")["value"], "three");

    // A script given again is still reported, not reloaded.
    let out = d
        .home
        .output(&["start", script.to_str().unwrap(), "--name", "web"]);
    assert_eq!(out.status.code(), Some(5), "{}", out.stderr);
}

/// PM2's `-l/--log [PATH]` and `log_file`: one more file per instance (or one, merged)
/// with every line of both streams, whole; `logs` still shows each line once, and
/// `flush` empties the combined file too.
#[test]
fn log_file_combines_stdout_and_stderr_and_logs_still_shows_each_line_once() {
    let d = Daemon::new();
    let app = d.home.write(
        "mix.sh",
        "#!/bin/sh\ni=0\nwhile [ $i -lt 300 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done\nexec sleep 300\n",
    );
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ok(&["start", app.to_str().unwrap(), "-i", "2", "--log"]);
    let merged = d.home.path().join("all/both.log");
    d.ok(&[
        "start",
        app.to_str().unwrap(),
        "--name",
        "merged",
        "-i",
        "2",
        "--merge-logs",
        "-l",
        merged.to_str().unwrap(),
    ]);
    let whole = |text: &str, want: usize| {
        let mut next = [0usize, 0usize];
        for line in text.lines() {
            let (tag, n) = line.split_once(' ').expect("a whole line");
            let i = ["out", "err"]
                .iter()
                .position(|t| *t == tag)
                .unwrap_or_else(|| panic!("torn line {line:?}"));
            assert!(n.parse::<usize>().is_ok(), "torn line {line:?}");
            next[i] += 1;
        }
        assert_eq!(next, [want, want], "{text}");
    };
    for i in 0..2 {
        let path = d.home.path().join(format!("logs/mix-{i}.log"));
        let text = wait_for("the combined file of an instance", DEADLINE, || {
            let text = std::fs::read_to_string(&path).ok()?;
            (text.lines().count() == 600).then_some(text)
        });
        whole(&text, 300);
        let out = d.home.read(&format!("logs/mix-out-{i}.log"));
        assert_eq!(out.lines().filter(|l| l.starts_with("out ")).count(), 300);
        assert!(!out.contains("err "), "{out}");
    }
    let text = wait_for("the merged combined file", DEADLINE, || {
        let text = std::fs::read_to_string(&merged).ok()?;
        (text.lines().count() == 1200).then_some(text)
    });
    whole(&text, 600);

    // `logs` reads the out and error files: each line once, not again from log_file.
    let out = d.ok(&["logs", "mix", "--nostream", "--lines", "1000"]);
    assert_eq!(out.matches("out 17\n").count(), 2, "{out}");
    assert_eq!(out.matches("err 17\n").count(), 2, "{out}");
    let described = d.ok(&["describe", "mix"]);
    assert!(described.contains("logs/mix-0.log"), "{described}");

    d.ok(&["flush", "merged"]);
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), "");

    // --disable-logs: no file at all, while the app runs.
    d.ok(&[
        "start",
        app.to_str().unwrap(),
        "--name",
        "quiet",
        "--disable-logs",
    ]);
    d.wait_online("quiet", 1);
    let files: Vec<String> = std::fs::read_dir(d.home.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("quiet"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

/// `drover logs <app> --nostream` once it holds `needle`.
fn logs_with(d: &Daemon, app: &str, needle: &str) -> String {
    wait_for(
        &format!("{needle:?} in the logs of {app}"),
        DEADLINE,
        || {
            let out = d.ok(&["logs", app, "--nostream", "--lines", "50"]);
            out.contains(needle).then_some(out)
        },
    )
}

/// The spec `describe --json` gives for `app`.
fn spec_of(d: &Daemon, app: &str) -> serde_json::Value {
    let apps: serde_json::Value =
        serde_json::from_str(&d.ok(&["describe", app, "--json"])).unwrap();
    apps[0]["spec"].clone()
}

/// PM2's `start "python3 -m http.server"`: a command string runs its program with its
/// words (no shell), named after the program; words that look like a file name are not
/// an ecosystem file; shell syntax is refused, starting nothing.
#[test]
fn a_command_string_runs_as_its_program_with_its_words() {
    let d = Daemon::new();
    d.ok(&["start", "sh -c 'echo \"from a command\"; exec sleep 300'"]);
    d.wait_online("sh", 1);
    logs_with(&d, "sh", "from a command");
    let spec = spec_of(&d, "sh");
    assert!(spec["script"].as_str().unwrap().ends_with("/sh"), "{spec}");
    assert_eq!(spec["args"][0], "-c");
    assert_eq!(spec["interpreter"], serde_json::Value::Null);

    d.home.write("conf.json", "{\"a\": 1}\n");
    d.ok(&["start", "cat conf.json", "--no-autorestart"]);
    logs_with(&d, "cat", "{\"a\": 1}");

    let out = d
        .home
        .output(&["start", "sh -c 'exit 0' > out.log", "--name", "redirect"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("'>' is shell syntax"), "{}", out.stderr);
    assert!(d.list().iter().all(|w| w["name"] != "redirect"));
}

/// PM2 runs an extension-less file with node; drover does when it is not executable and
/// has no `#!`. An executable file is exec'd itself; a `#!` file that is not executable
/// is refused with the fix.
#[test]
fn an_extension_less_file_runs_with_node_unless_it_is_a_program() {
    let d = Daemon::new();
    d.home.write(
        "server",
        "console.log('node ran ' + process.release.name);\nsetInterval(() => {}, 1000);\n",
    );
    d.ok(&["start", "server"]);
    d.wait_online("server", 1);
    logs_with(&d, "server", "node ran node");
    assert_eq!(spec_of(&d, "server")["interpreter"], "node");

    let tool = d
        .home
        .write("tool", "#!/bin/sh\necho \"direct $0\"\nexec sleep 300\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ok(&["start", "./tool"]);
    logs_with(&d, "tool", "direct ");
    assert_eq!(spec_of(&d, "tool")["interpreter"], serde_json::Value::Null);

    d.home.write("script", "#!/bin/sh\nexec sleep 300\n");
    let out = d.home.output(&["start", "./script"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("is not executable"), "{}", out.stderr);
    assert!(out.stderr.contains("chmod +x"), "{}", out.stderr);
}

/// The value of env `GREETING` that the workers of `app` answer with.
fn greeting(d: &Daemon, app: &str) -> String {
    let addr = listen_of(&d.wait_online(app, 1)[0]);
    wait_serving(addr);
    get_json(addr, "/env?name=GREETING")["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// PM2's `pm2 stop app.js`, `pm2 reload ecosystem.config.js --env production`: a script
/// names the apps that run it, an ecosystem file the apps it defines (`--only` some),
/// and a word that is an app's name stays a name even when a file has it too.
#[test]
fn a_script_or_an_ecosystem_file_names_apps_for_stop_restart_reload_delete() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let eco = format!(
        "apps:\n  - name: a\n    script: {s}\n    listen: 127.0.0.1:0\n    env:\n      GREETING: one\n    env_production:\n      GREETING: prod\n  - name: b\n    script: {s}\n    listen: 127.0.0.1:0\n    env:\n      GREETING: one\n",
        s = script.display()
    );
    d.home.write("eco.yaml", &eco);
    // c runs its own copy of the script, by a relative path.
    std::fs::copy(&script, d.home.path().join("c.js")).unwrap();
    d.ok(&["start", "eco.yaml"]);
    d.ok(&["start", "c.js", "--listen", "127.0.0.1:0"]);
    d.wait_online("a", 1);
    d.wait_online("b", 1);
    d.wait_online("c", 1);

    let out = d.ok(&["stop", "eco.yaml"]);
    assert!(
        out.contains("stopped a") && out.contains("stopped b"),
        "{out}"
    );
    assert_eq!(d.statuses("a"), ["stopped"]);
    assert_eq!(d.statuses("b"), ["stopped"]);
    assert_eq!(d.statuses("c"), ["online"]);

    // restart FILE --only: that app of the file, with the file's settings.
    d.ok(&["restart", "eco.yaml", "--only", "a"]);
    assert_eq!(greeting(&d, "a"), "one");
    assert_eq!(d.statuses("b"), ["stopped"]);

    // reload FILE --env production: every app of the file takes env_production; the
    // stopped one starts (PM2's startOrReload).
    d.ok(&[
        "reload",
        "eco.yaml",
        "--env",
        "production",
        "--parallel",
        "2",
    ]);
    assert_eq!(greeting(&d, "a"), "prod");
    assert_eq!(greeting(&d, "b"), "one");

    // A script names the apps that run it, relative or absolute.
    let out = d.ok(&["stop", "c.js"]);
    assert!(out.contains("stopped c"), "{out}");
    assert_eq!(d.statuses("a"), ["online"]);
    let abs = d.home.path().join("c.js");
    d.ok(&["restart", abs.to_str().unwrap()]);
    d.wait_online("c", 1);
    let out = d.home.output(&["stop", script.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(d.statuses("a"), ["stopped"]);
    assert_eq!(d.statuses("b"), ["stopped"]);
    d.ok(&["restart", "a", "b"]);

    // Names first: a file named like an app does not hide the app.
    d.home.write("a", "not an app\n");
    let out = d.ok(&["stop", "a"]);
    assert!(out.contains("stopped a"), "{out}");

    // What is refused, naming the file: --only of an app the file lacks, --env or
    // --only without a file; a script nobody runs. An --env the file lacks is PM2's
    // warning: the apps reload with their env.
    for (args, code, needle) in [
        (
            &["restart", "eco.yaml", "--only", "a,x"][..],
            2,
            "eco.yaml: --only x: no app of that name (it has a, b)",
        ),
        (
            &["reload", "eco.yaml", "--env", "staging"],
            0,
            "warning: eco.yaml: --env staging: no app has env_staging (found: env_production)",
        ),
        (
            &["reload", "b", "--env", "production"],
            2,
            "--env production selects env_production of an ecosystem file, and no target is one",
        ),
        (&["stop", "b", "--only", "b"], 2, "no target is one"),
        (&["stop", "a"], 0, "stopped a"),
        (&["delete", "a"], 0, "deleted a"),
    ] {
        let out = d.home.output(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle) || out.stdout.contains(needle),
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    d.home.write("idle.js", "setInterval(() => {}, 1000);\n");
    let out = d.home.output(&["stop", "idle.js"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("none runs"), "{}", out.stderr);

    // delete FILE removes the file's apps the supervisor has (a is gone already), and
    // nothing else.
    let out = d.ok(&["delete", "eco.yaml"]);
    assert!(out.contains("deleted b"), "{out}");
    let names: Vec<String> = d
        .list()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["c"]);
    let out = d.home.output(&["stop", "eco.yaml"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("eco.yaml: none of its apps is known (a, b)"),
        "{}",
        out.stderr
    );
}

/// PM2's `cat ecosystem.json | pm2 start -`: `-` reads the file from stdin, YAML or
/// JSON, with relative paths from the current directory; `--only` picks apps of it.
#[test]
fn dash_reads_the_ecosystem_file_from_stdin() {
    let d = Daemon::new();
    std::fs::copy(fixture("http_worker.js"), d.home.path().join("w.js")).unwrap();
    let yaml = "apps:\n  - name: a\n    script: w.js\n    listen: 127.0.0.1:0\n  - name: b\n    script: ./w.js\n    listen: 127.0.0.1:0\n";
    let out = d
        .home
        .output_with_stdin(&["start", "-", "--only", "a"], yaml);
    assert!(out.status.success(), "{}", out.stderr);
    d.wait_online("a", 1);
    assert!(d.statuses("b").is_empty());
    let spec = spec_of(&d, "a");
    assert_eq!(
        spec["script"].as_str().unwrap(),
        d.home.path().join("w.js").to_str().unwrap()
    );
    // JSON, with tabs, as a target of stop.
    let json = "{\n\t\"apps\": [{\"name\": \"a\", \"script\": \"w.js\", \"listen\": \"127.0.0.1:0\"}]\n}\n";
    let out = d.home.output_with_stdin(&["stop", "-"], json);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(d.statuses("a"), ["stopped"]);
    let out = d.home.output_with_stdin(&["stop", "-", "-"], json);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("can be given once"), "{}", out.stderr);
}

/// `resurrect` with nothing saved says so and leaves no supervisor behind.
#[test]
fn resurrect_with_nothing_saved_starts_no_supervisor() {
    let home = Home::new();
    let out = home.output(&["resurrect"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing to resurrect"),
        "{}",
        out.stderr
    );
    assert!(daemons_for(home.path()).is_empty());
}

/// Flags that change an app's instances say how many it has now.
#[test]
fn restart_with_more_instances_says_how_many_there_are() {
    let d = Daemon::new();
    let script = d.home.write("tick.js", "setInterval(() => {}, 1000);\n");
    d.ok(&["start", script.to_str().unwrap()]);
    d.wait_online("tick", 1);
    let out = d.ok(&["restart", "tick", "-i", "3"]);
    assert!(
        out.starts_with("restarted tick: tick#0: pid ")
            && out.contains(" → ")
            && out.trim_end().ends_with("; tick now has 3 workers"),
        "{out}"
    );
    let workers = d.wait_online("tick", 3);
    let mut restarts: Vec<u64> = workers
        .iter()
        .map(|w| w["restarts"].as_u64().unwrap())
        .collect();
    restarts.sort_unstable();
    assert_eq!(restarts, [0, 0, 1], "only the worker it had was restarted");
}
