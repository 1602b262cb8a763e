//! Log files shared by the workers that write them, and the per-worker [`LineSink`].
//!
//! One [`SharedFile`] per path, whoever writes it (merged logs: every instance, or stdout
//! and stderr into one file). Each holds the file and a buffer behind a std `Mutex`; a
//! line goes into the buffer whole under the lock, so lines never interleave. The
//! buffer reaches the file when the pump flushes (it has nothing more to read right
//! now), when it grows past [`BUFFER_CAP`], on `flush_all`/`reopen`, and on drop.
//!
//! Rotation happens in the same place, under the same lock: the buffer is written in
//! chunks of whole lines, and when the next line would take the file past its
//! `max_size` (or a local midnight has passed, `daily`), the file is renamed
//! ([`rotation::rotated_path`]) and a new one opened before that line is written. So
//! every line is in exactly one file, whole, whoever writes it. Only renames and opens
//! happen here; gzip and retention are the hub's archiver thread's (`archive_loop`).
//!
//! A failed write (disk full, EIO) loses the buffered lines, which are counted in the
//! hub's dropped counter; nothing panics, and the next flush tries again.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Local};

use super::Stream;
use super::rotation::{self, write_all_counted};
use super::timestamp::{DateFormat, Stamper};
use crate::config::{LogRotation, LogSpec};
use crate::sync::lock;

/// Buffered bytes per file before a write is forced, flush or not.
const BUFFER_CAP: usize = 64 * 1024;

/// After a failed open (or rotation), it is not tried again for this long: lines are
/// dropped (or written on, past the size) meanwhile.
const REOPEN_RETRY: Duration = Duration::from_secs(1);

/// Longest the archiver sleeps while a file rotates daily: a clock that is stepped
/// (NTP, a suspended laptop) delays a midnight rotation by at most this.
const MIDNIGHT_RECHECK: Duration = Duration::from_secs(3600);

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
    /// Lines not yet written. Grown as lines come (up to about [`BUFFER_CAP`]) and
    /// kept after a flush: a file that never gets a line costs no buffer, which matters
    /// with a thousand per-instance files of quiet workers.
    buf: Vec<u8>,
    /// The file ends inside a line (a write failed half-way): start the next write
    /// with a `\n` so later lines stay whole.
    torn: bool,
    retry_at: Option<Instant>,
    /// How this file rotates (the settings of the sink made last: a reload's new
    /// settings apply to a file the old workers still write).
    rotation: Option<LogRotation>,
    /// Bytes in the file: its length when opened, plus what was written since.
    size: u64,
    /// A regular file at the path itself (not a link, a device, a pipe): only those
    /// are rotated.
    rotatable: bool,
    /// With `daily`: the local midnight after which the file rotates before its next
    /// line, and its stamp.
    due: Option<(SystemTime, DateTime<Local>)>,
    /// After a failed rotation: write on, past the size, until then.
    rotate_retry_at: Option<Instant>,
    /// The stamp and sequence of the last rotated name, so names only grow (two
    /// rotations in a second; a clock stepped back).
    last_rotated: Option<(String, u32)>,
}

impl FileState {
    fn new(rotation: Option<LogRotation>) -> Self {
        FileState {
            file: None,
            buf: Vec::new(),
            torn: false,
            retry_at: None,
            rotation,
            size: 0,
            rotatable: false,
            due: None,
            rotate_retry_at: None,
            last_rotated: None,
        }
    }

    /// Takes `file`, just opened at `path`, as the one written from now on.
    fn start(&mut self, file: File, path: &Path) {
        let meta = file.metadata().ok();
        self.size = meta.as_ref().map_or(0, |m| m.len());
        self.rotatable = meta.as_ref().is_some_and(|m| m.is_file())
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
        // A file that already holds lines is due at the midnight after its last one.
        let since = match meta.as_ref().and_then(|m| m.modified().ok()) {
            Some(modified) if self.size > 0 => DateTime::<Local>::from(modified),
            _ => Local::now(),
        };
        self.due = None;
        self.schedule_daily(since);
        self.file = Some(file);
        self.retry_at = None;
        self.torn = false;
    }

    fn schedule_daily(&mut self, since: DateTime<Local>) {
        if self.rotation.is_some_and(|r| r.daily) && self.due.is_none() {
            let at = rotation::next_midnight(&since);
            self.due = Some((SystemTime::from(at), at));
        }
    }

    fn set_rotation(&mut self, rotation: Option<LogRotation>) {
        self.rotation = rotation;
        if !rotation.is_some_and(|r| r.daily) {
            self.due = None;
        }
        self.schedule_daily(Local::now());
    }

    /// The size and settings to rotate by, when this file rotates at all now.
    fn rotating(&self) -> Option<LogRotation> {
        let backing_off = self.rotate_retry_at.is_some_and(|t| Instant::now() < t);
        self.rotation.filter(|_| self.rotatable && !backing_off)
    }
}

/// Work for the archiver thread.
#[derive(Debug)]
enum Job {
    /// A file of `base` was rotated: apply retention, gzip.
    Tidy {
        base: PathBuf,
        retain: u32,
        compress: bool,
    },
    /// A file now rotates daily: recompute the next midnight.
    Wake,
    /// Tells that everything before it is done.
    #[cfg(test)]
    Done(mpsc::Sender<()>),
}

/// The archiver thread: tidies rotated files (retention, gzip) as files rotate, and at
/// each local midnight rotates the daily files that no line has reached since. Holds
/// the hub weakly, so it ends once the hub and every file are gone (the queue closes).
fn archive_loop(jobs: &mpsc::Receiver<Job>, hub: &Weak<HubInner>) {
    loop {
        let next_daily = hub
            .upgrade()
            .and_then(|inner| LogHub { inner }.next_daily());
        let job = match next_daily {
            None => jobs
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                jobs.recv_timeout(wait.min(MIDNIGHT_RECHECK))
            }
        };
        let first = match job {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(inner) = hub.upgrade() {
                    LogHub { inner }.rotate_due();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Whatever else is queued too: a burst of rotations of one file is one tidy.
        let mut tidy: Vec<(PathBuf, u32, bool)> = Vec::new();
        #[cfg(test)]
        let mut done = Vec::new();
        for job in std::iter::once(first).chain(jobs.try_iter()) {
            match job {
                Job::Tidy {
                    base,
                    retain,
                    compress,
                } => {
                    tidy.retain(|(b, ..)| *b != base);
                    tidy.push((base, retain, compress));
                }
                Job::Wake => {}
                #[cfg(test)]
                Job::Done(tx) => done.push(tx),
            }
        }
        for (base, retain, compress) in tidy {
            if let Err(e) = rotation::tidy(&base, retain, compress) {
                tracing::warn!(path = %base.display(), error = %e, "cannot tidy rotated log files");
            }
        }
        #[cfg(test)]
        for tx in done {
            let _ = tx.send(());
        }
    }
}

struct SharedFile {
    path: PathBuf,
    state: Mutex<FileState>,
    dropped: DropCounter,
    archiver: mpsc::Sender<Job>,
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
    fn open(
        path: PathBuf,
        rotation: Option<LogRotation>,
        dropped: DropCounter,
        archiver: mpsc::Sender<Job>,
    ) -> io::Result<Self> {
        let file = open_append(&path)?;
        let mut state = FileState::new(rotation);
        state.start(file, &path);
        Ok(SharedFile {
            path,
            state: Mutex::new(state),
            dropped,
            archiver,
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
                Ok(f) => st.start(f, &self.path),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open log file");
                    st.retry_at = Some(Instant::now() + REOPEN_RETRY);
                }
            }
        }
        let buf = std::mem::take(&mut st.buf);
        // A midnight passed since the file was started: these lines start the new day's.
        if let Some((at, stamp)) = st.due
            && SystemTime::now() >= at
            && st.rotating().is_some()
        {
            if st.size > 0 {
                let _ = self.rotate(st, &stamp);
            } else {
                st.due = None;
                st.schedule_daily(Local::now());
            }
        }
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let n = self.chunk(st, rest);
            let Some(file) = st.file.as_mut() else {
                self.dropped.add(count_lines(rest));
                break;
            };
            if st.torn {
                // The `\n` that ends the torn line is not a line of anyone's.
                if let Err((_, e)) = write_all_counted(file, b"\n") {
                    self.lost(rest, e);
                    break;
                }
                st.torn = false;
                st.size += 1;
            }
            match write_all_counted(file, &rest[..n]) {
                Ok(()) => {
                    st.size += n as u64;
                    rest = &rest[n..];
                }
                Err((written, e)) => {
                    st.size += written as u64;
                    st.torn = written > 0 && rest[written - 1] != b'\n';
                    self.lost(&rest[written..], e);
                    break;
                }
            }
        }
        st.buf = buf;
        st.buf.clear();
    }

    /// Counts the lines of `unwritten` as dropped (a line cut by the failure too).
    fn lost(&self, unwritten: &[u8], e: io::Error) {
        let before = self.dropped.add(count_lines(unwritten));
        if before == 0 {
            tracing::warn!(path = %self.path.display(), error = %e, "log write failed; dropping lines");
        }
    }

    /// How many bytes of `rest` (whole lines, `\n` included) go into the current file
    /// next; rotates first when not even the next line fits. A line longer than
    /// max_size is written alone into a file.
    fn chunk(&self, st: &mut FileState, rest: &[u8]) -> usize {
        let Some(rot) = st.rotating().filter(|_| st.file.is_some()) else {
            return rest.len();
        };
        let fits = |size: u64| -> Option<usize> {
            let room = usize::try_from(rot.max_size.saturating_sub(size)).unwrap_or(usize::MAX);
            if rest.len() <= room {
                return Some(rest.len());
            }
            rest[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1)
        };
        if let Some(n) = fits(st.size) {
            return n;
        }
        if st.size > 0
            && self.rotate(st, &Local::now()).is_ok()
            && let Some(n) = fits(0)
        {
            return n;
        }
        rest.iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1)
    }

    /// Renames the file to its rotated name and starts a new one at the path, then has
    /// the archiver tidy. If the path no longer names our file (logrotate moved it),
    /// only the new file is opened. On failure the file is written on as it is, and
    /// rotation is not tried again for [`REOPEN_RETRY`].
    fn rotate(&self, st: &mut FileState, at: &DateTime<Local>) -> io::Result<()> {
        let result = self.rotate_inner(st, at);
        if let Err(e) = &result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot rotate log file");
            st.rotate_retry_at = Some(Instant::now() + REOPEN_RETRY);
        }
        result
    }

    fn rotate_inner(&self, st: &mut FileState, at: &DateTime<Local>) -> io::Result<()> {
        let ours = match (&st.file, std::fs::symlink_metadata(&self.path)) {
            (Some(file), Ok(at_path)) => file
                .metadata()
                .is_ok_and(|m| m.dev() == at_path.dev() && m.ino() == at_path.ino()),
            _ => false,
        };
        if ours {
            let target = self.free_name(st, at);
            std::fs::rename(&self.path, &target)?;
            if let Some(rot) = st.rotation {
                let _ = self.archiver.send(Job::Tidy {
                    base: self.path.clone(),
                    retain: rot.retain,
                    compress: rot.compress,
                });
            }
        }
        match open_append(&self.path) {
            Ok(file) => {
                st.start(file, &self.path);
                Ok(())
            }
            Err(e) => {
                st.file = None;
                st.retry_at = Some(Instant::now() + REOPEN_RETRY);
                Err(e)
            }
        }
    }

    /// A rotated name for a rotation at `at` that is free on disk and sorts after the
    /// last one given.
    fn free_name(&self, st: &mut FileState, at: &DateTime<Local>) -> PathBuf {
        let mut stamp = rotation::stamp(at);
        let mut seq = 0;
        if let Some((last, last_seq)) = &st.last_rotated
            && stamp <= *last
        {
            stamp = last.clone();
            seq = last_seq + 1;
        }
        loop {
            let path = rotation::rotated_path(&self.path, &stamp, seq);
            let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
            let mut gz = path.clone().into_os_string();
            gz.push(".gz");
            if !taken(&path) && !taken(Path::new(&gz)) {
                st.last_rotated = Some((stamp, seq));
                return path;
            }
            seq += 1;
        }
    }

    /// Rotates now if the file rotates daily, holds lines, and its midnight has passed
    /// (the archiver's midnight round, for files no line has reached since).
    fn rotate_if_due(&self) {
        let mut st = lock(&self.state);
        let Some((at, stamp)) = st.due else { return };
        if SystemTime::now() < at || st.rotating().is_none() {
            return;
        }
        self.flush_locked(&mut st);
        // The flush may have rotated already.
        if st.due.is_some_and(|(again, _)| again == at) {
            if st.size > 0 {
                let _ = self.rotate(&mut st, &stamp);
            } else {
                st.due = None;
                st.schedule_daily(Local::now());
            }
        }
    }

    /// When this file next rotates at midnight, if it does.
    fn next_due(&self) -> Option<SystemTime> {
        let st = lock(&self.state);
        st.rotating().and(st.due.map(|(at, _)| at))
    }

    /// Flushes to the current file, then replaces it with a fresh open of the path.
    fn reopen(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.flush_locked(&mut st);
        match open_append(&self.path) {
            Ok(f) => {
                st.start(f, &self.path);
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

    /// Empties the file (its buffered lines too), keeping it open.
    fn truncate(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.buf.clear();
        match &st.file {
            Some(file) => file.set_len(0)?,
            None => {
                OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.path)?;
            }
        }
        st.size = 0;
        st.torn = false;
        Ok(())
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        let mut st = std::mem::replace(
            self.state.get_mut().unwrap_or_else(|p| p.into_inner()),
            FileState::new(None),
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
    /// Lines each app's workers wrote, by stream (the metrics' count), kept after the
    /// app is gone so a name that comes back counts on.
    written: Mutex<HashMap<(String, Stream), Arc<AtomicU64>>>,
    /// The archiver thread's queue (each open file has a copy).
    archiver: mpsc::Sender<Job>,
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
    ///
    /// Starts the hub's archiver thread, which gzips and prunes rotated files and rotates
    /// daily files at midnight; it sleeps on its queue and ends with the hub and its files.
    pub fn new(console: bool) -> Self {
        let inner = Arc::new_cyclic(|hub: &Weak<HubInner>| {
            let (archiver, jobs) = mpsc::channel();
            let hub = hub.clone();
            if let Err(e) = std::thread::Builder::new()
                .name("drover-log-archiver".into())
                .spawn(move || archive_loop(&jobs, &hub))
            {
                tracing::warn!(error = %e, "cannot start the log archiver: rotated files will be neither compressed nor pruned");
            }
            HubInner {
                console,
                followers: tokio::sync::broadcast::channel(FOLLOW_BUFFER).0,
                files: Mutex::new(HashMap::new()),
                dropped: Arc::new(AtomicU64::new(0)),
                dropped_by_path: Mutex::new(HashMap::new()),
                written: Mutex::new(HashMap::new()),
                archiver,
            }
        });
        LogHub { inner }
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
                self.shared_file(path, logs.rotation).map(Some)
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
        let written = lock(&self.inner.written)
            .entry((app.to_owned(), stream))
            .or_default()
            .clone();
        Ok(LineSink {
            file,
            combined,
            console,
            follow,
            stamper,
            line: Vec::with_capacity(256),
            written,
        })
    }

    /// The open file at `path`, opened if it is not; it rotates by `rotation` from now on.
    fn shared_file(
        &self,
        path: PathBuf,
        rotation: Option<LogRotation>,
    ) -> io::Result<Arc<SharedFile>> {
        // One key per file however it is spelled relative to our cwd.
        let path = std::path::absolute(&path).unwrap_or(path);
        if rotation.is_some_and(|r| r.daily) {
            let _ = self.inner.archiver.send(Job::Wake);
        }
        let mut files = lock(&self.inner.files);
        if let Some(f) = files.get(&path).and_then(Weak::upgrade) {
            lock(&f.state).set_rotation(rotation);
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
        let f = SharedFile::open(path.clone(), rotation, counter, self.inner.archiver.clone())
            .map_err(|e| {
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

    /// Empties the log file at `path` (its buffered lines too; an open one stays open
    /// and starts again from size 0) and removes its rotated files. Returns whether the
    /// file existed and how many rotated files were removed.
    pub fn truncate(&self, path: &Path) -> io::Result<(bool, usize)> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let open = lock(&self.inner.files).get(&abs).and_then(Weak::upgrade);
        let existed = match open {
            Some(f) => f.truncate().map(|()| true),
            None => match OpenOptions::new().write(true).truncate(true).open(&abs) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }?;
        // A device or a link is no log file of ours: nothing was rotated from it.
        let regular = std::fs::symlink_metadata(&abs).map_or(true, |m| m.file_type().is_file());
        let removed = if regular {
            rotation::remove_all(&abs)?
        } else {
            0
        };
        Ok((existed, removed))
    }

    /// Rotates the daily files whose midnight has passed (and that hold lines).
    fn rotate_due(&self) {
        for f in self.live_files() {
            f.rotate_if_due();
        }
    }

    /// The next midnight a live file rotates at, if any rotates daily.
    fn next_daily(&self) -> Option<SystemTime> {
        self.live_files().iter().filter_map(|f| f.next_due()).min()
    }

    /// Returns once the archiver has done what was queued before.
    #[cfg(test)]
    fn archived(&self) {
        let (done, wait) = mpsc::channel();
        self.inner.archiver.send(Job::Done(done)).unwrap();
        wait.recv().unwrap();
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

    /// Lines the workers of app `app` wrote on `stream` since the hub was made (counted
    /// as read, whether or not a file took them).
    pub fn lines_written(&self, app: &str, stream: Stream) -> u64 {
        lock(&self.inner.written)
            .get(&(app.to_owned(), stream))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Lines lost writing to this file (as configured, with the instance suffix).
    pub fn dropped_lines_in(&self, path: &Path) -> u64 {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        lock(&self.inner.dropped_by_path)
            .get(&path)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Everything the hub has counted, for an in-place update to carry over.
    pub fn counts(&self) -> LogCounts {
        let load = |c: &Arc<AtomicU64>| c.load(Ordering::Relaxed);
        LogCounts {
            written: lock(&self.inner.written)
                .iter()
                .map(|((app, stream), c)| (app.clone(), *stream, load(c)))
                .collect(),
            dropped: lock(&self.inner.dropped_by_path)
                .iter()
                .map(|(path, c)| (path.clone(), load(c)))
                .collect(),
            dropped_total: self.dropped_lines(),
        }
    }

    /// Goes on counting from `counts` (what the previous image of the supervisor had
    /// counted): added to what this hub has counted so far.
    pub fn add_counts(&self, counts: LogCounts) {
        let mut written = lock(&self.inner.written);
        for (app, stream, n) in counts.written {
            written
                .entry((app, stream))
                .or_default()
                .fetch_add(n, Ordering::Relaxed);
        }
        let mut dropped = lock(&self.inner.dropped_by_path);
        for (path, n) in counts.dropped {
            dropped
                .entry(path)
                .or_default()
                .fetch_add(n, Ordering::Relaxed);
        }
        self.inner
            .dropped
            .fetch_add(counts.dropped_total, Ordering::Relaxed);
    }
}

/// What a [`LogHub`] has counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogCounts {
    /// Lines each app's workers wrote, by stream.
    pub written: Vec<(String, Stream, u64)>,
    /// Lines lost per file (absolute path, with the instance suffix).
    pub dropped: Vec<(PathBuf, u64)>,
    /// Lines lost in all.
    pub dropped_total: u64,
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
    /// The app's count of lines on this stream.
    written: Arc<AtomicU64>,
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
        self.written.fetch_add(1, Ordering::Relaxed);
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
            rotation: None,
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
    fn counts_carried_to_another_hub_go_on_from_where_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let before = LogHub::new(false);
        let mut out = before
            .sink(
                "api",
                0,
                Stream::Out,
                &spec(&dir.path().join("a.log"), false, None),
            )
            .unwrap();
        out.write_line(b"1");
        out.write_line(b"2");
        let mut full = before
            .sink(
                "api",
                0,
                Stream::Err,
                &spec(Path::new("/dev/full"), true, None),
            )
            .unwrap();
        full.write_line(b"lost");
        before.flush_all();
        let counts = before.counts();
        assert_eq!(before.dropped_lines_in(Path::new("/dev/full")), 1);
        assert_eq!(counts.dropped_total, 1);

        let after = LogHub::new(false);
        let mut out = after
            .sink(
                "api",
                0,
                Stream::Out,
                &spec(&dir.path().join("a.log"), false, None),
            )
            .unwrap();
        out.write_line(b"3");
        after.add_counts(counts);
        assert_eq!(after.lines_written("api", Stream::Out), 3);
        assert_eq!(after.lines_written("api", Stream::Err), 1);
        assert_eq!(after.dropped_lines_in(Path::new("/dev/full")), 1);
        assert_eq!(after.dropped_lines(), 1);
    }

    #[test]
    fn lines_are_counted_per_app_and_stream_also_when_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(false);
        let mut out0 = hub
            .sink(
                "api",
                0,
                Stream::Out,
                &spec(&dir.path().join("a.log"), false, None),
            )
            .unwrap();
        let mut out1 = hub
            .sink(
                "api",
                1,
                Stream::Out,
                &spec(&dir.path().join("a.log"), false, None),
            )
            .unwrap();
        let mut err = hub
            .sink(
                "api",
                0,
                Stream::Err,
                &spec(Path::new("/dev/null"), false, None),
            )
            .unwrap();
        let mut other = hub
            .sink(
                "web",
                0,
                Stream::Out,
                &spec(&dir.path().join("w.log"), false, None),
            )
            .unwrap();
        for _ in 0..3 {
            out0.write_line(b"x");
        }
        out1.write_line(b"y");
        err.write_line(b"e");
        err.write_line(b"e");
        other.write_line(b"w");
        assert_eq!(hub.lines_written("api", Stream::Out), 4);
        assert_eq!(hub.lines_written("api", Stream::Err), 2);
        assert_eq!(hub.lines_written("web", Stream::Out), 1);
        assert_eq!(hub.lines_written("web", Stream::Err), 0);
        assert_eq!(hub.lines_written("nobody", Stream::Out), 0);
        // A sink made again for the same app (a restarted worker) counts on.
        drop(out0);
        let mut again = hub
            .sink(
                "api",
                0,
                Stream::Out,
                &spec(&dir.path().join("a.log"), false, None),
            )
            .unwrap();
        again.write_line(b"z");
        assert_eq!(hub.lines_written("api", Stream::Out), 5);
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
            rotation: None,
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

    fn rotating(path: &Path, max_size: u64, retain: u32, compress: bool) -> LogSpec {
        LogSpec {
            rotation: Some(LogRotation {
                max_size,
                retain,
                daily: false,
                compress,
            }),
            ..spec(path, true, None)
        }
    }

    /// The current file and every rotated one of `base`, oldest first, gzips read back.
    fn all_files(base: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = rotation::list(base)
            .unwrap()
            .into_iter()
            .map(|r| {
                let mut bytes = Vec::new();
                if r.gz {
                    use std::io::Read;
                    flate2::read::MultiGzDecoder::new(File::open(&r.path).unwrap())
                        .read_to_end(&mut bytes)
                        .unwrap();
                } else {
                    bytes = std::fs::read(&r.path).unwrap();
                }
                (r.path, bytes)
            })
            .collect();
        if let Ok(bytes) = std::fs::read(base) {
            files.push((base.to_path_buf(), bytes));
        }
        files
    }

    /// Two writers into one merged file that rotates every 4 KiB: every line is in
    /// exactly one file, whole, no file is past the size, and the files in name order
    /// hold each writer's lines in order.
    #[test]
    fn rotation_under_two_writers_keeps_every_line_whole_in_one_file() {
        const LINES: usize = 20_000;
        const MAX: u64 = 4096;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merged.log");
        let hub = LogHub::new(false);
        let threads: Vec<_> = ["alpha", "beta"]
            .into_iter()
            .enumerate()
            .map(|(i, tag)| {
                let mut sink = hub
                    .sink(
                        "api",
                        i as u32,
                        Stream::Out,
                        &rotating(&path, MAX, 100_000, false),
                    )
                    .unwrap();
                std::thread::spawn(move || {
                    for n in 0..LINES {
                        sink.write_line(format!("{tag} {n} {}", "x".repeat(n % 150)).as_bytes());
                        if n % 13 == 0 {
                            sink.flush();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        hub.archived();
        let files = all_files(&path);
        assert!(files.len() > 500, "{} files", files.len());
        let mut next = HashMap::from([("alpha", 0), ("beta", 0)]);
        for (file, bytes) in &files {
            assert!(
                bytes.len() as u64 <= MAX,
                "{} is {} bytes",
                file.display(),
                bytes.len()
            );
            assert!(
                bytes.ends_with(b"\n"),
                "{} ends inside a line",
                file.display()
            );
            for line in std::str::from_utf8(bytes).unwrap().lines() {
                let mut parts = line.splitn(3, ' ');
                let tag = parts.next().unwrap();
                let n: usize = parts.next().unwrap().parse().expect("a whole line");
                assert_eq!(parts.next().unwrap(), "x".repeat(n % 150), "torn: {line:?}");
                let want = next
                    .get_mut(tag)
                    .unwrap_or_else(|| panic!("torn: {line:?}"));
                assert_eq!(n, *want, "{tag}'s lines in order, each once");
                *want += 1;
            }
        }
        assert_eq!(next, HashMap::from([("alpha", LINES), ("beta", LINES)]));
        assert_eq!(hub.dropped_lines(), 0);
    }

    /// A line longer than max_size is written whole, alone in its file.
    #[test]
    fn a_line_longer_than_the_size_goes_alone_into_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 0, Stream::Out, &rotating(&path, 100, 1000, false))
            .unwrap();
        let long = "L".repeat(250);
        for line in ["short one", &long, "short two", "short three"] {
            sink.write_line(line.as_bytes());
        }
        sink.flush();
        let files: Vec<String> = all_files(&path)
            .into_iter()
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(
            files,
            [
                "short one\n".to_owned(),
                format!("{long}\n"),
                "short two\nshort three\n".to_owned()
            ]
        );
    }

    /// Retention keeps the newest files, gzipped whole; the file that was there before
    /// counts (its size) and rotates first.
    #[test]
    fn retention_and_gzip_keep_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        std::fs::write(&path, "from before\n".repeat(100)).unwrap();
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 0, Stream::Out, &rotating(&path, 1000, 3, true))
            .unwrap();
        for n in 0..1000 {
            sink.write_line(format!("line {n:04}").as_bytes());
            if n % 10 == 0 {
                sink.flush();
            }
        }
        sink.flush();
        hub.archived();
        let rotated = rotation::list(&path).unwrap();
        assert_eq!(rotated.len(), 3, "{rotated:?}");
        assert!(rotated.iter().all(|r| r.gz), "{rotated:?}");
        let text: String = all_files(&path)
            .into_iter()
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .collect();
        let numbers: Vec<usize> = text
            .lines()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        // The newest 4 files (3 kept and the current one): the last lines, in order.
        assert!(numbers.len() > 200, "{}", numbers.len());
        assert_eq!(*numbers.last().unwrap(), 999);
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        // Leftovers of the temp files: none.
        let tmp = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(tmp, 0);
    }

    /// Daily rotation: once the midnight passed, the next line starts a new file, and
    /// the rotated one is named after that midnight. The time is injected: `due` is set
    /// to a moment already past, as it is once the clock reaches it.
    #[test]
    fn a_passed_midnight_rotates_before_the_next_line_or_on_the_archivers_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let mut logs = rotating(&path, 1 << 20, 30, false);
        logs.rotation.as_mut().unwrap().daily = true;
        let opened = Local::now();
        let mut sink = hub.sink("api", 0, Stream::Out, &logs).unwrap();
        let file = sink.file.clone().unwrap();
        let due = lock(&file.state).due.expect("a daily file has a midnight");
        assert!(due.0 > SystemTime::now());
        // (Either side of a midnight that passed while the sink was made.)
        assert!(
            due.1 == rotation::next_midnight(&opened)
                || due.1 == rotation::next_midnight(&Local::now())
        );
        let past = |hours: i64| {
            let at = Local::now() - chrono::TimeDelta::hours(hours);
            (SystemTime::from(at), at)
        };

        sink.write_line(b"yesterday");
        sink.flush();
        let midnight = past(1);
        lock(&file.state).due = Some(midnight);
        sink.write_line(b"today");
        sink.flush();
        let rotated = rotation::list(&path).unwrap();
        assert_eq!(rotated.len(), 1);
        assert_eq!(rotated[0].stamp, rotation::stamp(&midnight.1));
        assert_eq!(
            std::fs::read_to_string(&rotated[0].path).unwrap(),
            "yesterday\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "today\n");
        let next = lock(&file.state).due.unwrap();
        assert!(next.0 > SystemTime::now(), "the next midnight is ahead");

        // No line since: the archiver's midnight round rotates it all the same.
        lock(&file.state).due = Some(past(2));
        assert!(hub.next_daily().unwrap() <= SystemTime::now());
        hub.rotate_due();
        assert_eq!(rotation::list(&path).unwrap().len(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // An empty file is not rotated at midnight; its next midnight is set.
        lock(&file.state).due = Some(past(3));
        hub.rotate_due();
        assert_eq!(rotation::list(&path).unwrap().len(), 2);
        assert!(hub.next_daily().unwrap() > SystemTime::now());
    }

    /// A file logrotate(8) moved away is not renamed by our rotation: the new file at
    /// the path is started instead; `reopen` does the same at once.
    #[test]
    fn a_file_moved_away_by_someone_else_is_left_where_it_went() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let moved = dir.path().join("out.log.1");
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 0, Stream::Out, &rotating(&path, 20, 30, false))
            .unwrap();
        sink.write_line(b"0123456789");
        sink.flush();
        std::fs::rename(&path, &moved).unwrap();
        sink.write_line(b"abcdefghij");
        sink.flush();
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "0123456789\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abcdefghij\n");
        assert!(rotation::list(&path).unwrap().is_empty());
    }

    /// `flush`: the file is emptied and counts from 0 again, its rotated files go.
    #[test]
    fn truncate_empties_the_file_and_removes_the_rotated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let mut sink = hub
            .sink("api", 0, Stream::Out, &rotating(&path, 30, 30, false))
            .unwrap();
        for n in 0..10 {
            sink.write_line(format!("line {n}").as_bytes());
        }
        sink.flush();
        let before = rotation::list(&path).unwrap().len();
        assert!(before >= 2, "{before}");
        assert_eq!(hub.truncate(&path).unwrap(), (true, before));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // From size 0: three 7-byte lines fit in 30 bytes, no rotation.
        for n in 0..3 {
            sink.write_line(format!("again {n}").as_bytes());
        }
        sink.flush();
        assert!(rotation::list(&path).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "again 0\nagain 1\nagain 2\n"
        );
        // A file no sink has open.
        let other = dir.path().join("other.log");
        assert_eq!(hub.truncate(&other).unwrap(), (false, 0));
    }
}
