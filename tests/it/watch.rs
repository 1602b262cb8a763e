//! `watch` and `cron_restart` reload an app by themselves, without dropping a request:
//! a burst of file changes is one reload, ignored paths are no reload, and a cron
//! expression with seconds fires every time it names.

use std::path::Path;

use crate::harness::*;

/// Reloads of every worker of `name` so far (each slot counts its own).
fn reloads(d: &Daemon, name: &str) -> Vec<u64> {
    d.list()
        .iter()
        .filter(|w| w["name"] == name)
        .map(|w| w["restarts_by_cause"]["reload"].as_u64().unwrap())
        .collect()
}

fn wait_reloads(d: &Daemon, name: &str, n: u64) {
    wait_for(&format!("{name} reloaded {n} times"), DEADLINE, || {
        let r = reloads(d, name);
        (!r.is_empty() && r.iter().all(|&x| x >= n)).then_some(())
    });
    assert!(
        reloads(d, name).iter().all(|&x| x == n),
        "more reloads than changes: {:?}",
        reloads(d, name)
    );
}

fn start_watched(d: &Daemon, extra: &str) -> std::net::SocketAddr {
    let src = d.home.path().join("app/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(d.home.path().join("app/node_modules/dep")).unwrap();
    std::fs::copy(
        fixture("http_worker.js"),
        d.home.path().join("app/server.js"),
    )
    .unwrap();
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: server.js\n    cwd: app\n    instances: 2\n    listen: 127.0.0.1:0\n    watch: true\n    watch_delay: 300ms\n{extra}"
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    let workers = d.wait_online("web", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    addr
}

fn write_many(dir: &Path, n: usize, tag: &str) {
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i}.js")), format!("// {tag} {i}\n")).unwrap();
    }
}

#[test]
fn a_burst_of_a_thousand_changes_is_one_reload_without_a_dropped_request() {
    let d = Daemon::new();
    let addr = start_watched(&d, "");
    let load = Load::start(addr, 3);
    // A `git checkout`: a thousand files at once.
    write_many(&d.home.path().join("app/src"), 1000, "checkout");
    wait_reloads(&d, "web", 1);
    // One more change is the next reload, exactly: no reload of the burst was left over.
    std::fs::write(d.home.path().join("app/src/one.js"), "// one\n").unwrap();
    wait_reloads(&d, "web", 2);
    d.wait_online("web", 2);
    let tally = load.finish();
    assert!(tally.clean(), "{tally:?}");
    // Each reload names the first file that changed (relative to the app's cwd, app/)
    // and how many others did.
    let log = d.home.read("drover.log");
    assert!(
        log.contains("web: its files changed (src/f0.js and 999 more): reloading"),
        "{log}"
    );
    assert!(
        log.contains("web: its files changed (src/one.js): reloading"),
        "{log}"
    );
}

#[test]
fn ignored_paths_and_the_apps_own_logs_reload_nothing() {
    let d = Daemon::new();
    start_watched(&d, "    out_file: out.log\n");
    let app = d.home.path().join("app");
    // node_modules (ignored by default), and the app's own log (app/out-0.log,
    // out-1.log), which it writes as it serves.
    write_many(&app.join("node_modules/dep"), 50, "dependency");
    get(listen_of(&d.list()[0]), "/");
    // A change that counts, after them: exactly one reload, so the others made none.
    std::fs::write(app.join("src/real.js"), "// real\n").unwrap();
    wait_reloads(&d, "web", 1);
    // A change while the app is stopped does not start it.
    d.ok(&["stop", "web"]);
    std::fs::write(app.join("src/real.js"), "// stopped\n").unwrap();
    d.ok(&["describe", "web"]);
    assert_eq!(d.statuses("web"), ["stopped", "stopped"]);
}

#[test]
fn a_cron_restart_with_seconds_reloads_on_time() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "cronned",
        "-i",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--cron",
        "*/2 * * * * *",
    ]);
    d.wait_online("cronned", 2);
    let describe = d.ok(&["describe", "cronned"]);
    assert!(
        describe.contains("cron restart       */2 * * * * * (next 20"),
        "{describe}"
    );
    wait_for("two scheduled reloads", DEADLINE, || {
        reloads(&d, "cronned").iter().all(|&r| r >= 2).then_some(())
    });
    let log = d.home.read("drover.log");
    assert!(
        log.contains("cronned: its cron_restart time came: reloading"),
        "{log}"
    );
}
