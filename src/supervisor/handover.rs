//! An in-place upgrade, the supervisor's side (docs/upgrade.md). [`Supervisor::hand_over`]
//! runs once the control loop has ended for an update, with nothing under way, and
//! freezes everything into a [`State`]; [`Resumed::adopt`] and
//! [`Supervisor::take_over`] build the supervisor back from one, in the new image (or
//! in this one, when the new binary failed).
//!
//! The freeze goes from the sources of events to their readers, so nothing is lost:
//! 1. the metrics endpoint and the control server stop accepting (connections wait in
//!    the backlog) and what the control server had already read is answered;
//! 2. the sampler, the reaper and the notify socket stop: an exit from now on leaves a
//!    zombie that the next image's reaper collects, a READY=1 waits in the socket;
//! 3. every slot freezes: it changes nothing more (no spawn, no signal, no timer) and
//!    keeps what it hears;
//! 4. the log pumps and Node channels stop between two reads and give back their pipe
//!    and the unfinished line; what they had not read stays in the pipe;
//! 5. each slot gives its state and what it heard since it froze; the app logs are
//!    flushed.

use std::collections::BTreeMap;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::net::{UnixDatagram, UnixListener};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::handlers::{self, unix_ms};
use super::node_channel::ChannelHandover;
use super::shared::PumpOf;
use super::slot::{Slot, SlotHandover, SlotMsg};
use super::triggers::{self, Trigger};
use super::{App, Ended, Handover, Inbox, RunOptions, SlotEntry, Supervisor};
use crate::config::{AppSpec, MetricsOrigin, MetricsSpec};
use crate::ipc::server;
use crate::logs::{LogCounts, Stream};
use crate::os;
use crate::protocol::{AppConfig, Response};
use crate::sockets::{CellHandover, ListenerCell, ListenersHandover};
use crate::upgrade::state::{
    AppState, ChannelState, Clock, DeferredRecord, HostState, ListenersState, LogCountsRecord,
    MetricsState, MoreListener, PolicyRecord, PumpState, STATE_FORMAT, SlotState, State,
    StreamName, SupervisorState, UpdateRecord, UpdateRequest, WatchRecord,
};

/// How long a slot, a pump or a channel task may take to answer a freeze: they answer
/// at once unless something is badly wrong (a channel write to a worker that does not
/// read has its own, shorter, timeout).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// A descriptor handed to the next image, by number. It stays close-on-exec until the
/// host clears the flag for the exec (`State::fds`), so nothing started meanwhile (the
/// check of the new binary) inherits it.
fn pass(fd: impl Into<OwnedFd>) -> i32 {
    fd.into().into_raw_fd()
}

impl Supervisor {
    /// Freezes every task into the state for the next image (see the module docs).
    pub(super) async fn hand_over(mut self, mut inbox: Inbox) -> anyhow::Result<Ended> {
        let froze_at = Instant::now();
        let (id, binary) = {
            let run = self.update.as_mut().expect("the loop ends for an update");
            if let Some(reply) = run.reply.take() {
                let _ = reply.try_send(Response::Updating {
                    id: run.id,
                    pid: std::process::id(),
                    from_version: crate::upgrade::version().into(),
                    binary: run.binary.display().to_string(),
                });
            }
            (run.id, run.binary.clone())
        };
        info!("update {id}: handing over to {}", binary.display());

        // 1. The metrics endpoint and the control server stop accepting and give their
        // listeners back; what the control server had read meanwhile is answered
        // (changes refused: the update is still under way).
        // A `/healthz` under way asks the loop, which answers here until both are done.
        let handing_over = self.metrics.hand_over();
        let metrics = async move {
            match handing_over {
                Some(handing_over) => handing_over.finished().await,
                None => None,
            }
        };
        tokio::pin!(metrics);
        let mut metrics_done = None;
        let mut control_task = match inbox.control.take() {
            Some((task, stop)) => {
                let _ = stop.send(server::Stop::HandOver);
                Some(task)
            }
            None => None,
        };
        let mut control = None;
        while metrics_done.is_none() || control_task.is_some() {
            tokio::select! {
                Some(incoming) = inbox.requests.recv() => {
                    let _ = self.handle(incoming);
                }
                listener = async { control_task.as_mut()?.await.ok() }, if control_task.is_some() => {
                    control_task = None;
                    control = Some(listener.context("the control server failed")?);
                }
                handed = &mut metrics, if metrics_done.is_none() => metrics_done = Some(handed),
            }
        }
        let metrics = metrics_done.flatten();
        if let Some(service) = &self.service {
            service.reload_started(self.census());
        }

        // 2. Nothing more is reaped, sampled or read from the notify socket.
        inbox
            .sampler_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        inbox.reaper.abort();
        inbox.notifier.abort();

        // 3. Every slot freezes.
        let mut frozen = Vec::new();
        for slot in self.apps.iter().flat_map(|a| &a.slots) {
            let (done, ack) = oneshot::channel();
            let _ = slot.handle.tx.send(SlotMsg::Freeze { done });
            frozen.push(ack);
        }
        for ack in frozen {
            let _ = tokio::time::timeout(FREEZE_TIMEOUT, ack).await;
        }

        // 4. The pumps and the channels stop and give back what they hold.
        self.shared.freeze_readers();
        let pumps = join_all(self.shared.take_pumps(), "a log pump").await;
        let mut channels: BTreeMap<i32, ChannelHandover> =
            join_all(self.shared.take_channels(), "a Node channel")
                .await
                .into_iter()
                .map(|c| (c.pid.as_raw(), c))
                .collect();

        // 5. Each slot's state; the logs to disk.
        let clock = Clock::now();
        let mut apps = Vec::new();
        for app in std::mem::take(&mut self.apps) {
            apps.push(self.app_state(app, &clock, &mut channels).await);
        }
        // A channel no slot claims (its worker exited while freezing) closes here.
        drop(channels);
        let mut reloads_due: Vec<String> = self
            .update
            .as_mut()
            .map(|run| std::mem::take(&mut run.held_back))
            .unwrap_or_default();
        while let Ok(trigger) = inbox.triggered.try_recv() {
            let name = trigger.app().to_owned();
            if !reloads_due.contains(&name) {
                reloads_due.push(name);
            }
        }
        self.shared.logs().flush_all();

        let notify_fd = self
            .notify_fd
            .try_clone()
            .context("cannot hand the notify socket over")?;
        let control_fd = match control {
            Some(listener) => Some(pass(
                listener
                    .into_std()
                    .context("cannot hand the control socket over")?,
            )),
            None => None,
        };
        let state = State {
            format: STATE_FORMAT,
            written_by: crate::upgrade::version().into(),
            update: UpdateRequest {
                id,
                binary_from: self.binary.clone(),
                binary_to: binary.clone(),
                froze_at: clock.mono(froze_at),
            },
            host: HostState {
                kind: self.host,
                lock_fd: self.lock_fd,
            },
            supervisor: SupervisorState {
                home: self.home.clone(),
                options: self.options,
                control_fd,
                notify_fd: pass(notify_fd),
                next_id: self.next_id,
                started_at_ms: self.started_at_ms,
                history: std::mem::take(&mut self.history),
                reloads_due,
                metrics: metrics.map(|(spec, listener)| MetricsState {
                    listen: spec.listen,
                    public: spec.public,
                    file: match spec.origin {
                        MetricsOrigin::Flag => None,
                        MetricsOrigin::File(at) => Some(at),
                    },
                    fd: pass(listener),
                }),
                log_counts: log_counts_record(self.shared.logs().counts()),
                stopped_on_request: self.stopped_on_request.keys().copied().collect(),
            },
            apps,
            pumps: pumps
                .into_iter()
                .map(|p| PumpState {
                    app: p.of.app,
                    instance: p.of.instance,
                    stream: stream_name(p.of.stream),
                    fd: pass(p.pipe),
                    partial: p.partial,
                })
                .collect(),
        };
        info!(
            "update {id}: {} app{}, {} worker slot{} and {} log pipe{} frozen in {} ms",
            state.apps.len(),
            plural(state.apps.len()),
            state.workers(),
            plural(state.workers()),
            state.pumps.len(),
            plural(state.pumps.len()),
            froze_at.elapsed().as_millis()
        );
        Ok(Ended::HandOver(Box::new(Handover { state, binary })))
    }

    /// One app's part of the state: its settings, listeners and frozen slots.
    async fn app_state(
        &self,
        app: App,
        clock: &Clock,
        channels: &mut BTreeMap<i32, ChannelHandover>,
    ) -> AppState {
        let CellHandover { bound, more } = app.listeners.hand_over();
        let listeners = bound.map(|(asked, l)| {
            let ListenersHandover {
                bound,
                mode,
                fds,
                group,
                resting,
                steering,
            } = l;
            ListenersState {
                asked,
                bound,
                mode: mode.into(),
                fds: fds.into_iter().map(|fd| fd.map(pass)).collect(),
                group,
                resting,
                steering,
            }
        });
        let mut slots = Vec::new();
        for slot in app.slots {
            let label = format!("{}#{}", app.spec.name, slot.handle.instance);
            let (done, state) = oneshot::channel();
            let _ = slot.handle.tx.send(SlotMsg::HandOver { done });
            let handover = match tokio::time::timeout(FREEZE_TIMEOUT, state).await {
                Ok(Ok(handover)) => handover,
                _ => {
                    // Only a slot task that died could fail to answer; its worker
                    // goes on, unsupervised.
                    error!(
                        "{label}: its slot did not hand its state over; its worker is left unsupervised"
                    );
                    continue;
                }
            };
            let _ = slot.task.await;
            let SlotHandover {
                policy,
                watch,
                taking,
                deferred,
            } = handover;
            let own: Vec<ChannelState> = policy
                .workers()
                .iter()
                .filter_map(|pid| channels.remove(&pid.as_raw()))
                .map(|c| ChannelState {
                    pid: c.pid.as_raw(),
                    fd: pass(c.stream),
                    partial: c.partial,
                    skipping: c.skipping,
                })
                .collect();
            slots.push(SlotState {
                id: slot.id,
                instance: slot.handle.instance,
                policy: PolicyRecord::of(&policy, clock),
                watch: WatchRecord::of(&watch, clock),
                taking,
                deferred: deferred.iter().map(DeferredRecord::of).collect(),
                channels: own,
            });
        }
        AppState {
            config: AppConfig::from(&*app.spec),
            env: (*app.env).clone(),
            listeners,
            more_listeners: more
                .into_iter()
                .map(|(asked, fd)| MoreListener {
                    asked,
                    fd: pass(fd),
                })
                .collect(),
            slots,
        }
    }

    /// Rebuilds the table from the state `resumed` carries: apps, listeners, slots (their
    /// workers registered with the reaper), pumps; records the update. Returns the
    /// notify socket and the control listener, for the loop.
    pub(super) fn take_over(
        &mut self,
        resumed: Resumed,
    ) -> anyhow::Result<(UnixDatagram, Option<UnixListener>)> {
        let Resumed {
            state,
            failure,
            notify_socket,
            control,
            clock,
            ..
        } = resumed;
        let State {
            written_by,
            update,
            supervisor,
            apps,
            pumps,
            ..
        } = state;
        let mut workers = 0;
        for app in apps {
            workers += app.slots.len();
            if let Some(app) = self.take_app(app, &clock)? {
                self.apps.push(app);
            }
        }
        for pump in pumps {
            self.take_pump(pump)?;
        }
        self.shared
            .logs()
            .add_counts(log_counts(supervisor.log_counts));
        if let Some(m) = supervisor.metrics {
            let spec = MetricsSpec {
                listen: m.listen,
                public: m.public,
                origin: m.file.map_or(MetricsOrigin::Flag, MetricsOrigin::File),
            };
            let listener =
                std::net::TcpListener::from(os::adopt_fd(m.fd).context("the metrics endpoint")?);
            // The workers are adopted: a supervisor without its metrics is better than
            // none, and the log says why.
            if let Err(e) = self.metrics.take_over(spec, listener) {
                error!("{e}");
            }
        }
        self.next_id = supervisor.next_id;
        // An update waits for every stop to finish: each of them is at rest.
        self.stopped_on_request = supervisor
            .stopped_on_request
            .iter()
            .map(|&id| (id, true))
            .collect();
        self.history = supervisor.history;
        for name in supervisor.reloads_due {
            let _ = self.triggered.send(Trigger::HeldBack(name));
        }
        let record = UpdateRecord {
            id: update.id,
            at_ms: unix_ms(SystemTime::now()),
            from_version: written_by,
            from_binary: update.binary_from,
            to_binary: update.binary_to,
            running_version: crate::upgrade::version().into(),
            took_ms: clock.since(update.froze_at).as_millis() as u64,
            failure,
        };
        match &record.failure {
            None => info!(
                "update {}: drover {} ({}) took over from drover {} ({}) in {} ms; {workers} worker slot{} kept",
                record.id,
                record.running_version,
                record.to_binary.display(),
                record.from_version,
                record.from_binary.display(),
                record.took_ms,
                plural(workers)
            ),
            Some(why) => warn!(
                "update {} failed: {why}; drover {} ({}) goes on with its {workers} worker slot{}",
                record.id,
                record.running_version,
                record.from_binary.display(),
                plural(workers)
            ),
        }
        self.history.push(record);
        let excess = self.history.len().saturating_sub(handlers::update::HISTORY);
        self.history.drain(..excess);
        Ok((notify_socket, control))
    }

    fn take_app(&mut self, app: AppState, clock: &Clock) -> anyhow::Result<Option<App>> {
        let AppState {
            config,
            env,
            listeners,
            more_listeners,
            slots,
        } = app;
        let spec = Arc::new(AppSpec::try_from(config).map_err(|e| anyhow::anyhow!(e))?);
        let env = Arc::new(env);
        let bound = match listeners {
            Some(l) => {
                let fds = l
                    .fds
                    .into_iter()
                    .map(|fd| fd.map(os::adopt_fd).transpose())
                    .collect::<std::io::Result<Vec<_>>>()
                    .with_context(|| format!("app {}: a listener", spec.name))?;
                Some((
                    l.asked,
                    ListenersHandover {
                        bound: l.bound,
                        mode: l.mode.into(),
                        fds,
                        group: l.group,
                        resting: l.resting,
                        steering: l.steering,
                    },
                ))
            }
            None => None,
        };
        let more = more_listeners
            .into_iter()
            .map(|m| Ok((m.asked, os::adopt_fd(m.fd)?)))
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("app {}: a listener", spec.name))?;
        let listeners = Arc::new(ListenerCell::taken_over(CellHandover { bound, more }));
        let triggers = triggers::arm(&spec, &self.triggered).unwrap_or_else(|e| {
            error!(
                "{}: its watch or cron_restart cannot start again: {e}",
                spec.name
            );
            triggers::Triggers::default()
        });
        let mut entries = Vec::new();
        for slot in slots {
            let channels = slot
                .channels
                .into_iter()
                .map(|c| {
                    Ok(ChannelHandover {
                        pid: nix::unistd::Pid::from_raw(c.pid),
                        stream: os::adopt_fd(c.fd)?,
                        partial: c.partial,
                        skipping: c.skipping,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()
                .with_context(|| format!("app {}: a Node channel", spec.name))?;
            let handover = SlotHandover {
                policy: slot
                    .policy
                    .to_policy(clock)
                    .map_err(|e| anyhow::anyhow!(e))?,
                watch: slot.watch.to_watch(clock).map_err(|e| anyhow::anyhow!(e))?,
                taking: slot.taking,
                deferred: slot
                    .deferred
                    .iter()
                    .map(DeferredRecord::to_deferred)
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!(e))?,
            };
            let (slot_task, handle) = Slot::resume(
                spec.clone(),
                env.clone(),
                slot.instance,
                listeners.clone(),
                self.shared.clone(),
                handover,
                channels,
            );
            entries.push(SlotEntry {
                id: slot.id,
                handle,
                task: tokio::spawn(slot_task.run()),
                leaving: false,
            });
        }
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(App {
            spec,
            env,
            listeners,
            slots: entries,
            pending: None,
            triggers,
        }))
    }

    /// A log pump again, from its pipe and unfinished line.
    fn take_pump(&mut self, pump: PumpState) -> anyhow::Result<()> {
        let pipe = os::adopt_fd(pump.fd).with_context(|| format!("app {}: a pipe", pump.app))?;
        let stream = stream_of(pump.stream);
        let Some(app) = self.apps.iter().find(|a| a.spec.name == pump.app) else {
            // Its app is gone: nobody to write its lines for; the pipe closes.
            return Ok(());
        };
        let sink = match self
            .shared
            .logs()
            .sink(&pump.app, pump.instance, stream, &app.spec.logs)
        {
            Ok(sink) => sink,
            Err(e) => {
                error!(
                    "{}#{}: cannot open its log files: {e}",
                    pump.app, pump.instance
                );
                return Ok(());
            }
        };
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe)
            .with_context(|| format!("app {}: a pipe", pump.app))?;
        let of = PumpOf {
            app: pump.app,
            instance: pump.instance,
            stream,
        };
        self.shared.spawn_pump(of, pipe, sink, pump.partial);
        Ok(())
    }
}

/// The state the previous image handed over, with the supervisor's own descriptors
/// taken (call it inside the runtime).
pub(super) struct Resumed {
    pub state: State,
    pub failure: Option<String>,
    pub notify_socket: UnixDatagram,
    pub control: Option<UnixListener>,
    pub binary: PathBuf,
    pub started_at_ms: u64,
    pub clock: Clock,
}

impl Resumed {
    pub fn adopt(state: State, failure: Option<String>) -> anyhow::Result<Resumed> {
        let clock = Clock::now();
        let notify = std::os::unix::net::UnixDatagram::from(
            os::adopt_fd(state.supervisor.notify_fd).context("the notify socket")?,
        );
        notify.set_nonblocking(true)?;
        let notify_socket = UnixDatagram::from_std(notify)?;
        let control = match state.supervisor.control_fd {
            Some(fd) => {
                let listener = std::os::unix::net::UnixListener::from(
                    os::adopt_fd(fd).context("the control socket")?,
                );
                listener.set_nonblocking(true)?;
                Some(UnixListener::from_std(listener)?)
            }
            None => None,
        };
        // The binary this image runs: the new one, or after a failure the old one.
        let binary = match failure {
            None => state.update.binary_to.clone(),
            Some(_) => state.update.binary_from.clone(),
        };
        Ok(Resumed {
            started_at_ms: state.supervisor.started_at_ms,
            binary,
            failure,
            notify_socket,
            control,
            clock,
            state,
        })
    }

    /// The options the supervisor ran with (the control listener apart).
    pub fn options(&self) -> RunOptions {
        let o = self.state.supervisor.options;
        RunOptions {
            home: self.state.supervisor.home.clone(),
            console: o.console,
            exit_when_idle: o.exit_when_idle,
            control: None,
            reload_on_sighup: o.reload_on_sighup,
            reopen_logs_on_sigusr1: o.reopen_logs_on_sigusr1,
            notify_service_manager: o.notify_service_manager,
            host: self.state.host.kind,
            lock_fd: self.state.host.lock_fd,
            // Taken over from its listener (`take_over`), not bound again.
            metrics: None,
        }
    }
}

/// Awaits each task (a pump, a channel), keeping what they hand back.
async fn join_all<T>(tasks: Vec<tokio::task::JoinHandle<Option<T>>>, what: &str) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        match tokio::time::timeout(FREEZE_TIMEOUT, task).await {
            Ok(Ok(Some(handed))) => out.push(handed),
            // It ended by itself (EOF): nothing to hand over.
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn!("{what} failed while freezing: {e}"),
            Err(_) => warn!("{what} did not freeze in time; what it held is lost"),
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn stream_name(stream: Stream) -> StreamName {
    match stream {
        Stream::Out => StreamName::Out,
        Stream::Err => StreamName::Err,
    }
}

fn stream_of(name: StreamName) -> Stream {
    match name {
        StreamName::Out => Stream::Out,
        StreamName::Err => Stream::Err,
    }
}

fn log_counts_record(counts: LogCounts) -> LogCountsRecord {
    LogCountsRecord {
        written: counts
            .written
            .into_iter()
            .map(|(app, stream, n)| (app, stream_name(stream), n))
            .collect(),
        dropped: counts.dropped,
        dropped_total: counts.dropped_total,
    }
}

fn log_counts(record: LogCountsRecord) -> LogCounts {
    LogCounts {
        written: record
            .written
            .into_iter()
            .map(|(app, stream, n)| (app, stream_of(stream), n))
            .collect(),
        dropped: record.dropped,
        dropped_total: record.dropped_total,
    }
}
