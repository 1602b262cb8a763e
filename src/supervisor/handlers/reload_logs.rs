//! `reload-logs` (and SIGUSR1): reopen every log file (after logrotate moved them).

use super::{Failure, Reply, done};
use crate::supervisor::Supervisor;

impl Supervisor {
    pub(super) fn reload_logs(&self) -> Reply {
        match self.shared.logs().reopen() {
            Ok(()) => done("log files reopened"),
            Err(e) => Err(Failure::failed(format!("cannot reopen log files: {e}"))),
        }
    }

    /// SIGUSR1, logrotate(8)'s usual signal: reopen every log file, the outcome in the
    /// supervisor's log.
    pub(in crate::supervisor) fn reload_logs_logged(&self) {
        match self.reload_logs() {
            Ok(_) => tracing::info!("log files reopened"),
            Err(f) => tracing::warn!("{}", f.message),
        }
    }
}
