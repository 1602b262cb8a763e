//! One handler per control request (pueue's shape), one file each. [`Supervisor::handle`]
//! dispatches; a handler edits the app table and either answers at once
//! ([`Answer::Now`]) or hands back what takes time as a future ([`Answer::Later`]), which
//! runs as a task of its own and answers the client when it is done. No handler awaits,
//! so the control loop is never held up by a worker, a drain or a client.
//!
//! Concurrent operations on one app: a stop, restart or reload acts on the app's slots
//! as they are (the slot's policy settles a stop during a reload, a restart during a
//! stop: the last one wins); a second change of the app's slots while one is under way
//! (a scale while a scale-down drains, anything while the app is being deleted) is
//! refused as [`ErrorKind::Busy`].

mod delete;
mod describe;
mod env;
mod flush;
mod kill;
mod list;
mod logs;
mod ping;
mod reload;
mod reload_logs;
mod reset;
mod restart;
mod resurrect;
mod save;
mod scale;
mod send_signal;
mod start;
mod stop;
pub(crate) mod update;

pub(crate) use update::{UpdateRun, unix_ms};

use std::future::Future;
use std::pin::Pin;

use super::{Finished, Flow, Pending, Supervisor, Tidy};
use crate::config::{AppSpec, MetricsSpec};
use crate::ipc::server::Incoming;
use crate::protocol::{ErrorKind, Request, Response, Target};

/// A handler's error: what kind, and the one line the user sees.
#[derive(Debug)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn failed(message: String) -> Self {
        Failure {
            kind: ErrorKind::Failed,
            message,
        }
    }

    fn not_found(target: &Target) -> Self {
        let message = match target {
            Target::All => "no app is running".to_owned(),
            Target::Id(id) => format!("no worker with id {id}"),
            Target::Name(name) => format!("no app named {name}"),
            Target::Pattern(p) => format!("no app name matches /{p}/"),
        };
        Failure {
            kind: ErrorKind::NotFound,
            message,
        }
    }

    fn busy(name: &str, pending: Pending) -> Self {
        let what = match pending {
            Pending::Deleting => "being deleted".to_owned(),
            Pending::ScalingDown { from, to } => format!("scaling down from {from} to {to}"),
        };
        Failure {
            kind: ErrorKind::Busy,
            message: format!("{name} is busy: {what}; try again once that is done"),
        }
    }
}

type Reply = Result<Response, Failure>;

/// The slow part of an operation: what the table must do once it is over, and the answer.
type Later = Pin<Box<dyn Future<Output = (Tidy, Reply)> + Send>>;

/// How a handler answers.
pub(super) enum Answer {
    Now(Reply),
    Later(Later),
    /// The handler keeps the reply channel and streams on it (`logs --follow`).
    Streaming,
}

fn done(message: impl Into<String>) -> Reply {
    Ok(Response::Done {
        message: message.into(),
    })
}

fn response_of(reply: Reply) -> Response {
    reply.unwrap_or_else(|f| Response::Error {
        kind: f.kind,
        message: f.message,
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Supervisor {
    /// Dispatches one request. Never awaits: what takes time is spawned.
    pub(super) fn handle(&mut self, incoming: Incoming) -> Flow {
        let Incoming { request, reply } = incoming;
        let mut flow = Flow::Continue;
        // What only shows, and `kill` (which is what is under way already).
        let allowed = matches!(
            request,
            Request::Ping
                | Request::List
                | Request::Describe { .. }
                | Request::Logs { .. }
                | Request::Env { .. }
                | Request::Kill
        );
        if self.shutting_down && !allowed {
            let _ = reply.try_send(Response::Error {
                kind: ErrorKind::ShuttingDown,
                message: "the supervisor is shutting down: it stops every app, then itself".into(),
            });
            return flow;
        }
        // An update waits for the operations under way; new ones would keep it waiting.
        if let Some(run) = &self.update
            && !allowed
            && !matches!(request, Request::Update { .. })
        {
            let _ = reply.try_send(Response::Error {
                kind: ErrorKind::Busy,
                message: format!(
                    "drover is being updated in place (to {}); try again in a moment",
                    run.binary.display()
                ),
            });
            return flow;
        }
        let answer = match request {
            Request::Ping => Ok(Answer::Now(self.ping())),
            Request::Start {
                apps,
                env,
                update_env,
                running,
                parallel,
                metrics,
            } => match (
                apps.into_iter().map(AppSpec::try_from).collect(),
                metrics.map(MetricsSpec::try_from).transpose(),
            ) {
                (Ok(apps), Ok(metrics)) => {
                    self.start_with_metrics(apps, env, update_env, running, parallel, metrics)
                }
                // Checked by the CLI: only a foreign or broken client gets here.
                (Err(message), _) | (_, Err(message)) => Err(Failure {
                    kind: ErrorKind::BadRequest,
                    message,
                }),
            },
            Request::Stop { target } => self.stop(&target),
            Request::Restart { target, env } => self.restart(&target, env).map(Answer::Later),
            Request::Delete { target } => self.delete(&target),
            Request::Reload {
                target,
                parallel,
                env,
            } => self.reload(&target, parallel, env).map(Answer::Later),
            Request::Scale { name, instances } => self.scale(&name, instances),
            Request::List => Ok(Answer::Now(self.list())),
            Request::Describe { target } => Ok(Answer::Now(self.describe(&target))),
            Request::Logs {
                target,
                more,
                follow,
            } => {
                let targets: Vec<Target> = std::iter::once(target).chain(more).collect();
                self.logs(&targets, follow, &reply)
            }
            Request::Flush { target } => Ok(Answer::Now(self.flush(&target))),
            Request::ReloadLogs => Ok(Answer::Now(self.reload_logs())),
            Request::Save { force } => Ok(self.save(force)),
            Request::Resurrect => Ok(Answer::Now(self.resurrect())),
            Request::Kill => {
                flow = Flow::Kill;
                Ok(Answer::Now(kill::kill()))
            }
            Request::Reset { target } => self.reset(&target),
            Request::SendSignal { target, signal } => self.send_signal(&target, signal.0),
            Request::Env { target } => self.env(&target),
            Request::Update { binary } => self.update(binary, &reply),
        };
        match answer.unwrap_or_else(|f| Answer::Now(Err(f))) {
            // A fresh channel with room for the answer: never waits.
            Answer::Now(r) => {
                let _ = reply.try_send(response_of(r));
            }
            Answer::Later(work) => {
                let finished = self.finished.clone();
                let op = self.ops.begin();
                tokio::spawn(async move {
                    let (tidy, r) = work.await;
                    let answer = response_of(r);
                    match tidy {
                        Tidy::Nothing => {
                            let _ = reply.send(answer).await;
                            drop(op);
                        }
                        // The main loop changes the table, then answers.
                        tidy => {
                            let _ = finished.send(Finished {
                                tidy,
                                answer,
                                reply,
                                op,
                            });
                        }
                    }
                });
            }
            Answer::Streaming => {}
        }
        flow
    }

    /// Ids of the slots `target` names, leaving ones excluded; NotFound when none.
    fn resolve(&self, target: &Target) -> Result<Vec<u32>, Failure> {
        self.resolve_with(target, false)
    }

    /// Ids of the slots `target` names, leaving ones included (delete).
    fn resolve_with(&self, target: &Target, leaving_too: bool) -> Result<Vec<u32>, Failure> {
        // Names are tried before ids, as PM2 does: `restart 455` is the app named 455
        // when there is one.
        let as_name;
        let target = match target {
            Target::Id(id) if self.app_index(&id.to_string()).is_some() => {
                as_name = Target::Name(id.to_string());
                &as_name
            }
            other => other,
        };
        let pattern = match target {
            Target::Pattern(p) => Some(regex_lite::Regex::new(p).map_err(|e| Failure {
                kind: ErrorKind::BadRequest,
                message: format!("{target}: not a valid pattern: {e}"),
            })?),
            _ => None,
        };
        let names = |app: &super::App, slot: &super::SlotEntry| match target {
            Target::All => true,
            Target::Id(id) => slot.id == *id,
            Target::Name(name) => app.spec.name == *name,
            Target::Pattern(_) => pattern
                .as_ref()
                .is_some_and(|re| re.is_match(&app.spec.name)),
        };
        let ids: Vec<u32> = self
            .apps
            .iter()
            .flat_map(|a| a.slots.iter().map(move |s| (a, s)))
            .filter(|(_, s)| leaving_too || !s.leaving)
            .filter(|(a, s)| names(a, s))
            .map(|(_, s)| s.id)
            .collect();
        if !ids.is_empty() {
            return Ok(ids);
        }
        // Only slots on their way out match: the app is there, but busy.
        for app in &self.apps {
            let named = app.slots.iter().any(|s| names(app, s));
            if named && let Some(pending) = app.pending {
                return Err(Failure::busy(&app.spec.name, pending));
            }
        }
        Err(Failure::not_found(target))
    }

    /// Busy when one of these slots belongs to an app that is being deleted.
    fn refuse_if_deleting(&self, ids: &[u32]) -> Result<(), Failure> {
        for app in &self.apps {
            if app.pending == Some(Pending::Deleting)
                && app.slots.iter().any(|s| ids.contains(&s.id))
            {
                return Err(Failure::busy(&app.spec.name, Pending::Deleting));
            }
        }
        Ok(())
    }

    fn app_index(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.spec.name == name)
    }

    /// `--update-env`: the apps of these slots take `env` from their next worker on.
    fn replace_env(&mut self, ids: &[u32], env: std::collections::BTreeMap<String, String>) {
        let env = std::sync::Arc::new(env);
        for i in 0..self.apps.len() {
            if self.apps[i].slots.iter().any(|s| ids.contains(&s.id)) {
                self.apps[i].env = env.clone();
                self.update_slots(i);
            }
        }
    }

    /// Sends the app's current spec and environment to each of its slots.
    fn update_slots(&self, i: usize) {
        let app = &self.apps[i];
        for slot in &app.slots {
            let _ = slot.handle.tx.send(super::slot::SlotMsg::Update {
                app: app.spec.clone(),
                env: app.env.clone(),
            });
        }
    }
}
