//! What the commands that print share: PM2's human durations (`5s 3m 2h 4D`) and sizes
//! (`48.2mb`), a column table that fits 80 columns, key/value blocks, ANSI colour (only
//! when asked: the callers ask when stdout is a terminal), and writing to stdout where a
//! closed pipe (`drover logs | head`) is a normal end, not an error.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use crate::error::Error;
use crate::protocol::{Response, WorkerInfo, WorkerStatus};

/// The width the tables are laid out for.
pub(crate) const WIDTH: usize = 80;

/// Whether to colour what goes to stdout.
pub(crate) fn stdout_is_tty() -> bool {
    io::stdout().is_terminal()
}

/// PM2's uptime: the largest whole unit, `5s`, `3m`, `2h`, `4D`.
pub(crate) fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}D", s / 86_400),
    }
}

/// PM2's sizes, base 1024: `512b`, `12.0kb`, `48.2mb`, `1.5gb`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kb", "mb", "gb", "tb", "pb"];
    if bytes < 1024 {
        return format!("{bytes}b");
    }
    let mut value = bytes as f64 / 1024.0;
    for (i, unit) in UNITS.iter().enumerate() {
        // Move up when the rounded figure would read 1024.0 of this unit.
        if (value * 10.0).round() < 10_240.0 || i == UNITS.len() - 1 {
            return format!("{value:.1}{unit}");
        }
        value /= 1024.0;
    }
    unreachable!("the last unit always returns")
}

/// A configured duration, exactly: `0`, `500ms`, `2s`, `1.6s`, `2m`, `90s`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", s.trim_end_matches('0'))
    }
}

/// CPU as PM2 shows it: whole percent of one core.
pub(crate) fn cpu(percent: f32) -> String {
    if percent.is_finite() && percent > 0.0 {
        format!("{percent:.0}%")
    } else {
        "0%".into()
    }
}

/// `text` cut to `max` characters, the last one replaced by `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// An argument as a shell would need it typed: bare when safe, else single-quoted.
pub(crate) fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// ANSI styles; [`paint`] applies one only when colour is on.
pub(crate) mod style {
    pub const BOLD: &str = "1";
    pub const DIM: &str = "2";
    pub const RED: &str = "31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    pub const GREY: &str = "90";
}

/// `text` in the ANSI style `code` when `on`, else as it is.
pub(crate) fn paint(text: &str, code: &str, on: bool) -> String {
    if on && !code.is_empty() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The colour of a worker status, PM2's: online green, transitions yellow, errored red,
/// stopped grey.
pub(crate) fn status_style(status: WorkerStatus) -> &'static str {
    match status {
        WorkerStatus::Online => style::GREEN,
        WorkerStatus::Launching | WorkerStatus::Stopping | WorkerStatus::Waiting => style::YELLOW,
        WorkerStatus::Errored => style::RED,
        WorkerStatus::Stopped => style::GREY,
    }
}

/// One table cell: its text, and a style applied after the layout (so escape codes never
/// count as width).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    pub text: String,
    pub style: &'static str,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            style: "",
        }
    }
    pub fn styled(text: impl Into<String>, style: &'static str) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

/// Lays out a table within `width` columns: every column as wide as its widest cell, two
/// spaces apart; when that is too wide, the `flex` column (a name) is cut with `…` down
/// to `flex_min`, then the gaps narrow to one space. Left-aligned, no trailing spaces,
/// one `\n` after each line; the header is bold when `color`.
pub(crate) fn table(
    headers: &[&str],
    rows: &[Vec<Cell>],
    flex: usize,
    flex_min: usize,
    width: usize,
    color: bool,
) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        debug_assert_eq!(row.len(), n, "a row has one cell per column");
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.text.chars().count());
        }
    }
    let flex_min = flex_min.max(headers[flex].chars().count());
    let others: usize = widths
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != flex)
        .map(|(_, w)| w)
        .sum();
    let natural = widths[flex];
    let fits = |gap: usize, flex_width: usize| others + flex_width + gap * (n - 1) <= width;
    let mut gap = 2;
    if !fits(gap, natural) {
        let room = width.saturating_sub(others + gap * (n - 1));
        if room < flex_min {
            gap = 1;
        }
        let room = width.saturating_sub(others + gap * (n - 1));
        widths[flex] = natural.min(room.max(flex_min));
    }

    let mut out = String::new();
    let header: Vec<Cell> = headers
        .iter()
        .map(|h| Cell::styled(*h, style::BOLD))
        .collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let text = truncate(&cell.text, w);
            let pad = w - text.chars().count();
            line.push_str(&paint(&text, cell.style, color));
            if i + 1 < n {
                line.extend(std::iter::repeat_n(' ', pad + gap));
            }
        }
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
    out
}

/// The workers table of `list` and `describe`: id, name, mode, pid, uptime, ↺, status,
/// cpu, mem; sorted by id; the status coloured when `color`.
pub(crate) fn workers_table(workers: &[WorkerInfo], color: bool) -> String {
    const HEADERS: [&str; 9] = [
        "id", "name", "mode", "pid", "uptime", "↺", "status", "cpu", "mem",
    ];
    let mut sorted: Vec<&WorkerInfo> = workers.iter().collect();
    sorted.sort_by_key(|w| w.id);
    let rows: Vec<Vec<Cell>> = sorted
        .iter()
        .map(|w| {
            let running = w.pid.is_some();
            vec![
                Cell::plain(w.id.to_string()),
                Cell::plain(&w.name),
                Cell::plain(w.mode.to_string()),
                Cell::plain(w.pid.map_or_else(|| "-".into(), |p| p.to_string())),
                Cell::plain(if running {
                    uptime(w.uptime_ms)
                } else {
                    "0".into()
                }),
                Cell::plain(w.restarts.to_string()),
                Cell::styled(w.status.to_string(), status_style(w.status)),
                Cell::plain(cpu(w.cpu)),
                Cell::plain(size(w.memory)),
            ]
        })
        .collect();
    table(&HEADERS, &rows, 1, 8, WIDTH, color)
}

/// Key/value lines, keys padded to the longest, each indented by `indent`; a value with
/// several lines has its next lines under the first.
pub(crate) fn key_values(pairs: &[(&str, String)], indent: usize) -> String {
    let key_width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        let line = format!("{:indent$}{key:<key_width$}  {first}", "");
        out.push_str(line.trim_end());
        out.push('\n');
        for line in lines {
            let _ = writeln!(out, "{:pad$}{line}", "", pad = indent + key_width + 2);
        }
    }
    out
}

/// Words as a comma-separated list broken into lines of at most `width` characters (a
/// word longer than that gets a line of its own).
pub(crate) fn wrap_list(words: &[&str], width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for (i, word) in words.iter().enumerate() {
        let piece = if i + 1 < words.len() {
            format!("{word},")
        } else {
            (*word).to_owned()
        };
        let len = piece.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(&piece);
        line_len += len;
    }
    out
}

/// Writes `text` to stdout. A closed pipe ends the output quietly.
pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    write_result(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// A write to stdout's outcome: a closed pipe is fine (the reader has what it wanted).
pub(crate) fn write_result(r: io::Result<()>) -> Result<(), Error> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Runtime(anyhow::anyhow!(
            "cannot write to stdout: {e}"
        ))),
        _ => Ok(()),
    }
}

/// The error for a reply that does not answer the request (a supervisor bug).
pub(crate) fn unexpected(expected: &str, got: &Response) -> Error {
    let got = match got {
        Response::Pong { .. } => "pong",
        Response::Updating { .. } => "updating",
        Response::Done { .. } => "done",
        Response::Workers { .. } => "workers",
        Response::Apps { .. } => "apps",
        Response::LogFiles { .. } => "log_files",
        Response::LogLine(_) => "log_line",
        Response::Env { .. } => "env",
        Response::Error { .. } => "error",
    };
    Error::Runtime(anyhow::anyhow!(
        "the supervisor answered `{got}` where `{expected}` was expected (a bug: please report it)"
    ))
}

/// A line under the table for each worker in trouble: why its health check failed
/// (shown until its successor passes one), or why it is errored. What PM2 users read
/// `pm2 ls` for; the details are in `describe` and drover.log.
pub(crate) fn worker_problems(workers: &[WorkerInfo], color: bool) -> String {
    let mut text = String::new();
    for w in workers {
        if let Some(why) = &w.health {
            let line = format!("{}#{} health: {why}", w.name, w.instance);
            text.push_str(&paint(&line, style::RED, color));
            text.push('\n');
        }
        if let Some(why) = &w.errored_why {
            let last = w
                .last_exit
                .as_deref()
                .map_or(String::new(), |e| format!(" (last: {e})"));
            let line = format!(
                "{}#{} errored{last}: {why}; `drover restart {}` starts it again",
                w.name, w.instance, w.name
            );
            text.push_str(&paint(&line, style::RED, color));
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::ExecMode;

    pub(crate) fn worker(id: u32, name: &str) -> WorkerInfo {
        WorkerInfo {
            id,
            name: name.into(),
            instance: id,
            mode: ExecMode::Cluster,
            pid: Some(4242u32.wrapping_add(id)),
            status: WorkerStatus::Online,
            restarts: 0,
            uptime_ms: 12_000,
            cpu: 0.4,
            memory: 48 << 20,
            listen: Some("127.0.0.1:3000".into()),
            ready: true,
            health: None,
            restarts_by_cause: Default::default(),
            last_exit: None,
            errored_why: None,
        }
    }

    #[test]
    fn workers_in_trouble_get_a_line_each_under_the_table() {
        let healthy = worker(0, "api");
        let mut sick = worker(1, "api");
        sick.health = Some("pid 4243: GET /health: HTTP/1.1 503".into());
        let mut errored = worker(2, "api");
        errored.status = WorkerStatus::Errored;
        errored.pid = None;
        errored.last_exit = Some("exit code 1".into());
        errored.errored_why = Some("16 restarts in a row".into());
        assert_eq!(worker_problems(std::slice::from_ref(&healthy), false), "");
        assert_eq!(
            worker_problems(&[healthy, sick, errored], false),
            "api#1 health: pid 4243: GET /health: HTTP/1.1 503\n\
             api#2 errored (last: exit code 1): 16 restarts in a row; `drover restart api` starts it again\n"
        );
    }

    fn width(line: &str) -> usize {
        line.chars().count()
    }

    #[test]
    fn uptimes_use_the_largest_whole_unit() {
        for (ms, want) in [
            (0, "0s"),
            (999, "0s"),
            (5_000, "5s"),
            (59_999, "59s"),
            (60_000, "1m"),
            (3 * 60_000 + 59_000, "3m"),
            (3_599_999, "59m"),
            (3_600_000, "1h"),
            (2 * 3_600_000 + 1, "2h"),
            (86_399_999, "23h"),
            (86_400_000, "1D"),
            (4 * 86_400_000 + 5, "4D"),
            (400 * 86_400_000, "400D"),
        ] {
            assert_eq!(uptime(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn sizes_are_base_1024_with_one_decimal() {
        for (bytes, want) in [
            (0, "0b"),
            (512, "512b"),
            (1023, "1023b"),
            (1024, "1.0kb"),
            (12 * 1024 + 100, "12.1kb"),
            ((48.2 * 1048576.0) as u64, "48.2mb"),
            (1024 * 1024 - 1, "1.0mb"),
            (1536 << 20, "1.5gb"),
            (2 << 40, "2.0tb"),
            (u64::MAX, "16384.0pb"),
        ] {
            assert_eq!(size(bytes), want, "{bytes} bytes");
        }
    }

    #[test]
    fn configured_durations_are_exact() {
        for (ms, want) in [
            (0, "0"),
            (500, "500ms"),
            (1000, "1s"),
            (1600, "1.6s"),
            (1050, "1.05s"),
            (15_000, "15s"),
            (90_000, "90s"),
            (120_000, "2m"),
        ] {
            assert_eq!(duration(Duration::from_millis(ms)), want, "{ms} ms");
        }
    }

    #[test]
    fn cpu_is_whole_percent() {
        assert_eq!(cpu(0.0), "0%");
        assert_eq!(cpu(0.4), "0%");
        assert_eq!(cpu(12.6), "13%");
        assert_eq!(cpu(1600.0), "1600%");
        assert_eq!(cpu(f32::NAN), "0%");
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("api", 8), "api");
        assert_eq!(truncate("exactly8", 8), "exactly8");
        assert_eq!(truncate("much-longer-name", 8), "much-lo…");
        assert_eq!(truncate("ab", 1), "…");
        assert_eq!(truncate("ab", 0), "");
    }

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(shell_quote("--port=3000"), "--port=3000");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn paint_only_when_on() {
        assert_eq!(paint("online", style::GREEN, false), "online");
        assert_eq!(paint("online", style::GREEN, true), "\x1b[32monline\x1b[0m");
        assert_eq!(paint("x", "", true), "x");
    }

    #[test]
    fn a_small_table_keeps_two_space_gaps_and_no_trailing_spaces() {
        let t = workers_table(&[worker(0, "api"), worker(1, "api")], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "id  name  mode     pid   uptime  ↺  status  cpu  mem"
        );
        assert_eq!(
            lines[1],
            "0   api   cluster  4242  12s     0  online  0%   48.0mb"
        );
        assert_eq!(lines.len(), 3);
        assert!(t.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn the_table_fits_80_columns_with_long_names_and_big_numbers() {
        let long = "a-very-long-application-name-that-goes-on-and-on-for-sixty-four-c";
        let mut big = worker(4_000_000, long);
        big.pid = Some(4_194_303);
        big.restarts = 1_234_567;
        big.uptime_ms = 999 * 86_400_000;
        big.cpu = 12_800.0;
        big.memory = 1023 << 30;
        big.status = WorkerStatus::Launching;
        let mut worst = worker(u32::MAX, long);
        worst.pid = Some(u32::MAX);
        worst.restarts = u32::MAX;
        worst.uptime_ms = 99_999 * 86_400_000;
        worst.cpu = 99_999.0;
        worst.memory = (1023 << 40) + (1000 << 30);
        let rows = [worker(0, long), big.clone(), worker(2, "api")];
        for (workers, color) in [
            (&rows[..], false),
            (&rows[..], true),
            (&[worst.clone()][..], false),
        ] {
            let t = workers_table(workers, color);
            for line in t.lines() {
                let plain = strip_ansi(line);
                assert!(width(&plain) <= WIDTH, "{} columns: {plain}", width(&plain));
            }
            assert!(t.contains('…'), "the long name is cut:\n{t}");
        }
        // Names still show as much as fits, and the numbers are whole.
        let t = workers_table(&rows, false);
        assert!(t.contains("1234567"), "{t}");
        assert!(t.contains("4194303"), "{t}");
        assert!(t.contains("999D"), "{t}");
        assert!(t.contains("1023.0gb"), "{t}");
        let t = workers_table(&[worst], false);
        assert!(t.contains(&u32::MAX.to_string()), "{t}");
    }

    #[test]
    fn colour_does_not_change_the_layout() {
        let mut errored = worker(1, "api");
        errored.status = WorkerStatus::Errored;
        errored.pid = None;
        let workers = [worker(0, "api"), errored];
        let plain = workers_table(&workers, false);
        let coloured = workers_table(&workers, true);
        assert_ne!(plain, coloured);
        assert_eq!(strip_ansi(&coloured), plain);
        assert!(coloured.contains("\x1b[31merrored\x1b[0m"));
        // A stopped worker shows no pid and no uptime.
        assert!(
            plain
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("1   api   cluster  -     0 ")
        );
    }

    #[test]
    fn key_values_align_and_continue_lines() {
        let kv = key_values(
            &[
                ("script", "/srv/app.js".into()),
                ("out log", "/a-0.log\n/a-1.log".into()),
                ("args", String::new()),
            ],
            2,
        );
        assert_eq!(
            kv,
            "  script   /srv/app.js\n  out log  /a-0.log\n           /a-1.log\n  args\n"
        );
    }

    #[test]
    fn words_wrap_at_the_width() {
        assert_eq!(wrap_list(&["A", "B"], 80), "A, B");
        assert_eq!(
            wrap_list(&["NODE_ENV", "PORT", "DATABASE_URL"], 15),
            "NODE_ENV, PORT,\nDATABASE_URL"
        );
        assert_eq!(
            wrap_list(&["A_VERY_LONG_VARIABLE_NAME", "B"], 10),
            "A_VERY_LONG_VARIABLE_NAME,\nB"
        );
        assert_eq!(wrap_list(&[], 10), "");
    }

    pub(crate) fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
