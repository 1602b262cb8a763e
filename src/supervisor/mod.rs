//! The supervisor: binds each app's listener, runs one task per worker slot, reaps every
//! child on SIGCHLD, samples memory, answers the control socket, and stops everything in
//! order on shutdown.
//!
//! Like mini-redis's `server::run`, the caller supplies the control listener and the
//! shutdown signal, so `drover run`, `drover daemon` and tests drive the same code.

pub mod dump;
mod handlers;
mod notify;
pub mod policy;
pub mod slot;
pub mod spawn;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use nix::unistd::Pid;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::AppSpec;
use crate::ipc::server::{self, Incoming};
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
    /// Exit once every worker is stopped or errored (`drover run`, as pm2-runtime);
    /// the daemon keeps running with nothing to do.
    pub exit_when_idle: bool,
    /// The control socket, already bound (see `ipc::server::bind`).
    pub control: Option<UnixListener>,
    /// SIGHUP reloads every app (as gunicorn's arbiter does).
    pub reload_on_sighup: bool,
}

/// How a supervisor run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Slots that were `errored` (crash loops) at the end.
    pub errored: Vec<String>,
    /// True when the run ended because every worker was done, not by a signal or `kill`.
    pub all_done: bool,
}

/// An app to start with the environment its workers inherit (the caller's).
pub struct NewApp {
    pub spec: AppSpec,
    pub env: BTreeMap<String, String>,
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
    pub node_shim: PathBuf,
    /// NOTIFY_SOCKET for `wait_ready` workers.
    pub notify_socket: PathBuf,
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

    pub fn usage_of(&self, pid: Pid) -> Usage {
        lock(&self.usage).get(&pid).copied().unwrap_or_default()
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

/// One app in the supervisor's table.
pub(crate) struct App {
    pub spec: Arc<AppSpec>,
    pub env: Arc<BTreeMap<String, String>>,
    pub listeners: Option<Arc<Mutex<AppListeners>>>,
    pub slots: Vec<SlotEntry>,
}

pub(crate) struct SlotEntry {
    /// Stable numeric id (PM2's pm_id), never reused while the supervisor lives.
    pub id: u32,
    pub handle: SlotHandle,
    pub task: JoinHandle<()>,
}

/// The supervisor's state: its apps, and what the slot tasks share.
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    home: PathBuf,
    apps: Vec<App>,
    next_id: u32,
}

/// Whether the main loop goes on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Kill,
}

/// Runs `apps` (and whatever the control socket asks) until `shutdown` resolves, a client
/// sends `kill`, or — with `exit_when_idle` — every worker is stopped or errored; then
/// stops all workers gracefully and drains their logs.
///
/// Must run on a current-thread runtime on the main thread: workers are spawned with
/// PR_SET_PDEATHSIG, which is tied to the spawning thread.
pub async fn run(
    apps: Vec<NewApp>,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunOutcome> {
    // Before the first spawn, so no SIGCHLD is missed.
    let mut sigchld = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
    if let Err(e) = os::become_subreaper() {
        warn!("cannot become a child subreaper ({e}); orphaned grandchildren go to init");
    }
    let node_shim =
        crate::shim::install(&opts.home.join("shim")).context("cannot write the Node shim")?;
    let notify_path = opts.home.join("notify.sock");
    let notify_socket = notify::bind(&notify_path).context("cannot create the notify socket")?;
    let shared = Arc::new(Shared {
        notify_socket: notify_path.clone(),
        logs: LogHub::new(opts.console),
        trampoline: std::env::current_exe().context("cannot find the drover binary")?,
        node_shim,
        workers: Mutex::new(HashMap::new()),
        usage: Mutex::new(HashMap::new()),
        slot_changed: Notify::new(),
        pumps: Mutex::new(Vec::new()),
    });
    let mut sup = Supervisor {
        shared: shared.clone(),
        home: opts.home.clone(),
        apps: Vec::new(),
        next_id: 0,
    };

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
    let notifier = tokio::spawn(notify::serve(notify_socket, shared.clone()));
    let sampler_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    sampler::spawn(shared.clone(), sampler_stop.clone())
        .context("cannot start the sampler thread")?;

    // Every listener of the initial apps is bound before any worker starts: a port that
    // cannot be bound fails the whole run with nothing started.
    sup.add_apps(apps).map_err(|e| anyhow::anyhow!(e.message))?;

    let (requests_tx, mut requests) = mpsc::channel::<Incoming>(64);
    let (control_stop, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control = opts.control.map(|listener| {
        tokio::spawn(server::serve(listener, requests_tx, async {
            let _ = control_stopped.await;
        }))
    });

    let mut sighup = match opts.reload_on_sighup {
        true => Some(signal(SignalKind::hangup()).context("cannot watch SIGHUP")?),
        false => None,
    };
    tokio::pin!(shutdown);
    let all_done = loop {
        if opts.exit_when_idle && sup.all_at_rest() {
            break true;
        }
        tokio::select! {
            _ = &mut shutdown => break false,
            Some(incoming) = requests.recv() => {
                if sup.handle(incoming).await == Flow::Kill {
                    break false;
                }
            }
            _ = shared.slot_changed.notified() => {}
            Some(()) = async { sighup.as_mut()?.recv().await } => {
                info!("SIGHUP received: reloading every app");
                let (tx, mut rx) = mpsc::channel(1);
                sup.reload(&crate::protocol::Target::All, 1, tx);
                tokio::spawn(async move {
                    match rx.recv().await {
                        Some(crate::protocol::Response::Done { message }) => info!("{message}"),
                        Some(crate::protocol::Response::Error { message, .. }) => warn!("{message}"),
                        _ => {}
                    }
                });
            }
        }
    };

    let _ = control_stop.send(());
    if !all_done {
        let count: usize = sup.apps.iter().map(|a| a.slots.len()).sum();
        info!(
            "stopping {count} worker{}",
            if count == 1 { "" } else { "s" }
        );
    }
    let ids: Vec<u32> = sup
        .apps
        .iter()
        .flat_map(|a| a.slots.iter().map(|s| s.id))
        .collect();
    sup.stop_and_wait(&ids).await;
    let errored = sup
        .apps
        .iter()
        .flat_map(|a| {
            a.slots
                .iter()
                .filter(|s| s.handle.status.borrow().status == "errored")
                .map(|s| format!("{}#{}", a.spec.name, s.handle.instance))
        })
        .collect();
    for app in sup.apps.drain(..) {
        for slot in app.slots {
            slot.task.abort();
        }
    }
    sampler_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(control) = control {
        let _ = control.await;
    }
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
    notifier.abort();
    let _ = std::fs::remove_file(&notify_path);
    Ok(RunOutcome { errored, all_done })
}

impl Supervisor {
    fn all_at_rest(&self) -> bool {
        self.apps
            .iter()
            .all(|a| a.slots.iter().all(|s| s.handle.status.borrow().at_rest))
    }

    /// Adds apps and starts their workers. Every listener is bound first; if one fails,
    /// nothing of this batch is started.
    fn add_apps(&mut self, apps: Vec<NewApp>) -> Result<Vec<String>, handlers::Failure> {
        let mut bound = Vec::new();
        for app in &apps {
            let listeners = match &app.spec.listen {
                Some(addr) => {
                    let l = AppListeners::bind(addr, app.spec.socket, app.spec.instances).map_err(
                        |e| {
                            handlers::Failure::failed(format!(
                                "app {}: cannot listen on {addr}: {e}",
                                app.spec.name
                            ))
                        },
                    )?;
                    info!(
                        "{} listening on {} ({}, {} worker{})",
                        app.spec.name,
                        l.bound(),
                        app.spec.socket,
                        app.spec.instances,
                        if app.spec.instances == 1 { "" } else { "s" }
                    );
                    Some(Arc::new(Mutex::new(l)))
                }
                None => None,
            };
            bound.push(listeners);
        }
        let mut names = Vec::new();
        for (new, listeners) in apps.into_iter().zip(bound) {
            let mut app = App {
                spec: Arc::new(new.spec),
                env: Arc::new(new.env),
                listeners,
                slots: Vec::new(),
            };
            for instance in 0..app.spec.instances {
                self.add_slot(&mut app, instance);
            }
            names.push(app.spec.name.clone());
            self.apps.push(app);
        }
        Ok(names)
    }

    fn add_slot(&mut self, app: &mut App, instance: u32) {
        let id = self.next_id;
        self.next_id += 1;
        let (slot, handle) = Slot::start(
            app.spec.clone(),
            app.env.clone(),
            instance,
            app.listeners.clone(),
            self.shared.clone(),
        );
        let task = tokio::spawn(slot.run());
        app.slots.push(SlotEntry { id, handle, task });
    }

    /// Asks the slots with these ids to stop and waits until each is at rest.
    async fn stop_and_wait(&self, ids: &[u32]) {
        for slot in self.slots(ids) {
            let _ = slot.handle.tx.send(SlotMsg::Stop);
        }
        self.wait_until(ids, |s| s.at_rest).await;
    }

    /// Waits until every slot with these ids satisfies `done`. Bounded: a slot reaches
    /// rest within its kill_timeout plus reaping; the cap only guards against a bug
    /// wedging the control loop.
    async fn wait_until(&self, ids: &[u32], done: impl Fn(&slot::SlotStatus) -> bool) {
        let cap = self
            .apps
            .iter()
            .map(|a| a.spec.stop.kill_timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_secs(10);
        let _ = tokio::time::timeout(cap, async {
            while !self.slots(ids).all(|s| done(&s.handle.status.borrow())) {
                self.shared.slot_changed.notified().await;
            }
        })
        .await;
        // Other waiters (the main loop) may have wanted that wake-up too.
        self.shared.slot_changed.notify_one();
    }

    fn slots<'a>(&'a self, ids: &'a [u32]) -> impl Iterator<Item = &'a SlotEntry> + 'a {
        self.apps
            .iter()
            .flat_map(|a| a.slots.iter())
            .filter(move |s| ids.contains(&s.id))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
