//! `restart`: stop, then start each targeted worker on the same address. The answer
//! comes once every new worker is started (PM2's restart), never while an old one is
//! still `stopping`, so back-to-back restarts each replace the worker.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::{Failure, Later, done};
use crate::protocol::Target;
use crate::supervisor::slot::{Restarted, SlotMsg};
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn restart(
        &mut self,
        target: &Target,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Later, Failure> {
        let ids = self.resolve(target)?;
        self.refuse_if_deleting(&ids)?;
        if let Some(env) = env {
            self.replace_env(&ids, env);
        }
        let waits: Vec<_> = self
            .slots(&ids)
            .map(|slot| {
                let (done, wait) = oneshot::channel();
                let _ = slot.handle.tx.send(SlotMsg::Restart { done: Some(done) });
                wait
            })
            .collect();
        let cap = self.stop_cap();
        let target = target.clone();
        Ok(Box::pin(async move {
            let outcomes = tokio::time::timeout(cap, async {
                let mut restarted = Vec::new();
                let mut failed = Vec::new();
                for wait in waits {
                    match wait.await {
                        Ok(Ok(slot)) => restarted.push(slot),
                        Ok(Err(line)) => failed.push(line),
                        Err(_) => failed.push("a worker slot went away during the restart".into()),
                    }
                }
                (restarted, failed)
            })
            .await;
            let reply = match outcomes {
                Ok((restarted, failed)) if failed.is_empty() => done(said(&target, &restarted)),
                Ok((_, failed)) => Err(Failure::failed(format!(
                    "restart of {target}: {}",
                    failed.join("; ")
                ))),
                Err(_) => Err(Failure::failed(format!(
                    "restart of {target}: old workers still running {} ms after the kill signal",
                    cap.as_millis()
                ))),
            };
            (Tidy::Nothing, reply)
        }))
    }
}

/// `restarted web: web#0: pid 41 → 57, web#1: pid 42 → 58`, as `reload` says it; a
/// target that was all at rest (`drover start 0` of a stopped worker) was `started`.
fn said(target: &Target, slots: &[Restarted]) -> String {
    let started = slots.iter().all(|s| s.was_at_rest);
    let lines: Vec<String> = slots
        .iter()
        .map(|s| {
            let label = &s.label;
            match (s.old, s.new) {
                (Some(old), Some(new)) => format!("{label}: pid {old} → {new}"),
                (None, Some(new)) if started => format!("{label}: pid {new}"),
                (None, Some(new)) => format!("{label}: started pid {new}"),
                (_, None) => format!("{label}: waiting to restart"),
            }
        })
        .collect();
    let verb = if started { "started" } else { "restarted" };
    format!("{verb} {target}: {}", lines.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    fn slot(label: &str, was_at_rest: bool, old: Option<i32>, new: Option<i32>) -> Restarted {
        Restarted {
            label: label.into(),
            was_at_rest,
            old: old.map(Pid::from_raw),
            new: new.map(Pid::from_raw),
        }
    }

    #[test]
    fn a_restart_says_old_and_new_pids_and_a_stopped_target_is_started() {
        let web = Target::Name("web".into());
        assert_eq!(
            said(
                &web,
                &[
                    slot("web#0", false, Some(41), Some(57)),
                    slot("web#1", false, Some(42), Some(58))
                ]
            ),
            "restarted web: web#0: pid 41 → 57, web#1: pid 42 → 58"
        );
        assert_eq!(
            said(&Target::Id(0), &[slot("web#0", true, None, Some(60))]),
            "started 0: web#0: pid 60"
        );
        // Some ran, one was stopped; one now waits out a crash backoff.
        assert_eq!(
            said(
                &Target::All,
                &[
                    slot("web#0", false, Some(41), Some(57)),
                    slot("api#0", true, None, Some(70)),
                    slot("api#1", false, None, None)
                ]
            ),
            "restarted all: web#0: pid 41 → 57, api#0: started pid 70, api#1: waiting to restart"
        );
    }
}
