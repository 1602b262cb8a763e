//! `reset`: PM2's `pm2 reset`: the restart counters of each targeted worker back to 0
//! (↺, and the unstable restarts in a row that lead to `errored`). Each slot resets its
//! own at once; the answer comes once every one has, so a `list` after it shows 0.

use tokio::sync::oneshot;

use super::{Answer, Failure, done, plural};
use crate::protocol::Target;
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn reset(&self, target: &Target) -> Result<Answer, Failure> {
        let ids = self.resolve(target)?;
        self.refuse_if_deleting(&ids)?;
        let waits: Vec<_> = self
            .slots(&ids)
            .map(|slot| {
                let (done, wait) = oneshot::channel();
                let _ = slot.handle.tx.send(SlotMsg::ResetCounters { done });
                wait
            })
            .collect();
        let target = target.clone();
        Ok(Answer::Later(Box::pin(async move {
            let n = waits.len();
            for wait in waits {
                // A slot that went away meanwhile has no counter left to reset.
                let _ = wait.await;
            }
            let reply = done(format!(
                "reset {target} ({n} worker{}): restarts 0",
                plural(n)
            ));
            (Tidy::Nothing, reply)
        })))
    }
}
