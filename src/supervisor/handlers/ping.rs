//! `ping`: the supervisor's pid, version and binary, when it started, and its last
//! in-place update, and where it serves its metrics.

use crate::protocol::{Response, UpdateInfo};
use crate::supervisor::Supervisor;

use super::Reply;

impl Supervisor {
    pub(super) fn ping(&self) -> Reply {
        let last_update = self.history.last().map(|r| {
            Box::new(UpdateInfo {
                id: r.id,
                at_ms: r.at_ms,
                from_version: r.from_version.clone(),
                from_binary: r.from_binary.display().to_string(),
                to_binary: r.to_binary.display().to_string(),
                running_version: r.running_version.clone(),
                took_ms: r.took_ms,
                failure: r.failure.clone(),
            })
        });
        Ok(Response::Pong {
            pid: std::process::id(),
            version: crate::upgrade::version().into(),
            binary: Some(self.binary.display().to_string()),
            started_at_ms: Some(self.started_at_ms),
            last_update,
            metrics: self
                .metrics
                .bound()
                .map(|addr| format!("http://{addr}/metrics")),
        })
    }
}
