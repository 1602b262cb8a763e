//! PM2's commands that show or poke a worker (`env`, `sendSignal`, `jlist`,
//! `prettylist`), and PM2's flags drover refuses, each with its reason.

use std::collections::BTreeMap;

use crate::harness::*;

/// The environment process `pid` was started with (/proc/<pid>/environ).
fn environ(pid: i64) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|&b| b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `drover env ID` parsed from its `NAME=value` lines.
fn env_of(d: &Daemon, id: &str) -> BTreeMap<String, String> {
    d.ok(&["env", id])
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn worker<'a>(list: &'a [serde_json::Value], name: &str, instance: u64) -> &'a serde_json::Value {
    list.iter()
        .find(|w| w["name"] == name && w["instance"] == instance)
        .unwrap()
}

#[test]
fn env_is_the_environment_the_worker_was_started_with() {
    let d = Daemon::new();
    d.home.write("tick.js", "setInterval(() => {}, 1000);\n");
    let eco = d.home.write(
        "eco.yaml",
        "apps:\n  - name: node\n    script: tick.js\n    instances: 2\n    env:\n      FROM_APP: node\n      SHARED: the app's\n  - name: sleeper\n    script: sleep 300\n    listen: 127.0.0.1:0\n    increment_var: BASE\n    env:\n      BASE: 7000\n",
    );
    let out = d
        .home
        .command(&["start", eco.to_str().unwrap()])
        .env("FROM_CALLER", "the caller's")
        .env("SHARED", "the caller's")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    d.wait_online("node", 2);
    d.wait_online("sleeper", 1);
    let list = d.list();

    // Every worker: exactly what its process got.
    for w in &list {
        let id = w["id"].to_string();
        let pid = w["pid"].as_i64().unwrap();
        assert_eq!(env_of(&d, &id), environ(pid), "worker {id}");
    }
    let node1 = worker(&list, "node", 1);
    let env = env_of(&d, &node1["id"].to_string());
    assert_eq!(env["FROM_CALLER"], "the caller's");
    assert_eq!(
        env["SHARED"], "the app's",
        "the app's env over the caller's"
    );
    assert_eq!(env["FROM_APP"], "node");
    assert_eq!(env["NODE_APP_INSTANCE"], "1");
    assert!(env["NODE_OPTIONS"].contains("--require"), "{env:?}");
    let sleeper = worker(&list, "sleeper", 0);
    let pid = sleeper["pid"].to_string();
    let port = listen_of(sleeper).port().to_string();
    let env = env_of(&d, "sleeper");
    assert_eq!(env["LISTEN_FDS"], "1");
    assert_eq!(env["LISTEN_PID"], pid);
    assert_eq!(env["LISTEN_FDNAMES"], "sleeper");
    assert_eq!(env["PORT"], port);
    assert_eq!(env["BASE"], "7000");

    // --json: the same, with whose it is.
    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&["env", "sleeper", "--json"])).unwrap();
    assert_eq!(json["app"], "sleeper");
    assert_eq!(json["pid"].to_string(), pid);
    assert_eq!(json["env"]["PORT"], port.as_str());

    // Stopped: what its next start gets, which it then gets (LISTEN_PID aside).
    d.ok(&["stop", "sleeper"]);
    let out = d.home.output(&["env", "sleeper"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("is not running"), "{}", out.stderr);
    let next: BTreeMap<String, String> = out
        .stdout
        .lines()
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(
        !next.contains_key("LISTEN_PID") && next["LISTEN_FDS"] == "1",
        "{next:?}"
    );
    d.ok(&["start", "sleeper"]);
    let w = d.wait_online("sleeper", 1);
    let pid = w[0]["pid"].as_i64().unwrap();
    let mut got = environ(pid);
    assert_eq!(got.remove("LISTEN_PID"), Some(pid.to_string()));
    assert_eq!(got, next);

    // One worker or nothing: a name of two, no such id.
    let out = d.home.output(&["env", "node"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("node names 2 workers (ids"),
        "{}",
        out.stderr
    );
    let out = d.home.output(&["env", "4242"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
}

/// A Python worker with a child in its process group that blocks SIGUSR2 (a blocked
/// signal stays pending, which the kernel sets at once): when the worker gets SIGUSR2 it
/// asks the child, over a pipe, whether one is pending for it too.
const PARENT_AND_CHILD_PY: &str = r#"import signal, subprocess, sys

CHILD = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
print("child ready", flush=True)
for line in sys.stdin:
    pending = signal.SIGUSR2 in signal.sigpending()
    print("child pending:", "SIGUSR2" if pending else "nothing", flush=True)
"""

child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)

def on_usr2(signum, frame):
    print("parent got SIGUSR2", flush=True)
    child.stdin.write(b"report\n")
    child.stdin.flush()

signal.signal(signal.SIGUSR2, on_usr2)
print("parent ready", flush=True)
while True:
    signal.pause()
"#;

#[test]
fn send_signal_reaches_the_worker_s_process_not_its_group() {
    let d = Daemon::new();
    d.home.write("family.py", PARENT_AND_CHILD_PY);
    d.ok(&["start", "family.py", "--name", "family"]);
    d.wait_online("family", 1);
    let log = || d.home.read("logs/family-out.log");
    wait_for("parent and child ready", DEADLINE, || {
        let log = log();
        (log.contains("parent ready") && log.contains("child ready")).then_some(())
    });
    let pid = d.list()[0]["pid"].to_string();
    let out = d.ok(&["send-signal", "SIGUSR2", "family"]);
    assert_eq!(out, format!("family#0: SIGUSR2 sent to pid {pid}\n"));
    let answer = wait_for("the child's answer", DEADLINE, || {
        let log = log();
        log.lines()
            .find(|l| l.starts_with("child pending:"))
            .map(str::to_owned)
    });
    assert!(log().contains("parent got SIGUSR2"));
    assert_eq!(answer, "child pending: nothing", "the child got it too");
    assert_eq!(d.statuses("family"), ["online"]);

    // Bad input: a signal nobody knows (exit 2), an app nobody knows (exit 4).
    let out = d.home.output(&["send-signal", "SIGNOPE", "family"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("not a signal name"), "{}", out.stderr);
    let out = d.home.output(&["sendSignal", "USR2", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
}

#[test]
fn a_signal_to_workers_of_which_some_are_stopped_says_which_got_it() {
    let d = Daemon::new();
    d.home.write(
        "hup.js",
        "process.on('SIGHUP', () => console.log('got SIGHUP'));\nsetInterval(() => {}, 1000);\nconsole.log('ready');\n",
    );
    d.ok(&["start", "hup.js", "-i", "2"]);
    let workers = d.wait_online("hup", 2);
    for i in 0..2 {
        wait_for("the handler", DEADLINE, || {
            d.home
                .read(&format!("logs/hup-out-{i}.log"))
                .contains("ready")
                .then_some(())
        });
    }
    let stopped = workers[1]["id"].to_string();
    d.ok(&["stop", &stopped]);
    let out = d.ok(&["send-signal", "hup", "hup"]);
    assert_eq!(
        out,
        format!(
            "hup#0: SIGHUP sent to pid {}\nhup#1: stopped, no process\n",
            workers[0]["pid"]
        )
    );
    wait_for("SIGHUP in the log", DEADLINE, || {
        d.home
            .read("logs/hup-out-0.log")
            .contains("got SIGHUP")
            .then_some(())
    });
}

#[test]
fn jlist_and_prettylist_are_list_json() {
    let d = Daemon::new();
    d.home.write("tick.js", "setInterval(() => {}, 1000);\n");
    d.ok(&["start", "tick.js", "-i", "2"]);
    d.wait_online("tick", 2);
    // What does not move between two calls.
    let steady = |text: &str| -> Vec<serde_json::Value> {
        let mut workers: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        for w in &mut workers {
            let w = w.as_object_mut().unwrap();
            for moving in ["uptime_ms", "cpu", "memory"] {
                assert!(w.remove(moving).is_some(), "{moving}");
            }
        }
        workers
    };
    let list = d.ok(&["list", "--json"]);
    let jlist = d.ok(&["jlist"]);
    let pretty = d.ok(&["prettylist"]);
    assert_eq!(jlist.lines().count(), 1, "{jlist}");
    assert!(pretty.lines().count() > 20 && pretty.contains("\n    \"status\": \"online\""));
    assert_eq!(steady(&jlist), steady(&list));
    assert_eq!(steady(&pretty), steady(&list));
}

#[test]
fn refused_pm2_flags_say_why_in_one_line() {
    let home = Home::new();
    home.write("app.js", "setInterval(() => {}, 1000);\n");
    for (args, want) in [
        (
            &["start", "app.js", "--no-daemon"][..],
            "drover: --no-daemon: PM2's foreground mode is `drover run`",
        ),
        // clap would say "a similar argument exists: '--name'".
        (
            &["start", "app.js", "--namespace", "prod"],
            "drover: --namespace: drover has no namespaces",
        ),
        (&["start", "app.js", "--force"], "drover: --force: "),
        (
            &["restart", "all", "-u", "web"],
            "drover: -u: PM2's user of a startup script",
        ),
        (
            &["logs", "--highlight=GET"],
            "drover: --highlight: PM2's `logs --highlight`",
        ),
    ] {
        let out = home.output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with(want), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("tip"), "{args:?}: {}", out.stderr);
    }
    // Nothing started a supervisor.
    assert!(!home.path().join("drover.sock").exists());
    // A flag nobody knows keeps clap's own error, also exit 2.
    let out = home.output(&["start", "app.js", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("unexpected argument '--no-such-flag'"),
        "{}",
        out.stderr
    );
    // PM2's -v.
    let out = home.output(&["-v"]);
    assert_eq!(
        out.stdout,
        format!("drover {}\n", env!("CARGO_PKG_VERSION"))
    );
}
