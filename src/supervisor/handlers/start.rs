//! `start`: new apps are bound and started; a stopped app of the same name is started
//! again (PM2), with its new settings; a running one is reported as such, or, as PM2's
//! startOrReload / startOrRestart (what `start FILE` does), takes the new settings and
//! has its workers replaced, answering once that is done.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use super::{Answer, Failure, Reply, done};
use crate::config::{AppSpec, MetricsSpec};
use crate::protocol::{ErrorKind, OnRunning, Response, Target};
use crate::supervisor::policy::Status;
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{NewApp, Supervisor, Tidy};

/// A running app's redeploy: the slots a shrink removed, and the reload's answer.
type Redeploy = Pin<Box<dyn Future<Output = (Vec<u32>, Reply)> + Send>>;

impl Supervisor {
    /// [`start`](Self::start), and the metrics endpoint the file asks for: its address
    /// is bound first and served once the apps have started, so a file that fails
    /// starts neither.
    pub(super) fn start_with_metrics(
        &mut self,
        apps: Vec<AppSpec>,
        env: BTreeMap<String, String>,
        update_env: bool,
        on_running: OnRunning,
        parallel: u32,
        metrics: Option<MetricsSpec>,
    ) -> Result<Answer, Failure> {
        let prepared = match metrics {
            Some(spec) => self.metrics.prepare(spec)?,
            None => None,
        };
        let answer = self.start(apps, env, update_env, on_running, parallel)?;
        if let Some(prepared) = prepared
            && let Err(e) = self.metrics.serve(prepared)
        {
            // The apps run: their start stands, and the log says why there are no metrics.
            tracing::error!("{e}");
        }
        Ok(answer)
    }

    pub(super) fn start(
        &mut self,
        apps: Vec<AppSpec>,
        env: BTreeMap<String, String>,
        update_env: bool,
        on_running: OnRunning,
        parallel: u32,
    ) -> Result<Answer, Failure> {
        let mut redeploys: Vec<Redeploy> = Vec::new();
        let mut refused = Vec::new();
        let mut fresh = Vec::new();
        // Stopped apps started again: nothing ran, so nothing is restarted.
        let mut started_again = Vec::new();
        let mut running = Vec::new();
        let mut busy = Vec::new();
        for spec in apps {
            let Some(i) = self.app_index(&spec.name) else {
                fresh.push(NewApp {
                    spec,
                    env: env.clone(),
                    stopped: false,
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
                if on_running == OnRunning::Report {
                    running.push(spec.name);
                } else {
                    let new_env = if update_env {
                        env.clone()
                    } else {
                        (*app.env).clone()
                    };
                    match self.redeploy(i, spec, new_env, on_running, parallel) {
                        Ok(work) => redeploys.push(work),
                        Err(line) => refused.push(line),
                    }
                }
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
                started_again.push(spec.name.clone());
                self.start_stopped(i, spec, new_env);
            } else {
                // A new address: a new app in its place.
                for slot in self.apps.remove(i).slots {
                    slot.task.abort();
                }
                fresh.push(NewApp {
                    spec,
                    env: new_env,
                    stopped: false,
                });
            }
        }
        let started = self.add_apps(fresh)?;
        let mut parts = Vec::new();
        if !started.is_empty() {
            parts.push(format!("started {}", started.join(", ")));
        }
        if !started_again.is_empty() {
            parts.push(format!("started {} again", started_again.join(", ")));
        }
        let nothing_done = parts.is_empty();
        if !running.is_empty() {
            parts.push(format!(
                "{} already running (use `drover restart`)",
                running.join(", ")
            ));
        }
        parts.extend(busy.iter().cloned());
        if redeploys.is_empty() && refused.is_empty() {
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
            return Ok(Answer::Now(done(parts.join("; "))));
        }
        let busy = !busy.is_empty();
        Ok(Answer::Later(Box::pin(async move {
            let mut removed = Vec::new();
            let mut failed = refused;
            for work in redeploys {
                let (ids, reply) = work.await;
                removed.extend(ids);
                match reply {
                    Ok(Response::Done { message }) => parts.push(message),
                    Ok(_) => {}
                    Err(f) => failed.push(f.message),
                }
            }
            let tidy = if removed.is_empty() {
                Tidy::Nothing
            } else {
                Tidy::Remove(removed)
            };
            let reply = if failed.is_empty() && !busy {
                done(parts.join("; "))
            } else {
                parts.extend(failed);
                Err(Failure {
                    kind: if busy {
                        ErrorKind::Busy
                    } else {
                        ErrorKind::Failed
                    },
                    message: parts.join("; "),
                })
            };
            (tidy, reply)
        })))
    }

    /// Gives running app `i` its new settings (same address) and replaces its workers
    /// (reload, `parallel` at a time, or restart): the future yields the slots a smaller
    /// `instances` removed and the replacement's answer.
    fn redeploy(
        &mut self,
        i: usize,
        spec: AppSpec,
        env: BTreeMap<String, String>,
        how: OnRunning,
        parallel: u32,
    ) -> Result<Redeploy, String> {
        let app = &self.apps[i];
        if app.spec.listen != spec.listen || app.spec.socket != spec.socket {
            return Err(format!(
                "{}: its address or socket mode changed; delete it, then start it again",
                spec.name
            ));
        }
        let name = spec.name.clone();
        let instances = spec.instances;
        let spec = Arc::new(spec);
        let triggers = self.rearm(i, &spec)?;
        let app = &mut self.apps[i];
        if let Some(triggers) = triggers {
            app.triggers = triggers;
        }
        app.spec = spec;
        app.env = Arc::new(env);
        self.update_slots(i);
        let target = Target::Name(name.clone());
        let replace = |this: &mut Self| match how {
            OnRunning::Restart => this.restart(&target, None),
            OnRunning::Reload | OnRunning::Report => this.reload(&target, parallel, None),
        };
        // Workers the app gains start with the new settings: only the others are
        // replaced (a fresh worker replaced at once would count a restart it never had).
        let staying = self.apps[i].slots.iter().filter(|s| !s.leaving).count();
        let (shrink, replace) = if instances as usize > staying {
            let replace = replace(self);
            (self.resize(i, instances), replace)
        } else {
            let shrink = self.resize(i, instances);
            (shrink, replace(self))
        };
        let replace = replace.map_err(|f| f.message)?;
        let resized = (instances as usize != staying).then(|| {
            format!(
                "{name} now has {instances} worker{}",
                if instances == 1 { "" } else { "s" }
            )
        });
        Ok(Box::pin(async move {
            let removed = match shrink {
                Some(work) => work.await.0,
                None => Vec::new(),
            };
            let reply = match (replace.await.1, resized) {
                (Ok(Response::Done { message }), Some(resized)) => {
                    done(format!("{message}; {resized}"))
                }
                (reply, _) => reply,
            };
            (removed, reply)
        }))
    }

    /// New triggers for app `i` when `spec` changes its watch or schedule (None: they
    /// stay).
    fn rearm(
        &self,
        i: usize,
        spec: &Arc<AppSpec>,
    ) -> Result<Option<crate::supervisor::triggers::Triggers>, String> {
        let old = &self.apps[i].spec;
        if old.watch == spec.watch && old.cron_restart == spec.cron_restart {
            return Ok(None);
        }
        crate::supervisor::triggers::arm(spec, &self.triggered).map(Some)
    }

    /// Starts app `i`, whose every slot is at rest, with a new spec and environment on
    /// the same address, keeping its slots, ids and listener.
    fn start_stopped(&mut self, i: usize, spec: AppSpec, env: BTreeMap<String, String>) {
        let instances = spec.instances;
        let spec = Arc::new(spec);
        let triggers = self.rearm(i, &spec);
        let app = &mut self.apps[i];
        match triggers {
            Ok(Some(triggers)) => app.triggers = triggers,
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; its watch and schedule stay as they were"),
        }
        app.env = Arc::new(env);
        app.spec = spec;
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
