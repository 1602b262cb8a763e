//! `reload`: rolling replacement from a task of its own: `parallel` slots at a time,
//! each replaced by a new worker that must be ready before the old one retires. Stops
//! at the first slot that fails, which keeps its old worker.

use std::collections::BTreeMap;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Failure, Later, plural};
use crate::protocol::{ErrorKind, Response, Target};
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::triggers::Trigger;
use crate::supervisor::{Supervisor, Tidy};

impl Supervisor {
    pub(super) fn reload(
        &mut self,
        target: &Target,
        parallel: u32,
        env: Option<BTreeMap<String, String>>,
    ) -> Result<Later, Failure> {
        let ids = self.resolve(target)?;
        self.refuse_if_deleting(&ids)?;
        if let Some(env) = env {
            self.replace_env(&ids, env);
        }
        let slots: Vec<mpsc::UnboundedSender<SlotMsg>> = self
            .apps
            .iter()
            .flat_map(|a| a.slots.iter())
            .filter(|s| ids.contains(&s.id))
            .map(|s| s.handle.tx.clone())
            .collect();
        let target = target.clone();
        let parallel = parallel.max(1) as usize;
        // A reload of everything is the service reloading (`ExecReload=drover reload
        // all`, SIGHUP): systemd hears RELOADING=1 now and READY=1 once it is over.
        let service = match target {
            Target::All => self.service.clone(),
            Target::Id(_) | Target::Name(_) | Target::Pattern(_) => None,
        };
        if let Some(service) = &service {
            service.reload_started(self.census());
        }
        let work = Box::pin(async move {
            let mut done = Vec::new();
            for batch in slots.chunks(parallel) {
                let (tx, mut rx) = mpsc::unbounded_channel();
                for slot in batch {
                    let _ = slot.send(SlotMsg::Reload {
                        done: Some(tx.clone()),
                    });
                }
                drop(tx);
                let mut failed = Vec::new();
                for _ in batch {
                    match rx.recv().await {
                        Some(Ok(line)) => done.push(line),
                        Some(Err(line)) => failed.push(line),
                        // A slot task that went away (deleted meanwhile).
                        None => failed.push("a worker slot went away during the reload".into()),
                    }
                }
                if !failed.is_empty() {
                    let message = format!(
                        "reload of {target} failed: {}; {} slot{} reloaded before it, the rest untouched",
                        failed.join("; "),
                        done.len(),
                        plural(done.len())
                    );
                    return (
                        Tidy::Nothing,
                        Err(Failure {
                            kind: ErrorKind::Failed,
                            message,
                        }),
                    );
                }
            }
            let message = format!("reloaded {target}: {}", done.join(", "));
            (Tidy::Nothing, Ok(Response::Done { message }))
        });
        Ok(match service {
            Some(service) => Box::pin(async move {
                let outcome = work.await;
                service.reload_finished();
                outcome
            }),
            None => work,
        })
    }

    /// SIGHUP: reload every app, the outcome in the supervisor's log.
    pub(in crate::supervisor) fn reload_all_logged(&mut self) {
        self.reload_logged(&Target::All);
    }

    /// An app's watch or schedule asks for its reload: done as `drover reload <app>`,
    /// unless the app is stopped (a change does not start it) or busy with another
    /// change (the next change or time will come).
    pub(in crate::supervisor) fn triggered(&mut self, trigger: Trigger) {
        let name = trigger.app();
        let Some(i) = self.app_index(name) else {
            return; // deleted meanwhile
        };
        let app = &self.apps[i];
        if self.shutting_down || app.pending.is_some() {
            return;
        }
        // A reload now would keep the update waiting: the next image does it.
        if let Some(run) = &mut self.update {
            if !run.held_back.iter().any(|a| a == name) {
                info!("{name}: {}: reloading after the update", trigger.reason());
                run.held_back.push(name.to_owned());
            }
            return;
        }
        if app.slots.iter().all(|s| s.handle.status.borrow().at_rest) {
            return;
        }
        info!("{name}: {}: reloading", trigger.reason());
        self.reload_logged(&Target::Name(name.to_owned()));
    }

    fn reload_logged(&mut self, target: &Target) {
        match self.reload(target, 1, None) {
            Ok(work) => {
                let op = self.ops.begin();
                tokio::spawn(async move {
                    let _op = op;
                    match work.await.1 {
                        Ok(Response::Done { message }) => info!("{message}"),
                        Ok(_) => {}
                        Err(f) => warn!("{}", f.message),
                    }
                });
            }
            Err(f) => warn!("{}", f.message),
        }
    }
}
