//! Each exit status of the table in `drover(1)` and the README, produced for real. Busy
//! (7) is produced by the `responsive` tests, where a change is under way; "reload kept
//! the old workers" (1) by `reload::a_reload_whose_new_workers_never_get_ready…`.

use crate::harness::*;

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn every_exit_status_of_the_table() {
    let table = drover::error::EXIT_STATUS;
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let script = script.to_str().unwrap();

    // 6: no supervisor runs (stop never starts one).
    let out = d.home.output(&["stop", "api"]);
    assert_eq!(code(&out), Some(6), "{}", out.stderr);
    assert!(
        out.stderr.contains("no supervisor is running"),
        "{}",
        out.stderr
    );

    // 0
    let out = d
        .home
        .output(&["start", script, "--name", "api", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&out), Some(0), "{}", out.stderr);
    let port = listen_of(&d.wait_online("api", 1)[0]).port();

    // 2: a bad flag value, checked before anything is sent.
    let out = d
        .home
        .output(&["start", script, "--name", "x", "-i", "lots"]);
    assert_eq!(code(&out), Some(2), "{}", out.stderr);

    // 4: no such app.
    let out = d.home.output(&["restart", "nope"]);
    assert_eq!(code(&out), Some(4), "{}", out.stderr);

    // 5: already running.
    let out = d
        .home
        .output(&["start", script, "--name", "api", "--listen", "127.0.0.1:0"]);
    assert_eq!(code(&out), Some(5), "{}", out.stderr);

    // 1: the operation failed (the port is taken: SO_REUSEPORT must not let a second app
    // join the first one's listeners, and a shared socket cannot bind it either).
    let taken = format!("127.0.0.1:{port}");
    let out = d
        .home
        .output(&["start", script, "--name", "b", "--listen", &taken]);
    assert_eq!(code(&out), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("the port is taken"), "{}", out.stderr);
    let out = d.home.output(&[
        "start", script, "--name", "b", "--listen", &taken, "--socket", "shared",
    ]);
    assert_eq!(code(&out), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("cannot listen"), "{}", out.stderr);

    // 3: `run` ended with an app errored.
    let home = Home::new();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: crashy\n    script: {}\n    max_restarts: 1\n    env:\n      CRASH_COUNT_FILE: /dev/null\n",
            fixture("crasher.sh").display()
        ),
    );
    let (out, timed_out) = output_within(&home, &["run", eco.to_str().unwrap()], DEADLINE);
    assert!(!timed_out);
    assert_eq!(code(&out), Some(3), "{}", out.stderr);

    // The man page and the README show the same table.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for line in table.lines().skip(1) {
        assert!(readme.contains(line), "README lacks {line:?}");
    }
    let man =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/drover.1")).unwrap();
    assert!(
        man.contains("drover run: an app ended errored"),
        "drover(1) lacks the table"
    );
}
