//! One error type for the whole CLI, mapped to exit codes in one place.

use std::process::ExitCode;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a malformed ecosystem file, a bad flag value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag combination that makes no sense.
    #[error("{0}")]
    Usage(String),
    /// The supervisor ran, and some workers ended in a crash loop.
    #[error("{} errored (crash loop): {}", .0.len(), .0.join(", "))]
    Errored(Vec<String>),
    /// The supervisor could not be reached, or refused the request.
    #[error(transparent)]
    Client(#[from] crate::ipc::client::ClientError),
    /// Anything the OS refused (bind, spawn, files).
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitCode::from(2),
            Error::Errored(_) => ExitCode::from(3),
            Error::Runtime(_) | Error::Client(_) => ExitCode::from(1),
        }
    }
}
