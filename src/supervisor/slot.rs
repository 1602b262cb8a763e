//! One task per worker slot: it feeds events (exits, timers, commands, memory samples)
//! through the pure policy and carries out the actions it returns (spawn, signal, kill,
//! release the listener, report) and arms one timer at the policy's next deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;
use tracing::{error, info, warn};

use super::Shared;
use super::health::{self, CheckRun};
use super::node_channel::ChannelHandover;
use super::node_channel::ToWorker;
use super::policy::{
    Action, Event, Phase, PolicyState, ReadyRule, Report, Restarts, SlotPolicy, Status,
};
use super::shared::PumpOf;
use super::spawn::{self, EnvSource, WorkerLaunch, spawn_worker};
use crate::config::{AppSpec, ListenAddr, Runtime};
use crate::logs::Stream;
use crate::os::{self, ExitKind};
use crate::sockets::{AppListeners, ListenerCell};
use crate::sync::lock;

/// What the rest of the supervisor tells a slot. Commands that someone waits on carry
/// the sender of their outcome: the slot answers once the command has taken effect, so
/// nobody polls the slot's status (which races the slot's own task).
#[derive(Debug)]
pub enum SlotMsg {
    Exited {
        pid: Pid,
        status: ExitKind,
    },
    MemoryExceeded {
        pid: Pid,
        rss: u64,
    },
    /// The worker (or a process of its tree) said READY=1.
    Ready {
        pid: Pid,
    },
    /// The Node shim of worker `pid` asks for a listener the app's workers share on
    /// `addr` (a cluster app without `listen:`); answered over its IPC channel, with the
    /// request's `seq`.
    Listen {
        pid: Pid,
        addr: SocketAddr,
        seq: u64,
    },
    /// Stop the worker; `done` hears once the slot is at rest, or that a later restart
    /// superseded the stop.
    Stop {
        done: Option<oneshot::Sender<StopOutcome>>,
    },
    /// Stop, then start a new worker; `done` hears once the new one is started (or why
    /// none is).
    Restart {
        done: Option<oneshot::Sender<RestartOutcome>>,
    },
    /// The worker (or a process of its tree) said WATCHDOG=1.
    Watchdog {
        pid: Pid,
    },
    /// A health check of worker `pid` ended.
    Checked {
        pid: Pid,
        result: Result<(), String>,
    },
    /// Replace the worker without a gap; the outcome goes to `done`.
    Reload {
        done: Option<mpsc::UnboundedSender<ReloadOutcome>>,
    },
    /// A new spec or environment, used from the next spawn on (`--update-env`, scale).
    Update {
        app: Arc<AppSpec>,
        env: Arc<BTreeMap<String, String>>,
    },
    /// PM2's `reset`: the restart counters back to 0; `done` hears once they are.
    ResetCounters {
        done: oneshot::Sender<()>,
    },
    /// PM2's `sendSignal`: `signal` to the worker's process (not its group).
    Signal {
        signal: Signal,
        done: oneshot::Sender<SignalOutcome>,
    },
    /// The environment of the slot's worker (`drover env`).
    Environment {
        done: oneshot::Sender<WorkerEnv>,
    },
    /// An in-place upgrade begins: from now on the slot changes nothing and keeps what
    /// it hears for the next image; `done` hears once it is so.
    Freeze {
        done: oneshot::Sender<()>,
    },
    /// The upgrade takes the frozen slot: its state and what it heard since the freeze
    /// go to `done`, and its task ends.
    HandOver {
        done: oneshot::Sender<SlotHandover>,
    },
}

/// A slot as it crosses an in-place upgrade (`crate::upgrade`): everything it knows but
/// its app's settings (the app's table entry carries those) and its workers' pipes and
/// channels (the shared pumps and channel tasks hand those over).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotHandover {
    pub policy: PolicyState,
    pub watch: Watch,
    pub taking: Option<bool>,
    /// What reached the frozen slot, in order, to be handled by the next image.
    pub deferred: Vec<Deferred>,
}

/// Something a frozen slot heard (an exit, a READY=1, a listen request…), kept to be
/// handled once the next image runs the slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Deferred {
    Exited {
        pid: Pid,
        status: ExitKind,
    },
    MemoryExceeded {
        pid: Pid,
        rss: u64,
    },
    Ready {
        pid: Pid,
    },
    Listen {
        pid: Pid,
        addr: SocketAddr,
        seq: u64,
    },
    Watchdog {
        pid: Pid,
    },
    Checked {
        pid: Pid,
        result: Result<(), String>,
    },
}

impl From<Deferred> for SlotMsg {
    fn from(deferred: Deferred) -> SlotMsg {
        match deferred {
            Deferred::Exited { pid, status } => SlotMsg::Exited { pid, status },
            Deferred::MemoryExceeded { pid, rss } => SlotMsg::MemoryExceeded { pid, rss },
            Deferred::Ready { pid } => SlotMsg::Ready { pid },
            Deferred::Listen { pid, addr, seq } => SlotMsg::Listen { pid, addr, seq },
            Deferred::Watchdog { pid } => SlotMsg::Watchdog { pid },
            Deferred::Checked { pid, result } => SlotMsg::Checked { pid, result },
        }
    }
}

/// Whom a signal reached (`Ok`), or why nobody (`Err`): a line for the user either way.
pub type SignalOutcome = Result<String, String>;

/// A worker's environment, as drover built it (`drover env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEnv {
    /// The worker whose environment it is; None: what the slot's next worker gets.
    pub pid: Option<Pid>,
    pub vars: BTreeMap<String, String>,
}

/// How the reload of one slot ended: a line for the user either way.
pub type ReloadOutcome = Result<String, String>;

/// How the restart of one slot ended: what it replaced, or a line saying why not.
pub type RestartOutcome = Result<Restarted, String>;

/// A slot's restart that took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    /// `app#instance`.
    pub label: String,
    /// The slot was at rest (stopped, errored) when the restart came: it is started,
    /// nothing is restarted.
    pub was_at_rest: bool,
    /// The worker it replaced (None: none ran, e.g. at rest or in a crash backoff).
    pub old: Option<Pid>,
    /// The worker that runs now (None: the new one waits out a crash backoff).
    pub new: Option<Pid>,
}

/// Who waits for a restart, with the slot as the restart found it.
struct RestartWaiter {
    done: oneshot::Sender<RestartOutcome>,
    was_at_rest: bool,
    old: Option<Pid>,
}

/// How the stop of one slot ended: at rest, or why not.
pub type StopOutcome = Result<(), String>;

/// A slot as others see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotStatus {
    pub status: Status,
    pub pid: Option<Pid>,
    pub restarts: u32,
    /// When the current worker started (for uptime).
    pub since: Option<Instant>,
    pub at_rest: bool,
    pub last_exit: Option<ExitKind>,
    /// It takes new connections (ready, not being replaced for its health).
    pub ready: bool,
    /// Why its health check or watchdog last failed, until it passes again.
    pub health: Option<String>,
    pub restarts_by_cause: Restarts,
}

pub struct SlotHandle {
    pub instance: u32,
    pub tx: mpsc::UnboundedSender<SlotMsg>,
    pub status: watch::Receiver<SlotStatus>,
}

pub struct Slot {
    app: Arc<AppSpec>,
    /// The environment workers inherit under the app's own env (the caller's, at start).
    env: Arc<BTreeMap<String, String>>,
    instance: u32,
    policy: SlotPolicy,
    listeners: Arc<ListenerCell>,
    /// The IPC channels of this slot's Node workers (see `node_channel`), by pid.
    channels: HashMap<Pid, mpsc::UnboundedSender<ToWorker>>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<SlotMsg>,
    rx: mpsc::UnboundedReceiver<SlotMsg>,
    status: watch::Sender<SlotStatus>,
    timer: Option<Instant>,
    /// Who waits for the reload in progress.
    reload_waiter: Option<mpsc::UnboundedSender<ReloadOutcome>>,
    /// Who waits for the slot to come to rest (`stop`, `delete`, scale-down, shutdown).
    stop_waiters: Vec<oneshot::Sender<StopOutcome>>,
    /// Who waits for the restart in progress to have started its new worker.
    restart_waiters: Vec<RestartWaiter>,
    /// What the listeners were last told of this slot taking connections (None: not
    /// yet, e.g. before a cluster app's first listen binds them).
    taking: Option<bool>,
    /// The health check and watchdog of the serving worker.
    watch: Watch,
}

/// The health check and watchdog of the slot's serving worker: they start when a worker
/// is online and stop when it is no longer the one serving.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Watch {
    /// The worker watched.
    pub pid: Option<Pid>,
    /// When its next check starts (None while one runs).
    pub next_check: Option<Instant>,
    /// Failed checks in a row.
    pub failures: u32,
    /// Its last WATCHDOG=1 (or when it came online).
    pub last_ping: Option<Instant>,
    /// Why it last failed, until it passes again.
    pub problem: Option<String>,
}

/// How a worker of `app` tells it is ready: the Node shim reports 'listening' (or
/// process.send('ready')), sd_notify READY=1 with wait_ready; anything else is ready
/// once it has stayed up min_uptime.
pub(crate) fn ready_rule(app: &AppSpec) -> ReadyRule {
    if app.restart.wait_ready || (app.listen.is_some() && app.command.runtime() == Runtime::Node) {
        ReadyRule::Signal
    } else {
        ReadyRule::Uptime
    }
}

impl Slot {
    /// Creates the slot and, with `begin`, starts its first worker before returning, so
    /// the caller sees it running (or already failed) at once; without, it is stopped.
    pub(crate) fn start(
        app: Arc<AppSpec>,
        env: Arc<BTreeMap<String, String>>,
        instance: u32,
        listeners: Arc<ListenerCell>,
        shared: Arc<Shared>,
        begin: bool,
    ) -> (Slot, SlotHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let policy = SlotPolicy::new(
            app.restart.clone(),
            app.stop.clone(),
            ready_rule(&app),
            app.listen.is_some() || app.shares_first_listen(),
        );
        let (status, status_rx) = watch::channel(status_of(&policy, None));
        let mut slot = Slot {
            app,
            env,
            instance,
            policy,
            listeners,
            channels: HashMap::new(),
            shared,
            tx: tx.clone(),
            rx,
            status,
            timer: None,
            reload_waiter: None,
            stop_waiters: Vec::new(),
            restart_waiters: Vec::new(),
            taking: None,
            watch: Watch::default(),
        };
        if begin {
            slot.apply(Event::Start);
        }
        let handle = SlotHandle {
            instance,
            tx,
            status: status_rx,
        };
        (slot, handle)
    }

    /// The slot the previous image handed over, with its workers' Node channels: its
    /// workers registered with the reaper (an exit during the hand-over, still a zombie,
    /// reaches the slot at the reaper's first look), what it heard while frozen queued
    /// first, its timer at the policy's deadline as it was.
    pub(crate) fn resume(
        app: Arc<AppSpec>,
        env: Arc<BTreeMap<String, String>>,
        instance: u32,
        listeners: Arc<ListenerCell>,
        shared: Arc<Shared>,
        handover: SlotHandover,
        channels: Vec<ChannelHandover>,
    ) -> (Slot, SlotHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let policy = SlotPolicy::new(
            app.restart.clone(),
            app.stop.clone(),
            ready_rule(&app),
            app.listen.is_some() || app.shares_first_listen(),
        )
        .with_state(handover.policy);
        let mut watch = handover.watch;
        // A check that ran during the hand-over is not heard of: the next one runs now.
        if watch.pid.is_some() && watch.next_check.is_none() && app.health.is_some() {
            watch.next_check = Some(Instant::now());
        }
        for pid in policy.workers() {
            shared.register(pid, tx.clone(), app.max_memory_restart);
        }
        let mut to_workers = HashMap::new();
        for channel in channels {
            let (to_worker, outgoing) = mpsc::unbounded_channel();
            to_workers.insert(channel.pid, to_worker);
            shared.spawn_channel(
                std::os::unix::net::UnixStream::from(channel.stream),
                channel.pid,
                tx.clone(),
                outgoing,
                (channel.partial, channel.skipping),
            );
        }
        for deferred in handover.deferred {
            let _ = tx.send(deferred.into());
        }
        let (status, status_rx) = watch::channel(status_of(&policy, watch.problem.clone()));
        let slot = Slot {
            timer: policy.next_deadline(),
            app,
            env,
            instance,
            policy,
            listeners,
            channels: to_workers,
            shared,
            tx: tx.clone(),
            rx,
            status,
            reload_waiter: None,
            stop_waiters: Vec::new(),
            restart_waiters: Vec::new(),
            taking: handover.taking,
            watch,
        };
        let handle = SlotHandle {
            instance,
            tx,
            status: status_rx,
        };
        (slot, handle)
    }

    /// Frozen for an upgrade: nothing changes; what the slot hears is kept for the next
    /// image, until the upgrade takes its state (or the slot is dropped).
    async fn frozen(mut self) {
        let mut deferred = Vec::new();
        let busy = "drover is being upgraded in place; try again in a moment";
        while let Some(msg) = self.rx.recv().await {
            match msg {
                SlotMsg::HandOver { done } => {
                    let _ = done.send(SlotHandover {
                        policy: self.policy.state(),
                        watch: self.watch.clone(),
                        taking: self.taking,
                        deferred,
                    });
                    return;
                }
                SlotMsg::Exited { pid, status } => deferred.push(Deferred::Exited { pid, status }),
                SlotMsg::MemoryExceeded { pid, rss } => {
                    deferred.push(Deferred::MemoryExceeded { pid, rss })
                }
                SlotMsg::Ready { pid } => deferred.push(Deferred::Ready { pid }),
                SlotMsg::Listen { pid, addr, seq } => {
                    deferred.push(Deferred::Listen { pid, addr, seq })
                }
                SlotMsg::Watchdog { pid } => deferred.push(Deferred::Watchdog { pid }),
                SlotMsg::Checked { pid, result } => {
                    deferred.push(Deferred::Checked { pid, result })
                }
                // The control loop refuses changes during an upgrade; one that got
                // through is refused here rather than lost.
                SlotMsg::Stop { done } => {
                    if let Some(done) = done {
                        let _ = done.send(Err(format!("{}: {busy}", self.label())));
                    }
                }
                SlotMsg::Restart { done } => {
                    if let Some(done) = done {
                        let _ = done.send(Err(format!("{}: {busy}", self.label())));
                    }
                }
                SlotMsg::Reload { done } => {
                    if let Some(done) = done {
                        let _ = done.send(Err(format!("{}: {busy}", self.label())));
                    }
                }
                SlotMsg::Signal { done, .. } => {
                    let _ = done.send(Err(format!("{}: {busy}", self.label())));
                }
                SlotMsg::Environment { done } => {
                    let _ = done.send(self.environment());
                }
                // Dropped, so the waiter hears nothing changed.
                SlotMsg::ResetCounters { done } => drop(done),
                // The app's table entry carries the settings across; nothing to keep.
                SlotMsg::Update { .. } => {}
                SlotMsg::Freeze { done } => {
                    let _ = done.send(());
                }
            }
        }
    }

    pub async fn run(mut self) {
        loop {
            let watch_at = self.watch_deadline();
            let event = tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(SlotMsg::Update { app, env }) => {
                        self.app = app;
                        self.env = env;
                        continue;
                    }
                    Some(SlotMsg::Reload { done }) => {
                        // The last command wins: a stop under way is superseded.
                        let why = format!("{}: a reload came after the stop", self.label());
                        for waiter in self.stop_waiters.drain(..) {
                            let _ = waiter.send(Err(why.clone()));
                        }
                        if let Some(previous) = std::mem::replace(&mut self.reload_waiter, done) {
                            let _ = previous.send(Err(format!("{}: superseded by another reload", self.label())));
                        }
                        Event::ReloadRequested
                    }
                    Some(SlotMsg::Stop { done }) => {
                        self.stop_waiters.extend(done);
                        Event::StopRequested
                    }
                    Some(SlotMsg::Restart { done }) => {
                        // The last command wins: a stop under way is superseded.
                        let why = format!("{}: a restart came after the stop", self.label());
                        for waiter in self.stop_waiters.drain(..) {
                            let _ = waiter.send(Err(why.clone()));
                        }
                        let (was_at_rest, old) = (self.policy.is_at_rest(), self.policy.pid());
                        self.restart_waiters.extend(done.map(|done| RestartWaiter {
                            done,
                            was_at_rest,
                            old,
                        }));
                        Event::RestartRequested
                    }
                    Some(SlotMsg::Listen { pid, addr, seq }) => {
                        self.answer_listen(pid, addr, seq);
                        // The listeners may be bound just now.
                        self.steer();
                        continue;
                    }
                    Some(SlotMsg::Watchdog { pid }) => {
                        if self.watch.pid == Some(pid) {
                            self.watch.last_ping = Some(Instant::now());
                            if self.watch.problem.take().is_some() {
                                self.publish();
                            }
                        }
                        continue;
                    }
                    Some(SlotMsg::Checked { pid, result }) => match self.checked(pid, result) {
                        Some(event) => event,
                        None => continue,
                    },
                    Some(SlotMsg::ResetCounters { done }) => {
                        self.policy.reset_counters();
                        self.publish();
                        let _ = done.send(());
                        continue;
                    }
                    Some(SlotMsg::Signal { signal, done }) => {
                        let _ = done.send(self.send_signal(signal));
                        continue;
                    }
                    Some(SlotMsg::Environment { done }) => {
                        let _ = done.send(self.environment());
                        continue;
                    }
                    Some(SlotMsg::Freeze { done }) => {
                        let _ = done.send(());
                        return self.frozen().await;
                    }
                    Some(SlotMsg::HandOver { done }) => {
                        // Only a frozen slot is taken; this one was never frozen.
                        drop(done);
                        continue;
                    }
                    Some(msg) => self.event_of(msg),
                    None => break,
                },
                _ = sleep_until(self.timer.unwrap_or_else(Instant::now).into()), if self.timer.is_some() => Event::Timer,
                _ = sleep_until(watch_at.unwrap_or_else(Instant::now).into()), if watch_at.is_some() => {
                    match self.watch_due(Instant::now()) {
                        Some(event) => event,
                        None => continue,
                    }
                }
            };
            self.apply(event);
        }
    }

    fn event_of(&mut self, msg: SlotMsg) -> Event {
        match msg {
            SlotMsg::Exited { pid, status } => {
                // Its channel task ends by itself at EOF.
                self.channels.remove(&pid);
                let level_is_expected = matches!(self.policy.phase(), Phase::Stopping { .. })
                    || self.policy.retiring().is_some_and(|r| r.pid == pid);
                if level_is_expected {
                    info!("{} pid {pid} exited ({status})", self.label());
                } else {
                    warn!("{} pid {pid} exited ({status})", self.label());
                }
                Event::Exited { pid, status }
            }
            SlotMsg::MemoryExceeded { pid, rss } => {
                if self.policy.pid() == Some(pid)
                    && matches!(self.policy.phase(), Phase::Online { .. })
                {
                    warn!(
                        "{} pid {pid} uses {} MiB, over max_memory_restart ({} MiB): restarting",
                        self.label(),
                        rss >> 20,
                        self.app.max_memory_restart.unwrap_or(0) >> 20
                    );
                }
                Event::MemoryExceeded { pid }
            }
            SlotMsg::Ready { pid } => Event::Ready { pid },
            SlotMsg::Listen { .. }
            | SlotMsg::Watchdog { .. }
            | SlotMsg::Checked { .. }
            | SlotMsg::Stop { .. }
            | SlotMsg::Restart { .. }
            | SlotMsg::Update { .. }
            | SlotMsg::Reload { .. }
            | SlotMsg::ResetCounters { .. }
            | SlotMsg::Signal { .. }
            | SlotMsg::Environment { .. }
            | SlotMsg::Freeze { .. }
            | SlotMsg::HandOver { .. } => unreachable!("handled in run"),
        }
    }

    fn label(&self) -> String {
        format!("{}#{}", self.app.name, self.instance)
    }

    /// Runs one event and the events its actions cause (a spawn's outcome) through the
    /// policy, then publishes the new status.
    fn apply(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let was_errored = self.policy.phase() == Phase::Errored;
            for action in self.policy.on(event, Instant::now()) {
                match action {
                    Action::Spawn => match self.spawn() {
                        Ok(pid) => events.push_back(Event::Spawned { pid }),
                        Err(e) => {
                            error!("{}: {e}", self.label());
                            events.push_back(Event::SpawnFailed);
                        }
                    },
                    Action::SendSignal(pid, sig) => self.ask_to_stop(pid, sig),
                    Action::KillGroup(pid) => signal_group(pid, Signal::SIGKILL),
                    Action::ReleaseListener => {
                        if let Some(listeners) = self.listeners.get() {
                            lock(listeners).release(self.instance);
                        }
                    }
                    Action::Report(report) => self.report(report),
                }
            }
            if !was_errored && self.policy.phase() == Phase::Errored {
                error!(
                    "{} errored: {}; not restarting",
                    self.label(),
                    super::policy::errored_reason(&self.app.restart)
                );
            }
        }
        self.timer = self.policy.next_deadline();
        self.steer();
        self.follow_serving_worker();
        // Nothing left to reload (the slot went to rest without a worker to report).
        if self.policy.is_at_rest()
            && let Some(waiter) = self.reload_waiter.take()
        {
            let _ = waiter.send(Err(format!("{}: stopped", self.label())));
        }
        self.answer_waiters();
        self.publish();
        self.shared.slot_changed();
    }

    /// Tells the listeners whether this slot's worker takes new connections (ready and
    /// healthy), when that changed: in reuseport mode, a booting or unhealthy worker's
    /// listener gets none while another slot's can take them.
    fn steer(&mut self) {
        let takes = self.policy.takes_connections();
        if self.taking == Some(takes) {
            return;
        }
        if let Some(listeners) = self.listeners.get() {
            lock(listeners).set_taking(self.instance, takes);
            self.taking = Some(takes);
        }
    }

    /// Starts watching the serving worker once it is online (a new one: its checks and
    /// watchdog start afresh), and stops when no worker is plainly online (replaced,
    /// stopping, gone): a worker on its way out is not checked.
    fn follow_serving_worker(&mut self) {
        let serving = match self.policy.phase() {
            Phase::Online { pid, .. } => Some(pid),
            _ => None,
        };
        if serving == self.watch.pid {
            return;
        }
        let now = Instant::now();
        let checked = self.app.health.as_ref().map(|h| now + h.interval);
        self.watch = Watch {
            pid: serving,
            next_check: serving.and(checked),
            failures: 0,
            last_ping: serving.map(|_| now),
            // Shown while the unhealthy worker is replaced, and until its successor
            // passes a check or pings its watchdog.
            problem: self.watch.problem.take(),
        };
    }

    /// When the watch must look next: the next check, or the watchdog's deadline.
    fn watch_deadline(&self) -> Option<Instant> {
        self.watch.pid?;
        let watchdog = self
            .app
            .watchdog
            .zip(self.watch.last_ping)
            .map(|(period, ping)| ping + period);
        match (self.watch.next_check, watchdog) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The watch's time has come: the watchdog's verdict, or a check started.
    fn watch_due(&mut self, now: Instant) -> Option<Event> {
        let pid = self.watch.pid?;
        if let (Some(period), Some(ping)) = (self.app.watchdog, self.watch.last_ping)
            && now >= ping + period
        {
            self.watch.last_ping = None;
            return self.unhealthy(
                pid,
                format!("no WATCHDOG=1 for {} ms (watchdog)", period.as_millis()),
            );
        }
        if self.watch.next_check.is_some_and(|t| now >= t) {
            self.watch.next_check = None;
            let run = CheckRun {
                app: self.app.clone(),
                env: self.env.clone(),
                instance: self.instance,
                pid,
                listeners: self.listeners.clone(),
                shared: self.shared.clone(),
            };
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = health::check(run).await;
                let _ = tx.send(SlotMsg::Checked { pid, result });
            });
        }
        None
    }

    /// A check of worker `pid` ended: counted, and enough failures in a row make it
    /// unhealthy.
    fn checked(&mut self, pid: Pid, result: Result<(), String>) -> Option<Event> {
        if self.watch.pid != Some(pid) {
            return None; // a worker no longer watched
        }
        let health = self.app.health.as_ref()?;
        self.watch.next_check = Some(Instant::now() + health.interval);
        match result {
            Ok(()) => {
                if self.watch.failures > 0 {
                    info!("{} pid {pid} passes its health check again", self.label());
                }
                self.watch.failures = 0;
                if self.watch.problem.take().is_some() {
                    self.publish();
                }
                None
            }
            Err(why) => {
                self.watch.failures += 1;
                warn!(
                    "{} pid {pid} failed its health check ({}/{}): {why}",
                    self.label(),
                    self.watch.failures,
                    health.failures
                );
                if self.watch.failures < health.failures {
                    return None;
                }
                self.unhealthy(pid, why)
            }
        }
    }

    /// Worker `pid` is unhealthy for `why`: said, shown, and handed to the policy (which
    /// steers it out and replaces it).
    fn unhealthy(&mut self, pid: Pid, why: String) -> Option<Event> {
        error!(
            "{} pid {pid} is unhealthy: {why}; it takes no new connection and is replaced",
            self.label()
        );
        // With its pid: it stays shown while its successor boots, and must not look like
        // the successor's.
        self.watch.problem = Some(format!("pid {pid}: {why}"));
        self.watch.next_check = None;
        Some(Event::Unhealthy { pid })
    }

    /// Publishes the slot's status if it changed.
    fn publish(&mut self) {
        let status = status_of(&self.policy, self.watch.problem.clone());
        self.status.send_if_modified(|old| {
            let changed = *old != status;
            *old = status;
            changed
        });
    }

    /// `signal` to the worker `list` shows (PM2's sendSignal: to its pid, not its group:
    /// a gunicorn master gets SIGHUP and reloads its own workers, which SIGHUP would
    /// kill), whatever its state while it has a process, stopping included.
    fn send_signal(&self, signal: Signal) -> SignalOutcome {
        let label = self.label();
        let Some(pid) = self.policy.pid() else {
            let status = crate::protocol::WorkerStatus::from(self.policy.status());
            return Err(format!("{label}: {status}, no process"));
        };
        match os::signal_process(pid, signal) {
            Ok(()) => {
                info!("{label}: {signal} sent to pid {pid} (send-signal)");
                Ok(format!("{label}: {signal} sent to pid {pid}"))
            }
            Err(e) => Err(format!("{label}: {signal} to pid {pid}: {e}")),
        }
    }

    /// The environment the slot's worker was started with: what [`Slot::spawn`] gives
    /// it, from the same function ([`spawn::started_environment`]).
    fn environment(&self) -> WorkerEnv {
        let listeners = self.fd3_listeners();
        let src = EnvSource {
            app: &self.app,
            inherited: &self.env,
            instance: self.instance,
            gets_listener: listeners.is_some(),
            bound_port: listeners.as_deref().and_then(AppListeners::port),
            shims: Some(self.shared.shims()),
            notify_socket: self.notify_socket(),
        };
        let pid = self.policy.pid();
        WorkerEnv {
            pid,
            vars: spawn::started_environment(&src, pid),
        }
    }

    /// The app's listeners, when its workers get one as fd 3. A cluster app without
    /// `listen:` gets its listener when a worker asks for it (answer_listen), never as
    /// fd 3: the address is the one the worker asks for.
    fn fd3_listeners(&self) -> Option<std::sync::MutexGuard<'_, AppListeners>> {
        match self.app.shares_first_listen() {
            true => None,
            false => self.listeners.get().map(lock),
        }
    }

    /// NOTIFY_SOCKET for a `wait_ready` worker.
    fn notify_socket(&self) -> Option<&std::path::Path> {
        (self.app.restart.wait_ready || self.app.watchdog.is_some())
            .then_some(self.shared.notify_socket())
    }

    /// Tells the stop and restart waiters whose command has taken effect.
    fn answer_waiters(&mut self) {
        if self.policy.is_at_rest() {
            for waiter in self.stop_waiters.drain(..) {
                let _ = waiter.send(Ok(()));
            }
        }
        // A restart has taken effect once its old worker is gone: the slot then runs a
        // new one (launching or online), waits out a crash backoff, or is at rest
        // (the new worker could not start, or a later stop won).
        if self.restart_waiters.is_empty() || self.policy.status() == Status::Stopping {
            return;
        }
        let label = self.label();
        let new = match (self.policy.pid(), self.policy.is_at_rest()) {
            (Some(pid), _) => Ok(Some(pid)),
            (None, false) => Ok(None),
            (None, true) if self.policy.status() == Status::Errored => {
                Err(format!("{label}: errored"))
            }
            (None, true) => Err(format!("{label}: stopped")),
        };
        for waiter in self.restart_waiters.drain(..) {
            let outcome = new.clone().map(|new| Restarted {
                label: label.clone(),
                was_at_rest: waiter.was_at_rest,
                old: waiter.old,
                new,
            });
            let _ = waiter.done.send(outcome);
        }
    }

    fn report(&mut self, report: Report) {
        let label = self.label();
        let outcome = match report {
            Report::Reloaded {
                old: Some(old),
                new,
            } => {
                info!("{label} reloaded: pid {new} ready, pid {old} retiring");
                Ok(format!("{label}: pid {old} → {new}"))
            }
            Report::Reloaded { old: None, new } => {
                info!("{label} started pid {new} (nothing was running)");
                Ok(format!("{label}: started pid {new}"))
            }
            Report::ReloadFailed(failure) => {
                let serving = match self.policy.pid() {
                    Some(pid) if self.policy.status() == Status::Online => {
                        format!("; pid {pid} keeps serving")
                    }
                    _ => String::new(),
                };
                let timeout = match failure {
                    super::policy::Failure::NotReady => {
                        format!(" ({} ms)", self.app.restart.listen_timeout.as_millis())
                    }
                    _ => String::new(),
                };
                warn!("{label} reload failed: {failure}{timeout}{serving}");
                Err(format!("{label}: {failure}{timeout}{serving}"))
            }
            Report::NotReadyInTime { pid } => {
                warn!(
                    "{label} pid {pid} did not signal readiness within listen_timeout ({} ms); counting it online",
                    self.app.restart.listen_timeout.as_millis()
                );
                return;
            }
        };
        if let Some(waiter) = self.reload_waiter.take() {
            let _ = waiter.send(outcome);
        }
    }

    /// Sends a worker its stop signal, or with `shutdown_with_message` (PM2's), the
    /// message 'shutdown' on its IPC channel instead; SIGKILL follows after kill_timeout
    /// either way (the policy's timer).
    fn ask_to_stop(&self, pid: Pid, sig: Signal) {
        if self.app.stop.shutdown_with_message
            && sig == self.app.stop.kill_signal
            && let Some(channel) = self.channels.get(&pid)
            && channel.send(ToWorker::Shutdown).is_ok()
        {
            return;
        }
        signal_group(pid, sig);
    }

    /// Answers worker `pid`'s request for the app's shared listener on `addr`: this
    /// slot's listener (bound now if it is the app's first request), or why not, in which
    /// case the shim binds by itself as it would without drover.
    fn answer_listen(&mut self, pid: Pid, addr: SocketAddr, seq: u64) {
        let answer = self.shared_listener(addr);
        if let Err(why) = &answer {
            warn!("{} pid {pid} binds {addr} itself: {why}", self.label());
        }
        if let Some(channel) = self.channels.get(&pid) {
            let _ = channel.send(ToWorker::Listener { seq, answer });
        }
    }

    fn shared_listener(&self, addr: SocketAddr) -> Result<OwnedFd, String> {
        let app = &self.app;
        if !app.shares_first_listen() {
            return Err("the app does not share a listener this way".into());
        }
        let asked = ListenAddr::Tcp(addr);
        // Another port than the first one its workers asked for: one shared listener.
        if self.listeners.asked().is_some_and(|first| *first != asked) {
            return self
                .listeners
                .more(&asked)
                .map_err(|e| format!("cannot listen on {asked}: {e}"));
        }
        let first = self.listeners.get().is_none();
        let listeners = self
            .listeners
            .get_or_bind(&asked, app.socket, app.instances)
            .map_err(|e| format!("cannot listen on {asked}: {e}"))?;
        let mut listeners = lock(listeners);
        if first {
            info!(
                "{} listening on {} (the port its workers listen on; {}, {} worker{})",
                app.name,
                listeners.bound(),
                app.socket,
                app.instances,
                if app.instances == 1 { "" } else { "s" }
            );
        }
        listeners
            .acquire(self.instance)
            .and_then(|fd| fd.try_clone_to_owned())
            .map_err(|e| format!("cannot listen on {asked}: {e}"))
    }

    fn spawn(&mut self) -> std::io::Result<Pid> {
        let app = &self.app;
        let mut guard = self.fd3_listeners();
        let (listener, bound_port) = match guard.as_deref_mut() {
            Some(listeners) => {
                let port = listeners.port();
                (Some(listeners.acquire(self.instance)?), port)
            }
            None => (None, None),
        };
        let launch = WorkerLaunch {
            app,
            env: &self.env,
            instance: self.instance,
            listener,
            bound_port,
            trampoline: self.shared.trampoline(),
            shims: Some(self.shared.shims()),
            notify_socket: self.notify_socket(),
        };
        let worker = spawn_worker(&launch)?;
        drop(guard);
        let pid = worker.pid;
        // Registered before any await: the reaper cannot run in between (current-thread
        // runtime), so no exit goes unclaimed.
        self.shared
            .register(pid, self.tx.clone(), app.max_memory_restart);
        info!("{} started pid {pid}", self.label());
        if let Some(channel) = worker.channel {
            let (to_worker, outgoing) = mpsc::unbounded_channel();
            self.channels.insert(pid, to_worker);
            self.shared
                .spawn_channel(channel, pid, self.tx.clone(), outgoing, (Vec::new(), false));
        }

        let hub = self.shared.logs();
        let out = hub.sink(&app.name, self.instance, Stream::Out, &app.logs);
        let err = hub.sink(&app.name, self.instance, Stream::Err, &app.logs);
        match (out, err) {
            (Ok(out), Ok(err)) => {
                for (stream, pipe, sink) in [
                    (Stream::Out, worker.stdout, out),
                    (Stream::Err, worker.stderr, err),
                ] {
                    let of = PumpOf {
                        app: app.name.clone(),
                        instance: self.instance,
                        stream,
                    };
                    self.shared.spawn_pump(of, pipe, sink, Vec::new());
                }
            }
            (out, err) => {
                // Keep the worker (it may serve fine) but say why its output goes nowhere;
                // the pipes are dropped, so its writes fail with EPIPE rather than block.
                let e = out.err().or(err.err()).expect("one failed");
                error!("{}: cannot open its log files: {e}", self.label());
            }
        }
        Ok(pid)
    }
}

fn status_of(policy: &SlotPolicy, health: Option<String>) -> SlotStatus {
    SlotStatus {
        status: policy.status(),
        pid: policy.pid(),
        restarts: policy.restarts(),
        since: policy.since(),
        at_rest: policy.is_at_rest(),
        last_exit: policy.last_exit(),
        ready: policy.takes_connections(),
        health,
        restarts_by_cause: policy.restarts_by_cause(),
    }
}

fn signal_group(pid: Pid, sig: Signal) {
    // ESRCH: the group is already gone, which is the goal.
    let _ = os::signal_group(pid, sig);
}
