//! The supervisor's side of the metrics endpoint (`crate::metrics`): the endpoint it
//! serves (one per supervisor, from `--metrics` or the first file that asks), and what
//! a scrape reads of it.
//!
//! A scrape never goes through the control loop: the loop publishes its table (apps,
//! their slots, each slot's status channel) on a watch channel whenever the table's
//! shape changes, and the endpoint's thread reads that, the slots' status channels and
//! the sampler's figures, each a short lock. `/healthz` alone asks the loop (a `ping`
//! on the control queue), since whether the loop answers is what it reports.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::handlers::Failure;
use super::slot::SlotStatus;
use super::{App, Shared};
use crate::config::{AppSpec, MetricsSpec};
use crate::ipc::server::Incoming;
use crate::logs::{Stream, instance_log_path};
use crate::metrics::{self, AppSample, Endpoint, Snapshot, WorkerSample};
use crate::protocol::{ErrorKind, Request, Response, RestartCauses};
use crate::supervisor::policy::Status;

/// The app table as a scrape sees it.
#[derive(Default)]
struct Table {
    apps: Vec<AppRow>,
}

struct AppRow {
    name: Arc<str>,
    spec: Arc<AppSpec>,
    slots: Vec<SlotRow>,
}

struct SlotRow {
    id: u32,
    instance: u32,
    status: watch::Receiver<SlotStatus>,
}

/// What the endpoint's thread reads.
struct Published {
    table: watch::Receiver<Arc<Table>>,
    shared: Arc<Shared>,
    requests: mpsc::Sender<Incoming>,
}

/// The endpoint, and the table it reads.
pub(crate) struct Metrics {
    table: watch::Sender<Arc<Table>>,
    /// Of the table last published: it is published again only when this changes.
    fingerprint: Option<u64>,
    source: Arc<Published>,
    endpoint: Option<Endpoint>,
}

/// An address bound for a request that may still fail: served once it has not.
pub(crate) struct Prepared {
    listener: std::net::TcpListener,
    spec: MetricsSpec,
}

impl Metrics {
    /// `requests`: the control loop's queue, where `/healthz` sends its ping.
    pub fn new(shared: Arc<Shared>, requests: mpsc::Sender<Incoming>) -> Metrics {
        let (table, reader) = watch::channel(Arc::new(Table::default()));
        Metrics {
            table,
            fingerprint: None,
            source: Arc::new(Published {
                table: reader,
                shared,
                requests,
            }),
            endpoint: None,
        }
    }

    /// Publishes the table if its apps, their log files or their slots changed since
    /// the last time. Called by the control loop after each event: a hash of what a
    /// scrape reads, no allocation unless it changed.
    pub fn publish(&mut self, apps: &[App]) {
        let fingerprint = fingerprint(apps);
        if self.fingerprint == Some(fingerprint) {
            return;
        }
        self.fingerprint = Some(fingerprint);
        let table = Table {
            apps: apps
                .iter()
                .map(|a| AppRow {
                    name: Arc::from(a.spec.name.as_str()),
                    spec: a.spec.clone(),
                    slots: a
                        .slots
                        .iter()
                        .map(|s| SlotRow {
                            id: s.id,
                            instance: s.handle.instance,
                            status: s.handle.status.clone(),
                        })
                        .collect(),
                })
                .collect(),
        };
        self.table.send_replace(Arc::new(table));
    }

    /// Where the endpoint listens, if there is one.
    pub fn bound(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().map(|e| e.bound)
    }

    /// Binds `spec`'s address when no endpoint serves yet; nothing to do when the one
    /// serving is at that address. One supervisor has one endpoint: another address is
    /// refused, naming who asked for each.
    pub fn prepare(&self, spec: MetricsSpec) -> Result<Option<Prepared>, Failure> {
        if let Some(serving) = &self.endpoint {
            if serving.serves(&spec) {
                return Ok(None);
            }
            return Err(Failure {
                kind: ErrorKind::BadRequest,
                message: format!(
                    "{}: {}: this supervisor serves its metrics on {} already (asked by {}); one supervisor has one endpoint: name that address, or leave metrics: out",
                    spec.origin.key(),
                    spec.listen,
                    serving.bound,
                    serving.spec.origin
                ),
            });
        }
        let listener = metrics::bind(&spec).map_err(Failure::failed)?;
        Ok(Some(Prepared { listener, spec }))
    }

    /// Serves an address [`prepare`](Self::prepare)d.
    pub fn serve(&mut self, prepared: Prepared) -> Result<(), String> {
        let Prepared { listener, spec } = prepared;
        let key = spec.origin.key();
        let source: Arc<dyn metrics::Source> = self.source.clone();
        let endpoint = Endpoint::start(listener, spec, source)
            .map_err(|e| format!("{key}: cannot start its thread: {e}"))?;
        self.endpoint = Some(endpoint);
        Ok(())
    }

    /// Stops the endpoint for an in-place update, keeping its listener (see
    /// [`Endpoint::hand_over`]).
    pub fn hand_over(&mut self) -> Option<metrics::HandingOver> {
        Some(self.endpoint.take()?.hand_over())
    }

    /// Serves the listener the previous image handed over.
    pub fn take_over(
        &mut self,
        spec: MetricsSpec,
        listener: std::net::TcpListener,
    ) -> Result<(), String> {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{}: {e}", spec.origin.key()))?;
        self.serve(Prepared { listener, spec })
    }

    /// Stops the endpoint (at the supervisor's end).
    pub fn stop(&mut self) {
        if let Some(endpoint) = self.endpoint.take() {
            endpoint.stop();
        }
    }
}

/// A hash of what a scrape reads of the table: each app's name and log files, each
/// slot's id and instance (a slot's id is never reused, so its status channel is known
/// by it).
fn fingerprint(apps: &[App]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    apps.len().hash(&mut h);
    for app in apps {
        app.spec.name.hash(&mut h);
        app.spec.logs.out_file.hash(&mut h);
        app.spec.logs.error_file.hash(&mut h);
        app.spec.logs.log_file.hash(&mut h);
        app.spec.logs.merge.hash(&mut h);
        app.slots.len().hash(&mut h);
        for slot in &app.slots {
            slot.id.hash(&mut h);
            slot.handle.instance.hash(&mut h);
        }
    }
    h.finish()
}

impl metrics::Source for Published {
    fn snapshot(&self) -> Snapshot {
        let table = self.table.borrow().clone();
        let mut workers = Vec::new();
        let mut pids = Vec::new();
        for app in &table.apps {
            for slot in &app.slots {
                let status = slot.status.borrow().clone();
                pids.push(status.pid);
                let by = status.restarts_by_cause;
                workers.push(WorkerSample {
                    app: app.name.clone(),
                    instance: slot.instance,
                    id: slot.id,
                    pid: status.pid.map(|p| p.as_raw()),
                    up: status.status == Status::Online,
                    ready: status.ready,
                    healthy: status.pid.is_some() && status.health.is_none(),
                    cpu_seconds: 0.0,
                    memory_bytes: 0,
                    restarts: RestartCauses {
                        crash: by.crash,
                        memory: by.memory,
                        health: by.health,
                        reload: by.reload,
                        restart: by.restart,
                    },
                });
            }
        }
        for (worker, usage) in workers.iter_mut().zip(self.shared.usages(&pids)) {
            worker.cpu_seconds = usage.cpu_seconds;
            worker.memory_bytes = usage.rss;
        }
        let logs = self.shared.logs();
        let apps = table
            .apps
            .iter()
            .map(|app| AppSample {
                name: app.name.clone(),
                lines_out: logs.lines_written(&app.name, Stream::Out),
                lines_err: logs.lines_written(&app.name, Stream::Err),
                lines_dropped: log_paths(app)
                    .iter()
                    .map(|p| logs.dropped_lines_in(p))
                    .sum(),
            })
            .collect();
        Snapshot { workers, apps }
    }

    fn ping(&self) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let requests = self.requests.clone();
        Box::pin(async move {
            let (reply, mut answer) = mpsc::channel(1);
            let asked = Incoming {
                request: Request::Ping,
                reply,
            };
            if requests.send(asked).await.is_err() {
                return false;
            }
            matches!(answer.recv().await, Some(Response::Pong { .. }))
        })
    }
}

/// The files an app's workers write, each once (as `describe` sums its dropped lines).
fn log_paths(app: &AppRow) -> BTreeSet<PathBuf> {
    let logs = &app.spec.logs;
    app.slots
        .iter()
        .flat_map(|slot| {
            [
                Some(&logs.out_file),
                Some(&logs.error_file),
                logs.log_file.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(|base| instance_log_path(base, slot.instance, logs.merge))
        })
        .collect()
}
