//! `drover logs` as a PM2 user types it: several targets, `--raw`, `--timestamp`; lines of
//! a merged file name no worker; a followed line looks as the file has it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use crate::harness::*;

/// Prints `out <instance> <n>` and `err <instance> <n>` every 50 ms.
const TICK_JS: &str = "const i = process.env.NODE_APP_INSTANCE;\nlet n = 0;\nsetInterval(() => {\n  n++;\n  console.log(`out ${i} ${n}`);\n  console.error(`err ${i} ${n}`);\n}, 50);\n";

fn with_tick() -> Daemon {
    let d = Daemon::new();
    d.home.write("tick.js", TICK_JS);
    d
}

/// A `drover logs …` that follows, its stdout and stderr collected line by line; killed
/// when dropped.
struct Follower {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn new(d: &Daemon, args: &[&str]) -> Follower {
        let mut child = d
            .home
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Follower {
            child,
            stdout,
            stderr,
        }
    }

    /// The lines so far once `enough` says they are.
    fn wait(&self, what: &str, enough: impl Fn(&[String], &[String]) -> bool) -> Vec<String> {
        wait_for(what, DEADLINE, || {
            let out = self.stdout.lock().unwrap().clone();
            let err = self.stderr.lock().unwrap().clone();
            enough(&out, &err).then_some(out)
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `file` (under the home) once one of them satisfies `found`.
fn file_lines_with(d: &Daemon, file: &str, found: impl Fn(&str) -> bool) -> Vec<String> {
    wait_for(&format!("a line in {file}"), DEADLINE, || {
        let text = d.home.read(file);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.iter().any(|l| found(l)).then_some(lines)
    })
}

#[test]
fn several_targets_show_their_lines_and_no_other() {
    let d = with_tick();
    for name in ["a", "b", "c"] {
        d.ok(&["start", "tick.js", "--name", name]);
    }
    for name in ["a", "b", "c"] {
        file_lines_with(&d, &format!("logs/{name}-out.log"), |l| l == "out 0 3");
    }
    // History: the files of the apps named (also by /regex/ and by a mix), not c's.
    for targets in [&["a", "b"][..], &["/^[ab]$/"], &["a", "/^b/"]] {
        let mut args = vec!["logs"];
        args.extend_from_slice(targets);
        args.extend(["--nostream", "--lines", "3"]);
        let out = d.ok(&args);
        for file in ["a-out.log", "a-error.log", "b-out.log", "b-error.log"] {
            assert!(
                out.contains(&format!("{file} last 3 lines:")),
                "{targets:?}: {out}"
            );
        }
        assert!(
            !out.contains("c-out.log") && !out.lines().any(|l| l.starts_with("c ")),
            "{targets:?}: {out}"
        );
        assert_eq!(
            out.lines().filter(|l| l.starts_with("a ")).count(),
            6,
            "{out}"
        );
    }
    // An unknown one among them: nothing is printed, exit 4.
    let out = d.home.output(&["logs", "a", "nope", "--nostream"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.stderr);
    assert!(
        out.stdout.is_empty() && out.stderr.contains("nope"),
        "{}",
        out.stderr
    );

    // Following: lines of a and b as they come, never one of c (which writes as often).
    let follower = Follower::new(&d, &["logs", "a", "b", "--lines", "0", "--json"]);
    let lines = follower.wait("20 lines of a and of b", |out, _| {
        let of = |app: &str| {
            out.iter()
                .filter(|l| l.contains(&format!("\"app\":\"{app}\"")))
                .count()
        };
        of("a") >= 20 && of("b") >= 20
    });
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["app"] == "a" || v["app"] == "b", "{line}");
        assert!(v["id"].is_u64() && v["instance"] == 0, "{line}");
    }
}

#[test]
fn lines_of_a_merged_file_name_no_worker() {
    let d = with_tick();
    d.ok(&["start", "tick.js", "--name", "m", "-i", "2", "--merge-logs"]);
    d.ok(&["start", "tick.js", "--name", "p", "-i", "2"]);
    // Both instances have written to the merged file.
    file_lines_with(&d, "logs/m-out.log", |l| l == "out 1 5");
    file_lines_with(&d, "logs/m-out.log", |l| l == "out 0 5");
    file_lines_with(&d, "logs/p-out-1.log", |l| l == "out 1 2");

    let json = d.ok(&[
        "logs",
        "m",
        "--nostream",
        "--json",
        "--out",
        "--lines",
        "40",
    ]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["message"].as_str().unwrap().starts_with("out 1 ")),
        "{json}"
    );
    for v in &lines {
        assert_eq!(v["app"], "m", "{v}");
        assert!(v["instance"].is_null() && v["id"].is_null(), "{v}");
    }
    let human = d.ok(&["logs", "m", "--nostream", "--out", "--lines", "5"]);
    let body: Vec<&str> = human.lines().skip(1).collect();
    assert_eq!(body.len(), 5, "{human}");
    assert!(
        body.iter()
            .all(|l| l.starts_with("m ") && l.contains(" | out ")),
        "{human}"
    );

    // One file per instance: each line is its worker's.
    let ids: Vec<(u64, u64)> = d
        .list()
        .iter()
        .filter(|w| w["name"] == "p")
        .map(|w| (w["instance"].as_u64().unwrap(), w["id"].as_u64().unwrap()))
        .collect();
    let json = d.ok(&["logs", "p", "--nostream", "--json", "--out", "--lines", "5"]);
    let mut seen = Vec::new();
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let instance = v["instance"].as_u64().unwrap();
        let id = ids.iter().find(|(i, _)| *i == instance).unwrap().1;
        assert_eq!(v["id"], id, "{line}");
        let message = v["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("out {instance} ")), "{line}");
        seen.push(instance);
    }
    seen.dedup();
    assert_eq!(seen, [0, 1], "{json}");
}

#[test]
fn a_followed_line_looks_as_the_file_has_it() {
    let d = with_tick();
    d.ok(&[
        "start",
        "tick.js",
        "--name",
        "t",
        "--log-date-format",
        "YYYY-MM-DD HH:mm:ss.SSS",
    ]);
    file_lines_with(&d, "logs/t-out.log", |l| l.ends_with(": out 0 2"));
    let id = d.list()[0]["id"].to_string();

    // Prefixed: `id|t | ` then the line as the file has it, stamp included.
    let follower = Follower::new(&d, &["logs", "t", "--lines", "0", "--out"]);
    let lines = follower.wait("3 followed lines", |out, _| out.len() >= 3);
    let prefix = format!("{id}|t | ");
    for line in &lines[..3] {
        let written = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line:?}"));
        file_lines_with(&d, "logs/t-out.log", |l| l == written);
        assert!(written.contains(": out 0 "), "{written}");
    }
    // The same lines read back from the file (history) look the same.
    let history = d.ok(&["logs", "t", "--nostream", "--out", "--lines", "3"]);
    for line in history.lines().skip(1) {
        let (who, written) = line.split_once(" | ").unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(who.trim_end(), "t", "{line}");
        assert!(
            regex_lite::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}: out 0 \d+$")
                .unwrap()
                .is_match(written),
            "{line}"
        );
    }
    drop(follower);

    // Raw: the line alone, exactly as in the file; stderr's on stderr.
    let follower = Follower::new(&d, &["logs", "t", "--lines", "0", "--raw"]);
    let out = follower.wait("3 lines on each stream", |out, err| {
        out.len() >= 3 && err.len() >= 3
    });
    let err = follower.stderr.lock().unwrap().clone();
    for line in &out[..3] {
        file_lines_with(&d, "logs/t-out.log", |l| l == line);
    }
    for line in &err[..3] {
        assert!(line.contains(": err 0 "), "{line}");
        file_lines_with(&d, "logs/t-error.log", |l| l == line);
    }
}

#[test]
fn raw_history_is_the_lines_alone() {
    let d = with_tick();
    d.ok(&["start", "tick.js", "--name", "r"]);
    file_lines_with(&d, "logs/r-error.log", |l| l == "err 0 3");
    let out = d
        .home
        .output(&["logs", "r", "--nostream", "--raw", "--lines", "3"]);
    assert!(out.status.success(), "{}", out.stderr);
    let stdout: Vec<&str> = out.stdout.lines().collect();
    let stderr: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(stdout.len(), 3, "{}", out.stdout);
    assert_eq!(stderr.len(), 3, "{}", out.stderr);
    let number = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    for (lines, stream) in [(&stdout, "out"), (&stderr, "err")] {
        for pair in lines.windows(2) {
            assert_eq!(number(pair[1]), number(pair[0]) + 1, "{lines:?}");
        }
        for line in lines.iter() {
            assert!(line.starts_with(&format!("{stream} 0 ")), "{line:?}");
        }
    }
    // --raw and --json say different things about one line.
    let out = d.home.output(&["logs", "r", "--raw", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}

#[test]
fn timestamps_start_the_lines_that_arrive() {
    let d = with_tick();
    d.ok(&[
        "start",
        "tick.js",
        "--name",
        "s",
        "--log-date-format",
        "YYYY-MM-DD HH:mm:ss",
    ]);
    file_lines_with(&d, "logs/s-out.log", |l| l.ends_with(": out 0 2"));
    let id = d.list()[0]["id"].to_string();

    // PM2's default format, then the line as without --timestamp.
    let follower = Follower::new(&d, &["logs", "s", "--lines", "2", "--out", "--timestamp"]);
    let lines = follower.wait("history and 3 new lines", |out, _| out.len() >= 6);
    let stamped = regex_lite::Regex::new(&format!(
        r"^(\d{{4}}-\d\d-\d\d)-(\d\d:\d\d:\d\d) {id}\|s \| (\d{{4}}-\d\d-\d\d) (\d\d:\d\d:\d\d): out 0 \d+$"
    ))
    .unwrap();
    // The header and 2 history lines: no time known, printed as they are.
    assert!(lines[0].ends_with("s-out.log last 2 lines:"), "{lines:?}");
    for line in &lines[1..3] {
        let (who, _) = line.split_once(" | ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(who.trim_end() == "s" && !stamped.is_match(line), "{line}");
    }
    for line in &lines[3..6] {
        let caps = stamped.captures(line).unwrap_or_else(|| panic!("{line:?}"));
        // The time the supervisor read the line: the file's stamp, to the second (a
        // second may turn between the two).
        let secs = |date: &str, time: &str| {
            let t = chrono::NaiveDateTime::parse_from_str(
                &format!("{date} {time}"),
                "%Y-%m-%d %H:%M:%S",
            )
            .unwrap();
            t.and_utc().timestamp()
        };
        let read = secs(&caps[1], &caps[2]);
        let written = secs(&caps[3], &caps[4]);
        assert!((read - written).abs() <= 1, "{line}");
    }
    drop(follower);

    // A format of one's own, after `=`; with --raw too.
    let follower = Follower::new(
        &d,
        &[
            "logs",
            "s",
            "--lines",
            "0",
            "--out",
            "--raw",
            "--timestamp=[at] HH:mm",
        ],
    );
    let lines = follower.wait("a new line", |out, _| !out.is_empty());
    let own = regex_lite::Regex::new(r"^at \d\d:\d\d \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: out 0 \d+$")
        .unwrap();
    assert!(own.is_match(&lines[0]), "{:?}", lines[0]);
    drop(follower);

    // PM2's `--timestamp FORMAT`: the format is no target, and drover says where it goes.
    let out = d
        .home
        .output(&["logs", "s", "--timestamp", "HH:mm:ss", "--nostream"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("a --timestamp format goes after `=`"),
        "{}",
        out.stderr
    );

    // --json has its own timestamp field: the two together are refused.
    let out = d.home.output(&["logs", "s", "--json", "--timestamp"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}
