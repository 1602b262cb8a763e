//! `list`: every worker, from the slots' published status (no slot is asked).

use std::time::Instant;

use super::Reply;
use crate::protocol::{Response, RestartCauses, WorkerInfo};
use crate::supervisor::Supervisor;
use crate::supervisor::policy::{self, Status};
use crate::sync::lock;

impl Supervisor {
    pub(super) fn list(&self) -> Reply {
        Ok(Response::Workers {
            workers: self.workers(None),
        })
    }

    /// Every worker, or those of `only` (ids).
    pub(super) fn workers(&self, only: Option<&[u32]>) -> Vec<WorkerInfo> {
        let now = Instant::now();
        let mut out = Vec::new();
        for app in &self.apps {
            let listen = app.listeners.get().map(|l| lock(l).bound().to_string());
            for slot in &app.slots {
                if only.is_some_and(|ids| !ids.contains(&slot.id)) {
                    continue;
                }
                let status = slot.handle.status.borrow().clone();
                let usage = status
                    .pid
                    .map(|pid| self.shared.usage_of(pid))
                    .unwrap_or_default();
                out.push(WorkerInfo {
                    id: slot.id,
                    name: app.spec.name.clone(),
                    instance: slot.handle.instance,
                    mode: app.spec.exec_mode.into(),
                    pid: status.pid.map(|p| p.as_raw() as u32),
                    status: status.status.into(),
                    restarts: status.restarts,
                    uptime_ms: status
                        .since
                        .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64),
                    cpu: usage.cpu,
                    memory: usage.rss,
                    listen: if status.at_rest { None } else { listen.clone() },
                    ready: status.ready,
                    health: status.health.clone(),
                    last_exit: status.last_exit.map(|e| e.to_string()),
                    errored_why: (status.status == Status::Errored)
                        .then(|| policy::errored_reason(&app.spec.restart)),
                    restarts_by_cause: {
                        let by = status.restarts_by_cause;
                        RestartCauses {
                            crash: by.crash,
                            memory: by.memory,
                            health: by.health,
                            reload: by.reload,
                            restart: by.restart,
                        }
                    },
                });
            }
        }
        out
    }
}
