//! Cluster mode without `--listen`, as PM2 users start apps: a Node app that calls
//! `listen(PORT)` itself gets one socket, bound by the supervisor on the port its workers
//! ask for and shared by all of them, with restarts, reload and scale as zero-failure as
//! with `--listen`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// `PORT=<port> drover start http_worker.js -i <n> --name web`: no listen address for
/// drover, the app listens on PORT by itself. Port 0, as in a Node cluster, is one port
/// the kernel picks for all workers.
fn start_cluster(d: &Daemon, instances: u32, port: u16) -> (Output, SocketAddr) {
    let script = fixture("http_worker.js");
    let out = d
        .home
        .command(&[
            "start",
            script.to_str().unwrap(),
            "-i",
            &instances.to_string(),
            "--name",
            "web",
        ])
        .env("PORT", port.to_string())
        .output()
        .expect("run drover");
    let out = Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let workers = d.wait_online("web", instances as usize);
    // The port the supervisor bound when the first worker asked ([::], both stacks).
    let bound = wait_for("the shared address in list", DEADLINE, || {
        d.list()
            .iter()
            .find_map(|w| w["listen"].as_str().map(str::to_owned))
    });
    let port = bound.parse::<SocketAddr>().unwrap().port();
    assert!(!workers.is_empty());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_serving(addr);
    (out, addr)
}

fn pids(d: &Daemon) -> BTreeSet<i32> {
    d.list()
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .map(|p| p as i32)
        .collect()
}

fn assert_clean(tally: &Tally) {
    assert!(
        tally.clean(),
        "{} refused, {} of {} failed: {:?}",
        tally.refused,
        tally.failed.len(),
        tally.ok,
        &tally.failed[..tally.failed.len().min(5)]
    );
    assert!(tally.ok > 0);
}

#[test]
fn workers_that_listen_on_their_own_port_share_it() {
    let d = Daemon::new();
    let (out, addr) = start_cluster(&d, 2, 0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let workers = pids(&d);
    assert_eq!(workers.len(), 2);
    // Both workers answer on the one port (reuseport spreads new connections).
    let mut answered = BTreeSet::new();
    wait_for("both workers to answer", DEADLINE, || {
        answered.insert(pid_of(&get_json(addr, "/")));
        (answered == workers).then_some(())
    });
    // Each worker sees the port it asked for (0) in its environment, and its server's
    // address is the shared one.
    let reply = get_json(addr, "/");
    assert_eq!(reply["port"], addr.port());
    // Nothing crash-looped on EADDRINUSE.
    assert!(
        d.list().iter().all(|w| w["restarts"] == 0),
        "{:?}",
        d.list()
    );
}

#[test]
fn the_shared_port_survives_kill_reload_and_scale_under_load() {
    let d = Daemon::new();
    let (_, addr) = start_cluster(&d, 2, 0);

    // A worker SIGKILLed under load: its own accepted connections may fail, none is
    // refused, and its replacement asks for and gets the same port.
    let load = Load::start(addr, 2);
    let victim = *pids(&d).iter().next().unwrap();
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    wait_for("the killed worker replaced", DEADLINE, || {
        let now = pids(&d);
        (!now.contains(&victim) && now.len() == 2 && d.statuses("web") == ["online", "online"])
            .then_some(now)
    });
    let replacement = *pids(&d).iter().find(|&&p| p != victim).unwrap();
    let _ = replacement;
    let tally = load.finish();
    assert_eq!(tally.refused, 0, "refused after a kill -9: {tally:?}");

    // Reload under load: every pid replaced, no request failed.
    let before = pids(&d);
    let load = Load::start(addr, 2);
    let out = d.ok(&["reload", "web"]);
    assert!(out.contains("reloaded web"), "{out}");
    let after = pids(&d);
    assert!(before.is_disjoint(&after), "{before:?} → {after:?}");
    wait_for("a new worker to answer", DEADLINE, || {
        after.contains(&pid_of(&get_json(addr, "/"))).then_some(())
    });
    assert_clean(&load.finish());

    // Scale up and down under load.
    let load = Load::start(addr, 2);
    d.ok(&["scale", "web", "3"]);
    let three = d.wait_online("web", 3);
    let newest = three
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .max()
        .unwrap() as i32;
    wait_for("the new worker to answer", DEADLINE, || {
        (pid_of(&get_json(addr, "/")) == newest).then_some(())
    });
    d.ok(&["scale", "web", "1"]);
    d.wait_online("web", 1);
    assert_clean(&load.finish());
}

#[test]
fn a_port_another_program_holds_fails_as_it_would_without_drover() {
    // The app's workers ask for a port this test holds: the supervisor cannot bind it, so
    // each worker binds by itself and gets Node's own EADDRINUSE, as without drover.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let out = d
        .home
        .command(&[
            "start",
            script.to_str().unwrap(),
            "-i",
            "2",
            "--name",
            "web",
            "--max-restarts",
            "2",
        ])
        .env("PORT", port.to_string())
        .output()
        .expect("run drover");
    assert!(out.status.success());
    wait_for("the workers to error", DEADLINE, || {
        (d.statuses("web") == ["errored", "errored"]).then_some(())
    });
    let errors = d.ok(&["logs", "web", "--err", "--lines", "200", "--nostream"]);
    assert!(errors.contains("EADDRINUSE"), "{errors}");
    let log = d.home.read("drover.log");
    assert!(log.contains(&format!("binds [::]:{port} itself")), "{log}");
    drop(held);
}

/// A Node cluster app with a second server (an admin port next to the main one), as Node's
/// cluster shares every port: both ports are served by both workers, and none crash-loops
/// on EADDRINUSE; `stop` frees both ports.
#[test]
fn a_second_port_of_a_node_cluster_app_is_shared_too() {
    let d = Daemon::new();
    let main = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let (main_port, admin_port) = (
        main.local_addr().unwrap().port(),
        admin.local_addr().unwrap().port(),
    );
    drop((main, admin));
    let app = d.home.write(
        "two.js",
        "const http = require('http');\n\
         const answer = (what) => (req, res) => res.end(JSON.stringify({ what, pid: process.pid }));\n\
         http.createServer(answer('main')).listen(process.env.MAIN_PORT);\n\
         http.createServer(answer('admin')).listen(process.env.ADMIN_PORT);\n",
    );
    let out = d
        .home
        .command(&["start", app.to_str().unwrap(), "-i", "2"])
        .env("MAIN_PORT", main_port.to_string())
        .env("ADMIN_PORT", admin_port.to_string())
        .output()
        .expect("run drover");
    assert!(out.status.success(), "{out:?}");
    let workers = d.wait_online("two", 2);
    let want: BTreeSet<i32> = workers
        .iter()
        .map(|w| w["pid"].as_i64().unwrap() as i32)
        .collect();
    for (port, what) in [(main_port, "main"), (admin_port, "admin")] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_serving(addr);
        // Both workers answer on each port (new connections each time: one of them
        // sooner or later lands on the other worker).
        let seen = wait_for(
            &format!("both workers on the {what} port"),
            DEADLINE,
            || {
                let mut seen = BTreeSet::new();
                for _ in 0..50 {
                    let reply = get_json(addr, "/");
                    assert_eq!(reply["what"], what);
                    seen.insert(pid_of(&reply));
                }
                (seen == want).then_some(seen)
            },
        );
        assert_eq!(seen.len(), 2);
    }
    assert!(
        d.list().iter().all(|w| w["restarts"] == 0),
        "no worker crashed on EADDRINUSE: {:?}",
        d.list()
    );
    d.ok(&["stop", "two"]);
    for port in [main_port, admin_port] {
        TcpListener::bind(("0.0.0.0", port)).expect("stop frees every port of the app");
    }
}
