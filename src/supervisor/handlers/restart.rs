//! `restart`: stop, then start each targeted worker on the same address. The answer
//! comes once every new worker is started (PM2's restart), never while an old one is
//! still `stopping`, so back-to-back restarts each replace the worker.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::{Failure, Later, done, plural};
use crate::protocol::Target;
use crate::supervisor::slot::SlotMsg;
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
            let n = waits.len();
            let outcomes = tokio::time::timeout(cap, async {
                let mut failed = Vec::new();
                for wait in waits {
                    match wait.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(line)) => failed.push(line),
                        Err(_) => failed.push("a worker slot went away during the restart".into()),
                    }
                }
                failed
            })
            .await;
            let reply = match outcomes {
                Ok(failed) if failed.is_empty() => {
                    done(format!("restarted {target} ({n} worker{})", plural(n)))
                }
                Ok(failed) => Err(Failure::failed(format!(
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
