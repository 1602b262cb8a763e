//! The supervisor's own log, `$DROVER_HOME/drover.log`, rotated.
//!
//! The CLI starts the background supervisor with drover.log (opened O_NOFOLLOW) as its
//! stdout and stderr, so its diagnostics and anything else it prints (a panic) land
//! there. [`writer`] gives tracing a writer for it: tracing-appender's non-blocking
//! worker (the control loop never waits on the disk for a log line; a full queue drops
//! lines rather than stall) in front of [`OwnLog`], which rotates the file by size with
//! the app logs' names (`drover__2024-05-01_13-45-10.log`), keeping [`RETAIN`].
//!
//! Why not tracing-appender's `rolling` appender: it opens its files with a plain
//! `O_CREAT` that follows a symlink planted at the name (drover.log is never opened
//! through one: README, tests/it/hardening.rs), it names the live file by its date so
//! there would be no drover.log to look at, and it rotates by time only, so a noisy
//! day could still fill a disk. Here a rotation renames drover.log and creates the new
//! one with `O_CREAT|O_EXCL|O_NOFOLLOW` (nothing already at the name, link or file, is
//! written through), then moves stdout and stderr onto it (`os::redirect_output`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use super::rotation;

/// drover.log is rotated before a line would take it past this.
pub const MAX_SIZE: u64 = 10 << 20;
/// Rotated drover.logs kept.
pub const RETAIN: u32 = 5;

/// Lines queued for the writer thread before new ones are dropped. tracing-appender's
/// default (128,000) allocates and touches its whole queue up front: 4 MB, a third of
/// an idle supervisor's memory, for a log that gets a few lines a minute. A burst this
/// long (a thousand workers crashing at once) still fits.
const QUEUED_LINES: usize = 8192;

/// tracing's writer for `log` (`$DROVER_HOME/drover.log`), when it is this process's
/// stderr; `None` otherwise (a terminal, journald, `drover run`), where stderr stays as
/// it is. Keep the guard for the life of the process: dropping it writes what is queued.
pub fn writer(log: &Path) -> Option<(OwnWriter, OwnLogGuard)> {
    let (worker, guard) = start(log)?;
    let writer = OwnWriter(Arc::new(RwLock::new(worker)));
    Some((
        writer.clone(),
        OwnLogGuard {
            writer,
            guard: Some(guard),
            path: log.to_path_buf(),
        },
    ))
}

fn start(log: &Path) -> Option<(NonBlocking, WorkerGuard)> {
    let own = OwnLog::adopt(log, MAX_SIZE, RETAIN)?;
    Some(
        NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUED_LINES)
            .thread_name("drover-log")
            .finish(own),
    )
}

/// tracing's writer for drover.log: a handle on the non-blocking worker of the moment
/// (see [`OwnLogGuard::flush`]).
#[derive(Clone)]
pub struct OwnWriter(Arc<RwLock<NonBlocking>>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OwnWriter {
    type Writer = NonBlocking;

    fn make_writer(&'a self) -> NonBlocking {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Keeps drover.log's worker thread; dropping it writes what is queued.
pub struct OwnLogGuard {
    writer: OwnWriter,
    guard: Option<WorkerGuard>,
    path: PathBuf,
}

impl OwnLogGuard {
    /// Writes every line queued (tracing-appender waits up to a second for it), then
    /// starts a new worker for the lines to come: before the exec of an in-place
    /// upgrade, which would otherwise lose what the worker thread had not written.
    pub fn flush(&mut self) {
        drop(self.guard.take());
        if let Some((worker, guard)) = start(&self.path) {
            *self.writer.0.write().unwrap_or_else(|p| p.into_inner()) = worker;
            self.guard = Some(guard);
        }
    }
}

/// Writes to stderr, which is the file at `path`, rotating it by size.
#[derive(Debug)]
pub struct OwnLog {
    path: PathBuf,
    max_size: u64,
    retain: u32,
    /// Bytes in the current file.
    size: u64,
    /// The stamp and sequence of the last rotated name.
    last: Option<(String, u32)>,
}

impl OwnLog {
    /// Takes charge of `path` if stderr is that very file (same device and inode, a
    /// regular file, no link at the path).
    pub fn adopt(path: &Path, max_size: u64, retain: u32) -> Option<OwnLog> {
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned().ok()?);
        let ours = stderr.metadata().ok()?;
        let at_path = std::fs::symlink_metadata(path).ok()?;
        let same = at_path.file_type().is_file()
            && ours.dev() == at_path.dev()
            && ours.ino() == at_path.ino();
        same.then(|| OwnLog {
            path: path.to_path_buf(),
            max_size,
            retain,
            size: ours.len(),
            last: None,
        })
    }

    /// Renames the file away, creates a new one, moves stdout and stderr onto it, and
    /// deletes the oldest rotated files beyond `retain`. When the path no longer holds
    /// our file (someone moved it), or a new file cannot be created, stderr stays as it
    /// is and the size count starts again, so this is tried once per `max_size`.
    fn rotate(&mut self) -> io::Result<()> {
        self.size = 0;
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned()?);
        let ours = stderr.metadata()?;
        let at_path = std::fs::symlink_metadata(&self.path)?;
        if ours.dev() != at_path.dev() || ours.ino() != at_path.ino() {
            return Ok(());
        }
        let target = self.free_name();
        std::fs::rename(&self.path, &target)?;
        let new = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path);
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                // Something took the name in between (a planted link): our file goes
                // back in its place (a rename replaces a link, never follows it).
                let _ = std::fs::rename(&target, &self.path);
                return Err(e);
            }
        };
        crate::os::redirect_output(&new)?;
        rotation::tidy(&self.path, self.retain, false)
    }

    fn free_name(&mut self) -> PathBuf {
        let mut stamp = rotation::stamp(&chrono::Local::now());
        let mut seq = 0;
        if let Some((last, last_seq)) = &self.last
            && stamp <= *last
        {
            stamp = last.clone();
            seq = last_seq + 1;
        }
        loop {
            let path = rotation::rotated_path(&self.path, &stamp, seq);
            if std::fs::symlink_metadata(&path).is_err() {
                self.last = Some((stamp, seq));
                return path;
            }
            seq += 1;
        }
    }
}

impl Write for OwnLog {
    /// One call per event (tracing formats a whole line, and the non-blocking worker
    /// hands it over as it came), so rotation falls between lines.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0
            && self.size.saturating_add(buf.len() as u64) > self.max_size
            && let Err(e) = self.rotate()
        {
            // Said in the file it is about, since tracing is what is writing.
            let _ = writeln!(
                io::stderr(),
                "drover: cannot rotate {}: {e}",
                self.path.display()
            );
        }
        let mut stderr = io::stderr().lock();
        stderr.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
