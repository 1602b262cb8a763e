//! `drover logs`: the last lines of the target's log files, then every new line as the
//! supervisor reads it, PM2's `pm2 logs`: `0|api  | line`.
//!
//! The supervisor answers with the paths of the files; the tails are read here, from the
//! end of each file in blocks, so a file of gigabytes costs a few reads.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;

use super::render::{self, style};
use crate::error::Error;
use crate::ipc::client::{Client, ClientError};
use crate::protocol::{LogFile, Request, Response, Target};

/// Print the last lines of the apps' log files, then follow new lines until Ctrl-C.
#[derive(Debug, Clone, clap::Args)]
pub struct LogsArgs {
    /// App name, worker id, or `all`.
    #[arg(value_name = "NAME|ID", default_value = "all")]
    pub target: Target,
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
    /// "message"}; timestamp is null for history read from the files.
    #[arg(long)]
    pub json: bool,
}

/// Bytes read per step backwards from the end of a file.
const BLOCK: usize = 64 * 1024;

/// The most bytes read back per requested line: the log pump caps lines at 64 KiB, so
/// this only bounds a file that is not one of ours (say, without any newline).
const MAX_BYTES_PER_LINE: u64 = 1 << 20;

pub(crate) fn run(args: LogsArgs, home: &Path) -> Result<(), Error> {
    let mut client = Client::connect(home)?;
    let files = match client.call(&Request::Logs {
        target: args.target.clone(),
        follow: !args.nostream,
    })? {
        Response::LogFiles { files } => files,
        other => return Err(render::unexpected("log_files", &other)),
    };
    let streams = Streams::from_flags(args.out, args.err);
    let files = select_files(files, streams);
    let format = Format {
        json: args.json,
        color: !args.json && render::stdout_is_tty(),
        prefix_width: prefix_width(&files),
    };
    let mut out = BufWriter::new(io::stdout().lock());

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
            if !format.json {
                let header = format!("{} last {} lines:", file.path.display(), args.lines);
                text.push_str(&render::paint(&header, style::DIM, format.color));
                text.push('\n');
            }
            for line in &lines {
                let message = String::from_utf8_lossy(line);
                text.push_str(&format.line(&Entry {
                    id: file.id,
                    app: &file.app,
                    instance: file.instance,
                    stream: &file.stream,
                    timestamp: None,
                    message: &message,
                }));
            }
            if !emit(&mut out, &text)? {
                return Ok(());
            }
        }
    }
    if args.nostream {
        return Ok(());
    }

    while let Some(response) = client.recv()? {
        match response {
            Response::LogLine(line) if streams.accepts(&line.stream) => {
                let text = format.line(&Entry {
                    id: line.id,
                    app: &line.app,
                    instance: line.instance,
                    stream: &line.stream,
                    timestamp: Some(&line.timestamp),
                    message: &line.message,
                });
                if !emit(&mut out, &text)? {
                    return Ok(());
                }
            }
            Response::LogLine(_) => {}
            Response::Error { kind, message } => {
                return Err(ClientError::Supervisor { kind, message }.into());
            }
            other => return Err(render::unexpected("log_line", &other)),
        }
    }
    eprintln!("drover: the supervisor ended the log stream (it stopped)");
    Ok(())
}

/// Writes and flushes; `Ok(false)` when the reader went away (`drover logs | head`).
fn emit(out: &mut impl Write, text: &str) -> Result<bool, Error> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::Runtime(anyhow::anyhow!(
            "cannot write to stdout: {e}"
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
    pub id: u32,
    pub app: &'a str,
    pub instance: u32,
    pub stream: &'a str,
    pub timestamp: Option<&'a str>,
    pub message: &'a str,
}

/// `--json`'s object; fields in this order.
#[derive(Serialize)]
struct JsonLine<'a> {
    app: &'a str,
    instance: u32,
    id: u32,
    stream: &'a str,
    timestamp: Option<&'a str>,
    message: &'a str,
}

/// How lines are printed.
pub(crate) struct Format {
    pub json: bool,
    /// The prefix green for stdout, red for stderr (a terminal only).
    pub color: bool,
    pub prefix_width: usize,
}

impl Format {
    /// The line with its `\n`: `0|api   | message`, or a JSON object.
    pub fn line(&self, e: &Entry<'_>) -> String {
        if self.json {
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
        let prefix = format!(
            "{:<width$} |",
            format!("{}|{}", e.id, e.app),
            width = self.prefix_width
        );
        let colour = if e.stream == "err" {
            style::RED
        } else {
            style::GREEN
        };
        format!(
            "{} {}\n",
            render::paint(&prefix, colour, self.color),
            e.message
        )
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
            id,
            app,
            instance: 0,
            stream,
            timestamp: None,
            message,
        }
    }

    #[test]
    fn human_lines_are_prefixed_pm2_style_and_aligned() {
        let files = [file(0, "api", "out", "/a"), file(12, "worker", "out", "/b")];
        let format = Format {
            json: false,
            color: false,
            prefix_width: prefix_width(&files),
        };
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
    fn json_lines_have_the_documented_fields() {
        let format = Format {
            json: true,
            color: false,
            prefix_width: 0,
        };
        let history = format.line(&Entry {
            id: 3,
            app: "api",
            instance: 1,
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
    }
}
