//! One error type for the whole CLI, mapped to exit codes in one place: [`Error::code`]
//! and the table [`EXIT_STATUS`], which the README and `drover(1)` show.

use std::process::ExitCode;

use crate::config::ConfigError;
use crate::ipc::client::ClientError;
use crate::protocol::ErrorKind;

/// Every exit status drover uses, so a script can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    /// The operation did not succeed: a reload that kept the old workers, a stop or
    /// `kill` that timed out, something the OS refused.
    Failed = 1,
    /// A bad flag, a bad ecosystem file, a request that makes no sense.
    Usage = 2,
    /// `drover run` ended with an app `errored` (crash loop).
    Errored = 3,
    /// No app or worker matches the name or id.
    NotFound = 4,
    /// `start` of an app that is already running.
    Exists = 5,
    /// The supervisor cannot be reached: none runs, it is another user's, it does not
    /// answer, or it speaks another protocol version.
    Unreachable = 6,
    /// The app is in the middle of another change (a delete, a scale-down): retry.
    Busy = 7,
}

/// The table of [`Exit`], as `drover(1)` shows it (and the README repeats it).
pub const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the operation failed (a reload kept the old workers, a stop timed out, ...)
  2  usage or configuration error (a bad flag, a bad ecosystem file)
  3  drover run: an app ended errored (crash loop)
  4  no such app or worker
  5  the app already exists (start of a running app)
  6  the supervisor cannot be reached (none runs, another user's, shutting down)
  7  the app is busy with another change (a delete, a scale-down): retry";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a malformed ecosystem file, a bad flag value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag combination that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// The supervisor ran, and some workers ended in a crash loop.
    #[error("{} worker{} errored (crash loop): {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    Errored(Vec<String>),
    /// The supervisor could not be reached, or refused the request.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An operation that did not complete (e.g. `kill` that timed out).
    #[error("{0}")]
    Failed(String),
    /// Anything the OS refused (bind, spawn, files).
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl Error {
    pub fn code(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Usage(_) => Exit::Usage,
            Error::Errored(_) => Exit::Errored,
            Error::Failed(_) | Error::Runtime(_) => Exit::Failed,
            Error::Client(ClientError::Supervisor { kind, .. }) => match kind {
                ErrorKind::NotFound => Exit::NotFound,
                ErrorKind::Exists => Exit::Exists,
                ErrorKind::BadRequest => Exit::Usage,
                ErrorKind::Version => Exit::Unreachable,
                ErrorKind::Failed => Exit::Failed,
                ErrorKind::Busy => Exit::Busy,
                ErrorKind::ShuttingDown => Exit::Unreachable,
            },
            Error::Client(
                ClientError::NotRunning(_)
                | ClientError::Refused(_)
                | ClientError::Io(_)
                | ClientError::Protocol(_)
                | ClientError::SpawnFailed(_),
            ) => Exit::Unreachable,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table lists every code, each once, in order.
    #[test]
    fn the_table_names_every_exit_code() {
        let all = [
            Exit::Success,
            Exit::Failed,
            Exit::Usage,
            Exit::Errored,
            Exit::NotFound,
            Exit::Exists,
            Exit::Unreachable,
            Exit::Busy,
        ];
        let codes: Vec<u8> = EXIT_STATUS
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(codes, all.map(|e| e as u8));
    }
}
