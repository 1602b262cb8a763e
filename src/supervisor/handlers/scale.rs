//! `scale`: add workers at once, or remove the highest-numbered ones without resetting
//! a connection: new connections are steered to the remaining listeners first, the
//! leaving workers accept what is already queued, then stop, then leave the table. A
//! scale-down runs as a task; the app is busy until it is done.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::warn;

use super::{Answer, Failure, done, plural};
use crate::protocol::ErrorKind;
use crate::supervisor::slot::SlotMsg;
use crate::supervisor::{Pending, Supervisor, Tidy};
use crate::sync::lock;

/// How long the leaving slots may take to empty their accept queues.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Supervisor {
    pub(super) fn scale(&mut self, name: &str, instances: u32) -> Result<Answer, Failure> {
        let i = self
            .app_index(name)
            .ok_or_else(|| Failure::not_found(&crate::protocol::Target::Name(name.into())))?;
        if let Some(pending) = self.apps[i].pending {
            return Err(Failure::busy(name, pending));
        }
        if instances == 0 {
            return Err(Failure {
                kind: ErrorKind::BadRequest,
                message: "scale to 0: use `drover stop`".into(),
            });
        }
        let before = self.apps[i].slots.iter().filter(|s| !s.leaving).count() as u32;
        let mut spec = (*self.apps[i].spec).clone();
        spec.instances = instances;
        self.apps[i].spec = std::sync::Arc::new(spec);
        self.update_slots(i);
        let message = format!(
            "scaled {name} from {before} to {instances} worker{}",
            plural(instances as usize)
        );
        match self.resize(i, instances) {
            None => Ok(Answer::Now(done(message))),
            Some(work) => Ok(Answer::Later(Box::pin(async move {
                let (ids, drained) = work.await;
                let reply = if drained {
                    done(message)
                } else {
                    done(format!(
                        "{message} (some leaving listeners did not drain within {DRAIN_TIMEOUT:?})"
                    ))
                };
                (Tidy::Remove(ids), reply)
            }))),
        }
    }

    /// Gives app `i` `instances` slots: more are added at once; fewer are removed at once
    /// when the app is at rest, else by the returned future (drain, stop), which yields
    /// the ids to remove and whether every leaving queue drained.
    pub(super) fn resize(
        &mut self,
        i: usize,
        instances: u32,
    ) -> Option<impl Future<Output = (Vec<u32>, bool)> + Send + 'static> {
        let staying: Vec<u32> = self.apps[i]
            .slots
            .iter()
            .filter(|s| !s.leaving)
            .map(|s| s.handle.instance)
            .collect();
        let current = staying.len() as u32;
        if instances > current {
            let stand_in = placeholder(&self.apps[i]);
            let mut app = std::mem::replace(&mut self.apps[i], stand_in);
            let first = app
                .slots
                .iter()
                .map(|s| s.handle.instance + 1)
                .max()
                .unwrap_or(0);
            for instance in first..first + (instances - current) {
                self.add_slot(&mut app, instance, true);
            }
            self.apps[i] = app;
            return None;
        }
        if instances == current {
            return None;
        }
        let app = &mut self.apps[i];
        let at_rest = app.slots.iter().all(|s| s.handle.status.borrow().at_rest);
        let mut leaving: Vec<&mut crate::supervisor::SlotEntry> =
            app.slots.iter_mut().filter(|s| !s.leaving).collect();
        leaving.sort_by_key(|s| s.handle.instance);
        let leaving: Vec<_> = leaving.into_iter().skip(instances as usize).collect();
        let ids: Vec<u32> = leaving.iter().map(|s| s.id).collect();
        if at_rest {
            // Nothing runs and nothing is queued: they go now.
            self.remove_slots(&ids);
            return None;
        }
        let mut slots = Vec::new();
        for slot in leaving {
            slot.leaving = true;
            slots.push((slot.handle.instance, slot.handle.tx.clone()));
        }
        app.pending = Some(Pending::ScalingDown {
            from: current,
            to: instances,
        });
        let name = app.spec.name.clone();
        let listeners = app.listeners.clone();
        if let Some(listeners) = listeners.get() {
            for (instance, _) in &slots {
                if let Err(e) = lock(listeners).steer_away(*instance) {
                    warn!("{name}#{instance}: cannot steer connections away: {e}");
                }
            }
        }
        let cap = app.spec.stop.kill_timeout + crate::supervisor::STOP_SLACK;
        Some(async move {
            let mut drained = true;
            if let Some(listeners) = listeners.get() {
                let deadline = Instant::now() + DRAIN_TIMEOUT;
                for (instance, _) in &slots {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !crate::sockets::drain(listeners, *instance, left).await {
                        warn!(
                            "{name}#{instance}: its queue did not drain within {DRAIN_TIMEOUT:?}"
                        );
                        drained = false;
                    }
                }
            }
            let waits: Vec<_> = slots
                .iter()
                .map(|(_, tx)| {
                    let (done, wait) = oneshot::channel();
                    let _ = tx.send(SlotMsg::Stop { done: Some(done) });
                    wait
                })
                .collect();
            let _ = tokio::time::timeout(cap, async {
                for wait in waits {
                    let _ = wait.await;
                }
            })
            .await;
            (ids, drained)
        })
    }
}

/// An empty stand-in while an app is taken out of the table to add slots to it.
fn placeholder(app: &crate::supervisor::App) -> crate::supervisor::App {
    crate::supervisor::App {
        spec: app.spec.clone(),
        env: app.env.clone(),
        listeners: Default::default(),
        slots: Vec::new(),
        pending: app.pending,
        triggers: Default::default(),
    }
}
