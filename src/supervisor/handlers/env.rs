//! `env`: PM2's `pm2 env <id>`: the environment of one worker, as drover built it for
//! the process (the caller's environment at start, the app's env over it, and what
//! drover adds: instance_var, PORT, LISTEN_FDS…). The slot computes it with the function
//! its spawn uses, so what is shown is what the worker got. Nothing is masked (PM2
//! masks nothing): the control socket only answers the supervisor's own user and root.

use tokio::sync::oneshot;

use super::{Answer, Failure};
use crate::protocol::{ErrorKind, Response, Target};
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn env(&self, target: &Target) -> Result<Answer, Failure> {
        let ids = self.resolve(target)?;
        let [id] = ids[..] else {
            let list: Vec<String> = ids.iter().map(u32::to_string).collect();
            return Err(Failure {
                kind: ErrorKind::BadRequest,
                message: format!(
                    "{target} names {} workers (ids {}): give the id of one",
                    ids.len(),
                    list.join(", ")
                ),
            });
        };
        let (app, slot) = self
            .apps
            .iter()
            .find_map(|a| a.slots.iter().find(|s| s.id == id).map(|s| (a, s)))
            .expect("resolved ids are in the table");
        let name = app.spec.name.clone();
        let instance = slot.handle.instance;
        let (done, wait) = oneshot::channel();
        let _ = slot.handle.tx.send(SlotMsg::Environment { done });
        Ok(Answer::Later(Box::pin(async move {
            let reply = match wait.await {
                Ok(env) => Ok(Response::Env {
                    id,
                    app: name,
                    instance,
                    pid: env.pid.map(|p| p.as_raw() as u32),
                    vars: env.vars,
                }),
                Err(_) => Err(Failure::failed(format!(
                    "{name}#{instance}: the worker slot went away"
                ))),
            };
            (Tidy::Nothing, reply)
        })))
    }
}
