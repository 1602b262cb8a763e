//! Bad input is rejected at the edge with file, line and key, and nothing is started.

use std::time::Duration;

use crate::harness::*;

/// Runs `drover run` on an ecosystem file whose only app would leave a marker if started;
/// asserts exit 2, every `needles` in stderr, and no marker.
fn rejected(yaml: &str, needles: &[&str]) {
    let home = Home::new();
    let marker = home.path().join("started");
    let script = home.write(
        "app.sh",
        &format!("#!/bin/sh\ntouch {}\nsleep 5\n", marker.display()),
    );
    let yaml = yaml.replace("SCRIPT", script.to_str().unwrap());
    let eco = home.write("ecosystem.yaml", &yaml);
    let out = home.output(&["run", eco.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2 for {yaml:?}; stderr: {}",
        out.stderr
    );
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "stderr {:?} lacks {needle:?} for {yaml:?}",
            out.stderr
        );
    }
    assert!(
        !marker.exists(),
        "nothing may start from a file that fails to validate"
    );
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n   bad: [\n",
        &["ecosystem.yaml:", ":4:"],
    );
}

#[test]
fn instances_lots_names_app_and_key() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    instances: lots\n",
        &["ecosystem.yaml:4", "instances", "lots"],
    );
}

#[test]
fn unknown_key_suggests_the_known_one() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    intances: 2\n",
        &["ecosystem.yaml:4", "intances", "did you mean", "instances"],
    );
}

#[test]
fn bad_memory_size_names_the_key() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    max_memory_restart: 12X\n",
        &["ecosystem.yaml:4", "max_memory_restart", "12X"],
    );
}

#[test]
fn name_with_a_slash_is_rejected() {
    rejected(
        "apps:\n  - name: a/b\n    script: SCRIPT\n",
        &["ecosystem.yaml:2", "name", "a/b"],
    );
}

#[test]
fn a_bad_watch_or_cron_restart_names_the_key() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    watch: 5\n",
        &["ecosystem.yaml:4", "watch", "got 5"],
    );
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    cron_restart: 'every minute'\n",
        &["ecosystem.yaml:4", "cron_restart", "has 2 fields"],
    );
}

#[test]
fn pm2_keys_drover_lacks_are_rejected_by_name() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    force: true\n",
        &[
            "ecosystem.yaml:4",
            "force",
            "not supported",
            "a second copy",
        ],
    );
}

/// A PM2 user's file with PM2-only keys and a deploy: section starts, after one warning
/// naming every skipped key with its line.
#[test]
fn pm2_only_keys_and_deploy_are_warned_about_once_and_the_app_runs() {
    let home = Home::new();
    let marker = home.path().join("started");
    let script = home.write(
        "app.sh",
        &format!("#!/bin/sh\ntouch {}\nexec sleep 30\n", marker.display()),
    );
    let eco = home.write(
        "ecosystem.yaml",
        &format!(
            "apps:\n  - name: a\n    script: {}\n    max: 1\n    vizion: true\n    source_map_support: true\ndeploy:\n  production:\n    user: node\n",
            script.display()
        ),
    );
    let run = home.run(&[eco.to_str().unwrap()]);
    wait_for("the app to start", DEADLINE, || {
        marker.exists().then_some(())
    });
    let warning = run.wait_stderr("drover: warning:");
    assert_eq!(
        warning,
        format!(
            "drover: warning: {}: skipped PM2 keys drover does not use: max (line 4), vizion (line 5), source_map_support (line 6); deploy: (line 7) is for pm2 deploy",
            eco.display()
        )
    );
    assert_eq!(run.count_stderr("warning"), 1, "{}", run.stderr());
}

/// A bad ecosystem file on stdin (`drover run -`) is named `<stdin>`, with line and key,
/// and nothing starts.
#[test]
fn a_bad_file_on_stdin_names_stdin_line_and_key() {
    let home = Home::new();
    let marker = home.path().join("started");
    let script = home.write(
        "app.sh",
        &format!("#!/bin/sh\ntouch {}\nsleep 5\n", marker.display()),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (text, needle) in [
        (
            "apps:\n  - name: a\n    script: app.sh\n    instances: lots\n",
            "drover: <stdin>:4: app \"a\": instances: expected",
        ),
        (
            "{\"apps\": [{\"name\": \"a\",\n  \"script\": \"app.sh\",\n  \"intances\": 2}]}\n",
            "drover: <stdin>:3: app \"a\": unknown key \"intances\" (did you mean \"instances\"?)",
        ),
        ("", "<stdin>: the file is empty"),
    ] {
        let out = home.output_with_stdin(&["run", "-"], text);
        let stderr = out.stderr;
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(needle), "{text:?}: {stderr}");
    }
    assert!(!marker.exists(), "nothing may start from a bad file");
}

#[test]
fn a_bad_app_among_good_ones_starts_nothing() {
    rejected(
        "apps:\n  - name: good\n    script: SCRIPT\n  - name: bad\n    script: SCRIPT\n    kill_timeout: soon\n",
        &["ecosystem.yaml:6", "bad", "kill_timeout"],
    );
}

#[test]
fn missing_script_is_named() {
    rejected(
        "apps:\n  - name: a\n    script: ./nope.js\n",
        &["ecosystem.yaml", "nope.js"],
    );
}

#[test]
fn bad_cli_values_name_the_flag() {
    let home = Home::new();
    let script = home.write("app.sh", "#!/bin/sh\nexit 0\n");
    for (flag, value) in [
        ("-i", "lots"),
        ("--max-memory-restart", "big"),
        ("--kill-timeout", "-5"),
        ("--listen", "nowhere:port"),
    ] {
        let out = home.output(&["run", script.to_str().unwrap(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", out.stderr);
        assert!(out.stderr.contains(value), "{flag} {value}: {}", out.stderr);
    }
}

#[test]
fn script_flags_with_an_ecosystem_file_are_rejected() {
    let home = Home::new();
    let script = home.write("app.sh", "#!/bin/sh\nexit 0\n");
    let eco = home.write(
        "eco.yaml",
        &format!("apps:\n  - script: {}\n", script.display()),
    );
    let out = home.output(&["run", eco.to_str().unwrap(), "-i", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--instances"), "{}", out.stderr);
}

/// One malformed input. `args` may hold placeholders: `CMD` (the row runs once as
/// `drover run` and once as `drover start`), `FILE` (the row's file), `@SCRIPT@` (a
/// script that leaves a marker when started), `@DIR@` (a directory). `needles` must all
/// be in stderr, after the same substitutions.
struct Row {
    file: Option<(&'static str, &'static str)>,
    args: &'static [&'static str],
    needles: &'static [&'static str],
}

/// An ecosystem file given to `drover run` and `drover start`.
fn eco(name: &'static str, text: &'static str, needles: &'static [&'static str]) -> Row {
    Row {
        file: Some((name, text)),
        args: &["CMD", "FILE"],
        needles,
    }
}

fn yaml(text: &'static str, needles: &'static [&'static str]) -> Row {
    eco("eco.yaml", text, needles)
}

fn cli(args: &'static [&'static str], needles: &'static [&'static str]) -> Row {
    Row {
        file: None,
        args,
        needles,
    }
}

/// A valid one-app file for the rows that pass flags along with a file.
const GOOD: &str = "apps:\n  - name: a\n    script: @SCRIPT@\n    env_production:\n      A: '1'\n";

fn rows() -> Vec<Row> {
    vec![
        // Ecosystem files.
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n   bad: [\n",
            &["eco.yaml:4:", "syntax error"],
        ),
        yaml(
            "apps:\n  - name: a\n\tscript: @SCRIPT@\n",
            &["eco.yaml:3:", "tab"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    intances: 2\n",
            &[
                "eco.yaml:4",
                "\"intances\"",
                "did you mean",
                "\"instances\"",
            ],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    instances: lots\n",
            &["eco.yaml:4", "instances", "lots"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    instances: 1.5\n",
            &["eco.yaml:4", "instances", "1.5"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    max_memory_restart: -5M\n",
            &["eco.yaml:4", "max_memory_restart", "-5M"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    max_memory_restart: -100\n",
            &["eco.yaml:4", "max_memory_restart", "-100"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    max_memory_restart: 12X\n",
            &["eco.yaml:4", "max_memory_restart", "12X"],
        ),
        yaml(
            "apps:\n  - name: a/b\n    script: @SCRIPT@\n",
            &["eco.yaml:2", "name", "\"a/b\"", "slash"],
        ),
        yaml(
            "apps:\n  - name: ''\n    script: @SCRIPT@\n",
            &["eco.yaml:2", "name", "empty"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n  - name: a\n    script: @SCRIPT@\n",
            &["eco.yaml:4", "name \"a\"", "already used"],
        ),
        yaml(
            "apps:\n  - name: a\n    instances: 2\n",
            &["eco.yaml:2", "script", "missing"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: ./nope.sh\n",
            &["eco.yaml:3", "nope.sh", "not found"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @DIR@\n",
            &["eco.yaml:3", "@DIR@", "is a directory"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    kill_signal: SIGFOO\n",
            &["eco.yaml:4", "kill_signal", "SIGFOO"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    kill_timeout: -5\n",
            &["eco.yaml:4", "kill_timeout", "-5"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    listen: nowhere\n",
            &["eco.yaml:4", "listen", "nowhere"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    listen: 70000\n",
            &["eco.yaml:4", "listen", "70000"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    listen: unix:/tmp/never.sock\n    socket: reuseport\n",
            &["eco.yaml:5", "socket", "reuseport", "unix"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    exec_mode: turbo\n",
            &["eco.yaml:4", "exec_mode", "turbo"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    env:\n      - A=1\n",
            &["eco.yaml:4", "env", "list"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    instances: 2\n    listen: 127.0.0.1:0\n    increment_var: PORT\n",
            &["eco.yaml:6", "increment_var", "PORT", "exec_mode: fork"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    watch: 5\n",
            &["eco.yaml:4", "watch", "got 5"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    cron_restart: '0 * *'\n",
            &["eco.yaml:4", "cron_restart", "has 3 fields"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    force: true\n",
            &["eco.yaml:4", "force", "not supported"],
        ),
        yaml(
            "apps:\n  - name: a\n    script: @SCRIPT@\n    uid: 0\n",
            &["eco.yaml:4", "uid", "wrong user"],
        ),
        yaml("apps: oops\n", &["eco.yaml:1", "apps", "oops"]),
        eco(
            "eco.json",
            "{\"apps\": [\n  {\"name\": \"a\",\n   \"script\": \"@SCRIPT@\"\n   \"instances\": 2}]}\n",
            &["eco.json:4", "syntax error"],
        ),
        yaml("", &["eco.yaml", "empty"]),
        yaml("\"just a string\"\n", &["eco.yaml", "just a string"]),
        // Command lines.
        cli(&["CMD", "@SCRIPT@", "-i", "lots"], &["--instances", "lots"]),
        cli(&["CMD", "@SCRIPT@", "-i", "1.5"], &["--instances", "1.5"]),
        cli(
            &["CMD", "@SCRIPT@", "--max-memory-restart", "big"],
            &["--max-memory-restart", "big"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--kill-timeout", "soon"],
            &["--kill-timeout", "soon"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--kill-timeout=-5"],
            &["--kill-timeout", "-5"],
        ),
        // A negative value as its own word: the message must name the flag (clap's
        // "unexpected argument '-5' found" does not, and its tip `-- -5` would make
        // the value a script argument).
        cli(
            &["CMD", "@SCRIPT@", "--kill-timeout", "-5"],
            &["--kill-timeout", "-5"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--max-memory-restart", "-5M"],
            &["--max-memory-restart", "-5M"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--kill-signal", "SIGFOO"],
            &["--kill-signal", "SIGFOO"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--listen", "nowhere:port"],
            &["--listen", "nowhere:port"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--listen", "70000"],
            &["--listen", "70000"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--socket", "weird"],
            &["--socket", "weird"],
        ),
        cli(
            &[
                "CMD",
                "@SCRIPT@",
                "--listen",
                "unix:/tmp/never.sock",
                "--socket",
                "reuseport",
            ],
            &["--socket", "reuseport", "unix"],
        ),
        cli(
            &["CMD", "@SCRIPT@", "--name", "a/b"],
            &["--name", "\"a/b\"", "slash"],
        ),
        cli(&["CMD", "@SCRIPT@", "--name", ""], &["--name", "empty"]),
        cli(
            &["CMD", "@SCRIPT@", "--env", "x"],
            &["--env x", "env_x", "app.sh", "script"],
        ),
        cli(&["CMD", "nope.sh"], &["nope.sh", "not found"]),
        cli(&["CMD", "@DIR@"], &["@DIR@", "is a directory"]),
        Row {
            file: Some(("eco.yaml", GOOD)),
            args: &["CMD", "FILE", "-i", "4"],
            needles: &["--instances", "ecosystem file"],
        },
        Row {
            file: Some(("eco.yaml", GOOD)),
            args: &["CMD", "FILE", "--listen", "3000"],
            needles: &["--listen", "ecosystem file"],
        },
        cli(&["stop"], &["<TARGETS>"]),
        cli(&["scale", "api", "lots"], &["lots", "<INSTANCES>"]),
    ]
}

/// Whether anything of `home` started: the app's marker, a supervisor process, or one
/// that answers with an app in its list. Returns what was found.
fn what_started(home: &Home, marker: &std::path::Path) -> Option<String> {
    if marker.exists() {
        return Some("the app ran (its marker exists)".into());
    }
    let daemons = daemons_for(home.path());
    if daemons.is_empty() && !home.path().join("drover.sock").exists() {
        return None;
    }
    let (out, _) = output_within(home, &["list", "--json"], DEADLINE);
    let apps: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
    (!apps.is_empty() || !out.status.success()).then(|| {
        format!(
            "a supervisor runs (pids {daemons:?}) with apps: {}{}",
            out.stdout, out.stderr
        )
    })
}

#[test]
fn a_table_of_bad_files_and_flags_is_rejected_clearly_and_starts_nothing() {
    let rows = rows();
    assert!(rows.len() >= 25);
    let mut failures = Vec::new();
    let mut runs = 0;
    for row in &rows {
        let cmds: &[&str] = if row.args.contains(&"CMD") {
            &["run", "start"]
        } else {
            &[""]
        };
        for cmd in cmds {
            runs += 1;
            // A Daemon, so that a supervisor a bad `start` spawned is stopped.
            let d = Daemon::new();
            let home = &d.home;
            let marker = home.path().join("started");
            let script = home.write(
                "app.sh",
                &format!("#!/bin/sh\ntouch {}\nsleep 30\n", marker.display()),
            );
            let dir = home.path().join("dir");
            std::fs::create_dir(&dir).unwrap();
            let subst = |s: &str| {
                s.replace("@SCRIPT@", script.to_str().unwrap())
                    .replace("@DIR@", dir.to_str().unwrap())
            };
            let file = row.file.map(|(name, text)| home.write(name, &subst(text)));
            let args: Vec<String> = row
                .args
                .iter()
                .map(|a| match *a {
                    "CMD" => cmd.to_string(),
                    "FILE" => file.as_ref().unwrap().to_str().unwrap().to_owned(),
                    other => subst(other),
                })
                .collect();
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (out, timed_out) = output_within(home, &argv, Duration::from_secs(10));
            let mut problems = Vec::new();
            if timed_out {
                problems.push("still running after 10 s".to_owned());
            }
            if out.status.code() != Some(2) {
                problems.push(format!("exit {:?}, not 2", out.status));
            }
            for needle in row.needles {
                let needle = subst(needle);
                if !out.stderr.contains(&needle) {
                    problems.push(format!("stderr lacks {needle:?}"));
                }
            }
            if let Some(what) = what_started(home, &marker) {
                problems.push(what);
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "drover {argv:?} (file {:?}): {}\n  stderr: {}",
                    row.file.map(|f| f.1),
                    problems.join("; "),
                    out.stderr.trim_end().replace('\n', "\n          ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} bad inputs were not rejected as they should be:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
