//! Bad input is rejected at the edge with file, line and key, and nothing is started.

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
fn watch_true_is_not_supported_yet() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    watch: true\n",
        &["ecosystem.yaml:4", "watch", "not supported yet"],
    );
}

#[test]
fn pm2_keys_drover_lacks_are_rejected_by_name() {
    rejected(
        "apps:\n  - name: a\n    script: SCRIPT\n    cron_restart: '0 * * * *'\n",
        &["ecosystem.yaml:4", "cron_restart", "not supported yet"],
    );
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
