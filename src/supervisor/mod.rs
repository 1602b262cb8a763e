//! The supervisor: binds each app's listener, runs one task per worker slot, reaps every
//! child on SIGCHLD, samples memory, and stops everything in order on shutdown.
//!
//! Like mini-redis's `server::run`, the caller supplies the shutdown signal, so tests and
//! the daemon drive the same code.

pub mod policy;
pub mod slot;
pub mod spawn;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{AppSpec, Runtime};
use crate::logs::LogHub;
use crate::os;
use crate::sampler::{self, Usage};
use crate::sockets::AppListeners;
use slot::{Slot, SlotHandle, SlotMsg};

/// How long the supervisor waits, after its workers are gone, for their pipes to reach
/// EOF (a grandchild that left the process group may still hold one).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RunOptions {
    pub home: PathBuf,
    /// Mirror every worker line to our stdout/stderr with a `name#i |` prefix.
    pub console: bool,
}

/// How a supervisor run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Slots that ended `errored` (crash loops).
    pub errored: Vec<String>,
    /// True when the run ended because every worker was done, not by a shutdown signal.
    pub all_done: bool,
}

/// A worker the reaper and the sampler know about.
pub(crate) struct WorkerEntry {
    pub tx: mpsc::UnboundedSender<SlotMsg>,
    pub memory_limit: Option<u64>,
}

/// State shared by the slot tasks, the reaper and the sampler.
pub(crate) struct Shared {
    pub logs: LogHub,
    pub trampoline: PathBuf,
    pub node_shim: Option<PathBuf>,
    pub workers: Mutex<HashMap<Pid, WorkerEntry>>,
    pub usage: Mutex<HashMap<Pid, Usage>>,
    pub slot_changed: Notify,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    pub fn register(
        &self,
        pid: Pid,
        tx: mpsc::UnboundedSender<SlotMsg>,
        memory_limit: Option<u64>,
    ) {
        lock(&self.workers).insert(pid, WorkerEntry { tx, memory_limit });
    }

    pub fn track_pump(&self, pump: JoinHandle<()>) {
        let mut pumps = lock(&self.pumps);
        pumps.retain(|p| !p.is_finished());
        pumps.push(pump);
    }

    /// Hands each reaped child's status to its slot; orphans we adopted are just reaped.
    fn dispatch_exits(&self) {
        for reaped in os::reap_all() {
            let entry = lock(&self.workers).remove(&reaped.pid);
            lock(&self.usage).remove(&reaped.pid);
            if let Some(entry) = entry {
                let _ = entry.tx.send(SlotMsg::Exited {
                    pid: reaped.pid,
                    status: reaped.status,
                });
            }
        }
    }
}

/// Runs `apps` until `shutdown` resolves or every worker is stopped or errored, then stops
/// all workers gracefully and drains their logs.
///
/// Must run on a current-thread runtime on the main thread: workers are spawned with
/// PR_SET_PDEATHSIG, which is tied to the spawning thread.
pub async fn run(
    apps: Vec<AppSpec>,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunOutcome> {
    // Before the first spawn, so no SIGCHLD is missed.
    let mut sigchld = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
    if let Err(e) = os::become_subreaper() {
        warn!("cannot become a child subreaper ({e}); orphaned grandchildren go to init");
    }

    let needs_shim = apps
        .iter()
        .any(|a| a.listen.is_some() && a.command.runtime() == Runtime::Node);
    let node_shim = if needs_shim {
        Some(crate::shim::install(&opts.home.join("shim")).context("cannot write the Node shim")?)
    } else {
        None
    };

    // Bind every listener before any worker starts: a port that cannot be bound fails the
    // whole run with nothing started.
    let mut bound = Vec::new();
    for app in &apps {
        let listeners = match &app.listen {
            Some(addr) => {
                let l = AppListeners::bind(addr, app.socket, app.instances)
                    .with_context(|| format!("app {}: cannot listen on {addr}", app.name))?;
                info!(
                    "{} listening on {} ({}, {} worker{})",
                    app.name,
                    l.bound(),
                    app.socket,
                    app.instances,
                    if app.instances == 1 { "" } else { "s" }
                );
                Some(Arc::new(Mutex::new(l)))
            }
            None => None,
        };
        bound.push(listeners);
    }

    let shared = Arc::new(Shared {
        logs: LogHub::new(opts.console),
        trampoline: std::env::current_exe().context("cannot find the drover binary")?,
        node_shim,
        workers: Mutex::new(HashMap::new()),
        usage: Mutex::new(HashMap::new()),
        slot_changed: Notify::new(),
        pumps: Mutex::new(Vec::new()),
    });

    let reaper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                shared.dispatch_exits();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        })
    };
    let sampler = tokio::spawn(sampler::run(shared.clone()));

    let mut slots: Vec<SlotHandle> = Vec::new();
    let mut tasks = Vec::new();
    for (app, listeners) in apps.into_iter().zip(bound) {
        let app = Arc::new(app);
        for instance in 0..app.instances {
            let (slot, handle) =
                Slot::start(app.clone(), instance, listeners.clone(), shared.clone());
            tasks.push(tokio::spawn(slot.run()));
            slots.push(handle);
        }
    }

    tokio::pin!(shutdown);
    let all_done = loop {
        if slots.iter().all(|s| s.status.borrow().at_rest) {
            break true;
        }
        tokio::select! {
            _ = &mut shutdown => break false,
            _ = shared.slot_changed.notified() => {}
        }
    };

    if !all_done {
        info!(
            "stopping {} worker{}",
            slots.len(),
            if slots.len() == 1 { "" } else { "s" }
        );
        for slot in &slots {
            let _ = slot.tx.send(SlotMsg::Stop);
        }
        // Each slot reaches rest within its kill_timeout (then SIGKILL) plus reaping.
        while !slots.iter().all(|s| s.status.borrow().at_rest) {
            shared.slot_changed.notified().await;
        }
    }
    let errored = slots
        .iter()
        .filter(|s| s.status.borrow().status == "errored")
        .map(|s| format!("{}#{}", s.app.name, s.instance))
        .collect();

    drop(slots);
    for task in tasks {
        task.abort();
    }
    sampler.abort();
    let pumps = std::mem::take(&mut *lock(&shared.pumps));
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        for pump in pumps {
            let _ = pump.await;
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            "some worker output pipes were still open after {DRAIN_TIMEOUT:?}; stopped reading them"
        );
    }
    shared.logs.flush_all();
    reaper.abort();
    Ok(RunOutcome { errored, all_done })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
