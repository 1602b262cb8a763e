//! `reload-logs`: reopen every log file (after logrotate moved them).

use super::{Failure, Reply, done};
use crate::supervisor::Supervisor;

impl Supervisor {
    pub(super) fn reload_logs(&self) -> Reply {
        match self.shared.logs().reopen() {
            Ok(()) => done("log files reopened"),
            Err(e) => Err(Failure::failed(format!("cannot reopen log files: {e}"))),
        }
    }
}
