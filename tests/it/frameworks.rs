//! Real frameworks under drover, as their users run them: Express 5, Fastify 5, Koa 3
//! (npm), Flask under gunicorn, FastAPI under uvicorn and under gunicorn's UvicornWorker
//! (PyPI), at the versions pinned in tests/frameworks/ (installed by `.ci/run`). Each runs
//! as 2 workers on a port the OS picks; a worker SIGKILLed under load refuses nothing,
//! and a reload under a keep-alive + fresh-connection load with requests in flight fails
//! no request.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

fn frameworks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frameworks")
}

/// The Node packages of tests/frameworks/package.json.
fn node_app(file: &str) -> PathBuf {
    let dir = frameworks();
    assert!(
        dir.join("node_modules/express").is_dir(),
        "the framework packages are not installed: run `bash .ci/run` (or `npm ci --prefix tests/frameworks`)"
    );
    dir.join(file)
}

/// A program of the Python environment that `.ci/run` builds from
/// tests/frameworks/requirements.txt.
fn venv_bin(program: &str) -> String {
    let venv = std::env::var_os("DROVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/venv"));
    let path = venv.join("bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: run `bash .ci/run` (it builds the test venv from tests/frameworks/requirements.txt)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

fn pids(d: &Daemon, name: &str) -> BTreeSet<i32> {
    d.list()
        .iter()
        .filter(|w| w["name"] == name)
        .filter_map(|w| w["pid"].as_i64())
        .map(|p| p as i32)
        .collect()
}

/// Starts `script args…` as 2 workers of app `name` on 127.0.0.1:0 and waits until
/// both answer as `server`.
fn start(d: &Daemon, name: &str, script: &str, args: &[&str], server: &str) -> SocketAddr {
    let cwd = frameworks();
    let mut cmd = vec![
        "start",
        script,
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--name",
        name,
        "--cwd",
        cwd.to_str().unwrap(),
    ];
    if !args.is_empty() {
        cmd.push("--");
        cmd.extend_from_slice(args);
    }
    d.ok(&cmd);
    let workers = d.wait_online(name, 2);
    let addr = listen_of(&workers[0]);
    let reply = wait_serving(addr);
    assert_eq!(reply["server"], server, "{reply}");
    addr
}

fn assert_clean(d: &Daemon, what: &str, tally: &Tally) {
    assert!(
        tally.clean(),
        "{what}: {} refused, {} of {} failed: {:?}\nsupervisor log:\n{}",
        tally.refused,
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64,
        &tally.failed[..tally.failed.len().min(5)],
        d.home.read("drover.log")
    );
    assert!(tally.ok > 0, "{what}: no request answered");
}

/// The scenario every framework passes.
fn survives_kill_and_reload(name: &str, script: &str, args: &[&str], server: &str) {
    let d = Daemon::new();
    let addr = start(&d, name, script, args, server);

    // kill -9 of one worker under load: nothing is refused (requests the dead worker had
    // accepted may fail with it), and it is replaced.
    let load = Load::mixed(addr, 2, 2);
    let before = pids(&d, name);
    let victim = *before.iter().next().unwrap();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    wait_for("the killed worker replaced and online", DEADLINE, || {
        let now = pids(&d, name);
        (!now.contains(&victim) && now.len() == 2 && d.statuses(name) == ["online", "online"])
            .then_some(())
    });
    let tally = load.finish();
    assert_eq!(
        tally.refused, 0,
        "{name}: refused after a kill -9: {tally:?}"
    );

    // Reload under load: every worker replaced, not one request lost.
    let before = pids(&d, name);
    let load = Load::mixed(addr, 2, 2);
    wait_for("the load under way", DEADLINE, || {
        matches!(get(addr, "/"), Reply::Ok(_)).then_some(())
    });
    let out = d.ok(&["reload", name]);
    assert!(out.contains(&format!("reloaded {name}")), "{out}");
    let after = pids(&d, name);
    assert!(before.is_disjoint(&after), "{before:?} → {after:?}");
    // The new workers serve the load before it ends.
    wait_for("a new worker to answer", DEADLINE, || {
        match get(addr, "/") {
            Reply::Ok(body) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .filter(|v| server_pid_is_new(v, &before))
                .map(|_| ()),
            _ => None,
        }
    });
    let tally = load.finish();
    assert_clean(&d, &format!("{name} reload"), &tally);
}

/// Whether a reply came from a worker started by the reload: for gunicorn the answering
/// pid is one of its own workers, a child of drover's worker, so "not one of the old
/// drover workers' trees" is checked via the parent.
fn server_pid_is_new(reply: &serde_json::Value, old: &BTreeSet<i32>) -> bool {
    let pid = pid_of(reply);
    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    !old.contains(&pid) && !old.contains(&parent)
}

#[test]
fn express() {
    let app = node_app("express_app.js");
    survives_kill_and_reload("express", app.to_str().unwrap(), &[], "express");
}

#[test]
fn fastify() {
    let app = node_app("fastify_app.js");
    survives_kill_and_reload("fastify", app.to_str().unwrap(), &[], "fastify");
}

#[test]
fn koa() {
    let app = node_app("koa_app.js");
    survives_kill_and_reload("koa", app.to_str().unwrap(), &[], "koa");
}

#[test]
fn flask_under_gunicorn() {
    let gunicorn = venv_bin("gunicorn");
    survives_kill_and_reload("flask", &gunicorn, &["flask_app:app"], "flask");
}

#[test]
fn fastapi_under_uvicorn() {
    let uvicorn = venv_bin("uvicorn");
    survives_kill_and_reload(
        "fastapi",
        &uvicorn,
        &["fastapi_app:app", "--fd", "3"],
        "fastapi",
    );
}

#[test]
fn fastapi_under_gunicorn_uvicorn_worker() {
    let gunicorn = venv_bin("gunicorn");
    survives_kill_and_reload(
        "uvworker",
        &gunicorn,
        &["-k", "uvicorn.workers.UvicornWorker", "fastapi_app:app"],
        "fastapi",
    );
}

#[test]
fn a_tcp_listener_taken_with_fromfd_af_unix_stays_tcp() {
    // uvicorn --fd 3 does socket.fromfd(3, AF_UNIX, …): without the Python preload the
    // socket believes it is a Unix socket, asyncio never sets TCP_NODELAY on its
    // connections, and small responses wait on delayed ACKs (uvicorn --fd was 7× slower
    // than --port). Under drover the socket is what the kernel says.
    let d = Daemon::new();
    let app = d.home.write(
        "family.py",
        concat!(
            "import socket, time\n",
            "s = socket.fromfd(3, socket.AF_UNIX, socket.SOCK_STREAM)\n",
            "print('family', s.family.name, 'proto', s.proto, flush=True)\n",
            "time.sleep(300)\n",
        ),
    );
    d.ok(&["start", app.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    d.wait_online("family", 1);
    let line = wait_for("its line", DEADLINE, || {
        let log = d.home.read("logs/family-out.log");
        log.contains("family").then_some(log)
    });
    assert!(line.contains("family AF_INET proto 6"), "{line}");
}

#[test]
fn each_gunicorn_master_gets_a_control_socket_of_its_own() {
    // gunicorn 25.1+ opens a control socket at one path per user by default: the masters
    // of an app's workers would replace each other's. Under drover each has its own.
    use std::os::unix::fs::FileTypeExt;
    let d = Daemon::new();
    let gunicorn = venv_bin("gunicorn");
    start(&d, "ctl", &gunicorn, &["flask_app:app"], "flask");
    for instance in 0..2 {
        let path = d.home.path().join(format!("gunicorn/ctl-{instance}.ctl"));
        wait_for(&format!("{}", path.display()), DEADLINE, || {
            std::fs::metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_socket())
        });
    }
}

/// The pids whose parent is `parent`.
fn children_of(parent: i32) -> BTreeSet<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(1)?
                        .parse::<i32>()
                        .ok()
                })
                == Some(parent)
        })
        .collect()
}

#[test]
fn send_signal_hup_has_gunicorn_replace_its_own_workers() {
    // PM2's sendSignal goes to the worker's pid, and so does drover's: a gunicorn master
    // takes SIGHUP as "replace your workers gracefully"; drover's workers (the masters)
    // stay, and nothing counts as a restart.
    let d = Daemon::new();
    let gunicorn = venv_bin("gunicorn");
    let addr = start(&d, "hup", &gunicorn, &["flask_app:app"], "flask");
    let masters = pids(&d, "hup");
    let old: BTreeSet<i32> = wait_for("one gunicorn worker per master", DEADLINE, || {
        let now: BTreeSet<i32> = masters.iter().flat_map(|m| children_of(*m)).collect();
        (now.len() == 2).then_some(now)
    });
    let out = d.ok(&["send-signal", "SIGHUP", "hup"]);
    for master in &masters {
        assert!(
            out.contains(&format!("SIGHUP sent to pid {master}")),
            "{out}"
        );
    }
    wait_for("the masters' new workers", DEADLINE, || {
        let now: BTreeSet<i32> = masters.iter().flat_map(|m| children_of(*m)).collect();
        (now.len() == 2 && now.is_disjoint(&old) && old.iter().all(|p| is_gone(*p))).then_some(())
    });
    let reply = wait_serving(addr);
    assert!(!old.contains(&pid_of(&reply)), "{reply}");
    assert_eq!(pids(&d, "hup"), masters);
    assert!(
        d.list()
            .iter()
            .all(|w| w["restarts"] == 0 && w["status"] == "online")
    );
}
