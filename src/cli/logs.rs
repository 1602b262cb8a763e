//! `drover logs`: the last lines of the targets' log files, then every new line as the
//! supervisor reads it, PM2's `pm2 logs`: `0|api  | line`.
//!
//! The supervisor answers with the paths of the files; the tails are read here, from the
//! end of each file in blocks, so a file of gigabytes costs a few reads.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;

use super::render::{self, style};
use super::targets::{self, TargetWords};
use crate::error::Error;
use crate::ipc::client::{Client, ClientError};
use crate::logs::DateFormat;
use crate::protocol::{LogFile, Request, Response, Target};

/// Print the last lines of the apps' log files, then follow new lines until Ctrl-C.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// App names, worker ids, `all` (the default), /regex/ of names, a script (the apps
    /// that run it), an ecosystem file (its apps); several at once, as `stop` takes them.
    #[arg(value_name = "TARGET", value_parser = targets::check_word)]
    pub targets: Vec<String>,
    /// With an ecosystem file: only these of its apps (a,b).
    #[arg(long, value_name = "NAMES")]
    pub only: Option<String>,
    /// Lines of history to print from each log file first (0: none).
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub lines: usize,
    /// Print the history and exit instead of following new lines.
    #[arg(long)]
    pub nostream: bool,
    /// Only the workers' stderr.
    #[arg(long, conflicts_with = "out")]
    pub err: bool,
    /// Only the workers' stdout.
    #[arg(long)]
    pub out: bool,
    /// One JSON object per line: {"app", "instance", "id", "stream", "timestamp",
    /// "message"}; message is the line as the file has it; timestamp is null for history
    /// read from the files, and instance and id are null for lines of a file several
    /// workers write (merge_logs), which do not say whose they are.
    #[arg(long)]
    pub json: bool,
    /// The lines alone, as the files have them, without the `id|name |` prefix or the
    /// files' headers; stderr lines on stderr (PM2's --raw).
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Prefix each new line with the time the supervisor read it, in FORMAT (moment
    /// tokens, as log_date_format; default YYYY-MM-DD-HH:mm:ss, PM2's). A format goes
    /// after `=`: --timestamp='HH:mm:ss'. History lines have no known time: they are
    /// printed as the files have them (with their log_date_format stamp, if any).
    #[arg(
        long,
        value_name = "FORMAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = DEFAULT_TIMESTAMP,
        value_parser = DateFormat::parse,
        conflicts_with = "json"
    )]
    pub timestamp: Option<DateFormat>,
}

/// PM2's `logs --timestamp` format.
const DEFAULT_TIMESTAMP: &str = "YYYY-MM-DD-HH:mm:ss";

/// Bytes read per step backwards from the end of a file.
const BLOCK: usize = 64 * 1024;

/// The most bytes read back per requested line: the log pump caps lines at 64 KiB, so
/// this only bounds a file that is not one of ours (say, without any newline).
const MAX_BYTES_PER_LINE: u64 = 1 << 20;

pub(crate) fn run(args: LogsArgs, home: &Path) -> Result<(), Error> {
    let mut wanted = resolve(&args, home)?.into_iter();
    let request = Request::Logs {
        target: wanted.next().unwrap_or(Target::All),
        more: wanted.collect(),
        follow: !args.nostream,
    };
    let mut client = Client::connect(home)?;
    let files = match client.call(&request)? {
        Response::LogFiles { files } => files,
        other => return Err(render::unexpected("log_files", &other)),
    };
    let streams = Streams::from_flags(args.out, args.err);
    let files = select_files(files, streams);
    let format = Format {
        style: match (args.json, args.raw) {
            (true, _) => Style::Json,
            (false, true) => Style::Raw,
            (false, false) => Style::Prefixed,
        },
        color: !args.json && render::stdout_is_tty(),
        prefix_width: prefix_width(&files),
        timestamp: args.timestamp,
    };
    let mut out = Output {
        stdout: BufWriter::new(io::stdout().lock()),
        stderr: io::stderr().lock(),
    };

    if args.lines > 0 {
        for file in &files {
            let lines = match history(&file.path, args.lines) {
                Ok(Some(lines)) => lines,
                // Not written yet, or not a regular file (/dev/null): no history.
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    eprintln!("drover: cannot read {}: {e}", file.path.display());
                    continue;
                }
            };
            let mut text = String::new();
            if format.style == Style::Prefixed {
                let header = format!("{} last {} lines:", file.path.display(), args.lines);
                text.push_str(&render::paint(&header, style::DIM, format.color));
                text.push('\n');
            }
            // A merged file's lines do not say which worker wrote them.
            let (id, instance) = match file.merged {
                true => (None, None),
                false => (Some(file.id), Some(file.instance)),
            };
            for line in &lines {
                let message = String::from_utf8_lossy(line);
                text.push_str(&format.line(&Entry {
                    id,
                    app: &file.app,
                    instance,
                    stream: &file.stream,
                    timestamp: None,
                    message: &message,
                }));
            }
            if !out.emit(&format, &file.stream, &text)? {
                return Ok(());
            }
        }
    }
    if args.nostream {
        return Ok(());
    }

    loop {
        if !follow(&mut client, &format, streams, &mut out)? {
            return Ok(()); // whoever read our output is gone
        }
        // The stream ended: the supervisor stopped, or handed itself over to a new
        // binary (`drover update`), which serves the same socket: follow that one.
        match Client::connect(home).and_then(|mut c| c.call(&request).map(|r| (c, r))) {
            Ok((again, Response::LogFiles { .. })) => {
                client = again;
                let note = "(the supervisor was updated in place; following on: lines of those milliseconds are in the files)";
                eprintln!("{}", render::paint(note, style::DIM, format.color));
            }
            _ => {
                eprintln!("drover: the supervisor ended the log stream (it stopped)");
                return Ok(());
            }
        }
    }
}

/// Prints the lines the supervisor streams until it ends the stream (true), or until
/// our reader is gone (false).
fn follow(
    client: &mut Client,
    format: &Format,
    streams: Streams,
    out: &mut Output<'_>,
) -> Result<bool, Error> {
    while let Some(response) = client.recv()? {
        match response {
            Response::LogLine(line) if streams.accepts(&line.stream) => {
                let text = format.line(&Entry {
                    id: Some(line.id),
                    app: &line.app,
                    instance: Some(line.instance),
                    stream: &line.stream,
                    timestamp: Some(&line.timestamp),
                    message: &line.message,
                });
                if !out.emit(format, &line.stream, &text)? {
                    return Ok(false);
                }
            }
            Response::LogLine(_) => {}
            Response::Error { kind, message } => {
                return Err(ClientError::Supervisor { kind, message }.into());
            }
            other => return Err(render::unexpected("log_line", &other)),
        }
    }
    Ok(true)
}

/// The targets as the supervisor takes them: names, ids, `all`, /regex/, and the apps of
/// the scripts and files named (as `stop` reads them); none given: `all`.
fn resolve(args: &LogsArgs, home: &Path) -> Result<Vec<Target>, Error> {
    if args.targets.is_empty() {
        if args.only.is_some() {
            return Err(Error::Usage(
                "--only picks apps of an ecosystem file, and no target is one".into(),
            ));
        }
        return Ok(vec![Target::All]);
    }
    // PM2 takes `--timestamp HH:mm`; drover takes the format after `=` only, and such a
    // word (a `:` or a space, which no app name has) is no target.
    if args.timestamp.is_some()
        && let Some(word) = args
            .targets
            .iter()
            .find(|w| w.contains([':', ' ']) && !Path::new(w).exists())
    {
        return Err(Error::Usage(format!(
            "{word:?} is no app name: a --timestamp format goes after `=` (--timestamp='{word}')"
        )));
    }
    let words = TargetWords {
        targets: args.targets.clone(),
        only: args.only.clone(),
    };
    let picked = targets::pick(&words, None, home)?;
    targets::with_known_file_apps(&picked, home)
}

/// Where lines go: stdout, or for `--raw` stderr lines, stderr (PM2's).
struct Output<'a> {
    stdout: BufWriter<io::StdoutLock<'a>>,
    stderr: io::StderrLock<'a>,
}

impl Output<'_> {
    /// Writes `text` (lines of `stream`) and flushes; `Ok(false)` when the reader went
    /// away (`drover logs | head`).
    fn emit(&mut self, format: &Format, stream: &str, text: &str) -> Result<bool, Error> {
        if format.style == Style::Raw && stream == "err" {
            emit(&mut self.stderr, text)
        } else {
            emit(&mut self.stdout, text)
        }
    }
}

/// Writes and flushes; `Ok(false)` when the reader went away (`drover logs | head`).
fn emit(out: &mut impl Write, text: &str) -> Result<bool, Error> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Runtime(anyhow::anyhow!(
            "cannot write the logs: {e}"
        ))),
    }
}

/// Which streams `--out` / `--err` keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Streams {
    Both,
    Out,
    Err,
}

impl Streams {
    pub fn from_flags(out: bool, err: bool) -> Streams {
        match (out, err) {
            (true, false) => Streams::Out,
            (false, true) => Streams::Err,
            _ => Streams::Both,
        }
    }

    pub fn accepts(self, stream: &str) -> bool {
        match self {
            Streams::Both => true,
            Streams::Out => stream == "out",
            Streams::Err => stream == "err",
        }
    }
}

/// The files of the chosen streams, each path once (merged logs: every instance names
/// the same file; the first entry speaks for it).
pub(crate) fn select_files(files: Vec<LogFile>, streams: Streams) -> Vec<LogFile> {
    let mut kept: Vec<LogFile> = Vec::new();
    for file in files {
        if streams.accepts(&file.stream) && !kept.iter().any(|k| k.path == file.path) {
            kept.push(file);
        }
    }
    kept
}

/// The width of the widest `id|name`, so the ` | ` after it lines up.
pub(crate) fn prefix_width(files: &[LogFile]) -> usize {
    files
        .iter()
        .map(|f| format!("{}|{}", f.id, f.app).chars().count())
        .max()
        .unwrap_or(0)
}

/// One line to print, from a file's tail or from the supervisor.
pub(crate) struct Entry<'a> {
    /// The worker that wrote it; None for a line of a merged file (no one knows).
    pub id: Option<u32>,
    pub app: &'a str,
    pub instance: Option<u32>,
    pub stream: &'a str,
    pub timestamp: Option<&'a str>,
    pub message: &'a str,
}

/// `--json`'s object; fields in this order.
#[derive(Serialize)]
struct JsonLine<'a> {
    app: &'a str,
    instance: Option<u32>,
    id: Option<u32>,
    stream: &'a str,
    timestamp: Option<&'a str>,
    message: &'a str,
}

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `0|api   | message`, PM2's.
    Prefixed,
    /// The message alone (`--raw`).
    Raw,
    /// A JSON object (`--json`).
    Json,
}

/// How lines are printed.
pub(crate) struct Format {
    pub style: Style,
    /// The prefix green for stdout, red for stderr, the timestamp dim (a terminal only).
    pub color: bool,
    pub prefix_width: usize,
    /// `--timestamp`: new lines start with the time the supervisor read them.
    pub timestamp: Option<DateFormat>,
}

impl Format {
    /// The line with its `\n`: `[time ]0|api   | message`, `[time ]message`, or a JSON
    /// object.
    pub fn line(&self, e: &Entry<'_>) -> String {
        if self.style == Style::Json {
            let mut text = serde_json::to_string(&JsonLine {
                app: e.app,
                instance: e.instance,
                id: e.id,
                stream: e.stream,
                timestamp: e.timestamp,
                message: e.message,
            })
            .expect("strings serialize");
            text.push('\n');
            return text;
        }
        let mut text = String::new();
        // PM2's: the time, dim, then a space. Only lines that arrive have one.
        let read_at = e
            .timestamp
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let (Some(format), Some(at)) = (&self.timestamp, read_at) {
            text.push_str(&render::paint(&format.format(&at), style::DIM, self.color));
            text.push(' ');
        }
        if self.style == Style::Prefixed {
            let prefix = format!("{:<width$} |", who(e), width = self.prefix_width);
            let colour = if e.stream == "err" {
                style::RED
            } else {
                style::GREEN
            };
            text.push_str(&render::paint(&prefix, colour, self.color));
            text.push(' ');
        }
        text.push_str(e.message);
        text.push('\n');
        text
    }
}

/// `id|name`, or the name alone for a line whose worker is not known (a merged file).
fn who(e: &Entry<'_>) -> String {
    match e.id {
        Some(id) => format!("{id}|{}", e.app),
        None => e.app.to_owned(),
    }
}

/// The last `n` lines of a regular file (None for anything else: /dev/null, a pipe).
/// The last `n` lines of the log file `path`; when it holds fewer (it was rotated),
/// those of its rotated files (gzipped or not), newest first, make up the rest.
fn history(path: &Path, n: usize) -> io::Result<Option<Vec<Vec<u8>>>> {
    let Some(mut lines) = tail_file(path, n)? else {
        return Ok(None);
    };
    if lines.len() < n {
        for rotated in crate::logs::rotation::rotated_newest_first(path) {
            let wanted = n - lines.len();
            let older = match crate::logs::rotation::is_gzip(&rotated) {
                true => crate::logs::rotation::tail_gzip(&rotated, wanted),
                false => tail_file(&rotated, wanted).map(Option::unwrap_or_default),
            };
            // Gzipped or deleted by the archiver while we looked: what we have.
            let Ok(mut older) = older else { break };
            older.append(&mut lines);
            lines = older;
            if lines.len() >= n {
                break;
            }
        }
    }
    Ok(Some(lines))
}

pub(crate) fn tail_file(path: &Path, n: usize) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let max_bytes = (n as u64).saturating_mul(MAX_BYTES_PER_LINE);
    tail_lines(&mut file, n, BLOCK, max_bytes).map(Some)
}

/// The last `n` lines of `file`, without their `\n`, read backwards in `block`-sized
/// reads from the end, reading no more than about `max_bytes` (past which only the whole
/// lines found are returned). A last line without `\n` counts as a line.
pub(crate) fn tail_lines<R: Read + Seek>(
    file: &mut R,
    n: usize,
    block: usize,
    max_bytes: u64,
) -> io::Result<Vec<Vec<u8>>> {
    let len = file.seek(SeekFrom::End(0))?;
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    let block = block.max(1) as u64;
    let mut pos = len;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0;
    let mut read = 0u64;
    let mut trailing_newline = false;
    // The n-th last line starts after the n-th '\n' from the end, not counting the one
    // that ends the file.
    while pos > 0 && newlines < n && read < max_bytes {
        let size = block.min(pos);
        pos -= size;
        file.seek(SeekFrom::Start(pos))?;
        let mut buf = vec![0; size as usize];
        file.read_exact(&mut buf)?;
        let counted = if chunks.is_empty() && buf.last() == Some(&b'\n') {
            trailing_newline = true;
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        newlines += counted.iter().filter(|&&b| b == b'\n').count();
        read += size;
        chunks.push(buf);
    }
    let mut data = Vec::with_capacity(read as usize);
    for chunk in chunks.iter().rev() {
        data.extend_from_slice(chunk);
    }
    if trailing_newline {
        data.pop();
    }
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if pos > 0 {
        // Read from the middle of a line.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| l.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use super::*;
    use crate::cli::render::tests::strip_ansi;

    fn tail(data: &[u8], n: usize, block: usize) -> Vec<String> {
        tail_lines(&mut Cursor::new(data), n, block, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    fn numbered(count: usize) -> String {
        (0..count).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn the_last_lines_of_a_file_bigger_than_the_block() {
        let data = numbered(1000);
        for block in [1, 7, 16, 64, 4096, 1 << 20] {
            assert_eq!(
                tail(data.as_bytes(), 3, block),
                ["line 997", "line 998", "line 999"],
                "block {block}"
            );
            assert_eq!(tail(data.as_bytes(), 1, block), ["line 999"]);
            assert_eq!(tail(data.as_bytes(), 1000, block).len(), 1000);
            assert_eq!(tail(data.as_bytes(), 1000, block)[0], "line 0");
        }
    }

    #[test]
    fn a_file_without_a_trailing_newline_ends_with_its_partial_line() {
        for block in [1, 5, 4096] {
            assert_eq!(tail(b"a\nb\nc", 2, block), ["b", "c"]);
            assert_eq!(tail(b"only", 5, block), ["only"]);
        }
    }

    #[test]
    fn more_lines_asked_than_the_file_has() {
        for block in [3, 4096] {
            assert_eq!(tail(b"a\nb\n", 15, block), ["a", "b"]);
            assert_eq!(tail(b"a\n\nb\n", 15, block), ["a", "", "b"]);
            assert_eq!(tail(b"\n", 15, block), [""]);
        }
    }

    #[test]
    fn an_empty_file_and_zero_lines_give_nothing() {
        assert!(tail(b"", 15, 16).is_empty());
        assert!(tail(numbered(10).as_bytes(), 0, 16).is_empty());
    }

    #[test]
    fn only_the_blocks_needed_are_read() {
        /// Counts the bytes read.
        struct Counting(Cursor<Vec<u8>>, u64);
        impl Read for Counting {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n as u64;
                Ok(n)
            }
        }
        impl Seek for Counting {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.0.seek(pos)
            }
        }
        let data = numbered(1_000_000); // ~11 MB
        let mut file = Counting(Cursor::new(data.into_bytes()), 0);
        let lines = tail_lines(&mut file, 15, 64 * 1024, u64::MAX).unwrap();
        assert_eq!(lines.len(), 15);
        assert_eq!(lines[14], b"line 999999");
        assert_eq!(file.1, 64 * 1024);
    }

    #[test]
    fn a_line_longer_than_the_byte_budget_is_left_out() {
        let mut data = vec![b'x'; 10_000];
        data.extend_from_slice(b"\nlast\n");
        let lines = tail_lines(&mut Cursor::new(data), 2, 100, 1000).unwrap();
        assert_eq!(lines, [b"last".to_vec()]);
    }

    #[test]
    fn a_real_file_is_read_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out-0.log");
        std::fs::write(&path, numbered(100_000)).unwrap();
        let lines = tail_file(&path, 2).unwrap().unwrap();
        assert_eq!(lines, [b"line 99998".to_vec(), b"line 99999".to_vec()]);
        assert!(tail_file(Path::new("/dev/null"), 2).unwrap().is_none());
        let missing = tail_file(&dir.path().join("nope.log"), 2).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    fn file(id: u32, app: &str, stream: &str, path: &str) -> LogFile {
        LogFile {
            id,
            app: app.into(),
            instance: id,
            stream: stream.into(),
            path: PathBuf::from(path),
            merged: false,
        }
    }

    #[test]
    fn files_are_filtered_by_stream_and_merged_files_listed_once() {
        let files = vec![
            file(0, "api", "out", "/l/api-out.log"),
            file(0, "api", "err", "/l/api-error.log"),
            file(1, "api", "out", "/l/api-out.log"),
            file(1, "api", "err", "/l/api-error.log"),
            file(2, "web", "out", "/l/web-out-0.log"),
        ];
        let paths = |s| {
            select_files(files.clone(), s)
                .into_iter()
                .map(|f| (f.id, f.path.display().to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(Streams::Both),
            [
                (0, "/l/api-out.log".to_owned()),
                (0, "/l/api-error.log".into()),
                (2, "/l/web-out-0.log".into())
            ]
        );
        assert_eq!(paths(Streams::Err), [(0, "/l/api-error.log".to_owned())]);
        assert_eq!(paths(Streams::Out).len(), 2);
        assert_eq!(Streams::from_flags(false, false), Streams::Both);
        assert_eq!(Streams::from_flags(true, false), Streams::Out);
        assert_eq!(Streams::from_flags(false, true), Streams::Err);
    }

    fn entry<'a>(id: u32, app: &'a str, stream: &'a str, message: &'a str) -> Entry<'a> {
        Entry {
            id: Some(id),
            app,
            instance: Some(0),
            stream,
            timestamp: None,
            message,
        }
    }

    fn format(style: Style, prefix_width: usize) -> Format {
        Format {
            style,
            color: false,
            prefix_width,
            timestamp: None,
        }
    }

    #[test]
    fn human_lines_are_prefixed_pm2_style_and_aligned() {
        let files = [file(0, "api", "out", "/a"), file(12, "worker", "out", "/b")];
        let format = format(Style::Prefixed, prefix_width(&files));
        assert_eq!(
            format.line(&entry(0, "api", "out", "listening")),
            "0|api     | listening\n"
        );
        assert_eq!(
            format.line(&entry(12, "worker", "err", "boom")),
            "12|worker | boom\n"
        );
        // A worker that appears later with a longer name is not cut.
        assert_eq!(
            format.line(&entry(100, "a-longer-name", "out", "x")),
            "100|a-longer-name | x\n"
        );
        // A merged file's line names the app alone: its worker is not known.
        let merged = Entry {
            id: None,
            instance: None,
            ..entry(0, "api", "out", "from someone")
        };
        assert_eq!(format.line(&merged), "api       | from someone\n");
        let coloured = Format {
            color: true,
            ..format
        };
        let err = coloured.line(&entry(12, "worker", "err", "boom"));
        assert!(err.starts_with("\x1b[31m12|worker |\x1b[0m"), "{err:?}");
        let out = coloured.line(&entry(0, "api", "out", "ok"));
        assert!(out.starts_with("\x1b[32m"), "{out:?}");
        assert_eq!(strip_ansi(&err), "12|worker | boom\n");
    }

    #[test]
    fn raw_lines_are_the_message_alone() {
        let format = format(Style::Raw, 10);
        assert_eq!(format.line(&entry(3, "api", "err", "boom")), "boom\n");
        let live = Entry {
            timestamp: Some("2025-01-02T03:04:05+00:00"),
            ..entry(3, "api", "out", "2025-01-02: stamped by log_date_format")
        };
        assert_eq!(
            format.line(&live),
            "2025-01-02: stamped by log_date_format\n"
        );
    }

    /// `--timestamp`: the time the supervisor read the line, in the format given, before
    /// anything else; history (no time known) is printed as it is.
    #[test]
    fn timestamps_start_the_lines_that_arrive() {
        let at = "2025-01-02T03:04:05.678+01:00";
        for (style, want) in [
            (Style::Prefixed, "2025-01-02-03:04:05 0|api | hi\n"),
            (Style::Raw, "2025-01-02-03:04:05 hi\n"),
        ] {
            let format = Format {
                timestamp: Some(DateFormat::parse(DEFAULT_TIMESTAMP).unwrap()),
                ..format(style, 5)
            };
            let live = Entry {
                timestamp: Some(at),
                ..entry(0, "api", "out", "hi")
            };
            assert_eq!(format.line(&live), want);
            let history = entry(0, "api", "out", "hi");
            assert_eq!(format.line(&history), want[20..], "{style:?}");
        }
        let format = Format {
            timestamp: Some(DateFormat::parse("HH:mm:ss.SSS Z").unwrap()),
            color: true,
            ..format(Style::Raw, 0)
        };
        let live = Entry {
            timestamp: Some(at),
            ..entry(0, "api", "out", "hi")
        };
        assert_eq!(format.line(&live), "\x1b[2m03:04:05.678 +01:00\x1b[0m hi\n");
    }

    #[test]
    fn json_lines_have_the_documented_fields() {
        let format = format(Style::Json, 0);
        let history = format.line(&Entry {
            id: Some(3),
            app: "api",
            instance: Some(1),
            stream: "err",
            timestamp: None,
            message: "a \"quoted\" line",
        });
        assert_eq!(
            history,
            "{\"app\":\"api\",\"instance\":1,\"id\":3,\"stream\":\"err\",\"timestamp\":null,\"message\":\"a \\\"quoted\\\" line\"}\n"
        );
        let live = format.line(&Entry {
            timestamp: Some("2025-01-02T03:04:05Z"),
            ..entry(0, "api", "out", "hi")
        });
        let value: serde_json::Value = serde_json::from_str(&live).unwrap();
        assert_eq!(value["timestamp"], "2025-01-02T03:04:05Z");
        assert_eq!(value["message"], "hi");
        // A merged file's line: whose it is is not known, and says so.
        let merged = format.line(&Entry {
            id: None,
            instance: None,
            ..entry(0, "api", "out", "x")
        });
        let value: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert!(
            value["id"].is_null() && value["instance"].is_null(),
            "{value}"
        );
    }
}
