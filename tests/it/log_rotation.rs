//! Built-in log rotation (issue 12 item 3): real workers write numbered lines in bursts
//! across hundreds of rotations, and every line is found in exactly one file, whole;
//! retention and gzip (read back with flate2); `drover logs` and `flush` with rotated
//! files; `reload-logs` and SIGUSR1 after logrotate's `mv`; drover.log's own rotation;
//! and every bad value refused in one line. Daily rotation is unit-tested with injected
//! times (src/logs/rotation.rs, src/logs/files.rs): no test waits for midnight.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// `log_spammer.js` lines: `w<instance> line <n> ` padded with `x` to 99 bytes.
fn spam_line(line: &str) -> Option<(String, usize)> {
    let mut parts = line.splitn(4, ' ');
    let (tag, word, n, pad) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let whole = word == "line"
        && line.len() == 99
        && !pad.is_empty()
        && pad.bytes().all(|b| b == b'x')
        && tag.starts_with('w');
    whole.then(|| Some((tag.to_owned(), n.parse().ok()?)))?
}

/// The rotated files of `dir/<stem>.log` by the documented names
/// (`<stem>__YYYY-MM-DD_HH-mm-ss[_N].log[.gz]`), oldest first.
fn rotated(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let pattern = regex_lite::Regex::new(&format!(
        r"^{}__(\d{{4}}-\d{{2}}-\d{{2}}_\d{{2}}-\d{{2}}-\d{{2}})(?:_(\d+))?\.log(?:\.gz)?$",
        regex_lite::escape(stem)
    ))
    .unwrap();
    let mut found: Vec<(String, u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let caps = pattern.captures(&name)?;
            let seq = caps.get(2).map_or(0, |m| m.as_str().parse().unwrap());
            Some((caps[1].to_owned(), seq, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, p)| p).collect()
}

/// A file's text, gunzipped if its name ends in `.gz` (flate2 checks the CRC).
fn read_log(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{} is not valid gzip: {e}", path.display()));
        text
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

/// Every line of `dir/<stem>.log` and its rotated files, in file order, checked whole;
/// by writer tag, the numbers in the order found.
fn numbers(dir: &Path, stem: &str, max_size: u64) -> BTreeMap<String, Vec<usize>> {
    let mut files = rotated(dir, stem);
    files.push(dir.join(format!("{stem}.log")));
    let mut found: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if file.extension().is_some_and(|e| e == "log") {
            assert!(
                meta.len() <= max_size,
                "{} is {} bytes, over {max_size}",
                file.display(),
                meta.len()
            );
        }
        let text = read_log(&file);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends inside a line",
            file.display()
        );
        for line in text.lines() {
            let (tag, n) = spam_line(line)
                .unwrap_or_else(|| panic!("a torn line in {}: {line:?}", file.display()));
            found.entry(tag).or_default().push(n);
        }
    }
    found
}

fn count_lines(dir: &Path, stem: &str) -> usize {
    let mut files = rotated(dir, stem);
    files.push(dir.join(format!("{stem}.log")));
    files
        .iter()
        .filter(|f| f.exists())
        .map(|f| read_log(f).lines().count())
        .sum()
}

/// Two instances burst 30,000 numbered lines each into one merged out file and one
/// combined file, both rotating every 32 KiB: each file holds whole lines and stays
/// under the size, every line of each instance is found exactly once, in order, and
/// `drover logs` reaches back into the rotated file.
#[test]
fn a_burst_across_hundreds_of_rotations_keeps_every_line_once_and_whole() {
    const LINES: usize = 30_000;
    const MAX: u64 = 32 * 1024;
    let d = Daemon::new();
    let logs = d.home.path().join("logs");
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: spam\n    script: {}\n    args: ['{LINES}']\n    instances: 2\n    exec_mode: fork\n    merge_logs: true\n    autorestart: false\n    out_file: {dir}/spam-out.log\n    error_file: {dir}/spam-err.log\n    log_file: {dir}/spam-all.log\n    log_max_size: 32K\n    log_retain: 500\n",
            fixture("log_spammer.js").display(),
            dir = logs.display(),
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    for stem in ["spam-out", "spam-all"] {
        wait_for(&format!("all lines in {stem}"), DEADLINE, || {
            (count_lines(&logs, stem) == 2 * LINES).then_some(())
        });
        let found = numbers(&logs, stem, MAX);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["w0", "w1"], "{stem}");
        for (tag, ns) in &found {
            assert!(
                ns.iter().copied().eq(0..LINES),
                "{stem}: {tag}'s lines are not each once and in order ({} found)",
                ns.len()
            );
        }
        let files = rotated(&logs, stem);
        assert!(
            files.len() >= 150 && files.len() <= 500,
            "{stem}: {} rotated files",
            files.len()
        );
    }
    assert_eq!(count_lines(&logs, "spam-err"), 0);

    let describe = d.ok(&["describe", "spam"]);
    assert!(
        describe.contains("log rotation       at 32.0kb, keep 500\n"),
        "{describe}"
    );

    // More lines asked than the current file holds: the rotated file's come first.
    let current = read_log(&logs.join("spam-out.log")).lines().count();
    assert!(current < 330, "{current}");
    let out = d.ok(&["logs", "spam", "--out", "--lines", "400", "--nostream"]);
    let shown: Vec<&str> = out.lines().filter(|l| l.contains(" line ")).collect();
    assert_eq!(shown.len(), 400, "{out}");
    let last_rotated = read_log(rotated(&logs, "spam-out").last().unwrap());
    let want: Vec<&str> = last_rotated
        .lines()
        .rev()
        .take(400 - current)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    for (line, want) in shown.iter().zip(&want) {
        assert!(line.ends_with(want), "{line:?} is not {want:?}");
    }
}

/// Retention and gzip: 20,000 lines through 16 KiB files, 3 kept, compressed. Once
/// the archiver has caught up, at most 3 rotated files are left, all valid gzip with
/// whole lines, and they and the current file hold the newest lines without a gap.
/// `drover logs` reads the gzipped history; `flush` empties and deletes them.
#[test]
fn retention_keeps_the_newest_files_gzipped_whole() {
    const LINES: usize = 20_000;
    let d = Daemon::new();
    let logs = d.home.path().join("logs");
    let script = fixture("log_spammer.js");
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "spam",
        "--no-autorestart",
        "--log-max-size",
        "16K",
        "--log-retain",
        "3",
        "--log-compress",
        "--",
        &LINES.to_string(),
    ]);
    let files = wait_for(
        "3 gzipped rotated files and the last line",
        DEADLINE,
        || {
            let files = rotated(&logs, "spam-out");
            let done = files.len() <= 3
                && files
                    .iter()
                    .all(|f| f.extension().is_some_and(|e| e == "gz"))
                && read_log(&logs.join("spam-out.log")).contains(&format!(" line {} ", LINES - 1));
            done.then_some(files)
        },
    );
    assert_eq!(files.len(), 3, "{files:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let found = numbers(&logs, "spam-out", 16 * 1024);
    let ns = &found["w0"];
    assert!(ns.len() > 3 * 150, "{}", ns.len());
    assert_eq!(*ns.last().unwrap(), LINES - 1);
    assert!(
        ns.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a repeat in the newest lines"
    );

    let out = d.ok(&["logs", "spam", "--out", "--lines", "300", "--nostream"]);
    let shown: Vec<usize> = out
        .lines()
        .filter_map(|l| spam_line(l.split(" | ").nth(1)?).map(|(_, n)| n))
        .collect();
    assert_eq!(shown, ((LINES - 300)..LINES).collect::<Vec<_>>(), "{out}");

    let out = d.ok(&["flush", "spam"]);
    assert!(out.contains("removed 3 rotated files"), "{out}");
    assert!(rotated(&logs, "spam-out").is_empty());
    assert_eq!(read_log(&logs.join("spam-out.log")), "");
}

/// logrotate(8)'s way, rotation off: the file is moved, then `drover reload-logs`
/// (first) or SIGUSR1 (then) makes the supervisor write new lines into a new file at
/// the old path. Lines written between the move and the reopen stay in the moved file:
/// across the three files each line is there once.
#[test]
fn reload_logs_and_sigusr1_reopen_after_logrotate_moved_the_file() {
    let d = Daemon::new();
    let script = fixture("chatty_worker.js");
    d.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "chatty",
        "--listen",
        "127.0.0.1:0",
        "--log-rotate",
        "false",
    ]);
    d.wait_online("chatty", 1);
    let describe = d.ok(&["describe", "chatty"]);
    assert!(describe.contains("log rotation       off\n"), "{describe}");
    let log = d.home.path().join("logs/chatty-out.log");
    let has_lines = |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.contains("chatty 0 "));
    wait_for("the first lines", DEADLINE, || {
        has_lines(&log).then_some(())
    });

    let first = log.with_extension("log.1");
    std::fs::rename(&log, &first).unwrap();
    let out = d.ok(&["reload-logs"]);
    assert!(out.contains("log files reopened"), "{out}");
    wait_for("lines in a new file after reload-logs", DEADLINE, || {
        has_lines(&log).then_some(())
    });

    let second = log.with_extension("log.2");
    std::fs::rename(&log, &second).unwrap();
    let pid = d.supervisor_pid().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
    wait_for("lines in a new file after SIGUSR1", DEADLINE, || {
        has_lines(&log).then_some(())
    });
    assert_eq!(
        d.supervisor_pid(),
        Some(pid),
        "SIGUSR1 did not stop the supervisor"
    );
    d.ok(&["stop", "chatty"]);

    let mut seen = Vec::new();
    for file in [&first, &second, &log] {
        let text = std::fs::read_to_string(file).unwrap();
        let before = seen.len();
        // The worker's own `started pid=…` line aside.
        for line in text.lines().filter(|l| !l.starts_with("started pid=")) {
            let mut parts = line.splitn(4, ' ');
            let whole =
                parts.next() == Some("chatty") && parts.next() == Some("0") && line.len() == 199;
            let n: usize = parts
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            assert!(
                whole && n != usize::MAX,
                "torn in {}: {line:?}",
                file.display()
            );
            seen.push(n);
        }
        assert!(seen.len() > before, "{} got no line", file.display());
    }
    assert!(
        seen.iter().copied().eq(0..seen.len()),
        "lines lost or repeated across the moved and new files"
    );
}

/// drover.log rotates by itself: a daemon that finds it full renames it before its
/// first line, writes on in a new drover.log (0600, a regular file), and keeps 5.
#[test]
fn drover_log_rotates_and_keeps_five() {
    const MAX: usize = 10 << 20;
    let d = Daemon::new();
    let home = d.home.path();
    let old_line = "an old diagnostic line of the supervisor, 64 bytes long .......\n";
    assert_eq!(old_line.len(), 64);
    std::fs::write(home.join("drover.log"), old_line.repeat(MAX / 64)).unwrap();
    for day in 1..=5 {
        let name = format!("drover__2020-01-0{day}_00-00-00.log");
        std::fs::write(home.join(name), format!("day {day}\n")).unwrap();
    }
    d.ok(&["ping"]);
    let log = home.join("drover.log");
    wait_for(
        "the supervisor's first line in a new drover.log",
        DEADLINE,
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.contains("listening on") && text.len() < 4096).then_some(())
        },
    );
    let files = wait_for("5 rotated drover.logs", DEADLINE, || {
        let files = rotated(home, "drover");
        (files.len() == 5).then_some(files)
    });
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names[0], "drover__2020-01-02_00-00-00.log", "{names:?}");
    assert_eq!(std::fs::read(files.last().unwrap()).unwrap().len(), MAX);
    let meta = std::fs::symlink_metadata(&log).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    // The daemon's later lines go to the new file too.
    d.ok(&["kill"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("supervisor stopped"), "{text}");
    assert!(!text.contains("an old diagnostic line"));
}

/// Every bad rotation value, in a file (`drover run` and `drover start`) or as a flag:
/// exit 2, one line naming file, line and key (or the flag), and nothing started.
#[test]
fn bad_rotation_values_are_refused_in_one_line_and_start_nothing() {
    let files: &[(&str, &[&str])] = &[
        (
            "log_max_size: 0",
            &[
                "eco.yaml:4: ",
                "log_max_size: 0 is not a size: it must be more than 0",
            ],
        ),
        (
            "log_max_size: -1M",
            &["eco.yaml:4: ", "log_max_size: \"-1M\" is not a size"],
        ),
        (
            "log_max_size: 10Q",
            &["eco.yaml:4: ", "log_max_size: \"10Q\" is not a size"],
        ),
        (
            "log_retain: lots",
            &[
                "eco.yaml:4: ",
                "log_retain: expected a number of rotated files to keep (1 or more), got \"lots\"",
            ],
        ),
        (
            "log_retain: 0",
            &[
                "eco.yaml:4: ",
                "log_retain: 0 would delete each file as it rotates",
            ],
        ),
        (
            "log_rotate: hourly",
            &[
                "eco.yaml:4: ",
                "log_rotate: expected daily (also at local midnight), true (by size only) or false (never), got \"hourly\"",
            ],
        ),
        (
            "log_compress: gzip",
            &["eco.yaml:4: ", "log_compress: expected true or false"],
        ),
        (
            "log_rotate: false\n    log_max_size: 5M",
            &[
                "eco.yaml:5: ",
                "log_max_size: has no effect while rotation is off",
            ],
        ),
    ];
    let flags: &[(&[&str], &str)] = &[
        (
            &["--log-max-size", "0"],
            "--log-max-size: \"0\" is not a size: it must be more than 0",
        ),
        (
            &["--log-max-size", "-1M"],
            "--log-max-size: \"-1M\" is not a size",
        ),
        (
            &["--log-max-size", "10Q"],
            "--log-max-size: \"10Q\" is not a size",
        ),
        (
            &["--log-retain", "lots"],
            "--log-retain: expected a number of rotated files to keep",
        ),
        (&["--log-rotate", "hourly"], "--log-rotate: expected daily"),
    ];
    let mut failures = Vec::new();
    let mut check = |home: &Home, argv: &[&str], needles: &[&str], marker: &Path| {
        let (out, timed_out) = output_within(home, argv, Duration::from_secs(10));
        let mut problems = Vec::new();
        if timed_out || out.status.code() != Some(2) {
            problems.push(format!("exit {:?}", out.status));
        }
        // One line, and maybe the usual hint under it.
        let lines: Vec<&str> = out.stderr.trim_end().lines().collect();
        if lines.len() != 1 && !(lines.len() == 2 && lines[1].starts_with("  hint: ")) {
            problems.push("not one line".to_owned());
        }
        for needle in needles {
            if !out.stderr.contains(needle) {
                problems.push(format!("lacks {needle:?}"));
            }
        }
        if marker.exists() || !daemons_for(home.path()).is_empty() {
            problems.push("something started".to_owned());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{argv:?}: {}: {}",
                problems.join(", "),
                out.stderr.trim_end()
            ));
        }
    };
    for (cmd, (line, needles)) in ["run", "start"]
        .into_iter()
        .flat_map(|cmd| files.iter().map(move |f| (cmd, f)))
    {
        let d = Daemon::new();
        let marker = d.home.path().join("started");
        let script = d.home.write(
            "app.sh",
            &format!("#!/bin/sh\ntouch {}\nsleep 30\n", marker.display()),
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let eco = d.home.write(
            "eco.yaml",
            &format!(
                "apps:\n  - name: a\n    script: {}\n    {line}\n",
                script.display()
            ),
        );
        check(&d.home, &[cmd, eco.to_str().unwrap()], needles, &marker);
    }
    for (cmd, (args, needle)) in ["run", "start"]
        .into_iter()
        .flat_map(|cmd| flags.iter().map(move |f| (cmd, f)))
    {
        let d = Daemon::new();
        let marker = d.home.path().join("started");
        let script = d.home.write(
            "app.sh",
            &format!("#!/bin/sh\ntouch {}\nsleep 30\n", marker.display()),
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut argv = vec![cmd, script.to_str().unwrap()];
        argv.extend_from_slice(args);
        check(&d.home, &argv, &[needle], &marker);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
