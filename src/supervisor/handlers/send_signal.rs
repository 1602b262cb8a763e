//! `send-signal`: PM2's `pm2 sendSignal SIGNAL target`: the signal to the process of
//! each targeted worker, the one `list` shows (not its process group: a gunicorn master
//! turns SIGHUP into a graceful reload of its own workers, which SIGHUP would kill).
//! Each slot signals its own worker, so a signal never reaches a pid the slot has
//! already seen exit; the answer says, worker by worker, what was signalled.

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::{Answer, Failure, done};
use crate::protocol::Target;
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn send_signal(&self, target: &Target, signal: Signal) -> Result<Answer, Failure> {
        let ids = self.resolve(target)?;
        let waits: Vec<_> = self
            .slots(&ids)
            .map(|slot| {
                let (done, wait) = oneshot::channel();
                let _ = slot.handle.tx.send(SlotMsg::Signal { signal, done });
                wait
            })
            .collect();
        let target = target.clone();
        Ok(Answer::Later(Box::pin(async move {
            let mut lines = Vec::new();
            let mut sent = 0;
            for wait in waits {
                match wait.await {
                    Ok(Ok(line)) => {
                        sent += 1;
                        lines.push(line);
                    }
                    Ok(Err(line)) => lines.push(line),
                    Err(_) => lines.push("a worker slot went away".into()),
                }
            }
            // Workers without a process are listed either way; only a signal that
            // reached nobody is a failure.
            let reply = if sent == 0 {
                Err(Failure::failed(format!(
                    "{signal} reached no worker of {target}: {}",
                    lines.join("; ")
                )))
            } else {
                done(lines.join("\n"))
            };
            (Tidy::Nothing, reply)
        })))
    }
}
