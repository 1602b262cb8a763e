//! One handler per control request (pueue's shape): `Supervisor::handle` dispatches, each
//! handler changes the app table and answers with a typed `Response`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long a leaving slot may take to empty its accept queue (scale-down).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

use super::dump;
use super::slot::SlotMsg;
use super::{App, Flow, NewApp, Supervisor, lock};
use crate::config::AppSpec;
use crate::ipc::server::Incoming;
use crate::logs::{Stream, instance_log_path};
use crate::protocol::{
    AppInfo, ErrorKind, LogFile, LogLine, Request, Response, Target, WorkerInfo,
};

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
        };
        Failure {
            kind: ErrorKind::NotFound,
            message,
        }
    }
}

type Reply = Result<Response, Failure>;

fn done(message: impl Into<String>) -> Reply {
    Ok(Response::Done {
        message: message.into(),
    })
}

impl Supervisor {
    pub(super) async fn handle(&mut self, incoming: Incoming) -> Flow {
        let Incoming { request, reply } = incoming;
        let mut flow = Flow::Continue;
        let answer = match request {
            Request::Ping => Ok(Response::Pong {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
            }),
            Request::Start {
                apps,
                env,
                update_env,
            } => self.start(apps, env, update_env).await,
            Request::Stop { target } => self.stop(&target).await,
            Request::Restart { target, env } => self.restart(&target, env).await,
            Request::Delete { target } => self.delete(&target).await,
            Request::Reload { target, parallel } => return self.reload(&target, parallel, reply),
            Request::Scale { name, instances } => self.scale(&name, instances).await,
            Request::List => Ok(Response::Workers {
                workers: self.workers(None),
            }),
            Request::Describe { target } => self.describe(&target),
            Request::Logs { target, follow } => return self.logs(&target, follow, reply),
            Request::Flush { target } => self.flush(&target),
            Request::ReloadLogs => match self.shared.logs.reopen() {
                Ok(()) => done("log files reopened"),
                Err(e) => Err(Failure::failed(format!("cannot reopen log files: {e}"))),
            },
            Request::Save => self.save(),
            Request::Resurrect => self.resurrect().await,
            Request::Kill => {
                flow = Flow::Kill;
                done("stopping every app and the supervisor")
            }
        };
        let response = answer.unwrap_or_else(|f| Response::Error {
            kind: f.kind,
            message: f.message,
        });
        let _ = reply.send(response).await;
        flow
    }

    /// Ids of the slots `target` names; NotFound when none.
    fn resolve(&self, target: &Target) -> Result<Vec<u32>, Failure> {
        let ids: Vec<u32> = self
            .apps
            .iter()
            .flat_map(|a| a.slots.iter().map(move |s| (a, s)))
            .filter(|(a, s)| match target {
                Target::All => true,
                Target::Id(id) => s.id == *id,
                Target::Name(name) => a.spec.name == *name,
            })
            .map(|(_, s)| s.id)
            .collect();
        if ids.is_empty() {
            Err(Failure::not_found(target))
        } else {
            Ok(ids)
        }
    }

    fn app_index(&self, name: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.spec.name == name)
    }

    async fn start(
        &mut self,
        apps: Vec<AppSpec>,
        env: BTreeMap<String, String>,
        update_env: bool,
    ) -> Reply {
        let mut fresh = Vec::new();
        let mut restarted = Vec::new();
        let mut running = Vec::new();
        for spec in apps {
            match self.app_index(&spec.name) {
                None => fresh.push(NewApp {
                    spec,
                    env: env.clone(),
                }),
                Some(i)
                    if self.apps[i]
                        .slots
                        .iter()
                        .all(|s| s.handle.status.borrow().at_rest) =>
                {
                    // A stopped app is started again (PM2), with its stored environment
                    // unless --update-env.
                    let new_env = if update_env {
                        env.clone()
                    } else {
                        (*self.apps[i].env).clone()
                    };
                    let old = &self.apps[i].spec;
                    if old.listen == spec.listen && old.socket == spec.socket {
                        let name = spec.name.clone();
                        self.replace_spec(i, spec, new_env).await;
                        let ids: Vec<u32> = self.apps[i].slots.iter().map(|s| s.id).collect();
                        self.send(&ids, SlotMsg::Restart);
                        restarted.push(name);
                    } else {
                        // A new address: a new app in its place.
                        for slot in self.apps.remove(i).slots {
                            slot.task.abort();
                        }
                        fresh.push(NewApp { spec, env: new_env });
                    }
                }
                Some(_) => running.push(spec.name),
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
        if !running.is_empty() {
            let msg = format!(
                "{} already running (use `drover restart`)",
                running.join(", ")
            );
            if parts.is_empty() {
                return Err(Failure {
                    kind: ErrorKind::Exists,
                    message: msg,
                });
            }
            parts.push(msg);
        }
        done(parts.join("; "))
    }

    /// Gives app `i` a new spec and environment on the same address, keeping its slots,
    /// ids and listener.
    async fn replace_spec(&mut self, i: usize, spec: AppSpec, env: BTreeMap<String, String>) {
        let app = &mut self.apps[i];
        app.env = Arc::new(env);
        let instances = spec.instances;
        app.spec = Arc::new(spec);
        self.update_slots(i);
        self.resize(i, instances).await;
    }

    /// Sends the app's current spec and environment to each of its slots.
    fn update_slots(&self, i: usize) {
        let app = &self.apps[i];
        for slot in &app.slots {
            let _ = slot.handle.tx.send(SlotMsg::Update {
                app: app.spec.clone(),
                env: app.env.clone(),
            });
        }
    }

    fn send(&self, ids: &[u32], msg: SlotMsg) {
        for slot in self.slots(ids) {
            let _ = slot.handle.tx.send(msg.clone());
        }
    }

    async fn stop(&mut self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        self.stop_and_wait(&ids).await;
        self.release_idle_ports();
        done(format!(
            "stopped {target} ({} worker{})",
            ids.len(),
            plural(ids.len())
        ))
    }

    /// An app whose every worker is stopped releases its port (`stop` frees the address).
    fn release_idle_ports(&self) {
        for app in &self.apps {
            if let Some(listeners) = &app.listeners
                && app.slots.iter().all(|s| s.handle.status.borrow().at_rest)
            {
                lock(listeners).close_all();
            }
        }
    }

    async fn restart(&mut self, target: &Target, env: Option<BTreeMap<String, String>>) -> Reply {
        let ids = self.resolve(target)?;
        if let Some(env) = env {
            let env = Arc::new(env);
            for i in 0..self.apps.len() {
                if self.apps[i].slots.iter().any(|s| ids.contains(&s.id)) {
                    self.apps[i].env = env.clone();
                    self.update_slots(i);
                }
            }
        }
        self.send(&ids, SlotMsg::Restart);
        // Returns once no targeted worker is still stopping: each is back (or crashed).
        self.wait_until(&ids, |s| s.status != "stopping").await;
        done(format!(
            "restarted {target} ({} worker{})",
            ids.len(),
            plural(ids.len())
        ))
    }

    /// Rolling reload from a task of its own (the control loop stays free): `parallel`
    /// slots at a time, each replaced by a new worker that must be ready before the old
    /// one retires. Stops at the first slot that fails, which keeps its old worker.
    pub(super) fn reload(
        &self,
        target: &Target,
        parallel: u32,
        reply: mpsc::Sender<Response>,
    ) -> Flow {
        let slots: Vec<(String, mpsc::UnboundedSender<SlotMsg>)> = match self.resolve(target) {
            Ok(ids) => self
                .apps
                .iter()
                .flat_map(|a| a.slots.iter().map(move |s| (a, s)))
                .filter(|(_, s)| ids.contains(&s.id))
                .map(|(a, s)| {
                    (
                        format!("{}#{}", a.spec.name, s.handle.instance),
                        s.handle.tx.clone(),
                    )
                })
                .collect(),
            Err(f) => {
                answer_later(reply, f);
                return Flow::Continue;
            }
        };
        let target = target.clone();
        let parallel = parallel.max(1) as usize;
        tokio::spawn(async move {
            let mut done = Vec::new();
            for batch in slots.chunks(parallel) {
                let (tx, mut rx) = mpsc::unbounded_channel();
                for (_, slot) in batch {
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
                    let _ = reply
                        .send(Response::Error {
                            kind: ErrorKind::Failed,
                            message,
                        })
                        .await;
                    return;
                }
            }
            let message = format!("reloaded {target}: {}", done.join(", "));
            let _ = reply.send(Response::Done { message }).await;
        });
        Flow::Continue
    }

    async fn delete(&mut self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        self.stop_and_wait(&ids).await;
        for app in &mut self.apps {
            app.slots.retain(|s| {
                let gone = ids.contains(&s.id);
                if gone {
                    s.task.abort();
                }
                !gone
            });
        }
        // An app with no slot left is gone, its listeners closed with it.
        self.apps.retain(|a| !a.slots.is_empty());
        done(format!(
            "deleted {target} ({} worker{})",
            ids.len(),
            plural(ids.len())
        ))
    }

    async fn scale(&mut self, name: &str, instances: u32) -> Reply {
        let i = self
            .app_index(name)
            .ok_or_else(|| Failure::not_found(&Target::Name(name.into())))?;
        if instances == 0 {
            return Err(Failure {
                kind: ErrorKind::BadRequest,
                message: "scale to 0: use `drover stop`".into(),
            });
        }
        let before = self.apps[i].slots.len();
        let mut spec = (*self.apps[i].spec).clone();
        spec.instances = instances;
        self.apps[i].spec = Arc::new(spec);
        self.update_slots(i);
        self.resize(i, instances).await;
        done(format!(
            "scaled {name} from {before} to {instances} worker{}",
            plural(instances as usize)
        ))
    }

    /// Adds or removes the highest-numbered slots of app `i` so it has `instances`.
    async fn resize(&mut self, i: usize, instances: u32) {
        let current = self.apps[i].slots.len() as u32;
        if instances > current {
            let stand_in = placeholder(&self.apps[i]);
            let mut app = std::mem::replace(&mut self.apps[i], stand_in);
            for instance in current..instances {
                self.add_slot(&mut app, instance);
            }
            self.apps[i] = app;
        } else if instances < current {
            let ids: Vec<u32> = self.apps[i].slots[instances as usize..]
                .iter()
                .map(|s| s.id)
                .collect();
            // Closing a reuseport listener resets what waits in its queue: new
            // connections are steered to the remaining listeners first, and the leaving
            // workers keep accepting until their queues are empty.
            if let Some(listeners) = self.apps[i].listeners.clone() {
                let leaving: Vec<u32> = (instances..current).collect();
                for &slot in &leaving {
                    if let Err(e) = lock(&listeners).steer_away(slot) {
                        warn!(
                            "{}#{slot}: cannot steer connections away: {e}",
                            self.apps[i].spec.name
                        );
                    }
                }
                for &slot in &leaving {
                    if !crate::sockets::drain(&listeners, slot, DRAIN_TIMEOUT).await {
                        warn!(
                            "{}#{slot}: its queue did not drain within {DRAIN_TIMEOUT:?}",
                            self.apps[i].spec.name
                        );
                    }
                }
            }
            self.stop_and_wait(&ids).await;
            let app = &mut self.apps[i];
            for slot in app.slots.drain(instances as usize..) {
                slot.task.abort();
                if let Some(listeners) = &app.listeners {
                    lock(listeners).remove(slot.handle.instance);
                }
            }
        }
    }

    /// Every worker, or those of `only` (ids).
    fn workers(&self, only: Option<&[u32]>) -> Vec<WorkerInfo> {
        let now = Instant::now();
        let mut out = Vec::new();
        for app in &self.apps {
            let listen = app.listeners.as_ref().map(|l| lock(l).bound().to_string());
            for slot in &app.slots {
                if only.is_some_and(|ids| !ids.contains(&slot.id)) {
                    continue;
                }
                let status = slot.handle.status.borrow().clone();
                let usage = status
                    .pid
                    .map(|pid| self.shared.usage_of(pid))
                    .unwrap_or_default();
                out.push(WorkerInfo {
                    id: slot.id,
                    name: app.spec.name.clone(),
                    instance: slot.handle.instance,
                    mode: app.spec.exec_mode.to_string(),
                    pid: status.pid.map(|p| p.as_raw() as u32),
                    status: status.status.to_owned(),
                    restarts: status.restarts,
                    uptime_ms: status
                        .since
                        .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64),
                    cpu: usage.cpu,
                    memory: usage.rss,
                    listen: if status.at_rest { None } else { listen.clone() },
                });
            }
        }
        out
    }

    fn describe(&self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        let apps = self
            .apps
            .iter()
            .filter(|a| a.slots.iter().any(|s| ids.contains(&s.id)))
            .map(|a| {
                let app_ids: Vec<u32> = a.slots.iter().map(|s| s.id).collect();
                AppInfo {
                    spec: (*a.spec).clone(),
                    listen: a.listeners.as_ref().map(|l| lock(l).bound().to_string()),
                    workers: self.workers(Some(&app_ids)),
                    dropped_log_lines: self
                        .log_files(&app_ids)
                        .iter()
                        .map(|f| self.shared.logs.dropped_lines_in(&f.path))
                        .sum(),
                }
            })
            .collect();
        Ok(Response::Apps { apps })
    }

    fn log_files(&self, ids: &[u32]) -> Vec<LogFile> {
        let mut files = Vec::new();
        for app in &self.apps {
            for slot in app.slots.iter().filter(|s| ids.contains(&s.id)) {
                for (stream, base) in [
                    ("out", &app.spec.logs.out_file),
                    ("err", &app.spec.logs.error_file),
                ] {
                    let path = instance_log_path(base, slot.handle.instance, app.spec.logs.merge);
                    // A merged file is listed once, under its first worker.
                    if files.iter().any(|f: &LogFile| f.path == path) {
                        continue;
                    }
                    files.push(LogFile {
                        id: slot.id,
                        app: app.spec.name.clone(),
                        instance: slot.handle.instance,
                        stream: stream.into(),
                        path,
                    });
                }
            }
        }
        files
    }

    /// Answers with the log files, then (follow) streams new lines from a task of its own
    /// until the client hangs up, so the control loop stays free.
    fn logs(&self, target: &Target, follow: bool, reply: mpsc::Sender<Response>) -> Flow {
        let ids = match (target, self.resolve(target)) {
            (_, Ok(ids)) => ids,
            // `drover logs` with nothing running yet still follows what comes.
            (Target::All, Err(_)) => Vec::new(),
            (_, Err(f)) => {
                answer_later(reply, f);
                return Flow::Continue;
            }
        };
        let files = self.log_files(&ids);
        self.shared.logs.flush_all();
        let names: BTreeMap<(String, u32), u32> = self
            .apps
            .iter()
            .flat_map(|a| {
                a.slots
                    .iter()
                    .map(move |s| ((a.spec.name.clone(), s.handle.instance), s.id))
            })
            .collect();
        let all = *target == Target::All;
        let mut lines = self.shared.logs.subscribe();
        tokio::spawn(async move {
            if reply.send(Response::LogFiles { files }).await.is_err() || !follow {
                return;
            }
            loop {
                let line = match lines.recv().await {
                    Ok(line) => line,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(&id) = names.get(&(line.app.to_string(), line.instance)) else {
                    if !all {
                        continue;
                    }
                    // A worker added after the follow began (scale up, start).
                    let msg = log_line(u32::MAX, &line);
                    if reply.send(msg).await.is_err() {
                        return;
                    }
                    continue;
                };
                if !all && !ids.contains(&id) {
                    continue;
                }
                if reply.send(log_line(id, &line)).await.is_err() {
                    return;
                }
            }
        });
        Flow::Continue
    }

    fn flush(&self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        self.shared.logs.flush_all();
        let mut emptied = 0;
        for file in self.log_files(&ids) {
            match std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file.path)
            {
                Ok(_) => emptied += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Failure::failed(format!(
                        "cannot empty {}: {e}",
                        file.path.display()
                    )));
                }
            }
        }
        done(format!("emptied {emptied} log file{}", plural(emptied)))
    }

    fn save(&self) -> Reply {
        let apps: Vec<dump::SavedApp> = self
            .apps
            .iter()
            .map(|a| {
                let mut spec = (*a.spec).clone();
                // The address actually bound, so `resurrect` comes back on the same port
                // even when the app asked for port 0.
                if let Some(listeners) = &a.listeners {
                    spec.listen = Some(lock(listeners).bound().clone());
                }
                dump::SavedApp {
                    spec,
                    env: (*a.env).clone(),
                }
            })
            .collect();
        let path = dump::save(&self.home, &apps)
            .map_err(|e| Failure::failed(format!("cannot save: {e:#}")))?;
        done(format!(
            "saved {} app{} to {}",
            apps.len(),
            plural(apps.len()),
            path.display()
        ))
    }

    async fn resurrect(&mut self) -> Reply {
        let saved = dump::load(&self.home).map_err(|e| Failure::failed(format!("{e:#}")))?;
        let mut fresh = Vec::new();
        let mut skipped = Vec::new();
        for app in saved {
            if self.app_index(&app.spec.name).is_some() {
                skipped.push(app.spec.name);
            } else {
                fresh.push(NewApp {
                    spec: app.spec,
                    env: app.env,
                });
            }
        }
        let started = self.add_apps(fresh)?;
        info!("resurrected {}", started.join(", "));
        let mut msg = format!("resurrected {} app{}", started.len(), plural(started.len()));
        if !skipped.is_empty() {
            msg.push_str(&format!(" ({} already running)", skipped.join(", ")));
        }
        done(msg)
    }
}

/// Sends a handler's failure from a task of its own (for the handlers that answer from
/// one), so the control loop never waits on a slow client.
fn answer_later(reply: mpsc::Sender<Response>, f: Failure) {
    tokio::spawn(async move {
        let _ = reply
            .send(Response::Error {
                kind: f.kind,
                message: f.message,
            })
            .await;
    });
}

fn log_line(id: u32, line: &crate::logs::FollowedLine) -> Response {
    Response::LogLine(LogLine {
        id,
        app: line.app.to_string(),
        instance: line.instance,
        stream: match line.stream {
            Stream::Out => "out".into(),
            Stream::Err => "err".into(),
        },
        timestamp: line.at.to_rfc3339(),
        message: line.text.clone(),
    })
}

/// An empty stand-in while an app is taken out of the table to add slots to it.
fn placeholder(app: &App) -> App {
    App {
        spec: app.spec.clone(),
        env: app.env.clone(),
        listeners: None,
        slots: Vec::new(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
