//! Log files shared by the workers that write them, and the per-worker [`LineSink`].
//!
//! One [`SharedFile`] per path, whoever writes it (merged logs: every instance, or stdout
//! and stderr into one file). Each holds the file and a buffer behind a std `Mutex`; a
//! line goes into the buffer whole under the lock, so lines never interleave. The
//! buffer reaches the file when the pump flushes (it has nothing more to read right
//! now), when it grows past [`BUFFER_CAP`], on `flush_all`/`reopen`, and on drop.
//!
//! A failed write (disk full, EIO) loses the buffered lines, which are counted in the
//! hub's dropped counter; nothing panics, and the next flush tries again.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::Stream;
use super::timestamp::{DateFormat, Stamper};
use crate::config::LogSpec;
use crate::sync::lock;

/// Buffered bytes per file before a write is forced, flush or not.
const BUFFER_CAP: usize = 64 * 1024;

/// After a failed open, lines are dropped without trying again for this long.
const REOPEN_RETRY: Duration = Duration::from_secs(1);

/// Paths used as they are, never given an instance suffix.
const UNSUFFIXED: [&str; 3] = ["/dev/null", "/dev/stdout", "/dev/stderr"];

/// The file an instance writes, by PM2's rule: unless `merge`, `-<instance>` goes before
/// the extension (`logs/api-out.log` → `logs/api-out-0.log`, `logs/api` → `logs/api-0`).
/// `/dev/null`, `/dev/stdout` and `/dev/stderr` are never renamed.
pub fn instance_log_path(base: &Path, instance: u32, merge: bool) -> PathBuf {
    if merge || UNSUFFIXED.iter().any(|p| base == Path::new(p)) {
        return base.to_path_buf();
    }
    let (Some(stem), Some(parent)) = (base.file_stem(), base.parent()) else {
        let mut s = base.as_os_str().to_owned();
        s.push(format!("-{instance}"));
        return s.into();
    };
    let mut name = stem.to_owned();
    name.push(format!("-{instance}"));
    if let Some(ext) = base.extension() {
        name.push(".");
        name.push(ext);
    }
    parent.join(name)
}

/// Creates the parent directories (0750) and opens `path` for appending (0640).
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

struct FileState {
    /// `None` after an open failed; retried at the next flush after `retry_at`.
    file: Option<File>,
    buf: Vec<u8>,
    /// The file ends inside a line (a write failed half-way): start the next write
    /// with a `\n` so later lines stay whole.
    torn: bool,
    retry_at: Option<Instant>,
}

struct SharedFile {
    path: PathBuf,
    state: Mutex<FileState>,
    dropped: DropCounter,
}

/// Lines lost, counted for the hub and for the file's path (so `describe` can show an
/// app its own losses).
#[derive(Clone)]
struct DropCounter {
    total: Arc<AtomicU64>,
    here: Arc<AtomicU64>,
}

impl DropCounter {
    /// Adds `n`; returns the hub's total before.
    fn add(&self, n: u64) -> u64 {
        self.here.fetch_add(n, Ordering::Relaxed);
        self.total.fetch_add(n, Ordering::Relaxed)
    }
}

impl SharedFile {
    fn open(path: PathBuf, dropped: DropCounter) -> io::Result<Self> {
        let file = open_append(&path)?;
        Ok(SharedFile {
            path,
            state: Mutex::new(FileState {
                file: Some(file),
                buf: Vec::with_capacity(BUFFER_CAP),
                torn: false,
                retry_at: None,
            }),
            dropped,
        })
    }

    /// Appends one whole line (`bytes` ends with its `\n`).
    fn append(&self, bytes: &[u8]) {
        let mut st = lock(&self.state);
        st.buf.extend_from_slice(bytes);
        if st.buf.len() >= BUFFER_CAP {
            self.flush_locked(&mut st);
        }
    }

    fn flush(&self) {
        let mut st = lock(&self.state);
        self.flush_locked(&mut st);
    }

    fn flush_locked(&self, st: &mut FileState) {
        if st.buf.is_empty() {
            return;
        }
        if st.file.is_none() && st.retry_at.is_none_or(|t| Instant::now() >= t) {
            match open_append(&self.path) {
                Ok(f) => {
                    st.file = Some(f);
                    st.retry_at = None;
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open log file");
                    st.retry_at = Some(Instant::now() + REOPEN_RETRY);
                }
            }
        }
        let Some(file) = st.file.as_mut() else {
            self.dropped.add(count_lines(&st.buf));
            st.buf.clear();
            return;
        };
        let healing = st.torn;
        if healing {
            st.buf.insert(0, b'\n');
        }
        let mut written = 0;
        let mut failure = None;
        while written < st.buf.len() {
            match file.write(&st.buf[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            // The healing `\n` is not a line of anyone's.
            let lost_from = written.max(usize::from(healing));
            let lost = count_lines(&st.buf[lost_from..]);
            let before = self.dropped.add(lost);
            if before == 0 {
                tracing::warn!(path = %self.path.display(), error = %e, "log write failed; dropping lines");
            }
            st.torn = if written > 0 {
                st.buf[written - 1] != b'\n'
            } else {
                healing
            };
        } else {
            st.torn = false;
        }
        st.buf.clear();
    }

    /// Flushes to the current file, then replaces it with a fresh open of the path.
    fn reopen(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.flush_locked(&mut st);
        match open_append(&self.path) {
            Ok(f) => {
                st.file = Some(f);
                st.retry_at = None;
                st.torn = false;
                Ok(())
            }
            Err(e) => {
                st.file = None;
                st.retry_at = Some(Instant::now() + REOPEN_RETRY);
                Err(io::Error::new(
                    e.kind(),
                    format!("reopening {}: {e}", self.path.display()),
                ))
            }
        }
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let mut st = std::mem::replace(
            self.state.get_mut().unwrap_or_else(|p| p.into_inner()),
            FileState {
                file: None,
                buf: Vec::new(),
                torn: false,
                retry_at: None,
            },
        );
        self.flush_locked(&mut st);
    }
}

struct HubInner {
    console: bool,
    /// Live copies of every line for `drover logs --follow`; costs nothing while nobody
    /// subscribes.
    followers: tokio::sync::broadcast::Sender<Arc<FollowedLine>>,
    /// Open files by path; a file closes when its last sink is dropped.
    files: Mutex<HashMap<PathBuf, Weak<SharedFile>>>,
    dropped: Arc<AtomicU64>,
    /// Lines lost per file path, kept after the file closes.
    dropped_by_path: Mutex<HashMap<PathBuf, Arc<AtomicU64>>>,
}

/// The supervisor's log writer: hands out one [`LineSink`] per worker stream, sharing one
/// open file per path. Cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for LogHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHub")
            .field("console", &self.inner.console)
            .field("dropped", &self.dropped_lines())
            .finish_non_exhaustive()
    }
}

impl LogHub {
    /// `console`: also mirror every line to our stdout (`Out`) or stderr (`Err`) as
    /// `name#instance | line`, as `drover run` in the foreground does.
    pub fn new(console: bool) -> Self {
        LogHub {
            inner: Arc::new(HubInner {
                console,
                followers: tokio::sync::broadcast::channel(FOLLOW_BUFFER).0,
                files: Mutex::new(HashMap::new()),
                dropped: Arc::new(AtomicU64::new(0)),
                dropped_by_path: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A sink for one worker stream of app `app`, as its `logs` say: the stream's own
    /// file (`out_file` or `error_file`), and `log_file` (PM2's file of both streams),
    /// which gets every line too; the instance suffix is applied here
    /// ([`instance_log_path`]). Fails if the date format is invalid or a file cannot be
    /// created; the caller must then still drain the pipe, or the worker blocks when it
    /// fills: a sink for `/dev/null` never fails on the file (it opens none) and still
    /// mirrors to the console.
    pub fn sink(
        &self,
        app: &str,
        instance: u32,
        stream: Stream,
        logs: &LogSpec,
    ) -> io::Result<LineSink> {
        let path = match stream {
            Stream::Out => &logs.out_file,
            Stream::Err => &logs.error_file,
        };
        let merge = logs.merge;
        let stamper = logs
            .date_format
            .as_deref()
            .map(|f| {
                DateFormat::parse(f)
                    .map(Stamper::new)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
            })
            .transpose()?;
        let open = |path: &Path| {
            let path = instance_log_path(path, instance, merge);
            if path == Path::new("/dev/null") {
                Ok(None)
            } else {
                self.shared_file(path).map(Some)
            }
        };
        let file = open(path)?;
        let combined = logs.log_file.as_deref().map(open).transpose()?.flatten();
        let follow = Follow {
            tx: self.inner.followers.clone(),
            app: Arc::from(app),
            instance,
            stream,
        };
        let console = self.inner.console.then(|| Console {
            stream,
            label: format!("{app}#{instance} | ").into_bytes(),
            buf: Vec::new(),
        });
        Ok(LineSink {
            file,
            combined,
            console,
            follow,
            stamper,
            line: Vec::with_capacity(256),
        })
    }

    fn shared_file(&self, path: PathBuf) -> io::Result<Arc<SharedFile>> {
        // One key per file however it is spelled relative to our cwd.
        let path = std::path::absolute(&path).unwrap_or(path);
        let mut files = lock(&self.inner.files);
        if let Some(f) = files.get(&path).and_then(Weak::upgrade) {
            return Ok(f);
        }
        files.retain(|_, w| w.strong_count() > 0);
        let here = lock(&self.inner.dropped_by_path)
            .entry(path.clone())
            .or_default()
            .clone();
        let counter = DropCounter {
            total: self.inner.dropped.clone(),
            here,
        };
        let f = SharedFile::open(path.clone(), counter).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening log file {}: {e}", path.display()),
            )
        })?;
        let f = Arc::new(f);
        files.insert(path, Arc::downgrade(&f));
        Ok(f)
    }

    fn live_files(&self) -> Vec<Arc<SharedFile>> {
        let mut files = lock(&self.inner.files);
        files.retain(|_, w| w.strong_count() > 0);
        files.values().filter_map(Weak::upgrade).collect()
    }

    /// Flushes, closes and reopens every open file (after logrotate moved them). Tries
    /// every file; returns the first error. A file that failed to reopen is retried at
    /// later flushes, its lines counted as dropped meanwhile.
    pub fn reopen(&self) -> io::Result<()> {
        let mut first_err = None;
        for f in self.live_files() {
            if let Err(e) = f.reopen() {
                tracing::warn!(error = %e, "log reopen failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes every buffered line to its file.
    pub fn flush_all(&self) {
        for f in self.live_files() {
            f.flush();
        }
    }

    /// Every line written from now on, as it is written. A follower that falls more than
    /// FOLLOW_BUFFER lines behind skips ahead (it sees `Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<FollowedLine>> {
        self.inner.followers.subscribe()
    }

    /// Lines lost to write errors since the hub was made.
    pub fn dropped_lines(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Lines lost writing to this file (as configured, with the instance suffix).
    pub fn dropped_lines_in(&self, path: &Path) -> u64 {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        lock(&self.inner.dropped_by_path)
            .get(&path)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// How many lines a `logs --follow` client may fall behind before it skips ahead.
const FOLLOW_BUFFER: usize = 4096;

/// One line as a follower sees it.
#[derive(Debug, Clone)]
pub struct FollowedLine {
    pub app: Arc<str>,
    pub instance: u32,
    pub stream: Stream,
    /// When the supervisor read it.
    pub at: chrono::DateTime<chrono::Local>,
    /// The line as written in the file (with its `log_date_format` prefix), without
    /// its newline (lossy UTF-8).
    pub text: String,
}

struct Follow {
    tx: tokio::sync::broadcast::Sender<Arc<FollowedLine>>,
    app: Arc<str>,
    instance: u32,
    stream: Stream,
}

impl Follow {
    fn send(&self, line: &[u8]) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(Arc::new(FollowedLine {
            app: self.app.clone(),
            instance: self.instance,
            stream: self.stream,
            at: chrono::Local::now(),
            text: String::from_utf8_lossy(line).into_owned(),
        }));
    }
}

struct Console {
    stream: Stream,
    /// `name#instance | `
    label: Vec<u8>,
    buf: Vec<u8>,
}

impl Console {
    /// One write of the whole line under the stream's lock. Errors (closed terminal,
    /// EPIPE) are ignored: the console is a mirror, the file is the record.
    fn write(&mut self, line: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.label);
        self.buf.extend_from_slice(line);
        let _ = match self.stream {
            Stream::Out => io::stdout().lock().write_all(&self.buf),
            Stream::Err => io::stderr().lock().write_all(&self.buf),
        };
    }
}

/// Where one worker stream's lines go: its (possibly shared) file, the app's combined
/// file of both streams, and the console when the hub mirrors. Made by
/// [`LogHub::sink`], driven by [`pump`](super::pump).
pub struct LineSink {
    file: Option<Arc<SharedFile>>,
    /// PM2's `log_file`, shared with the worker's other stream (and, merged, with the
    /// other instances): each line goes in whole under its lock, as in `file`.
    combined: Option<Arc<SharedFile>>,
    console: Option<Console>,
    follow: Follow,
    stamper: Option<Stamper>,
    /// The line being assembled: `<timestamp>: ` + text + `\n`.
    line: Vec<u8>,
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSink")
            .field("path", &self.file.as_ref().map(|f| &f.path))
            .field("combined", &self.combined.as_ref().map(|f| &f.path))
            .field("console", &self.console.is_some())
            .field("timestamped", &self.stamper.is_some())
            .finish()
    }
}

impl LineSink {
    /// Writes one line (without its `\n`; one is added), prefixed with the timestamp
    /// when the sink has a date format. Never fails: a lost line is counted.
    pub fn write_line(&mut self, line: &[u8]) {
        self.line.clear();
        if let Some(stamper) = &mut self.stamper {
            stamper.stamp(&mut self.line);
            self.line.extend_from_slice(b": ");
        }
        self.line.extend_from_slice(line);
        self.line.push(b'\n');
        for file in self.file.iter().chain(&self.combined) {
            file.append(&self.line);
        }
        if let Some(console) = &mut self.console {
            console.write(&self.line);
        }
        // As written in the file, timestamp prefix included: a followed line looks as
        // the same line does read back from the file.
        self.follow.send(&self.line[..self.line.len() - 1]);
    }

    /// Pushes buffered lines of this sink's files (and of the other writers of a merged
    /// or combined file) to the kernel.
    pub fn flush(&mut self) {
        for file in self.file.iter().chain(&self.combined) {
            file.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::pump;
    use std::collections::HashMap;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Logs where both streams go to `path`, and no combined file.
    fn spec(path: &Path, merge: bool, date_format: Option<&str>) -> LogSpec {
        LogSpec {
            out_file: path.to_path_buf(),
            error_file: path.to_path_buf(),
            log_file: None,
            merge,
            date_format: date_format.map(str::to_owned),
        }
    }

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<LogHub>();
        send::<LineSink>();
    }

    #[test]
    fn instance_path_table() {
        let cases: &[(&str, u32, bool, &str)] = &[
            ("logs/api-out.log", 0, false, "logs/api-out-0.log"),
            ("logs/api-out.log", 12, false, "logs/api-out-12.log"),
            ("logs/api-out.log", 3, true, "logs/api-out.log"),
            ("/var/log/api", 1, false, "/var/log/api-1"),
            ("api.log", 2, false, "api-2.log"),
            ("api", 2, false, "api-2"),
            ("/a/archive.tar.gz", 0, false, "/a/archive.tar-0.gz"),
            ("/a/.hidden", 0, false, "/a/.hidden-0"),
            ("/a.d/out", 4, false, "/a.d/out-4"),
            ("/dev/null", 5, false, "/dev/null"),
            ("/dev/stdout", 5, false, "/dev/stdout"),
            ("/dev/shm/api.log", 5, false, "/dev/shm/api-5.log"),
        ];
        for &(base, i, merge, want) in cases {
            assert_eq!(
                instance_log_path(Path::new(base), i, merge),
                PathBuf::from(want),
                "{base} #{i} merge={merge}"
            );
        }
    }

    #[test]
    fn creates_dirs_appends_and_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("a/b/api-out.log");
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        std::fs::write(dir.path().join("a/b/api-out-1.log"), "old\n").unwrap();
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 1, Stream::Out, &spec(&base, false, Some("[T]YYYY")))
            .unwrap();
        sink.write_line(b"hello");
        sink.write_line(b"\xff\xfe");
        sink.flush();
        let got = std::fs::read(dir.path().join("a/b/api-out-1.log")).unwrap();
        let year = chrono::Local::now().format("%Y").to_string();
        let want = format!("old\nT{year}: hello\nT{year}: ").into_bytes();
        assert_eq!(&got[..want.len()], &want[..]);
        assert_eq!(&got[want.len()..], b"\xff\xfe\n");

        let deep = dir.path().join("x/y/z/err.log");
        hub.sink("api", 0, Stream::Err, &spec(&deep, true, None))
            .unwrap();
        assert!(deep.exists());
        assert!(
            hub.sink("api", 0, Stream::Err, &spec(&deep, true, Some("YYYY\n")))
                .is_err()
        );
    }

    /// `drover logs` shows a followed line as the file has it: with the timestamp.
    #[test]
    fn a_followed_line_is_the_line_as_written_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("api-out.log");
        let hub = LogHub::new(false);
        let mut followed = hub.subscribe();
        for (date_format, instance) in [(Some("[at] YYYY"), 0), (None, 1)] {
            let mut sink = hub
                .sink(
                    "api",
                    instance,
                    Stream::Out,
                    &spec(&base, false, date_format),
                )
                .unwrap();
            sink.write_line(b"hello");
            sink.flush();
            let file = std::fs::read_to_string(instance_log_path(&base, instance, false)).unwrap();
            let line = followed.try_recv().unwrap();
            assert_eq!(format!("{}\n", line.text), file);
            assert_eq!(line.instance, instance);
        }
        let year = chrono::Local::now().format("%Y").to_string();
        let stamped = std::fs::read_to_string(instance_log_path(&base, 0, false)).unwrap();
        assert_eq!(stamped, format!("at {year}: hello\n"));
    }

    #[test]
    fn one_handle_per_path_and_close_on_last_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merged.log");
        let hub = LogHub::new(false);
        let a = hub
            .sink("api", 0, Stream::Out, &spec(&path, true, None))
            .unwrap();
        let b = hub
            .sink("api", 1, Stream::Err, &spec(&path, true, None))
            .unwrap();
        assert!(Arc::ptr_eq(
            a.file.as_ref().unwrap(),
            b.file.as_ref().unwrap()
        ));
        drop((a, b));
        assert!(hub.live_files().is_empty());
        let mut c = hub
            .sink("api", 2, Stream::Out, &spec(&path, true, None))
            .unwrap();
        c.write_line(b"buffered until drop");
        drop(c);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "buffered until drop\n"
        );
    }

    #[test]
    fn two_pumps_into_one_merged_file_concurrently() {
        const LINES: usize = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merged.log");
        let hub = LogHub::new(false);
        let mut threads = Vec::new();
        for (i, tag) in ["alpha", "beta"].into_iter().enumerate() {
            let sink = hub
                .sink("api", i as u32, Stream::Out, &spec(&path, true, None))
                .unwrap();
            threads.push(std::thread::spawn(move || {
                // Each pump on its own thread and runtime: truly parallel writers.
                let (rx, tx) = nix::unistd::pipe().unwrap();
                let writer = std::thread::spawn(move || {
                    let mut tx = std::io::BufWriter::with_capacity(3000, File::from(tx));
                    for n in 0..LINES {
                        let pad = "x".repeat(n % 97);
                        writeln!(tx, "{tag} {n} {pad}").unwrap();
                    }
                });
                let stats = rt().block_on(async move {
                    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rx).unwrap();
                    pump(rx, sink).await
                });
                writer.join().unwrap();
                stats
            }));
        }
        for t in threads {
            assert_eq!(t.join().unwrap().lines, LINES as u64);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen: HashMap<&str, Vec<bool>> = HashMap::new();
        let mut count = 0;
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            let (tag, n, pad) = (parts.next().unwrap(), parts.next(), parts.next());
            let n: usize = n
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("torn line {line:?}"));
            assert!(tag == "alpha" || tag == "beta", "torn line {line:?}");
            assert_eq!(pad.unwrap(), "x".repeat(n % 97), "torn line {line:?}");
            let marks = seen.entry(tag).or_insert_with(|| vec![false; LINES]);
            assert!(!marks[n], "duplicate line {line:?}");
            marks[n] = true;
            count += 1;
        }
        assert_eq!(count, 2 * LINES);
        assert!(seen.values().all(|m| m.iter().all(|&b| b)));
        assert_eq!(hub.dropped_lines(), 0);
    }

    #[test]
    fn disk_full_counts_dropped_lines_and_keeps_going() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let hub = LogHub::new(false);
        let Ok(sink) = hub.sink(
            "api",
            0,
            Stream::Out,
            &spec(Path::new("/dev/full"), true, None),
        ) else {
            return; // not writable in this sandbox
        };
        let input: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let stats = rt().block_on(pump(&input[..], sink));
        assert_eq!(stats.lines, 10_000);
        assert_eq!(hub.dropped_lines(), 10_000);
        assert_eq!(
            hub.dropped_lines_in(Path::new("/dev/full")),
            10_000,
            "counted for its file"
        );
        assert_eq!(hub.dropped_lines_in(Path::new("/tmp/other.log")), 0);
    }

    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 0, Stream::Out, &spec(&path, true, None))
            .unwrap();
        sink.write_line(b"before");
        sink.flush();
        let rotated = dir.path().join("out.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.write_line(b"buffered at rotation");
        hub.reopen().unwrap();
        sink.write_line(b"after");
        hub.flush_all();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before\nbuffered at rotation\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");

        // A reopen that fails drops lines until the path can be opened again.
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path(), "a file where the directory was").unwrap();
        assert!(hub.reopen().is_err());
        sink.write_line(b"lost");
        sink.flush();
        assert_eq!(hub.dropped_lines(), 1);
        std::fs::remove_file(dir.path()).unwrap();
    }

    /// PM2's `log_file`: both streams' lines in one more file, whole, and each stream's
    /// lines still in its own file.
    #[test]
    fn a_combined_file_gets_every_line_of_both_streams_whole() {
        const LINES: usize = 5_000;
        let dir = tempfile::tempdir().unwrap();
        let (out, err, all) = (
            dir.path().join("out.log"),
            dir.path().join("err.log"),
            dir.path().join("all.log"),
        );
        let hub = LogHub::new(false);
        let logs = LogSpec {
            out_file: out,
            error_file: err,
            log_file: Some(all),
            merge: false,
            date_format: None,
        };
        let threads: Vec<_> = [(Stream::Out, "out"), (Stream::Err, "err")]
            .into_iter()
            .map(|(stream, tag)| {
                let mut sink = hub.sink("api", 0, stream, &logs).unwrap();
                std::thread::spawn(move || {
                    for n in 0..LINES {
                        sink.write_line(format!("{tag} {n} {}", "x".repeat(n % 300)).as_bytes());
                        if n % 7 == 0 {
                            sink.flush();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The instance suffix applies to the combined file as to the others (PM2's rule).
        let all = std::fs::read_to_string(dir.path().join("all-0.log")).unwrap();
        let mut next = HashMap::from([("out", 0), ("err", 0)]);
        for line in all.lines() {
            let mut parts = line.splitn(3, ' ');
            let tag = parts.next().unwrap();
            let n: usize = parts.next().unwrap().parse().expect("a whole line");
            assert_eq!(parts.next().unwrap(), "x".repeat(n % 300), "torn: {line:?}");
            let want = next
                .get_mut(tag)
                .unwrap_or_else(|| panic!("torn: {line:?}"));
            assert_eq!(n, *want, "each stream's lines in order");
            *want += 1;
        }
        assert_eq!(next, HashMap::from([("out", LINES), ("err", LINES)]));
        for (path, tag) in [("out-0.log", "out "), ("err-0.log", "err ")] {
            let text = std::fs::read_to_string(dir.path().join(path)).unwrap();
            assert_eq!(text.lines().count(), LINES);
            assert!(text.lines().all(|l| l.starts_with(tag)), "{path}");
        }
    }

    #[test]
    fn dev_null_writes_nothing() {
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink(
                "api",
                0,
                Stream::Out,
                &spec(Path::new("/dev/null"), false, None),
            )
            .unwrap();
        assert!(sink.file.is_none());
        sink.write_line(b"gone");
        sink.flush();
        assert_eq!(hub.dropped_lines(), 0);
    }
}
