//! `delete`: stop the targeted workers, then drop them from the table (an app left
//! without workers goes, its port with it). While that runs the app is busy: other
//! changes to it are refused, and its workers show as `stopping`.

use super::{Answer, Failure, done, plural};
use crate::protocol::Target;
use crate::supervisor::{Pending, Supervisor, Tidy};

impl Supervisor {
    pub(super) fn delete(&mut self, target: &Target) -> Result<Answer, Failure> {
        let ids = self.resolve_with(target, true)?;
        self.refuse_if_deleting(&ids)?;
        for app in &mut self.apps {
            let mut all = true;
            for slot in &mut app.slots {
                if ids.contains(&slot.id) {
                    slot.leaving = true;
                } else {
                    all = false;
                }
            }
            if all {
                app.pending = Some(Pending::Deleting);
            }
        }
        let stopped = self.stop_slots(&ids);
        // Stopped on request too: their coming to rest before they leave the table is
        // no reason for `drover run` to exit.
        self.stopped_on_request
            .extend(ids.iter().map(|&id| (id, false)));
        let cap = self.stop_cap();
        let target = target.clone();
        Ok(Answer::Later(Box::pin(async move {
            let n = ids.len();
            let reply = match tokio::time::timeout(cap, stopped).await {
                Ok(_) => done(format!("deleted {target} ({n} worker{})", plural(n))),
                // Deleted all the same: the user asked for it to be gone.
                Err(_) => Err(Failure::failed(format!(
                    "deleted {target}, but some workers were still running {} ms after the kill signal",
                    cap.as_millis()
                ))),
            };
            (Tidy::Remove(ids), reply)
        })))
    }
}
