//! `start`: new apps are bound and started; a stopped app of the same name is started
//! again (PM2), with its new settings; a running one is reported as such.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Failure, Reply, done};
use crate::config::AppSpec;
use crate::protocol::ErrorKind;
use crate::supervisor::policy::Status;
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{NewApp, Supervisor};

impl Supervisor {
    pub(super) fn start(
        &mut self,
        apps: Vec<AppSpec>,
        env: BTreeMap<String, String>,
        update_env: bool,
    ) -> Reply {
        let mut fresh = Vec::new();
        let mut restarted = Vec::new();
        let mut running = Vec::new();
        let mut busy = Vec::new();
        for spec in apps {
            let Some(i) = self.app_index(&spec.name) else {
                fresh.push(NewApp {
                    spec,
                    env: env.clone(),
                });
                continue;
            };
            let app = &self.apps[i];
            if let Some(pending) = app.pending {
                busy.push(Failure::busy(&spec.name, pending).message);
                continue;
            }
            if app
                .slots
                .iter()
                .any(|s| s.handle.status.borrow().status == Status::Stopping)
            {
                busy.push(format!(
                    "{} is stopping; start it again once it is stopped",
                    spec.name
                ));
                continue;
            }
            if !app.slots.iter().all(|s| s.handle.status.borrow().at_rest) {
                running.push(spec.name);
                continue;
            }
            // A stopped app is started again (PM2), with its stored environment unless
            // --update-env.
            let new_env = if update_env {
                env.clone()
            } else {
                (*app.env).clone()
            };
            if app.spec.listen == spec.listen && app.spec.socket == spec.socket {
                restarted.push(spec.name.clone());
                self.start_stopped(i, spec, new_env);
            } else {
                // A new address: a new app in its place.
                for slot in self.apps.remove(i).slots {
                    slot.task.abort();
                }
                fresh.push(NewApp { spec, env: new_env });
            }
        }
        let started = self.add_apps(fresh)?;
        let mut parts = Vec::new();
        if !started.is_empty() {
            parts.push(format!("started {}", started.join(", ")));
        }
        if !restarted.is_empty() {
            parts.push(format!("restarted {}", restarted.join(", ")));
        }
        let nothing_done = parts.is_empty();
        if !running.is_empty() {
            parts.push(format!(
                "{} already running (use `drover restart`)",
                running.join(", ")
            ));
        }
        parts.extend(busy.iter().cloned());
        if nothing_done {
            let kind = if busy.is_empty() {
                ErrorKind::Exists
            } else {
                ErrorKind::Busy
            };
            return Err(Failure {
                kind,
                message: parts.join("; "),
            });
        }
        done(parts.join("; "))
    }

    /// Starts app `i`, whose every slot is at rest, with a new spec and environment on
    /// the same address, keeping its slots, ids and listener.
    fn start_stopped(&mut self, i: usize, spec: AppSpec, env: BTreeMap<String, String>) {
        let instances = spec.instances;
        let app = &mut self.apps[i];
        app.env = Arc::new(env);
        app.spec = Arc::new(spec);
        self.update_slots(i);
        let resting: Vec<u32> = self.apps[i].slots.iter().map(|s| s.id).collect();
        // At rest, so this changes the table at once: there is nothing to drain.
        let shrink = self.resize(i, instances);
        debug_assert!(shrink.is_none(), "an app at rest is resized at once");
        for slot in self.apps[i]
            .slots
            .iter()
            .filter(|s| resting.contains(&s.id))
        {
            let _ = slot.handle.tx.send(SlotMsg::Restart { done: None });
        }
    }
}
