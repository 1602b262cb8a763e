//! The state that crosses the exec of an in-place upgrade: plain, versioned data
//! ([`STATE_FORMAT`]), apart from the supervisor's types so that reshaping one of them
//! cannot silently change what another binary reads (as `protocol` is for the wire).
//! Descriptors are named by number; times are readings of CLOCK_MONOTONIC
//! ([`Mono`]), which an exec does not reset, so a deadline under way ends when it would
//! have.
//!
//! [`State::decode`] is what both `drover __upgrade-check` and `drover __resume` run on
//! the bytes: the format first (a binary that reads another one says so, and is
//! refused before the exec), then every record, every app's settings through the same
//! validation as a `start` request, and every descriptor named at most once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::config::{AppSpec, ListenAddr};
use crate::os::ExitKind;
use crate::protocol::{AppConfig, SocketMode};
use crate::supervisor::policy::{
    AfterStop, Cause, Incumbent, Phase, PolicyState, Restarts, Retiring, Why,
};
use crate::supervisor::slot::{Deferred, Watch};

/// Bumped on any change a binary that reads the previous format would misread.
pub const STATE_FORMAT: u32 = 1;

/// Everything the next image needs to go on supervising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    /// The version of drover that wrote it.
    pub written_by: String,
    pub update: UpdateRequest,
    pub host: HostState,
    pub supervisor: SupervisorState,
    pub apps: Vec<AppState>,
    /// Every log pump, the exited workers' that still drain a grandchild's output too.
    pub pumps: Vec<PumpState>,
}

/// The update under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub id: u64,
    /// The binary the writing image was started from, and the one it hands over to.
    pub binary_from: PathBuf,
    pub binary_to: PathBuf,
    /// When the supervisor stopped answering for the hand-over.
    pub froze_at: Mono,
}

/// What hosts the supervisor in the process: `drover run` or `drover daemon`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub kind: HostKind,
    /// `drover.lock`, held (flock) across the exec.
    pub lock_fd: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    Run,
    Daemon,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorState {
    pub home: PathBuf,
    pub options: OptionsState,
    /// The control socket's listener.
    pub control_fd: Option<i32>,
    /// The workers' sd_notify socket.
    pub notify_fd: i32,
    pub next_id: u32,
    /// When this supervisor (its first image) started, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// The last updates, oldest first.
    pub history: Vec<UpdateRecord>,
    /// Apps whose watch or schedule asked for a reload that the hand-over held back.
    pub reloads_due: Vec<String>,
    /// The metrics endpoint, if it serves.
    #[serde(default)]
    pub metrics: Option<MetricsState>,
    /// What the log hub counted, so the metrics' counters go on from where they were.
    #[serde(default)]
    pub log_counts: LogCountsRecord,
    /// Workers stopped by `drover stop` that have not run since (slot ids).
    #[serde(default)]
    pub stopped_on_request: Vec<u32>,
}

/// The metrics endpoint: what was asked for, and its listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsState {
    /// The address as asked (port 0 stays 0).
    pub listen: std::net::SocketAddr,
    pub public: bool,
    /// Who asked: a file's `name:line`, or none for `--metrics`.
    pub file: Option<String>,
    pub fd: i32,
}

/// `logs::LogCounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCountsRecord {
    /// Lines each app's workers wrote, by stream.
    pub written: Vec<(String, StreamName, u64)>,
    /// Lines lost per log file.
    pub dropped: Vec<(PathBuf, u64)>,
    pub dropped_total: u64,
}

/// `supervisor::RunOptions`, but for the control listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionsState {
    pub console: bool,
    pub exit_when_idle: bool,
    pub reload_on_sighup: bool,
    pub reopen_logs_on_sigusr1: bool,
    pub notify_service_manager: bool,
}

/// One update, as `drover ping` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub id: u64,
    /// When the new image (or the old one, after a failure) answered again, ms since
    /// the Unix epoch.
    pub at_ms: u64,
    pub from_version: String,
    pub from_binary: PathBuf,
    pub to_binary: PathBuf,
    /// The version now running: the new binary's, or the old one's after a failure.
    pub running_version: String,
    /// How long the supervisor did not answer, in ms.
    pub took_ms: u64,
    /// Why the new binary did not take over (the old one went on).
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppState {
    pub config: AppConfig,
    /// The environment its workers inherit under the app's own.
    pub env: BTreeMap<String, String>,
    pub listeners: Option<ListenersState>,
    pub more_listeners: Vec<MoreListener>,
    pub slots: Vec<SlotState>,
}

/// `sockets::ListenersHandover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenersState {
    pub asked: ListenAddr,
    pub bound: ListenAddr,
    pub mode: SocketMode,
    /// By slot (reuseport) or the one (shared); null: released.
    pub fds: Vec<Option<i32>>,
    /// The slots of the open listeners, in the kernel's order of the reuseport group.
    pub group: Vec<u32>,
    pub resting: Vec<u32>,
    pub steering: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoreListener {
    pub asked: ListenAddr,
    pub fd: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotState {
    pub id: u32,
    pub instance: u32,
    pub policy: PolicyRecord,
    pub watch: WatchRecord,
    pub taking: Option<bool>,
    pub deferred: Vec<DeferredRecord>,
    pub channels: Vec<ChannelState>,
}

/// A Node worker's IPC channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    pub pid: i32,
    pub fd: i32,
    #[serde(with = "hex")]
    pub partial: Vec<u8>,
    pub skipping: bool,
}

/// A log pump: whose stream, its pipe, and the start of a line still to be finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PumpState {
    pub app: String,
    pub instance: u32,
    pub stream: StreamName,
    pub fd: i32,
    #[serde(with = "hex")]
    pub partial: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Out,
    Err,
}

/// A reading of CLOCK_MONOTONIC, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mono(pub u64);

/// One `Instant` and the monotonic clock read at the same moment: instants are written
/// and read back through it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    mono: Duration,
}

/// A pair of readings taken further apart than this is taken again: the two clocks are
/// the same, so the pair is only as good as the time between its readings.
const CLOCK_PAIR_WINDOW: Duration = Duration::from_micros(20);

impl Clock {
    /// The two clocks read together: the monotonic clock on either side of the
    /// `Instant`, taken again while a preemption came in between (a few times at most).
    pub fn now() -> Clock {
        let mut best: Option<(Duration, Clock)> = None;
        for _ in 0..8 {
            let before = crate::os::monotonic_now();
            let instant = Instant::now();
            let after = crate::os::monotonic_now();
            let window = after.saturating_sub(before);
            let clock = Clock {
                instant,
                mono: before + window / 2,
            };
            if window <= CLOCK_PAIR_WINDOW {
                return clock;
            }
            if best.is_none_or(|(w, _)| window < w) {
                best = Some((window, clock));
            }
        }
        best.expect("read at least once").1
    }

    pub fn mono(&self, t: Instant) -> Mono {
        let at = match t.checked_duration_since(self.instant) {
            Some(ahead) => self.mono + ahead,
            None => self.mono.saturating_sub(self.instant.duration_since(t)),
        };
        Mono(at.as_nanos() as u64)
    }

    pub fn instant(&self, m: Mono) -> Instant {
        let at = Duration::from_nanos(m.0);
        match at.checked_sub(self.mono) {
            Some(ahead) => self.instant + ahead,
            None => self
                .instant
                .checked_sub(self.mono - at)
                .unwrap_or(self.instant),
        }
    }

    /// How long ago `m` was (zero if it is to come).
    pub fn since(&self, m: Mono) -> Duration {
        self.mono.saturating_sub(Duration::from_nanos(m.0))
    }
}

/// `policy::PolicyState`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub phase: PhaseRecord,
    pub retiring: Option<RetiringRecord>,
    pub restarts: RestartsRecord,
    pub is_ready: bool,
    pub unstable: u32,
    pub backoff_ms: Option<u64>,
    pub last_exit: Option<ExitRecord>,
    pub reload_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum PhaseRecord {
    Spawning,
    Starting {
        pid: i32,
        since: Mono,
        deadline: Mono,
    },
    Online {
        pid: i32,
        since: Mono,
    },
    SpawningReplacement {
        old: IncumbentRecord,
        why: WhyRecord,
    },
    Replacing {
        old: IncumbentRecord,
        new: i32,
        new_since: Mono,
        deadline: Mono,
        why: WhyRecord,
    },
    Stopping {
        pid: i32,
        since: Mono,
        deadline: Option<Mono>,
        then: AfterStopRecord,
    },
    Waiting {
        until: Mono,
    },
    Stopped,
    Errored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncumbentRecord {
    pub pid: i32,
    pub since: Mono,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyRecord {
    Reload,
    Memory,
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseRecord {
    Crash,
    Memory,
    Health,
    Reload,
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "then", content = "cause", rename_all = "snake_case")]
pub enum AfterStopRecord {
    Rest,
    Respawn(CauseRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiringRecord {
    pub pid: i32,
    pub kill_at: Option<Mono>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartsRecord {
    pub crash: u32,
    pub memory: u32,
    pub health: u32,
    pub reload: u32,
    pub restart: u32,
}

/// An exit: a code, or the name of the signal that ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitRecord {
    Code(i32),
    Signal(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRecord {
    pub pid: Option<i32>,
    pub next_check: Option<Mono>,
    pub failures: u32,
    pub last_ping: Option<Mono>,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeferredRecord {
    Exited {
        pid: i32,
        status: ExitRecord,
    },
    MemoryExceeded {
        pid: i32,
        rss: u64,
    },
    Ready {
        pid: i32,
    },
    Listen {
        pid: i32,
        addr: SocketAddr,
        seq: u64,
    },
    Watchdog {
        pid: i32,
    },
    Checked {
        pid: i32,
        failure: Option<String>,
    },
}

/// Why a state cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("hand-over state format {theirs}; this drover reads format {STATE_FORMAT}")]
    Format { theirs: u32 },
    #[error("malformed hand-over state: {0}")]
    Malformed(String),
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the state serializes")
    }

    /// Reads and checks the state: its format, every record, every app's settings, and
    /// each descriptor named once.
    pub fn decode(bytes: &[u8]) -> Result<State, StateError> {
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        let malformed = |e: serde_json::Error| StateError::Malformed(e.to_string());
        let FormatOnly { format } = serde_json::from_slice(bytes).map_err(malformed)?;
        if format != STATE_FORMAT {
            return Err(StateError::Format { theirs: format });
        }
        let state: State = serde_json::from_slice(bytes).map_err(malformed)?;
        state.check().map_err(StateError::Malformed)?;
        Ok(state)
    }

    fn check(&self) -> Result<(), String> {
        let mut fds = BTreeSet::new();
        let mut name = |fd: i32, what: &str| {
            if fd < 0 || !fds.insert(fd) {
                return Err(format!(
                    "{what}: descriptor {fd} is negative or named twice"
                ));
            }
            Ok(())
        };
        if let Some(fd) = self.host.lock_fd {
            name(fd, "the lock")?;
        }
        if let Some(fd) = self.supervisor.control_fd {
            name(fd, "the control socket")?;
        }
        name(self.supervisor.notify_fd, "the notify socket")?;
        if let Some(metrics) = &self.supervisor.metrics {
            name(metrics.fd, "the metrics endpoint")?;
        }
        let mut ids = BTreeSet::new();
        for app in &self.apps {
            let spec = AppSpec::try_from(app.config.clone())?;
            let label = &spec.name;
            if let Some(listeners) = &app.listeners {
                for fd in listeners.fds.iter().flatten() {
                    name(*fd, &format!("app {label}: a listener"))?;
                }
            }
            for more in &app.more_listeners {
                name(more.fd, &format!("app {label}: a listener"))?;
            }
            for slot in &app.slots {
                if !ids.insert(slot.id) {
                    return Err(format!("worker id {} named twice", slot.id));
                }
                if slot.instance >= spec.instances {
                    return Err(format!(
                        "app {label}: instance {} of {}",
                        slot.instance, spec.instances
                    ));
                }
                slot.policy.to_policy(&Clock::now())?;
                for deferred in &slot.deferred {
                    deferred.to_deferred()?;
                }
                for channel in &slot.channels {
                    name(channel.fd, &format!("app {label}: a channel"))?;
                }
            }
        }
        for pump in &self.pumps {
            name(pump.fd, &format!("app {}: an output pipe", pump.app))?;
        }
        Ok(())
    }

    /// Every descriptor it names: what must cross the exec.
    pub fn fds(&self) -> Vec<i32> {
        let mut fds: Vec<i32> = self.host.lock_fd.into_iter().collect();
        fds.extend(self.supervisor.control_fd);
        fds.push(self.supervisor.notify_fd);
        fds.extend(self.supervisor.metrics.as_ref().map(|m| m.fd));
        for app in &self.apps {
            if let Some(listeners) = &app.listeners {
                fds.extend(listeners.fds.iter().flatten());
            }
            fds.extend(app.more_listeners.iter().map(|m| m.fd));
            for slot in &app.slots {
                fds.extend(slot.channels.iter().map(|c| c.fd));
            }
        }
        fds.extend(self.pumps.iter().map(|p| p.fd));
        fds
    }

    /// The worker slots it names.
    pub fn workers(&self) -> usize {
        self.apps.iter().map(|a| a.slots.len()).sum()
    }
}

fn pid(raw: i32) -> Result<Pid, String> {
    match raw {
        1.. => Ok(Pid::from_raw(raw)),
        _ => Err(format!("pid {raw}")),
    }
}

impl ExitRecord {
    pub fn of(status: ExitKind) -> ExitRecord {
        match status {
            ExitKind::Code(code) => ExitRecord::Code(code),
            ExitKind::Signal(signal) => ExitRecord::Signal(signal.as_str().to_owned()),
        }
    }

    pub fn to_exit(&self) -> Result<ExitKind, String> {
        Ok(match self {
            ExitRecord::Code(code) => ExitKind::Code(*code),
            ExitRecord::Signal(name) => ExitKind::Signal(
                name.parse::<Signal>()
                    .map_err(|_| format!("unknown signal {name}"))?,
            ),
        })
    }
}

impl From<Why> for WhyRecord {
    fn from(why: Why) -> Self {
        match why {
            Why::Reload => WhyRecord::Reload,
            Why::Memory => WhyRecord::Memory,
            Why::Health => WhyRecord::Health,
        }
    }
}

impl From<WhyRecord> for Why {
    fn from(why: WhyRecord) -> Self {
        match why {
            WhyRecord::Reload => Why::Reload,
            WhyRecord::Memory => Why::Memory,
            WhyRecord::Health => Why::Health,
        }
    }
}

impl From<Cause> for CauseRecord {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::Crash => CauseRecord::Crash,
            Cause::Memory => CauseRecord::Memory,
            Cause::Health => CauseRecord::Health,
            Cause::Reload => CauseRecord::Reload,
            Cause::Restart => CauseRecord::Restart,
        }
    }
}

impl From<CauseRecord> for Cause {
    fn from(cause: CauseRecord) -> Self {
        match cause {
            CauseRecord::Crash => Cause::Crash,
            CauseRecord::Memory => Cause::Memory,
            CauseRecord::Health => Cause::Health,
            CauseRecord::Reload => Cause::Reload,
            CauseRecord::Restart => Cause::Restart,
        }
    }
}

impl PolicyRecord {
    pub fn of(state: &PolicyState, clock: &Clock) -> PolicyRecord {
        let m = |t: Instant| clock.mono(t);
        let incumbent = |i: Incumbent| IncumbentRecord {
            pid: i.pid.as_raw(),
            since: m(i.since),
        };
        let phase = match state.phase {
            Phase::Spawning => PhaseRecord::Spawning,
            Phase::Starting {
                pid,
                since,
                deadline,
            } => PhaseRecord::Starting {
                pid: pid.as_raw(),
                since: m(since),
                deadline: m(deadline),
            },
            Phase::Online { pid, since } => PhaseRecord::Online {
                pid: pid.as_raw(),
                since: m(since),
            },
            Phase::SpawningReplacement { old, why } => PhaseRecord::SpawningReplacement {
                old: incumbent(old),
                why: why.into(),
            },
            Phase::Replacing {
                old,
                new,
                new_since,
                deadline,
                why,
            } => PhaseRecord::Replacing {
                old: incumbent(old),
                new: new.as_raw(),
                new_since: m(new_since),
                deadline: m(deadline),
                why: why.into(),
            },
            Phase::Stopping {
                pid,
                since,
                deadline,
                then,
            } => PhaseRecord::Stopping {
                pid: pid.as_raw(),
                since: m(since),
                deadline: deadline.map(m),
                then: match then {
                    AfterStop::Rest => AfterStopRecord::Rest,
                    AfterStop::Respawn(cause) => AfterStopRecord::Respawn(cause.into()),
                },
            },
            Phase::Waiting { until } => PhaseRecord::Waiting { until: m(until) },
            Phase::Stopped => PhaseRecord::Stopped,
            Phase::Errored => PhaseRecord::Errored,
        };
        let Restarts {
            crash,
            memory,
            health,
            reload,
            restart,
        } = state.restarts;
        PolicyRecord {
            phase,
            retiring: state.retiring.map(|r| RetiringRecord {
                pid: r.pid.as_raw(),
                kill_at: r.kill_at.map(m),
            }),
            restarts: RestartsRecord {
                crash,
                memory,
                health,
                reload,
                restart,
            },
            is_ready: state.is_ready,
            unstable: state.unstable,
            backoff_ms: state.backoff.map(|d| d.as_millis() as u64),
            last_exit: state.last_exit.map(ExitRecord::of),
            reload_pending: state.reload_pending,
        }
    }

    pub fn to_policy(&self, clock: &Clock) -> Result<PolicyState, String> {
        let t = |m: Mono| clock.instant(m);
        let incumbent = |i: &IncumbentRecord| -> Result<Incumbent, String> {
            Ok(Incumbent {
                pid: pid(i.pid)?,
                since: t(i.since),
            })
        };
        let phase = match &self.phase {
            PhaseRecord::Spawning => Phase::Spawning,
            PhaseRecord::Starting {
                pid: p,
                since,
                deadline,
            } => Phase::Starting {
                pid: pid(*p)?,
                since: t(*since),
                deadline: t(*deadline),
            },
            PhaseRecord::Online { pid: p, since } => Phase::Online {
                pid: pid(*p)?,
                since: t(*since),
            },
            PhaseRecord::SpawningReplacement { old, why } => Phase::SpawningReplacement {
                old: incumbent(old)?,
                why: (*why).into(),
            },
            PhaseRecord::Replacing {
                old,
                new,
                new_since,
                deadline,
                why,
            } => Phase::Replacing {
                old: incumbent(old)?,
                new: pid(*new)?,
                new_since: t(*new_since),
                deadline: t(*deadline),
                why: (*why).into(),
            },
            PhaseRecord::Stopping {
                pid: p,
                since,
                deadline,
                then,
            } => Phase::Stopping {
                pid: pid(*p)?,
                since: t(*since),
                deadline: deadline.map(t),
                then: match then {
                    AfterStopRecord::Rest => AfterStop::Rest,
                    AfterStopRecord::Respawn(cause) => AfterStop::Respawn((*cause).into()),
                },
            },
            PhaseRecord::Waiting { until } => Phase::Waiting { until: t(*until) },
            PhaseRecord::Stopped => Phase::Stopped,
            PhaseRecord::Errored => Phase::Errored,
        };
        let RestartsRecord {
            crash,
            memory,
            health,
            reload,
            restart,
        } = self.restarts;
        Ok(PolicyState {
            phase,
            retiring: match &self.retiring {
                Some(r) => Some(Retiring {
                    pid: pid(r.pid)?,
                    kill_at: r.kill_at.map(t),
                }),
                None => None,
            },
            restarts: Restarts {
                crash,
                memory,
                health,
                reload,
                restart,
            },
            is_ready: self.is_ready,
            unstable: self.unstable,
            backoff: self.backoff_ms.map(Duration::from_millis),
            last_exit: self
                .last_exit
                .as_ref()
                .map(ExitRecord::to_exit)
                .transpose()?,
            reload_pending: self.reload_pending,
        })
    }
}

impl WatchRecord {
    pub fn of(watch: &Watch, clock: &Clock) -> WatchRecord {
        WatchRecord {
            pid: watch.pid.map(Pid::as_raw),
            next_check: watch.next_check.map(|t| clock.mono(t)),
            failures: watch.failures,
            last_ping: watch.last_ping.map(|t| clock.mono(t)),
            problem: watch.problem.clone(),
        }
    }

    pub fn to_watch(&self, clock: &Clock) -> Result<Watch, String> {
        Ok(Watch {
            pid: self.pid.map(pid).transpose()?,
            next_check: self.next_check.map(|m| clock.instant(m)),
            failures: self.failures,
            last_ping: self.last_ping.map(|m| clock.instant(m)),
            problem: self.problem.clone(),
        })
    }
}

impl DeferredRecord {
    pub fn of(deferred: &Deferred) -> DeferredRecord {
        match deferred {
            Deferred::Exited { pid, status } => DeferredRecord::Exited {
                pid: pid.as_raw(),
                status: ExitRecord::of(*status),
            },
            Deferred::MemoryExceeded { pid, rss } => DeferredRecord::MemoryExceeded {
                pid: pid.as_raw(),
                rss: *rss,
            },
            Deferred::Ready { pid } => DeferredRecord::Ready { pid: pid.as_raw() },
            Deferred::Listen { pid, addr, seq } => DeferredRecord::Listen {
                pid: pid.as_raw(),
                addr: *addr,
                seq: *seq,
            },
            Deferred::Watchdog { pid } => DeferredRecord::Watchdog { pid: pid.as_raw() },
            Deferred::Checked { pid, result } => DeferredRecord::Checked {
                pid: pid.as_raw(),
                failure: result.clone().err(),
            },
        }
    }

    pub fn to_deferred(&self) -> Result<Deferred, String> {
        Ok(match self {
            DeferredRecord::Exited { pid: p, status } => Deferred::Exited {
                pid: pid(*p)?,
                status: status.to_exit()?,
            },
            DeferredRecord::MemoryExceeded { pid: p, rss } => Deferred::MemoryExceeded {
                pid: pid(*p)?,
                rss: *rss,
            },
            DeferredRecord::Ready { pid: p } => Deferred::Ready { pid: pid(*p)? },
            DeferredRecord::Listen { pid: p, addr, seq } => Deferred::Listen {
                pid: pid(*p)?,
                addr: *addr,
                seq: *seq,
            },
            DeferredRecord::Watchdog { pid: p } => Deferred::Watchdog { pid: pid(*p)? },
            DeferredRecord::Checked { pid: p, failure } => Deferred::Checked {
                pid: pid(*p)?,
                result: failure.clone().map_or(Ok(()), Err),
            },
        })
    }
}

/// Bytes as a hex string (a partial line is at most 64 KiB).
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .map_err(|_| serde::de::Error::custom("not hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ResolveContext, load_str};

    fn app_config(name: &str, instances: u32) -> AppConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "").unwrap();
        let ctx = ResolveContext {
            home: dir.path().join("home"),
            cwd: dir.path().to_path_buf(),
            cpus: 2,
            env_name: None,
        };
        let text = format!(
            "apps:\n  - name: {name}\n    script: app.js\n    instances: {instances}\n    listen: 127.0.0.1:0\n"
        );
        let spec = load_str(&text, Path::new("eco.yaml"), &ctx)
            .unwrap()
            .apps
            .remove(0);
        AppConfig::from(&spec)
    }

    fn state() -> State {
        let clock = Clock::now();
        let now = Instant::now();
        let policy = PolicyState {
            phase: Phase::Replacing {
                old: Incumbent {
                    pid: Pid::from_raw(100),
                    since: now - Duration::from_secs(60),
                },
                new: Pid::from_raw(101),
                new_since: now - Duration::from_millis(5),
                deadline: now + Duration::from_secs(8),
                why: Why::Memory,
            },
            retiring: Some(Retiring {
                pid: Pid::from_raw(99),
                kill_at: Some(now + Duration::from_secs(1)),
            }),
            restarts: Restarts {
                crash: 1,
                memory: 2,
                health: 3,
                reload: 4,
                restart: 5,
            },
            is_ready: true,
            unstable: 1,
            backoff: Some(Duration::from_millis(150)),
            last_exit: Some(ExitKind::Signal(Signal::SIGKILL)),
            reload_pending: false,
        };
        State {
            format: STATE_FORMAT,
            written_by: "0.1.0".into(),
            update: UpdateRequest {
                id: 3,
                binary_from: "/usr/bin/drover".into(),
                binary_to: "/usr/local/bin/drover".into(),
                froze_at: clock.mono(now),
            },
            host: HostState {
                kind: HostKind::Daemon,
                lock_fd: Some(3),
            },
            supervisor: SupervisorState {
                home: "/home/u/.drover".into(),
                options: OptionsState {
                    console: false,
                    exit_when_idle: false,
                    reload_on_sighup: false,
                    reopen_logs_on_sigusr1: true,
                    notify_service_manager: true,
                },
                control_fd: Some(4),
                notify_fd: 5,
                next_id: 9,
                started_at_ms: 1_700_000_000_000,
                history: vec![],
                reloads_due: vec!["api".into()],
                metrics: Some(MetricsState {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    public: false,
                    file: Some("ecosystem.yaml:2".into()),
                    fd: 12,
                }),
                log_counts: LogCountsRecord {
                    written: vec![("api".into(), StreamName::Out, 41)],
                    dropped: vec![("/dev/full".into(), 2)],
                    dropped_total: 2,
                },
                stopped_on_request: vec![1],
            },
            apps: vec![AppState {
                config: app_config("api", 2),
                env: BTreeMap::from([("HOME".into(), "/home/u".into())]),
                listeners: Some(ListenersState {
                    asked: ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
                    bound: ListenAddr::Tcp("127.0.0.1:41000".parse().unwrap()),
                    mode: SocketMode::Reuseport,
                    fds: vec![Some(6), None],
                    group: vec![0],
                    resting: vec![1],
                    steering: true,
                }),
                more_listeners: vec![MoreListener {
                    asked: ListenAddr::Tcp("[::]:9100".parse().unwrap()),
                    fd: 7,
                }],
                slots: vec![SlotState {
                    id: 4,
                    instance: 1,
                    policy: PolicyRecord::of(&policy, &clock),
                    watch: WatchRecord {
                        pid: None,
                        next_check: None,
                        failures: 0,
                        last_ping: None,
                        problem: Some("no WATCHDOG=1".into()),
                    },
                    taking: Some(true),
                    deferred: vec![
                        DeferredRecord::Exited {
                            pid: 99,
                            status: ExitRecord::Code(0),
                        },
                        DeferredRecord::Checked {
                            pid: 100,
                            failure: Some("503".into()),
                        },
                    ],
                    channels: vec![ChannelState {
                        pid: 100,
                        fd: 8,
                        partial: b"{\"cmd\":\"NODE_".to_vec(),
                        skipping: false,
                    }],
                }],
            }],
            pumps: vec![PumpState {
                app: "api".into(),
                instance: 1,
                stream: StreamName::Err,
                fd: 10,
                partial: vec![0, 0xff, b'\n', b'x'],
            }],
        }
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let state = state();
        let back = State::decode(&state.encode()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.fds(), vec![3, 4, 5, 12, 6, 7, 8, 10]);
        assert_eq!(back.workers(), 1);
    }

    #[test]
    fn another_format_is_refused_before_anything_else_is_read() {
        let mut value: serde_json::Value = serde_json::from_slice(&state().encode()).unwrap();
        value["format"] = (STATE_FORMAT + 1).into();
        value["apps"] = "whatever a later drover writes".into();
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            State::decode(&bytes),
            Err(StateError::Format {
                theirs: STATE_FORMAT + 1
            })
        );
        let e = State::decode(&bytes).unwrap_err().to_string();
        assert!(
            e.contains(&format!("this drover reads format {STATE_FORMAT}")),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_state_is_refused_with_the_reason() {
        type Damage = Box<dyn Fn(&mut State)>;
        let cases: Vec<(Damage, &str)> = vec![
            (
                Box::new(|s| s.pumps[0].fd = 5),
                "descriptor 5 is negative or named twice",
            ),
            (
                Box::new(|s| s.apps[0].slots[0].channels[0].fd = -1),
                "descriptor -1",
            ),
            (
                Box::new(|s| s.apps[0].slots[0].instance = 2),
                "instance 2 of 2",
            ),
            (
                Box::new(|s| {
                    let slot = s.apps[0].slots[0].clone();
                    s.apps[0].slots.push(SlotState {
                        channels: vec![],
                        ..slot
                    });
                }),
                "worker id 4 named twice",
            ),
            (
                Box::new(|s| s.apps[0].config.kill_signal = "SIGNOPE".into()),
                "unknown kill_signal",
            ),
            (
                Box::new(|s| {
                    s.apps[0].slots[0].deferred[0] = DeferredRecord::Exited {
                        pid: 0,
                        status: ExitRecord::Signal("SIGWHAT".into()),
                    }
                }),
                "pid 0",
            ),
        ];
        for (damage, needle) in cases {
            let mut s = state();
            damage(&mut s);
            let e = State::decode(&s.encode()).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
        let e = State::decode(b"{\"format\":1}").unwrap_err().to_string();
        assert!(e.starts_with("malformed hand-over state"), "{e}");
    }

    /// An instant goes through the monotonic clock and comes back the same (within the
    /// pairing of the two clocks' readings, microseconds), in the past and the future.
    #[test]
    fn instants_cross_as_monotonic_readings() {
        let clock = Clock::now();
        let now = Instant::now();
        for t in [
            now,
            now - Duration::from_secs(3600),
            now + Duration::from_millis(1500),
        ] {
            let back = Clock::now().instant(clock.mono(t));
            let off = back.max(t) - back.min(t);
            assert!(
                off < Duration::from_millis(1),
                "{t:?} came back {off:?} off"
            );
        }
        let past = clock.mono(now - Duration::from_secs(2));
        assert!(Clock::now().since(past) >= Duration::from_secs(2));
        assert_eq!(
            Clock::now().since(clock.mono(now + Duration::from_secs(60))),
            Duration::ZERO
        );
    }

    /// Every phase and after-stop survives the trip as it was.
    #[test]
    fn every_phase_reads_back() {
        let clock = Clock::now();
        let now = Instant::now();
        let pid = Pid::from_raw(42);
        let old = Incumbent { pid, since: now };
        let phases = [
            Phase::Spawning,
            Phase::Starting {
                pid,
                since: now,
                deadline: now + Duration::from_secs(3),
            },
            Phase::Online { pid, since: now },
            Phase::SpawningReplacement {
                old,
                why: Why::Reload,
            },
            Phase::Replacing {
                old,
                new: Pid::from_raw(43),
                new_since: now,
                deadline: now,
                why: Why::Health,
            },
            Phase::Stopping {
                pid,
                since: now,
                deadline: None,
                then: AfterStop::Respawn(Cause::Restart),
            },
            Phase::Stopping {
                pid,
                since: now,
                deadline: Some(now),
                then: AfterStop::Rest,
            },
            Phase::Waiting { until: now },
            Phase::Stopped,
            Phase::Errored,
        ];
        for phase in phases {
            let policy = PolicyState {
                phase,
                retiring: None,
                restarts: Restarts::default(),
                is_ready: false,
                unstable: 0,
                backoff: None,
                last_exit: Some(ExitKind::Code(3)),
                reload_pending: true,
            };
            let record = PolicyRecord::of(&policy, &clock);
            let text = serde_json::to_string(&record).unwrap();
            let back: PolicyRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_policy(&clock).unwrap(), policy, "{text}");
        }
    }
}
