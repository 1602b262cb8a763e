//! `stop`: each targeted worker gets its kill_signal, then SIGKILL after kill_timeout.
//! The answer comes once every one is gone; meanwhile `list` shows them `stopping`.

use super::{Answer, Failure, done, plural};
use crate::protocol::Target;
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn stop(&mut self, target: &Target) -> Result<Answer, Failure> {
        let ids = self.resolve(target)?;
        self.refuse_if_deleting(&ids)?;
        let stopped = self.stop_slots(&ids);
        self.stopped_on_request
            .extend(ids.iter().map(|&id| (id, false)));
        let cap = self.stop_cap();
        let target = target.clone();
        Ok(Answer::Later(Box::pin(async move {
            let n = ids.len();
            let reply = match tokio::time::timeout(cap, stopped).await {
                Ok(superseded) if superseded.is_empty() => {
                    done(format!("stopped {target} ({n} worker{})", plural(n)))
                }
                Ok(superseded) => Err(Failure::failed(format!(
                    "stop of {target} superseded: {}",
                    superseded.join("; ")
                ))),
                Err(_) => Err(Failure::failed(format!(
                    "stop of {target}: workers still running {} ms after the kill signal",
                    cap.as_millis()
                ))),
            };
            (Tidy::ReleaseIdlePorts, reply)
        })))
    }
}
