//! The supervisor: binds each app's listener, runs one task per worker slot, reaps every
//! child on SIGCHLD, samples memory, answers the control socket, and stops everything in
//! order on shutdown.
//!
//! Like mini-redis's `server::run`, the caller supplies the control listener and the
//! shutdown signal, so `drover run`, `drover daemon` and tests drive the same code.

pub mod dump;
mod handlers;
mod handover;
mod health;
mod metrics;
mod node_channel;
mod notify;
pub mod policy;
mod service_manager;
mod shared;
pub mod slot;
pub mod spawn;
mod triggers;

use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{AppSpec, MetricsSpec};
use crate::ipc::server::{self, Incoming};
use crate::logs::LogHub;
use crate::os;
use crate::protocol::Response;
use crate::sampler;
use crate::sockets::{AppListeners, ListenerCell};
use crate::sync::lock;
use crate::upgrade::state::{HostKind, State, UpdateRecord};
use policy::Status;
use service_manager::{Census, ServiceManager};
pub(crate) use shared::Shared;
use slot::{Slot, SlotHandle, SlotMsg};

/// How long the supervisor waits, after its workers are gone, for their pipes to reach
/// EOF (a grandchild that left the process group may still hold one).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After the last worker is at rest at shutdown, how long the supervisor still answers, so
/// the operations that waited on those workers get their answers out.
const SHUTDOWN_ANSWER_GRACE: Duration = Duration::from_millis(200);

/// Beyond an app's kill_timeout, how long a stop may take (reaping, a worker stuck in
/// the kernel) before whoever waits on it is told it failed rather than kept waiting.
const STOP_SLACK: Duration = Duration::from_secs(10);

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
    /// SIGUSR1 reopens every log file (`drover reload-logs`), as logrotate(8)'s
    /// `postrotate` sends it to nginx and the like.
    pub reopen_logs_on_sigusr1: bool,
    /// Tell the service manager that started us (NOTIFY_SOCKET, systemd's
    /// `Type=notify`) when we are ready, reloading, stopping, and alive.
    pub notify_service_manager: bool,
    /// What hosts the supervisor, and the descriptor of its `drover.lock`: what an
    /// in-place upgrade hands over besides the supervisor's own state.
    pub host: HostKind,
    pub lock_fd: Option<RawFd>,
    /// Serve `/metrics` and `/healthz` there (`--metrics`, a file's `metrics:`); bound
    /// before any worker starts, so an address in use fails the run with nothing started.
    pub metrics: Option<MetricsSpec>,
}

/// How a supervisor run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Slots that were `errored` (crash loops) at the end.
    pub errored: Vec<String>,
    /// True when the run ended because every worker was done, not by a signal or `kill`.
    pub all_done: bool,
}

/// How a run of the supervisor's loop ended.
#[derive(Debug)]
pub enum Ended {
    Done(RunOutcome),
    /// An in-place upgrade: the workers, their pipes and listeners are handed over in
    /// `state` (descriptors named by number, still close-on-exec) for `binary`. The
    /// host checks the binary, then execs it or, failing that, resumes from `state`.
    HandOver(Box<Handover>),
}

#[derive(Debug)]
pub struct Handover {
    pub state: State,
    pub binary: PathBuf,
}

/// An app to start with the environment its workers inherit (the caller's).
pub struct NewApp {
    pub spec: AppSpec,
    pub env: BTreeMap<String, String>,
    /// Added at rest: listed as stopped, its port not held (an app saved stopped).
    pub stopped: bool,
}

/// One app in the supervisor's table.
pub(crate) struct App {
    pub spec: Arc<AppSpec>,
    pub env: Arc<BTreeMap<String, String>>,
    pub listeners: Arc<ListenerCell>,
    pub slots: Vec<SlotEntry>,
    /// A change to the app's slots that is under way; a second one is refused as busy.
    pub pending: Option<Pending>,
    /// Its watch and cron_restart, reloading it by themselves.
    pub triggers: triggers::Triggers,
}

/// A change of an app's slots that takes time, run by a task of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Its workers are stopping; then the app leaves the table.
    Deleting,
    /// Its highest slots drain and stop; then they leave the table.
    ScalingDown { from: u32, to: u32 },
}

pub(crate) struct SlotEntry {
    /// Stable numeric id (PM2's pm_id), never reused while the supervisor lives.
    pub id: u32,
    pub handle: SlotHandle,
    pub task: JoinHandle<()>,
    /// On its way out (scale-down, delete of one worker): shown by `list`, but no longer
    /// a target of stop, restart or reload.
    pub leaving: bool,
}

/// What a finished operation asks of the table before its client is answered: the main
/// loop does it, so the table has one owner.
#[derive(Debug)]
pub(crate) enum Tidy {
    Nothing,
    /// Apps whose every worker is at rest release their ports (`stop` frees the address).
    ReleaseIdlePorts,
    /// These slots are at rest for good (delete, scale-down): drop them, their listeners,
    /// and apps left without a slot; clear the app's `pending`.
    Remove(Vec<u32>),
}

/// An operation's task reporting back to the main loop.
pub(crate) struct Finished {
    pub tidy: Tidy,
    pub answer: Response,
    pub reply: mpsc::Sender<Response>,
    /// Held until the main loop has done the tidy: only then is the operation over.
    pub op: Op,
}

/// Counts the operations under way (reloads, stops, drains…: the tasks that answer
/// later), which an in-place upgrade waits out. Each holds an [`Op`] until it is over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ops(Arc<AtomicUsize>);

/// One operation under way; dropping it ends it.
#[derive(Debug)]
pub(crate) struct Op(Arc<AtomicUsize>);

impl Ops {
    pub fn begin(&self) -> Op {
        self.0.fetch_add(1, Ordering::AcqRel);
        Op(self.0.clone())
    }

    pub fn under_way(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The supervisor's state: its apps, and what the slot tasks share.
pub(crate) struct Supervisor {
    shared: Arc<Shared>,
    home: PathBuf,
    apps: Vec<App>,
    next_id: u32,
    /// Where operations' tasks report back (see [`Finished`]).
    finished: mpsc::UnboundedSender<Finished>,
    /// Operations under way.
    ops: Ops,
    /// Stopping everything: requests that show are answered, changes are refused.
    shutting_down: bool,
    /// systemd, when it started us as a `Type=notify` service.
    service: Option<Arc<ServiceManager>>,
    /// Where apps' watches and schedules ask for their reload.
    triggered: mpsc::UnboundedSender<triggers::Trigger>,
    /// The binary this image of the supervisor runs: the one it was started from, or
    /// the one an update handed over to. `drover update` by SIGUSR2 re-executes it.
    binary: PathBuf,
    /// When the supervisor (its first image) started, ms since the Unix epoch.
    started_at_ms: u64,
    /// The last in-place updates, oldest first (see `handlers::update`).
    history: Vec<UpdateRecord>,
    /// The in-place update under way, waiting for operations to finish.
    update: Option<handlers::UpdateRun>,
    /// A copy of the workers' notify socket, for an update to hand over.
    notify_fd: OwnedFd,
    options: crate::upgrade::state::OptionsState,
    host: HostKind,
    lock_fd: Option<RawFd>,
    /// The metrics endpoint, and the table it reads.
    metrics: metrics::Metrics,
    /// Workers a `stop` asked for that have not run since: while any is left, a
    /// `drover run` supervisor does not count its workers as "all stopped on their own"
    /// and stays up for a `start` (see [`Supervisor::done_on_its_own`]). By slot id:
    /// whether it has come to rest since (until then it is still on its way down).
    stopped_on_request: BTreeMap<u32, bool>,
}

/// Whether the main loop goes on after a request.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Kill,
}

/// What feeds the control loop besides the supervisor's own channels.
struct Inbox {
    requests: mpsc::Receiver<Incoming>,
    finished: mpsc::UnboundedReceiver<Finished>,
    triggered: mpsc::UnboundedReceiver<triggers::Trigger>,
    /// The control server, which gives its listener back when stopped.
    control: Option<(JoinHandle<UnixListener>, oneshot::Sender<server::Stop>)>,
    reaper: JoinHandle<()>,
    notifier: JoinHandle<()>,
    sampler_stop: Arc<std::sync::atomic::AtomicBool>,
}

/// How the control loop ended.
enum LoopEnd {
    /// Shutdown (a signal, `kill`) or, with `exit_when_idle`, every worker done.
    Stop { all_done: bool },
    /// An update's time has come: nothing is under way.
    HandOver,
}

/// Runs `apps` (and whatever the control socket asks) until `shutdown` resolves, a client
/// sends `kill`, or — with `exit_when_idle` — every worker is stopped or errored; then
/// stops all workers gracefully and drains their logs. Or until an in-place update
/// (`drover update`, SIGUSR2), which freezes everything into the state it returns.
///
/// The loop never waits on anything but its next event: a request edits the app table
/// and returns, and what takes time (a graceful stop, a drain, a reload) runs as a task
/// that answers its client when done, reporting back to the loop when the table
/// must change. So `list`, `ping`, other apps' starts and SIGTERM are served at once
/// while a worker takes its whole kill_timeout to stop.
///
/// Must run on a current-thread runtime on the main thread: workers are spawned with
/// PR_SET_PDEATHSIG, which is tied to the spawning thread.
pub async fn run(
    apps: Vec<NewApp>,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Ended> {
    // Before the first spawn, so no SIGCHLD is missed.
    let sigchld = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
    if let Err(e) = os::become_subreaper() {
        warn!("cannot become a child subreaper ({e}); orphaned grandchildren go to init");
    }
    let notify_path = opts.home.join("notify.sock");
    let notify_socket = notify::bind(&notify_path).context("cannot create the notify socket")?;
    let binary = std::env::current_exe().context("cannot find the drover binary")?;
    let started_at_ms = handlers::unix_ms(std::time::SystemTime::now());
    let (mut sup, channels) = Supervisor::new(&opts, &notify_socket, binary, started_at_ms)?;
    // Before any worker: an address in use fails the run with nothing started.
    if let Some(spec) = opts.metrics {
        let prepared = sup
            .metrics
            .prepare(spec)
            .map_err(|f| anyhow::anyhow!(f.message))?;
        if let Some(prepared) = prepared {
            sup.metrics.serve(prepared).map_err(anyhow::Error::msg)?;
        }
    }
    // Every listener of the initial apps is bound before any worker starts: a port that
    // cannot be bound fails the whole run with nothing started.
    sup.add_apps(apps).map_err(|e| anyhow::anyhow!(e.message))?;
    let inbox = sup.start_serving(sigchld, notify_socket, opts.control, channels)?;
    sup.serve(inbox, shutdown).await
}

/// Goes on supervising from the state a previous image of drover handed over (an
/// in-place update): the same workers, listeners, pipes, ids and counters. `failure`:
/// the update to this image's binary failed, and this is the previous binary going on.
pub async fn resume(
    state: State,
    failure: Option<String>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Ended> {
    let sigchld = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
    if let Err(e) = os::become_subreaper() {
        warn!("cannot become a child subreaper ({e}); orphaned grandchildren go to init");
    }
    let resumed = handover::Resumed::adopt(state, failure)?;
    let opts = resumed.options();
    let (mut sup, channels) = Supervisor::new(
        &opts,
        &resumed.notify_socket,
        resumed.binary.clone(),
        resumed.started_at_ms,
    )?;
    let (notify_socket, control) = sup.take_over(resumed)?;
    let inbox = sup.start_serving(sigchld, notify_socket, control, channels)?;
    sup.serve(inbox, shutdown).await
}

/// The receiving ends of the supervisor's own channels, until the loop starts.
struct Channels {
    finished: mpsc::UnboundedReceiver<Finished>,
    triggered: mpsc::UnboundedReceiver<triggers::Trigger>,
    /// The control loop's queue: the control server's requests, and the metrics
    /// endpoint's `/healthz` pings.
    requests: (mpsc::Sender<Incoming>, mpsc::Receiver<Incoming>),
}

impl Supervisor {
    fn new(
        opts: &RunOptions,
        notify_socket: &tokio::net::UnixDatagram,
        binary: PathBuf,
        started_at_ms: u64,
    ) -> anyhow::Result<(Supervisor, Channels)> {
        use std::os::fd::AsFd;
        let shims = crate::shim::install(&opts.home.join("shim"))
            .context("cannot write the Node and Python preloads")?;
        let shared = Arc::new(Shared::new(
            LogHub::new(opts.console),
            std::env::current_exe().context("cannot find the drover binary")?,
            shims,
            opts.home.join("notify.sock"),
        ));
        let (finished_tx, finished) = mpsc::unbounded_channel();
        let (triggered_tx, triggered) = mpsc::unbounded_channel();
        let (requests_tx, requests) = mpsc::channel::<Incoming>(64);
        let service = match opts.notify_service_manager {
            true => ServiceManager::from_env().map(Arc::new),
            false => None,
        };
        let notify_fd = notify_socket
            .as_fd()
            .try_clone_to_owned()
            .context("cannot keep the notify socket")?;
        let sup = Supervisor {
            metrics: metrics::Metrics::new(shared.clone(), requests_tx.clone()),
            shared,
            home: opts.home.clone(),
            apps: Vec::new(),
            next_id: 0,
            finished: finished_tx,
            ops: Ops::default(),
            shutting_down: false,
            service,
            triggered: triggered_tx,
            binary,
            started_at_ms,
            history: Vec::new(),
            update: None,
            notify_fd,
            options: crate::upgrade::state::OptionsState {
                console: opts.console,
                exit_when_idle: opts.exit_when_idle,
                reload_on_sighup: opts.reload_on_sighup,
                reopen_logs_on_sigusr1: opts.reopen_logs_on_sigusr1,
                notify_service_manager: opts.notify_service_manager,
            },
            host: opts.host,
            lock_fd: opts.lock_fd,
            stopped_on_request: BTreeMap::new(),
        };
        Ok((
            sup,
            Channels {
                finished,
                triggered,
                requests: (requests_tx, requests),
            },
        ))
    }

    /// Starts what runs beside the loop: the reaper (whose first look hands the slots
    /// every exit that happened before), the notify socket, the sampler, the control
    /// server.
    fn start_serving(
        &mut self,
        mut sigchld: Signal,
        notify_socket: tokio::net::UnixDatagram,
        control: Option<UnixListener>,
        channels: Channels,
    ) -> anyhow::Result<Inbox> {
        let reaper = {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.dispatch_exits();
                    if sigchld.recv().await.is_none() {
                        break;
                    }
                }
            })
        };
        let notifier = tokio::spawn(notify::serve(notify_socket, self.shared.clone()));
        let sampler_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        sampler::spawn(self.shared.clone(), sampler_stop.clone())
            .context("cannot start the sampler thread")?;
        let (requests_tx, requests) = channels.requests;
        let control = control.map(|listener| {
            let (stop, stopped) = oneshot::channel::<server::Stop>();
            let task = tokio::spawn(server::serve(listener, requests_tx, async {
                stopped.await.unwrap_or(server::Stop::Shutdown)
            }));
            (task, stop)
        });
        Ok(Inbox {
            requests,
            finished: channels.finished,
            triggered: channels.triggered,
            control,
            reaper,
            notifier,
            sampler_stop,
        })
    }

    /// The control loop, then the shutdown or the hand-over.
    async fn serve(
        mut self,
        mut inbox: Inbox,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<Ended> {
        let mut sighup = match self.options.reload_on_sighup {
            true => Some(signal(SignalKind::hangup()).context("cannot watch SIGHUP")?),
            false => None,
        };
        let mut sigusr1 = match self.options.reopen_logs_on_sigusr1 {
            true => Some(signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?),
            false => None,
        };
        // gunicorn's signal: re-execute the binary we were started from, in place.
        let mut sigusr2 = signal(SignalKind::user_defined2()).context("cannot watch SIGUSR2")?;
        // WATCHDOG=1 comes from the control loop itself: a loop that stops turning stops
        // the pings, and systemd restarts the service.
        let mut watchdog = self
            .service
            .as_ref()
            .and_then(|s| s.watchdog_interval())
            .map(|every| {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
        tokio::pin!(shutdown);
        let end = loop {
            if self.options.exit_when_idle && self.done_on_its_own() && self.update.is_none() {
                break LoopEnd::Stop { all_done: true };
            }
            if self.update_can_start() {
                break LoopEnd::HandOver;
            }
            self.tell_service_manager();
            self.metrics.publish(&self.apps);
            let give_up_at = self.update.as_ref().map(|u| u.give_up_at);
            tokio::select! {
                _ = &mut shutdown => break LoopEnd::Stop { all_done: false },
                Some(incoming) = inbox.requests.recv() => {
                    if self.handle(incoming) == Flow::Kill {
                        break LoopEnd::Stop { all_done: false };
                    }
                }
                Some(done) = inbox.finished.recv() => self.finish(done),
                _ = self.shared.next_slot_change() => {}
                Some(()) = async { sighup.as_mut()?.recv().await } => {
                    info!("SIGHUP received: reloading every app");
                    self.reload_all_logged();
                }
                Some(trigger) = inbox.triggered.recv() => self.triggered(trigger),
                Some(()) = async { sigusr1.as_mut()?.recv().await } => {
                    info!("SIGUSR1 received: reopening every log file");
                    self.reload_logs_logged();
                }
                Some(()) = sigusr2.recv() => self.update_on_signal(),
                () = tokio::time::sleep_until(give_up_at.unwrap_or_else(tokio::time::Instant::now)), if give_up_at.is_some() => {
                    self.update_gives_up();
                }
                Some(_) = async { Some(watchdog.as_mut()?.tick().await) } => self.watchdog(),
            }
        };
        match end {
            LoopEnd::HandOver => self.hand_over(inbox).await,
            LoopEnd::Stop { all_done } => {
                self.stop_everything(inbox, all_done, &mut watchdog).await
            }
        }
    }

    /// Stops every worker while still answering (`list` shows them `stopping`, a pending
    /// `stop` gets its answer, changes are refused), then drains their logs.
    async fn stop_everything(
        mut self,
        mut inbox: Inbox,
        all_done: bool,
        watchdog: &mut Option<tokio::time::Interval>,
    ) -> anyhow::Result<Ended> {
        if !all_done {
            let count: usize = self.apps.iter().map(|a| a.slots.len()).sum();
            info!(
                "stopping {count} worker{}",
                if count == 1 { "" } else { "s" }
            );
        }
        self.shutting_down = true;
        self.update_refused("the supervisor is shutting down");
        if let Some(service) = &self.service {
            service.stopping(self.census());
        }
        let ids: Vec<u32> = self.slot_ids().collect();
        let stops = self.stop_slots(&ids);
        let cap = self.stop_cap();
        // Once every worker is at rest, a moment for the tasks that waited on them to report.
        let stopped = async move {
            match tokio::time::timeout(cap, stops).await {
                Ok(_) => tokio::time::sleep(SHUTDOWN_ANSWER_GRACE).await,
                Err(_) => {
                    warn!("some workers were still stopping after kill_timeout; leaving them")
                }
            }
        };
        tokio::pin!(stopped);
        loop {
            self.tell_service_manager();
            self.metrics.publish(&self.apps);
            tokio::select! {
                () = &mut stopped => break,
                Some(incoming) = inbox.requests.recv() => {
                    let _ = self.handle(incoming);
                }
                Some(done) = inbox.finished.recv() => self.finish(done),
                _ = self.shared.next_slot_change() => {}
                Some(_) = async { Some(watchdog.as_mut()?.tick().await) } => self.watchdog(),
            }
        }
        let control = inbox.control.map(|(task, stop)| {
            let _ = stop.send(server::Stop::Shutdown);
            task
        });
        self.metrics.stop();
        let errored = self
            .apps
            .iter()
            .flat_map(|a| {
                a.slots
                    .iter()
                    .filter(|s| s.handle.status.borrow().status == Status::Errored)
                    .map(|s| format!("{}#{}", a.spec.name, s.handle.instance))
            })
            .collect();
        for app in self.apps.drain(..) {
            for slot in app.slots {
                slot.task.abort();
            }
        }
        inbox
            .sampler_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(control) = control {
            let _ = control.await;
        }
        let pumps = self.shared.take_pumps();
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
        self.shared.logs().flush_all();
        inbox.reaper.abort();
        inbox.notifier.abort();
        let _ = std::fs::remove_file(self.home.join("notify.sock"));
        Ok(Ended::Done(RunOutcome { errored, all_done }))
    }
}

impl Supervisor {
    /// How the workers are doing, for the service manager.
    fn census(&self) -> Census {
        let mut census = Census {
            settled: true,
            ..Census::default()
        };
        for slot in self.apps.iter().flat_map(|a| &a.slots) {
            census.workers += 1;
            match slot.handle.status.borrow().status {
                Status::Online => census.online += 1,
                Status::Errored => census.errored += 1,
                Status::Stopped => {}
                Status::Launching | Status::Stopping | Status::Waiting => census.settled = false,
            }
        }
        census
    }

    /// STATUS= (and the first READY=1) after whatever just changed; a no-op unless
    /// systemd started us.
    fn tell_service_manager(&self) {
        if let Some(service) = &self.service {
            service.observe(self.census());
        }
    }

    fn watchdog(&self) {
        if let Some(service) = &self.service {
            service.watchdog();
        }
    }

    fn all_at_rest(&self) -> bool {
        self.apps
            .iter()
            .all(|a| a.slots.iter().all(|s| s.handle.status.borrow().at_rest))
    }

    /// Whether every worker has ended by itself (exited for good, or errored): when a
    /// `drover run` supervisor exits, as pm2-runtime does. Not while a worker stopped by
    /// `drover stop` is among them, nor once `drover delete` has emptied the table: the
    /// user is in charge then, and `drover start` (or `drover kill`) comes next.
    fn done_on_its_own(&mut self) -> bool {
        // A worker that came to rest after its stop and runs again (start, restart,
        // reload) is out of the user's hands again; a deleted one is gone.
        let apps = &self.apps;
        self.stopped_on_request.retain(|&id, rested| {
            let Some(slot) = apps
                .iter()
                .flat_map(|a| a.slots.iter())
                .find(|s| s.id == id)
            else {
                return false;
            };
            let at_rest = slot.handle.status.borrow().at_rest;
            *rested |= at_rest;
            at_rest || !*rested
        });
        !self.apps.is_empty() && self.stopped_on_request.is_empty() && self.all_at_rest()
    }

    fn slot_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.apps.iter().flat_map(|a| a.slots.iter().map(|s| s.id))
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
                    ListenerCell::bound(addr.clone(), l)
                }
                // A Node cluster app binds at its workers' first listen (slot.rs).
                None => ListenerCell::default(),
            };
            bound.push(listeners);
        }
        // Watches next, still before any worker starts.
        let mut armed = Vec::new();
        for app in &apps {
            let spec = Arc::new(app.spec.clone());
            let triggers =
                triggers::arm(&spec, &self.triggered).map_err(handlers::Failure::failed)?;
            armed.push((spec, triggers));
        }
        let mut names = Vec::new();
        for ((new, listeners), (spec, triggers)) in apps.into_iter().zip(bound).zip(armed) {
            let mut app = App {
                spec,
                env: Arc::new(new.env),
                listeners: Arc::new(listeners),
                slots: Vec::new(),
                pending: None,
                triggers,
            };
            for instance in 0..app.spec.instances {
                self.add_slot(&mut app, instance, !new.stopped);
            }
            if new.stopped
                && let Some(listeners) = app.listeners.get()
            {
                lock(listeners).close_all();
            }
            names.push(app.spec.name.clone());
            self.apps.push(app);
        }
        Ok(names)
    }

    /// Adds a slot to `app`, its first worker started unless `!begin` (at rest).
    fn add_slot(&mut self, app: &mut App, instance: u32, begin: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let (slot, handle) = Slot::start(
            app.spec.clone(),
            app.env.clone(),
            instance,
            app.listeners.clone(),
            self.shared.clone(),
            begin,
        );
        let task = tokio::spawn(slot.run());
        app.slots.push(SlotEntry {
            id,
            handle,
            task,
            leaving: false,
        });
    }

    /// Asks the slots with these ids to stop; the future resolves once each is at rest
    /// (or its task is gone), with a line for each stop a later command superseded. It
    /// borrows nothing, so a task can await it.
    fn stop_slots(&self, ids: &[u32]) -> impl Future<Output = Vec<String>> + Send + 'static {
        let waits: Vec<oneshot::Receiver<slot::StopOutcome>> = self
            .slots(ids)
            .map(|slot| {
                let (done, wait) = oneshot::channel();
                let _ = slot.handle.tx.send(SlotMsg::Stop { done: Some(done) });
                wait
            })
            .collect();
        async move {
            let mut superseded = Vec::new();
            for wait in waits {
                // A closed channel means the slot's task is gone (deleted): at rest too.
                if let Ok(Err(line)) = wait.await {
                    superseded.push(line);
                }
            }
            superseded
        }
    }

    /// How long a stop of any slot may take before its waiter gives up: the longest
    /// kill_timeout, plus slack.
    fn stop_cap(&self) -> Duration {
        self.apps
            .iter()
            .map(|a| a.spec.stop.kill_timeout)
            .max()
            .unwrap_or_default()
            + STOP_SLACK
    }

    fn slots<'a>(&'a self, ids: &'a [u32]) -> impl Iterator<Item = &'a SlotEntry> + 'a {
        self.apps
            .iter()
            .flat_map(|a| a.slots.iter())
            .filter(move |s| ids.contains(&s.id))
    }

    /// An operation's task is done: change the table as it asks, then answer its client.
    fn finish(&mut self, done: Finished) {
        let Finished {
            tidy,
            answer,
            reply,
            op,
        } = done;
        match tidy {
            Tidy::Nothing => {}
            Tidy::ReleaseIdlePorts => self.release_idle_ports(),
            Tidy::Remove(ids) => self.remove_slots(&ids),
        }
        // A fresh channel with room: never waits.
        let _ = reply.try_send(answer);
        drop(op);
    }

    /// An app whose every worker is stopped releases its ports (`stop` frees them).
    fn release_idle_ports(&self) {
        for app in &self.apps {
            if !app.slots.iter().all(|s| s.handle.status.borrow().at_rest) {
                continue;
            }
            if let Some(listeners) = app.listeners.get() {
                lock(listeners).close_all();
            }
            app.listeners.close_more();
        }
    }

    /// Drops slots that are at rest for good, their listeners, and apps left empty.
    fn remove_slots(&mut self, ids: &[u32]) {
        for app in &mut self.apps {
            let before = app.slots.len();
            app.slots.retain(|s| {
                let gone = ids.contains(&s.id);
                if gone {
                    s.task.abort();
                    if let Some(listeners) = app.listeners.get() {
                        lock(listeners).remove(s.handle.instance);
                    }
                }
                !gone
            });
            // The change under way is over once none of its leaving slots is left.
            if app.slots.len() != before && !app.slots.iter().any(|s| s.leaving) {
                app.pending = None;
            }
        }
        // An app with no slot left is gone, its listeners closed with it.
        self.apps.retain(|a| !a.slots.is_empty());
    }
}
