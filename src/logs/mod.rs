//! Worker output → log files.
//!
//! Each worker's stdout and stderr pipe is drained by a [`pump`] into a [`LineSink`]
//! made by the supervisor's [`LogHub`]. Lines are the unit: a line is written whole or
//! not at all, never interleaved with another worker's line, even in a merged file; a
//! pipe is drained to EOF so a crashing worker loses nothing.
//!
//! - `timestamp`: PM2/moment.js date formats (`YYYY-MM-DD HH:mm:ss Z`), compiled once.
//! - `lines`: the line splitter (64 KiB cap per line) and the async pump.
//! - `files`: one shared, buffered handle per path; per-instance naming; rotation at a
//!   line boundary; reopen; the dropped-lines counter; the optional `name#i | ` console
//!   mirror; the archiver thread (gzip, retention, midnight).
//! - `rotation`: rotated files' names, retention, gzip, the next local midnight.
//! - `own`: the supervisor's own `drover.log`, rotated the same way.
//!
//! ```no_run
//! # async fn demo(rx: tokio::net::unix::pipe::Receiver) -> std::io::Result<()> {
//! use drover::logs::{LogHub, Stream, pump};
//! let logs = drover::config::LogSpec {
//!     out_file: "logs/api-out.log".into(),
//!     error_file: "logs/api-error.log".into(),
//!     log_file: None,
//!     merge: false,
//!     date_format: Some("YYYY-MM-DD HH:mm:ss Z".into()),
//!     rotation: Some(drover::config::LogRotation::default()), // 10 MiB, 30 kept
//! };
//! let hub = LogHub::new(false);
//! let sink = hub.sink("api", 0, Stream::Out, &logs)?;   // writes logs/api-out-0.log
//! let stats = pump(rx, sink).await;                     // returns at EOF
//! # let _ = stats; Ok(()) }
//! ```

mod files;
mod lines;
pub mod own;
pub mod rotation;
pub mod timestamp;

pub use files::{FollowedLine, LineSink, LogCounts, LogHub, instance_log_path};
pub use lines::{LineSplitter, MAX_LINE, PumpStats, pump};
pub(crate) use lines::{PumpEnd, pump_until};
pub use timestamp::DateFormat;

/// Which of a worker's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Out,
    Err,
}
