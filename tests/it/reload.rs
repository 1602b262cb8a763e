//! Zero-downtime reload, readiness and scaling, under a live client.

use std::collections::BTreeSet;

use nix::sys::signal::Signal;

use crate::harness::*;

fn pids(d: &Daemon, name: &str) -> BTreeSet<i64> {
    d.list()
        .iter()
        .filter(|w| w["name"] == name)
        .filter_map(|w| w["pid"].as_i64())
        .collect()
}

fn reload_under_load(instances: u32) {
    let d = Daemon::new();
    let addr = d.start_http("web", instances, &[]);
    let before = pids(&d, "web");
    let load = Load::start(addr, 2);
    let out = d.ok(&["reload", "web"]);
    assert!(out.contains("reloaded web"), "{out}");
    let after = pids(&d, "web");
    // Keep the load on the new workers for a moment: wait until they answered.
    wait_for("the new workers to answer", DEADLINE, || {
        let reply = get_json(addr, "/");
        after.contains(&i64::from(pid_of(&reply))).then_some(())
    });
    let tally = load.finish();
    assert!(
        tally.clean(),
        "{} of {} requests failed: {:?}",
        tally.failed.len(),
        tally.ok,
        &tally.failed[..tally.failed.len().min(5)]
    );
    assert!(tally.ok > 0);
    assert_eq!(after.len(), instances as usize);
    assert!(
        before.is_disjoint(&after),
        "every pid replaced: {before:?} → {after:?}"
    );
    for pid in before {
        wait_for(&format!("old pid {pid} gone"), DEADLINE, || {
            is_gone(pid as i32).then_some(())
        });
    }
    assert!(d.list().iter().all(|w| w["restarts"] == 1));
}

#[test]
fn reload_of_2_workers_under_load_fails_no_request() {
    reload_under_load(2);
}

#[test]
fn reload_of_4_workers_under_load_fails_no_request() {
    reload_under_load(4);
}

#[test]
fn a_reload_whose_new_workers_never_get_ready_keeps_the_old_ones() {
    let d = Daemon::new();
    let script = fixture("fd3_worker.py");
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: py\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    wait_ready: true\n    listen_timeout: 700ms\n    env:\n      SKIP_READY: '1'\n",
            script.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    // Never signalling, the first workers are counted online after listen_timeout.
    let workers = d.wait_online("py", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    let before = pids(&d, "py");
    let load = Load::start(addr, 1);
    let out = d.home.output(&["reload", "py"]);
    let tally = load.finish();
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains("py#0") && out.stderr.contains("not ready within listen_timeout"),
        "{}",
        out.stderr
    );
    assert_eq!(pids(&d, "py"), before, "the old workers keep serving");
    assert!(tally.clean(), "{:?}", tally.failed);
    assert!(d.list().iter().all(|w| w["status"] == "online"));
}

#[test]
fn wait_ready_with_sd_notify_from_python() {
    let d = Daemon::new();
    let script = fixture("fd3_worker.py");
    // A listen_timeout far beyond the test's deadline: online can only come from READY=1.
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: py\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    wait_ready: true\n    listen_timeout: 10m\n",
            script.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let addr = listen_of(&d.wait_online("py", 2)[0]);
    let before = pids(&d, "py");
    let out = d.ok(&["reload", "py"]);
    assert!(out.contains("reloaded py"), "{out}");
    assert!(before.is_disjoint(&pids(&d, "py")));
    wait_serving(addr);
}

#[test]
fn wait_ready_with_process_send_ready_from_node() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: js\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    wait_ready: true\n    listen_timeout: 10m\n    env:\n      WAIT_READY: '1'\n      READY_DELAY_MS: '300'\n",
            script.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let addr = listen_of(&d.wait_online("js", 2)[0]);
    wait_serving(addr);
    let load = Load::start(addr, 1);
    let out = d.ok(&["reload", "js"]);
    let tally = load.finish();
    assert!(out.contains("reloaded js"), "{out}");
    assert!(tally.clean(), "{:?}", tally.failed);
}

#[test]
fn scale_4_to_1_to_3_under_load_fails_no_request() {
    let d = Daemon::new();
    let addr = d.start_http("web", 4, &[]);
    let load = Load::start(addr, 2);
    d.ok(&["scale", "web", "1"]);
    assert_eq!(d.wait_online("web", 1).len(), 1);
    d.ok(&["scale", "web", "3"]);
    let workers = d.wait_online("web", 3);
    let newest = workers
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .max()
        .unwrap();
    wait_for("a new worker to answer", DEADLINE, || {
        (i64::from(pid_of(&get_json(addr, "/"))) == newest).then_some(())
    });
    let tally = load.finish();
    assert!(
        tally.clean(),
        "{} of {} requests failed: {:?}",
        tally.failed.len(),
        tally.ok,
        &tally.failed[..tally.failed.len().min(5)]
    );
}

#[test]
fn sighup_reloads_a_foreground_run() {
    let home = Home::new();
    let running = home.run(&[
        fixture("http_worker.js").to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--name",
        "fg",
    ]);
    let addr = running.listen_addr("fg");
    wait_serving(addr);
    wait_for("both workers online", DEADLINE, || {
        let out = home.output(&["list", "--json"]).stdout;
        let workers: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
        (workers.len() == 2 && workers.iter().all(|w| w["status"] == "online")).then_some(())
    });
    running.signal(Signal::SIGHUP);
    running.wait_stderr("reloaded all");
    assert_eq!(running.count_stderr("reloaded: pid"), 2);
    wait_serving(addr);
}
