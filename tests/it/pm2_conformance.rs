//! PM2's own end-to-end scenarios (Unitech/pm2 test/e2e/, the shell scripts named in each
//! test), translated to drover's commands, with PM2's expected results. The apps are
//! PM2's fixtures (test/fixtures/), re-typed here: a few lines each, with one change: the
//! ones that listened on a fixed port (8004, 8020) listen on port 0, which in cluster
//! mode is one port the kernel picks for all workers, as under PM2.
//!
//! PM2's `should '…' 'online' N` counts processes in a state; here that is
//! `statuses(name)` or every worker of `list --json`. Where PM2 `sleep`s, these tests
//! poll with a deadline.

use std::path::PathBuf;

use crate::harness::*;

/// PM2's test/fixtures apps used below.
const ECHO_JS: &str = "setInterval(function() {\n  console.log('echo.js');\n}, 50);\n\nsetInterval(function() {\n  console.error('echo.js-error');\n}, 50);\n";
const CHILD_JS: &str = "var http = require('http');\n\nhttp.createServer(function(req, res) {\n  res.writeHead(200);\n  res.end('hey');\n}).listen(0);\n\nprocess.on('message', function(msg) {\n  if (msg == 'shutdown') {\n    console.log('Closing all connections...');\n    setTimeout(function() {\n      console.log('Finished closing connections');\n      process.exit(0);\n    }, 100);\n  }\n});\n";
const NETWORK_JS: &str = "var http = require('http');\nvar i = 0;\n\nhttp.createServer(function(req, res) {\n  res.writeHead(200);\n  res.end(\"hello world\\n\" + i++);\n}).listen(0);\n";
const DELAYED_EXIT_JS: &str = "var exit = function() {\n  console.log(\"Delay exit in 2 secs\");\n  setTimeout(function(){\n    process.exit();\n  }, 2000);\n};\n\nprocess.on('SIGTERM', function() {\n  console.log('Got SIGTERM signal.');\n  exit();\n});\n\nprocess.on('SIGINT', function() {\n  console.log('Got SIGINT signal');\n  exit();\n});\n\nsetInterval(function keepMeAlive() {}, 1000);\n";
const KILLTOOFAST_JS: &str =
    "setInterval(function() {\n  console.log('BOUM');\n  process.exit(1);\n}, 30);\n";
const ENV_JS: &str =
    "setInterval(function() {\n  console.log(process.env.TEST_VARIABLE);\n}, 100);\n";
const HTTP_WAIT_START_JS: &str = "var http = require('http');\n\nvar app = http.createServer(function(req, res) {\n  res.writeHead(200);\n  res.end('hey');\n})\n\nvar listener = app.listen(0, function() {\n  console.log('Listening on port ' + listener.address().port);\n  process.send('ready');\n});\n";
const SIGNAL_JS: &str = "setInterval(function() {\n  console.log('ok');\n}, 1000);\n\nprocess.on('SIGUSR2', function () {\n  console.log('SIGUSR2');\n});\n";
const HTTP_WAIT_START_NOCB_JS: &str = "var http = require('http');\n\nvar app = http.createServer(function(req, res) {\n  res.writeHead(200);\n  res.end('hey');\n})\n\nvar listener = app.listen(0, function() {\n  console.log('Listening on port ' + listener.address().port);\n});\n";

/// A daemon whose home holds PM2's fixture files; commands run in that directory, as
/// PM2's scripts `cd $file_path`.
fn with_fixtures() -> Daemon {
    let d = Daemon::new();
    for (name, text) in [
        ("echo.js", ECHO_JS),
        ("child.js", CHILD_JS),
        ("network.js", NETWORK_JS),
        ("delayed_exit.js", DELAYED_EXIT_JS),
        ("killtoofast.js", KILLTOOFAST_JS),
        ("env.js", ENV_JS),
        ("http-wait-start.js", HTTP_WAIT_START_JS),
        ("http-wait-start_nocb.js", HTTP_WAIT_START_NOCB_JS),
        ("signal.js", SIGNAL_JS),
    ] {
        d.home.write(name, text);
    }
    d
}

fn count(d: &Daemon, status: &str) -> usize {
    d.list().iter().filter(|w| w["status"] == status).count()
}

/// PM2's `should '…' '<status>' N`, polled.
fn should(d: &Daemon, status: &str, n: usize) {
    wait_for(&format!("{n} workers {status}"), DEADLINE, || {
        (count(d, status) == n).then_some(())
    });
}

/// Every worker's restart count (PM2's `restart_time: N` on every process).
fn restart_times(d: &Daemon) -> Vec<u64> {
    d.list()
        .iter()
        .map(|w| w["restarts"].as_u64().unwrap())
        .collect()
}

fn log_of(d: &Daemon, name: &str) -> String {
    d.home.read(&format!("logs/{name}"))
}

fn path(d: &Daemon, file: &str) -> PathBuf {
    d.home.path().join(file)
}

#[test]
fn cli_operate_regex() {
    // test/e2e/cli/operate-regex.sh
    let d = with_fixtures();
    for name in ["echo-3", "echo-1", "echo-2"] {
        d.ok(&["start", "echo.js", "--name", name]);
    }
    should(&d, "online", 3);
    d.ok(&["stop", "/echo-[1,2]/"]);
    should(&d, "stopped", 2);
    should(&d, "online", 1);
    d.ok(&["stop", "/echo-3/"]);
    should(&d, "online", 0);
    d.ok(&["restart", "/echo-[1,2]/"]);
    should(&d, "online", 2);
}

#[test]
fn cli_smart_start() {
    // test/e2e/cli/smart-start.sh: start of a known name or id (re)starts that app.
    let d = with_fixtures();
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [0]);
    d.ok(&["stop", "echo"]);
    should(&d, "stopped", 1);
    d.ok(&["start", "echo"]);
    should(&d, "online", 1);
    d.ok(&["start", "echo"]);
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [1]);
    d.ok(&["start", "0"]);
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [2]);
    // `start all` starts every app again, as `restart all`.
    d.ok(&["stop", "all"]);
    should(&d, "stopped", 1);
    d.ok(&["start", "all"]);
    should(&d, "online", 1);
}

#[test]
fn cli_multiparam() {
    // test/e2e/cli/multiparam.sh
    let d = with_fixtures();
    d.ok(&["start", "child.js", "echo.js", "network.js"]);
    should(&d, "online", 3);
    d.ok(&["restart", "child", "echo", "network"]);
    should(&d, "online", 3);
    assert_eq!(restart_times(&d), [1, 1, 1]);
    d.ok(&["stop", "child", "echo", "network"]);
    should(&d, "stopped", 3);
    d.ok(&["delete", "child", "echo", "network"]);
    assert!(d.list().is_empty());

    // Not PM2's: what would start two apps of one name, or name several apps one name,
    // is refused before anything starts.
    std::fs::create_dir(path(&d, "lib")).unwrap();
    d.home.write("lib/echo.js", ECHO_JS);
    let err = d.fails(&["start", "echo.js", "lib/echo.js"]);
    assert!(err.contains("two apps named echo"), "{err}");
    let err = d.fails(&["start", "echo.js", "child.js", "--name", "web"]);
    assert!(err.contains("--name web names one app"), "{err}");
    assert!(d.list().is_empty());

    // Known names and new scripts mix: the known app restarts, the script starts.
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 1);
    d.ok(&["start", "echo", "child.js"]);
    should(&d, "online", 2);
    let echo = d.list().into_iter().find(|w| w["name"] == "echo").unwrap();
    assert_eq!(echo["restarts"], 1);
}

#[test]
fn cli_reload() {
    // test/e2e/cli/reload.sh
    let d = with_fixtures();
    d.ok(&["start", "delayed_exit.js", "-i", "2"]);
    should(&d, "online", 2);
    assert!(d.list().iter().all(|w| w["mode"] == "cluster"));
    d.ok(&["reload", "delayed_exit"]);
    // Each old worker got the signal once.
    wait_for("the old worker's SIGINT line", DEADLINE, || {
        (log_of(&d, "delayed_exit-out-0.log")
            .matches("SIGINT")
            .count()
            == 1)
            .then_some(())
    });
    d.ok(&["delete", "all"]);

    // restart all / by name / reload all: every worker once more each time.
    d.ok(&["start", "child.js", "-i", "4"]);
    should(&d, "online", 4);
    d.ok(&["restart", "all"]);
    assert_eq!(restart_times(&d), [1; 4]);
    d.ok(&["restart", "child"]);
    assert_eq!(restart_times(&d), [2; 4]);
    // PM2's script sleeps 2 s here: the workers are online when the reload comes (one
    // still launching is not replaced: it runs the current code already).
    should(&d, "online", 4);
    d.ok(&["reload", "all"]);
    should(&d, "online", 4);
    assert_eq!(restart_times(&d), [3; 4]);

    // Two cluster apps that listen on a port of their own choosing (port 0 here): 8
    // workers online; reload of one app touches only its workers.
    d.ok(&["start", "network.js", "-i", "4"]);
    should(&d, "online", 8);
    d.ok(&["reload", "network"]);
    let restarts: Vec<(String, u64)> = d
        .list()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["restarts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        restarts
            .iter()
            .all(|(name, n)| (name == "child" && *n == 3) || (name == "network" && *n == 1)),
        "{restarts:?}"
    );

    // A fork app with no listener: reload "should not hang and fallback to restart".
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 9);
    d.ok(&["reload", "echo"]);
    assert_eq!(
        d.list().iter().find(|w| w["name"] == "echo").unwrap()["restarts"],
        1
    );
    d.ok(&["delete", "all"]);

    // --no-autorestart: "should not restart".
    d.ok(&["start", "killtoofast.js", "--no-autorestart"]);
    wait_for("it to exit and stay down", DEADLINE, || {
        (d.statuses("killtoofast") == ["stopped"]).then_some(())
    });
    assert_eq!(restart_times(&d), [0]);
}

#[test]
fn cli_env_refresh() {
    // test/e2e/cli/env-refresh.sh: --update-env takes the caller's environment; without
    // it a restart or reload keeps the one the app started with.
    let d = with_fixtures();
    let out_log = path(&d, "out-env.log");
    let drover = |args: &[&str], value: &str| {
        let out = d
            .home
            .command(args)
            .env("TEST_VARIABLE", value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let logged = |what: &str| {
        let what = what.to_owned();
        wait_for(&format!("{what} in out-env.log"), DEADLINE, || {
            std::fs::read_to_string(&out_log)
                .ok()
                .filter(|log| log.lines().last() == Some(what.as_str()))
                .map(|_| ())
        });
    };
    let out = out_log.to_str().unwrap();
    drover(
        &[
            "start",
            "env.js",
            "-o",
            out,
            "--merge-logs",
            "--name",
            "env",
        ],
        "hello1",
    );
    logged("hello1");
    drover(&["restart", "env", "--update-env"], "89hello89");
    logged("89hello89");
    drover(&["restart", "env"], "CLUNEWSTER");
    // Restarted, and still the environment it had.
    wait_for("the restart", DEADLINE, || {
        (restart_times(&d) == [2]).then_some(())
    });
    logged("89hello89");
    d.ok(&["delete", "all"]);

    drover(
        &[
            "start",
            "env.js",
            "-i",
            "1",
            "-o",
            out,
            "--merge-logs",
            "--name",
            "env",
        ],
        "CLUSTER",
    );
    logged("CLUSTER");
    drover(&["reload", "env", "--update-env"], "RELOADED");
    logged("RELOADED");
    drover(&["reload", "env"], "CLUNEWSTER");
    wait_for("the reload", DEADLINE, || {
        (restart_times(&d) == [2]).then_some(())
    });
    logged("RELOADED");
}

#[test]
fn process_file_env_as_json() {
    // test/e2e/cli/env-refresh.sh, its ecosystem part: env.json, then a redeploy from
    // env-refreshed.json whose env value is an object (PM2 stringifies it).
    let d = with_fixtures();
    let json = |value: &str| {
        format!(
            "[{{\n  \"name\": \"appname\",\n  \"script\": \"./env.js\",\n  \"out_file\": \"out-env.log\",\n  \"merge_logs\": true,\n  \"env\": {{\n    \"NODE_ENV\": \"production\",\n    \"TEST_VARIABLE\": {value}\n  }}\n}}]\n"
        )
    };
    d.home.write("env.json", &json("\"YES\""));
    d.home
        .write("env-refreshed.json", &json("{ \"HEYYYY\": true }"));
    let last_line = |want: &str| {
        wait_for(&format!("{want} in out-env.log"), DEADLINE, || {
            std::fs::read_to_string(path(&d, "out-env.log"))
                .ok()
                .filter(|log| log.lines().last() == Some(want))
                .map(|_| ())
        })
    };
    d.ok(&["start", "env.json"]);
    last_line("YES");
    // PM2: `restart env-refreshed.json`; a running app given again by its file takes
    // the file's settings (startOrRestart).
    d.ok(&["startOrRestart", "env-refreshed.json"]);
    last_line("{\"HEYYYY\":true}");
}

#[test]
fn cli_resurrect() {
    // test/e2e/cli/resurrect.sh
    let d = with_fixtures();
    d.ok(&["start", "echo.js", "-i", "4"]);
    should(&d, "online", 4);
    d.ok(&["save"]);
    // resurrect while the apps run: still 4 (nothing started twice).
    let _ = d.home.output(&["resurrect"]);
    should(&d, "online", 4);
    assert_eq!(d.list().len(), 4);
    d.ok(&["save"]);
    d.ok(&["delete", "all"]);

    // A broken dump: resurrect from the backup, and the broken one is out of the way.
    d.home.write("dump.yaml", "[{\n");
    d.ok(&["resurrect"]);
    should(&d, "online", 4);
    assert!(!path(&d, "dump.yaml").exists() || d.home.read("dump.yaml") != "[{\n");
    d.ok(&["delete", "all"]);

    // A missing dump: from the backup too.
    let _ = std::fs::remove_file(path(&d, "dump.yaml"));
    d.ok(&["resurrect"]);
    should(&d, "online", 4);

    // An app saved stopped comes back stopped (PM2 4+), and starts where it was.
    d.ok(&["start", "child.js", "-i", "2"]);
    should(&d, "online", 6);
    d.ok(&["stop", "echo"]);
    should(&d, "stopped", 4);
    d.ok(&["save"]);
    d.ok(&["kill"]);
    d.ok(&["resurrect"]);
    should(&d, "online", 2);
    assert_eq!(d.statuses("echo"), ["stopped"; 4]);
    d.ok(&["start", "echo"]);
    should(&d, "online", 6);
    assert_eq!(restart_times_of(&d, &["echo"]), [0; 4]);
}

#[test]
fn internals_wait_ready_event() {
    // test/e2e/internals/wait-ready-event.sh, fork then cluster mode.
    let d = with_fixtures();
    for cluster in [false, true] {
        let mode: &[&str] = if cluster { &["-i", "1"] } else { &[] };
        for wait_ready in [false, true] {
            let mut args = vec!["start", "http-wait-start.js"];
            args.extend_from_slice(mode);
            if wait_ready {
                args.push("--wait-ready");
            }
            d.ok(&args);
            should(&d, "online", 1);
            d.ok(&["delete", "all"]);
        }
        // No process.send('ready') with --wait-ready: launching until listen_timeout.
        let mut args = vec![
            "start",
            "http-wait-start_nocb.js",
            "--wait-ready",
            "--listen-timeout",
            "8000",
        ];
        args.extend_from_slice(mode);
        d.ok(&args);
        // PM2 looks after 5 s; the state is the same from the start to 8 s.
        wait_for("a listening worker", DEADLINE, || {
            log_of(
                &d,
                if cluster {
                    "http-wait-start_nocb-out-0.log"
                } else {
                    "http-wait-start_nocb-out.log"
                },
            )
            .contains("Listening on port")
            .then_some(())
        });
        assert_eq!(d.statuses("http-wait-start_nocb"), ["launching"]);
        d.ok(&["delete", "all"]);
    }
}

#[test]
fn cli_actions() {
    // test/e2e/cli/cli-actions-1.sh and cli-actions-2.sh, the commands drover has.
    let d = with_fixtures();
    d.home.write(
        "python-script.py",
        "import time\n\nif __name__ == \"__main__\":\n    while 1:\n        print('Script.py: alive')\n        time.sleep(1)\n",
    );
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 1);
    // A fork app of one instance writes PM2's <name>-out.log (no instance suffix).
    wait_for("logs/echo-out.log", DEADLINE, || {
        path(&d, "logs/echo-out.log").exists().then_some(())
    });
    assert!(!path(&d, "logs/echo-out-0.log").exists());
    // An id or a name that is not there is an error, and nothing changes.
    assert!(!d.home.output(&["stop", "12412"]).status.success());
    assert!(!d.home.output(&["stop", "asdsdaecho.js"]).status.success());
    should(&d, "online", 1);
    d.ok(&["stop", "0"]);
    should(&d, "stopped", 1);
    d.ok(&["describe", "0"]);
    d.ok(&["restart", "0"]);
    should(&d, "online", 1);
    d.ok(&["describe", "0"]);
    let out = d.home.output(&["describe", "asdsa"]);
    assert_eq!(out.status.code(), Some(4), "no such app: {}", out.stderr);
    assert!(!d.home.output(&["start", "eyayimfake"]).status.success());
    // "Should not re start app": the same script again is refused.
    assert!(!d.home.output(&["start", "echo.js"]).status.success());
    d.ok(&["delete", "0"]);
    assert!(d.list().is_empty());

    d.ok(&["start", "echo.js", "--name", "test"]);
    d.ok(&["delete", "test"]);
    assert!(d.list().is_empty());

    // A numeric name is a name first.
    d.ok(&["start", "echo.js", "--name", "455"]);
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [0]);
    d.ok(&["restart", "455"]);
    assert_eq!(restart_times(&d), [1]);
    let id = d.list()[0]["id"].as_u64().unwrap().to_string();
    d.ok(&["restart", &id]);
    assert_eq!(restart_times(&d), [2]);
    d.ok(&["stop", "455"]);
    should(&d, "stopped", 1);
    d.ok(&["delete", "455"]);
    assert!(d.list().is_empty());

    // -o/-e with -i 2: one file per instance, <name>-<i>.log.
    d.ok(&[
        "start",
        "echo.js",
        "-o",
        "outech.log",
        "-e",
        "errech.log",
        "--name",
        "gmail",
        "-i",
        "2",
    ]);
    for file in [
        "outech-0.log",
        "errech-0.log",
        "outech-1.log",
        "errech-1.log",
    ] {
        wait_for(file, DEADLINE, || path(&d, file).exists().then_some(()));
    }
    d.ok(&["delete", "all"]);

    d.ok(&["start", "python-script.py"]);
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 2);
}

#[test]
fn logs_null_and_date_format() {
    // test/e2e/logs/log-null.sh: NULL discards a stream, the other still has its file.
    let d = with_fixtures();
    for (cluster, out, err) in [
        (false, "out.log", "NULL"),
        (true, "out.log", "NULL"),
        (false, "NULL", "err.log"),
        (true, "NULL", "err.log"),
    ] {
        let mut args = vec!["start", "echo.js", "-o", out, "-e", err, "--merge-logs"];
        if cluster {
            args.extend(["-i", "1"]);
        }
        d.ok(&args);
        let kept = if out == "NULL" { err } else { out };
        wait_for(kept, DEADLINE, || path(&d, kept).exists().then_some(()));
        assert!(!path(&d, "logs/echo-out.log").exists());
        assert!(!path(&d, "logs/echo-error.log").exists());
        assert!(!path(&d, "NULL").exists());
        d.ok(&["delete", "all"]);
        std::fs::remove_file(path(&d, kept)).unwrap();
    }

    // test/e2e/logs/log-custom.sh: --log-date-format YYYY prefixes each line with the
    // year; a format with junk in it does not make the app fail.
    let year = {
        let out = std::process::Command::new("date")
            .arg("+%Y")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    d.ok(&[
        "start",
        "echo.js",
        "--log-date-format",
        "YYYY",
        "-o",
        "out-rel.log",
        "--merge-logs",
    ]);
    wait_for("a dated line", DEADLINE, || {
        std::fs::read_to_string(path(&d, "out-rel.log"))
            .ok()
            .filter(|log| {
                log.lines()
                    .any(|l| l.starts_with(&year) && l.contains("echo.js"))
            })
            .map(|_| ())
    });
    d.ok(&["delete", "all"]);
    d.ok(&[
        "start",
        "echo.js",
        "--log-date-format",
        "YYYY asdsd asd asd sad asd ",
        "-o",
        "out-rel2.log",
        "--merge-logs",
    ]);
    should(&d, "online", 1);
    wait_for("a line", DEADLINE, || {
        std::fs::read_to_string(path(&d, "out-rel2.log"))
            .ok()
            .filter(|log| log.contains("echo.js"))
            .map(|_| ())
    });
    assert_eq!(restart_times(&d), [0]);
}

/// PM2's test/fixtures/all.json: three apps, one of them 4 cluster workers (6 in all).
const ALL_JSON: &str = "[{\n  \"name\"      : \"echo\",\n  \"script\"    : \"./echo.js\"\n},{\n  \"name\"      : \"child\",\n  \"script\"    : \"./child.js\",\n  \"instances\" : \"4\",\n  \"error_file\" : \"./child-err.log\",\n  \"out_file\" : \"./child-out.log\"\n},{\n  \"name\"      : \"api-2\",\n  \"script\"    : \"./server.js\"\n}]\n";
/// PM2's test/fixtures/server.js (its port 8020 made 0).
const SERVER_JS: &str = "var http = require('http');\n\nhttp.createServer(function(req, res) {\n  res.writeHead(200);\n  res.end(\"hello world\\n\");\n}).listen(0);\n";

/// Every worker's restart count, of the apps named.
fn restart_times_of(d: &Daemon, names: &[&str]) -> Vec<u64> {
    d.list()
        .iter()
        .filter(|w| names.iter().any(|n| w["name"] == *n))
        .map(|w| w["restarts"].as_u64().unwrap())
        .collect()
}

#[test]
fn process_file_json_file() {
    // test/e2e/process-file/json-file.sh
    let d = with_fixtures();
    d.home.write("server.js", SERVER_JS);
    d.home.write("all.json", ALL_JSON);
    // `pm2:` is PM2's other name for `apps:`.
    d.home.write(
        "pm2-ecosystem.json",
        &format!("{{\n  \"pm2\" : {}}}\n", ALL_JSON.trim_end()),
    );
    d.ok(&["start", "pm2-ecosystem.json"]);
    should(&d, "online", 6);
    d.ok(&["delete", "all.json"]);
    assert!(d.list().is_empty());
    d.ok(&["kill"]);

    d.ok(&["start", "all.json"]);
    should(&d, "online", 6);
    d.ok(&["stop", "all.json"]);
    should(&d, "stopped", 6);
    d.ok(&["delete", "all.json"]);
    assert!(d.list().is_empty());
    d.ok(&["start", "all.json"]);
    should(&d, "online", 6);
    d.ok(&["restart", "all.json"]);
    should(&d, "online", 6);
    assert_eq!(restart_times(&d), [1; 6]);
    d.ok(&["reload", "all.json"]);
    should(&d, "online", 6);
    assert_eq!(restart_times(&d), [2; 6]);
    // Smart restart: start of a running file replaces its workers.
    d.ok(&["start", "all.json"]);
    should(&d, "online", 6);
    assert_eq!(restart_times(&d), [3; 6]);
    d.ok(&["stop", "all.json"]);
    should(&d, "stopped", 6);
    d.ok(&["start", "all.json"]);
    should(&d, "online", 6);
    d.ok(&["kill"]);

    // "JS style": PM2 evaluates a .json file, so it may be JavaScript.
    d.home.write(
        "configuration.json",
        "// TG!\n[{\n  // Application 1\n  name      : \"echo\",\n  script    : [\".\", \"/\", \"e\", \"cho.js\"].join('')\n},{\n  // APplication 2\n  name      : \"child\",\n  script    : \"./child.js\",\n  instances : \"4\",\n  error_file : \"./child-err.log\",\n  out_file : \"./child-out.log\"\n},{\n  name      : \"api-2\",\n  script    : \"./server.js\"\n}]\n",
    );
    d.ok(&["start", "configuration.json"]);
    should(&d, "online", 6);
    d.ok(&["stop", "configuration.json"]);
    should(&d, "stopped", 6);
    d.ok(&["delete", "configuration.json"]);
    assert!(d.list().is_empty());
    d.ok(&["start", "configuration.json"]);
    should(&d, "online", 6);
    d.ok(&["restart", "configuration.json"]);
    should(&d, "online", 6);
    assert_eq!(restart_times(&d), [1; 6]);
    d.ok(&["delete", "configuration.json"]);
    assert!(d.list().is_empty());
    d.ok(&["kill"]);

    // PIPE command, also of the JavaScript file.
    let out = d.home.output_with_stdin(&["start", "-"], ALL_JSON);
    assert!(out.status.success(), "{}", out.stderr);
    should(&d, "online", 6);
    d.ok(&["kill"]);
    let js = d.home.read("configuration.json");
    let out = d.home.output_with_stdin(&["start", "-"], &js);
    assert!(out.status.success(), "{}", out.stderr);
    should(&d, "online", 6);
    d.ok(&["kill"]);

    // --only <app_name>
    d.ok(&["start", "all.json", "--only", "echo"]);
    should(&d, "online", 1);
    d.ok(&["start", "all.json", "--only", "child"]);
    should(&d, "online", 5);
    d.ok(&["restart", "all.json", "--only", "child"]);
    should(&d, "online", 5);
    assert_eq!(restart_times_of(&d, &["child"]), [1; 4]);
    d.ok(&["delete", "all.json", "--only", "echo"]);
    should(&d, "online", 4);
    d.ok(&["reload", "all.json", "--only", "child"]);
    assert_eq!(restart_times_of(&d, &["child"]), [2; 4]);
    // Multi only.
    d.ok(&["start", "all.json", "--only", "echo,child"]);
    should(&d, "online", 5);
}

#[test]
fn process_file_yaml_configuration() {
    // test/e2e/process-file/yaml-configuration.sh
    let d = with_fixtures();
    d.home.write(
        "echo.py",
        "#!/usr/bin/python\nimport os\nimport time\n\nwhile 1:\n    try:\n        print(os.environ['DEFAULT_STR'])\n    except KeyError:\n        print('RAWPython')\n    time.sleep(1)\n",
    );
    d.home.write(
        "apps.yaml",
        "apps:\n  - name: test\n    script: echo.js\n  - name: HTTP\n    script: child.js\n    instances: 4\n  - name: PythonApp\n    script: echo.py\n    interpreter: /usr/bin/python3\n    interpreter_args: -u\n    env:\n      DEFAULT_STR: 'PYTHONENV'\n",
    );
    d.home
        .write("malformated.yml", "{\n \"ASDSDASD\": \"ASDSADSAD\"\n}\n");
    let err = d.fails(&["start", "non-existent.yaml"]);
    assert!(err.contains("non-existent.yaml"), "{err}");
    let err = d.fails(&["start", "malformated.yml"]);
    assert!(err.contains("malformated.yml"), "{err}");
    assert_eq!(count(&d, "online"), 0);

    d.ok(&["start", "apps.yaml"]);
    should(&d, "online", 6);
    d.ok(&["restart", "all"]);
    assert_eq!(restart_times(&d), [1; 6]);
    d.ok(&["restart", "apps.yaml"]);
    assert_eq!(restart_times(&d), [2; 6]);
    d.ok(&["reload", "all"]);
    assert_eq!(restart_times(&d), [3; 6]);
    d.ok(&["reload", "apps.yaml"]);
    assert_eq!(restart_times(&d), [4; 6]);
    should(&d, "online", 6);
    wait_for("the Python app's env", DEADLINE, || {
        log_of(&d, "PythonApp-out.log")
            .contains("PYTHONENV")
            .then_some(())
    });
    d.ok(&["stop", "all"]);
    should(&d, "stopped", 6);
    d.ok(&["start", "apps.yaml"]);
    should(&d, "online", 6);
    d.ok(&["delete", "all"]);
    assert!(d.list().is_empty());
}

#[test]
fn process_file_js_configuration() {
    // test/e2e/process-file/js-configuration.sh: its deploy: section is skipped, with a
    // warning.
    let d = with_fixtures();
    d.home.write(
        "app.js",
        "setInterval(function() {\n  console.log('ok');\n}, 1000);\n",
    );
    d.home.write(
        "ecosystem.config.js",
        "module.exports = {\n  apps : [\n    {\n      name      : \"API\",\n      script    : \"app.js\",\n      env: {\n        COMMON_VARIABLE: \"true\"\n      },\n      env_production : {\n        NODE_ENV: \"production\"\n      }\n    }\n  ],\n  deploy : {\n    production : {\n      user : \"node\",\n      host : \"212.83.163.1\",\n      ref  : \"origin/master\",\n      repo : \"git@github.com:repo.git\",\n      path : \"/var/www/production\",\n      \"post-deploy\" : \"npm install && pm2 startOrRestart ecosystem.config.js --env production\"\n    }\n  }\n};\n",
    );
    let out = d.home.output(&["start", "ecosystem.config.js"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.contains("deploy"), "{}", out.stderr);
    should(&d, "online", 1);
    // Commands that apply the file's settings warn of what they skip; stop does not.
    let out = d.home.output(&["restart", "ecosystem.config.js"]);
    assert!(out.stderr.contains("deploy"), "{}", out.stderr);
    let out = d.home.output(&["stop", "ecosystem.config.js"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn process_file_app_config_update() {
    // test/e2e/process-file/app-config-update.sh: flags on restart, reload and start of
    // a known app change its settings.
    let d = with_fixtures();
    std::fs::create_dir(path(&d, "app-config-update")).unwrap();
    d.home.write(
        "app-config-update/echo.js",
        "\nvar i = 0;\nsetInterval(function() {\n  console.log('ok', i++);\n}, 2000);\n\nconsole.log('ok');\n",
    );
    d.home.write(
        "app-config-update/args1.json",
        "{\n  \"script\" : \"echo.js\",\n  \"node_args\" : \"\"\n}\n",
    );
    d.home.write(
        "app-config-update/args2.json",
        "{\n  \"script\" : \"echo.js\",\n  \"node_args\" : \"--harmony\"\n}\n",
    );
    let node_args = |d: &Daemon| -> Vec<String> {
        let apps: serde_json::Value =
            serde_json::from_str(&d.ok(&["describe", "echo", "--json"])).unwrap();
        serde_json::from_value(apps[0]["spec"]["interpreter_args"].clone()).unwrap()
    };
    let harmony = vec!["--harmony".to_owned()];

    d.ok(&["start", "app-config-update/args1.json"]);
    assert!(node_args(&d).is_empty(), "1");
    d.ok(&["restart", "app-config-update/args2.json"]);
    assert_eq!(node_args(&d), harmony, "2");
    d.ok(&["delete", "all"]);

    d.ok(&["start", "app-config-update/echo.js"]);
    assert!(node_args(&d).is_empty(), "3");
    d.ok(&[
        "restart",
        "app-config-update/echo.js",
        "--node-args=--harmony",
    ]);
    assert_eq!(node_args(&d), harmony, "4");
    // Variation with start, which restarts a known app.
    d.ok(&["start", "echo", "--node-args=--no-warnings"]);
    assert_eq!(node_args(&d), ["--no-warnings"], "5");
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [2]);

    // Not PM2's: an app keeps its name (PM2 renames it with restart --name); the
    // refusal says how, and changes nothing.
    let id = d.list()[0]["id"].as_u64().unwrap().to_string();
    let err = d.fails(&["restart", &id, "--name=new-name"]);
    assert!(
        err.contains("to rename it, delete it and start it again as new-name"),
        "{err}"
    );
    let err = d.fails(&["start", &id, "--name=new-name-2"]);
    assert!(err.contains("to rename it"), "{err}");
    assert_eq!(d.statuses("echo"), ["online"]);
    assert_eq!(restart_times(&d), [2]);
    d.ok(&["delete", "all"]);

    // Reload, cluster mode.
    d.ok(&["start", "app-config-update/echo.js", "-i", "1"]);
    assert!(node_args(&d).is_empty());
    d.ok(&[
        "reload",
        "app-config-update/echo.js",
        "--node-args=--harmony",
    ]);
    assert_eq!(node_args(&d), harmony);
    // null takes the setting out again.
    d.ok(&["reload", "app-config-update/echo.js", "--node-args=null"]);
    assert!(node_args(&d).is_empty());
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [2]);
    // An ecosystem file has its own settings: flags next to one are refused.
    let err = d.fails(&["reload", "app-config-update/args2.json", "-k", "5s"]);
    assert!(err.contains("--kill-timeout describes a script"), "{err}");
}

#[test]
fn logs_log_entire() {
    // test/e2e/logs/log-entire.sh: -l writes one file with the lines of both streams,
    // besides -o and -e, in cluster and fork mode, merged or not, and after reloadLogs,
    // restart, reload and flush; describe shows it; without -l there is none.
    let d = with_fixtures();
    d.home.write(
        "throw-later.js",
        "var timer = setInterval(function(){\n  console.log('tick', Date.now());\n}, 100);\n\nsetTimeout(function(){\n  clearInterval(timer);\n  throw new Error('error has been caught')\n}, 350);\n",
    );
    let file_of = |name: &str| -> PathBuf {
        let per_instance = path(&d, &format!("{name}-0.log"));
        if per_instance.exists() {
            per_instance
        } else {
            path(&d, &format!("{name}.log"))
        }
    };
    let check = |d: &Daemon, entire: bool| {
        wait_for("tick and Error in the logs", DEADLINE, || {
            let read = |name: &str| std::fs::read_to_string(file_of(name)).unwrap_or_default();
            let ok = read("out").contains("tick")
                && read("err").contains("Error")
                && (!entire || read("entire").contains("tick") && read("entire").contains("Error"));
            ok.then_some(())
        });
        if !entire {
            assert!(!file_of("entire").exists());
        }
        d.ok(&["kill"]);
        for name in ["out", "err", "entire"] {
            let _ = std::fs::remove_file(file_of(name));
        }
    };
    let start = |extra: &[&str], entire: bool| {
        let mut args = vec!["start", "throw-later.js", "-o", "out.log", "-e", "err.log"];
        if entire {
            args.extend(["-l", "entire.log"]);
        }
        args.extend_from_slice(extra);
        d.ok(&args);
    };
    for mode in [
        &["-i", "1"][..],
        &["-i", "1", "--merge-logs"],
        &[],
        &["--merge-logs"],
    ] {
        for entire in [true, false] {
            start(mode, entire);
            check(&d, entire);
        }
    }
    for then in [
        &["reload-logs"][..],
        &["restart", "all"],
        &["reload", "all"],
        &["flush"],
    ] {
        for entire in [true, false] {
            start(&["--merge-logs"], entire);
            // Not PM2's: a reload whose new worker exits before it is ready (this app
            // throws after 350 ms) says so and exits 1; the logs are the same.
            if then[0] == "reload" {
                let _ = d.home.output(then);
            } else {
                d.ok(then);
            }
            check(&d, entire);
        }
    }
    for entire in [true, false] {
        start(&["--merge-logs"], entire);
        let apps = d.ok(&["describe", "throw-later", "--json"]);
        assert_eq!(apps.contains("entire.log"), entire, "{apps}");
        check(&d, entire);
    }
    d.home.write(
        "throw-later.json",
        "{\n  \"apps\" : [{\n    \"name\"        : \"throw-later\",\n    \"script\"      : \"throw-later.js\",\n    \"error_file\"  : \"err.log\",\n    \"out_file\"    : \"out.log\",\n    \"log_file\"    : \"entire.log\",\n    \"merge_logs\"  : true\n  }]\n}\n",
    );
    d.home.write(
        "throw-later1.json",
        "{\n  \"apps\" : [{\n    \"name\"        : \"throw-later\",\n    \"script\"      : \"throw-later.js\",\n    \"error_file\"  : \"err.log\",\n    \"out_file\"    : \"out.log\",\n    \"merge_logs\"  : true\n  }]\n}\n",
    );
    d.ok(&["start", "throw-later.json"]);
    check(&d, true);
    d.ok(&["start", "throw-later1.json"]);
    check(&d, false);
}

#[test]
fn cli_reset() {
    // test/e2e/cli/reset.sh
    let d = with_fixtures();
    // By id.
    d.ok(&["start", "echo.js"]);
    should(&d, "online", 1);
    assert_eq!(restart_times(&d), [0]);
    d.ok(&["restart", "0"]);
    assert_eq!(restart_times(&d), [1]);
    let out = d.ok(&["reset", "0"]);
    assert!(out.contains("restarts 0"), "{out}");
    assert_eq!(restart_times(&d), [0]);

    // By name. PM2 starts a second app named echo (`-i 4 -f`); drover's names are
    // unique, so the second one is echo-4 and a /regex/ names both (5 workers).
    d.ok(&["start", "echo.js", "-i", "4", "--name", "echo-4"]);
    should(&d, "online", 5);
    assert_eq!(restart_times(&d), [0; 5]);
    d.ok(&["restart", "/^echo/"]);
    assert_eq!(restart_times(&d), [1; 5]);
    d.ok(&["reset", "/^echo/"]);
    assert_eq!(restart_times(&d), [0; 5]);
    // And by name proper, several at once.
    d.ok(&["restart", "echo", "echo-4"]);
    assert_eq!(restart_times(&d), [1; 5]);
    d.ok(&["reset", "echo", "echo-4"]);
    assert_eq!(restart_times(&d), [0; 5]);

    // All.
    for _ in 0..3 {
        d.ok(&["restart", "all"]);
    }
    assert_eq!(restart_times(&d), [3; 5]);
    d.ok(&["reset", "all"]);
    assert_eq!(restart_times(&d), [0; 5]);
    // Not PM2's: a script names the apps that run it, as `stop` reads it.
    d.ok(&["restart", "all"]);
    d.ok(&["reset", "echo.js"]);
    assert_eq!(restart_times(&d), [0; 5]);
    // Nothing to reset: no such app (exit 4), nothing changed.
    let out = d.home.output(&["reset", "nope"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);

    // Restart delay: a crash waiting out its delay is no restart yet.
    d.ok(&["delete", "all"]);
    d.ok(&["start", "killtoofast.js", "--restart-delay", "5000"]);
    let waiting = wait_for("the first crash", DEADLINE, || {
        let list = d.list();
        (list[0]["status"] == "waiting").then_some(list)
    });
    assert_eq!(waiting[0]["restarts"], 0, "{waiting:?}");
}

#[test]
fn internals_signal() {
    // test/e2e/internals/signal.sh: `pm2 sendSignal SIGUSR2 <name|id>`.
    let d = with_fixtures();
    d.ok(&["start", "signal.js", "-i", "2"]);
    should(&d, "online", 2);
    let logs = ["logs/signal-out-0.log", "logs/signal-out-1.log"];
    // PM2's script empties the log first; here: the app's first line says its
    // handler is in place (it is set before the first tick).
    for log in logs {
        wait_for(&format!("a tick in {log}"), DEADLINE, || {
            d.home.read(log).contains("ok\n").then_some(())
        });
    }
    let out = d.ok(&["sendSignal", "SIGUSR2", "signal"]);
    for w in d.list() {
        let line = format!("signal#{}: SIGUSR2 sent to pid {}", w["instance"], w["pid"]);
        assert!(out.contains(&line), "{line:?} in {out}");
    }
    for log in logs {
        wait_for(&format!("SIGUSR2 in {log}"), DEADLINE, || {
            (d.home.read(log).matches("SIGUSR2").count() == 1).then_some(())
        });
    }
    d.ok(&["stop", "signal.js"]);
    // Not PM2's: no worker has a process to signal; that is an error (exit 1).
    let out = d.home.output(&["sendSignal", "SIGUSR2", "signal"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("reached no worker"), "{}", out.stderr);

    // By id (PM2 starts the stopped app again; here a new one, of one worker).
    d.ok(&["delete", "all"]);
    d.ok(&["start", "signal.js"]);
    should(&d, "online", 1);
    wait_for("a tick", DEADLINE, || {
        log_of(&d, "signal-out.log").contains("ok\n").then_some(())
    });
    let id = d.list()[0]["id"].to_string();
    d.ok(&["send-signal", "usr2", &id]);
    wait_for("SIGUSR2 in the log", DEADLINE, || {
        (log_of(&d, "signal-out.log").matches("SIGUSR2").count() == 1).then_some(())
    });
    assert_eq!(d.statuses("signal"), ["online"]);
}
