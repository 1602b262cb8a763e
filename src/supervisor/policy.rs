//! The lifecycle of one worker slot as a pure state machine: `(phase, event) → (phase,
//! actions)`. No I/O, no clock: time comes in with each event, so the whole table is
//! tested without processes. `slot.rs` carries the actions out and arms one timer at
//! [`SlotPolicy::next_deadline`].
//!
//! Restart rules (PM2's, with one deliberate difference):
//! - An exit with a code listed in `stop_exit_codes`, or any exit when `autorestart` is
//!   false, leaves the slot `stopped`.
//! - A run shorter than `min_uptime` is unstable. After `max_restarts` restarts in a
//!   row that each followed an unstable run, the next unstable run leaves the slot
//!   `errored` (PM2's count: `max_restarts: 16` is 16 restarts, 17 runs); a run that
//!   lasted `min_uptime` resets the count. (PM2 only counts crashes within `min_uptime × max_restarts` of the app's
//!   creation, so an app that starts crash-looping later restarts forever; drover does not.)
//! - The delay before a respawn is `restart_delay`, or PM2's exponential backoff when
//!   `exp_backoff_restart_delay` is set (×1.5 per crash, capped at 15 s, reset after a run
//!   of 30 s). Consecutive unstable restarts also wait at least 25 ms × 2ⁿ⁻¹ (capped at
//!   250 ms), so a crash loop never spins a core even with a huge `max_restarts`.
//! - `restarts` counts every replacement of a running or crashed worker, whatever the
//!   cause, once the replacement starts (after a restart delay, as PM2's restart_time);
//!   starting a slot again after a stop is not one (PM2 counts the same).
//!
//! Readiness and replacement:
//! - A new worker is `launching` until ready: when it signals it ([`ReadyRule::Signal`]:
//!   READY=1 with `wait_ready`, or the Node shim's 'listening'), or once it has stayed up
//!   `min_uptime` ([`ReadyRule::Uptime`], capped at `listen_timeout`). A first start that
//!   never signals is counted online after `listen_timeout`, as PM2 does.
//! - A reload (and a memory-limit replacement) of a slot that shares a listener starts
//!   the new worker next to the old one and retires the old one (kill_signal, then
//!   SIGKILL after kill_timeout) only once the new one is ready, so capacity never dips.
//!   A new worker that exits or is not ready within `listen_timeout` is killed and the old
//!   one keeps serving: the reload failed. Without a shared listener (an app that binds
//!   its own port) a reload is a restart: stop, then start.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::config::{RestartSpec, StopSpec, defaults};
use crate::os::ExitKind;

/// Why a slot is errored, in the terms of the rule that made it so (the log line,
/// `describe`, `list --json`).
pub fn errored_reason(restart: &RestartSpec) -> String {
    format!(
        "{} restarts in a row, each after a run shorter than min_uptime ({} ms)",
        restart.max_restarts,
        restart.min_uptime.as_millis()
    )
}

/// When a new worker counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyRule {
    /// It says so (READY=1, process.send('ready'), or the shim's 'listening').
    Signal,
    /// It has stayed up `min_uptime`.
    Uptime,
}

/// A worker that is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incumbent {
    pub pid: Pid,
    pub since: Instant,
}

/// Why a serving worker is being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Reload,
    Memory,
    /// It failed its health check (or stopped pinging its watchdog).
    Health,
}

/// Why a worker was replaced, as counted ([`Restarts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It exited on its own.
    Crash,
    /// Over max_memory_restart.
    Memory,
    /// Failed its health check or watchdog.
    Health,
    /// `reload` (also a deploy: `start FILE`, watch, cron).
    Reload,
    /// `restart`.
    Restart,
}

impl From<Why> for Cause {
    fn from(why: Why) -> Cause {
        match why {
            Why::Reload => Cause::Reload,
            Why::Memory => Cause::Memory,
            Why::Health => Cause::Health,
        }
    }
}

/// Replacements of a slot's worker by cause; their sum is PM2's ↺.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restarts {
    pub crash: u32,
    pub memory: u32,
    pub health: u32,
    pub reload: u32,
    pub restart: u32,
}

impl Restarts {
    pub fn total(&self) -> u32 {
        let Restarts {
            crash,
            memory,
            health,
            reload,
            restart,
        } = *self;
        crash + memory + health + reload + restart
    }

    fn count(&mut self, cause: Cause) {
        let counter = match cause {
            Cause::Crash => &mut self.crash,
            Cause::Memory => &mut self.memory,
            Cause::Health => &mut self.health,
            Cause::Reload => &mut self.reload,
            Cause::Restart => &mut self.restart,
        };
        *counter = counter.saturating_add(1);
    }
}

/// Where a slot is in its lifecycle; each phase carries its own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Spawn requested, pid not known yet (transient: `Spawned` or `SpawnFailed` follows).
    Spawning,
    /// Spawned, not ready yet.
    Starting {
        pid: Pid,
        since: Instant,
        deadline: Instant,
    },
    Online {
        pid: Pid,
        since: Instant,
    },
    /// The replacement's spawn is requested (transient), `old` serving.
    SpawningReplacement {
        old: Incumbent,
        why: Why,
    },
    /// `old` serves while `new` gets ready.
    Replacing {
        old: Incumbent,
        new: Pid,
        new_since: Instant,
        deadline: Instant,
        why: Why,
    },
    /// Asked to stop; SIGKILL at `deadline` (None once sent).
    Stopping {
        pid: Pid,
        since: Instant,
        deadline: Option<Instant>,
        then: AfterStop,
    },
    /// Waiting out a restart delay.
    Waiting {
        until: Instant,
    },
    Stopped,
    Errored,
}

/// What a slot does once its stopping worker has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Rest,
    /// Start a new worker, a replacement for this `Cause`.
    Respawn(Cause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    Spawned {
        pid: Pid,
    },
    SpawnFailed,
    Ready {
        pid: Pid,
    },
    Exited {
        pid: Pid,
        status: ExitKind,
    },
    MemoryExceeded {
        pid: Pid,
    },
    /// The worker failed its health check (its checks counted the failures).
    Unhealthy {
        pid: Pid,
    },
    StopRequested,
    /// Stop then start (`restart`).
    RestartRequested,
    /// Replace without a gap (`reload`).
    ReloadRequested,
    /// The slot's timer fired (see `next_deadline`).
    Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Send a signal to the worker's process group.
    SendSignal(Pid, Signal),
    /// SIGKILL the worker's process group: after kill_timeout, and after every exit so no
    /// grandchild survives its worker.
    KillGroup(Pid),
    /// Nobody will accept on this slot's listener for a while: stop holding connections.
    ReleaseListener,
    /// Something a user (or a waiting `reload`) should hear of.
    Report(Report),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The reload of this slot is done: `new` serves (it may equal `old` when there was
    /// nothing to replace).
    Reloaded { old: Option<Pid>, new: Pid },
    /// The reload of this slot failed; the old worker (if any) keeps serving.
    ReloadFailed(Failure),
    /// A first start was not ready within listen_timeout; counted online anyway.
    NotReadyInTime { pid: Pid },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NotReady,
    Exited(ExitKind),
    SpawnFailed,
    Stopped,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotReady => f.write_str("the new worker was not ready within listen_timeout"),
            Failure::Exited(status) => write!(f, "the new worker exited ({status})"),
            Failure::SpawnFailed => f.write_str("the new worker could not be started"),
            Failure::Stopped => f.write_str("the slot was stopped during the reload"),
        }
    }
}

/// A slot's state as users see it; the protocol spells it (`protocol::WorkerStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Spawned (or about to be), not ready yet.
    Launching,
    /// A worker serves (a replacement may be getting ready next to it).
    Online,
    /// Asked to stop; its worker has not exited yet.
    Stopping,
    /// Waiting out a restart delay.
    Waiting,
    Stopped,
    /// Too many unstable restarts in a row; not restarted until asked.
    Errored,
}

/// A replaced worker on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retiring {
    pub pid: Pid,
    /// When it gets SIGKILL; None once sent.
    pub kill_at: Option<Instant>,
}

/// The policy's view of one slot.
#[derive(Debug, Clone)]
pub struct SlotPolicy {
    phase: Phase,
    /// The replaced worker still exiting, if any.
    retiring: Option<Retiring>,
    /// Replacements of a running (or crashed) worker of this slot, by cause (their sum
    /// is PM2's ↺); starting the slot again after a stop is not one.
    restarts: Restarts,
    /// The serving worker is ready: it said so, or stayed up min_uptime under the
    /// uptime rule. False for one counted online after listen_timeout without a sign:
    /// it is listed online (as PM2), but takes no connection while another slot can.
    is_ready: bool,
    /// Consecutive unstable runs.
    unstable: u32,
    /// Current exponential backoff delay, if that policy is on.
    backoff: Option<Duration>,
    last_exit: Option<ExitKind>,
    /// A reload is waiting for this slot's next worker to be ready.
    reload_pending: bool,
    restart: RestartSpec,
    stop: StopSpec,
    ready: ReadyRule,
    /// The slot shares a listener, so a replacement can start before the old one stops.
    overlap: bool,
}

/// What a slot's policy has lived through, apart from its app's settings: the part that
/// crosses an in-place upgrade of drover (`drover update`, see `crate::upgrade`), kept
/// as it is and rebuilt with [`SlotPolicy::with_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyState {
    pub phase: Phase,
    pub retiring: Option<Retiring>,
    pub restarts: Restarts,
    pub is_ready: bool,
    pub unstable: u32,
    pub backoff: Option<Duration>,
    pub last_exit: Option<ExitKind>,
    pub reload_pending: bool,
}

impl PolicyState {
    /// Every worker process of the slot: the one it runs, the replacement getting
    /// ready, the one retiring.
    pub fn workers(&self) -> Vec<Pid> {
        let mut pids = match self.phase {
            Phase::Starting { pid, .. }
            | Phase::Online { pid, .. }
            | Phase::Stopping { pid, .. } => vec![pid],
            Phase::SpawningReplacement { old, .. } => vec![old.pid],
            Phase::Replacing { old, new, .. } => vec![old.pid, new],
            Phase::Spawning | Phase::Waiting { .. } | Phase::Stopped | Phase::Errored => vec![],
        };
        pids.extend(self.retiring.map(|r| r.pid));
        pids
    }
}

const UNSTABLE_FLOOR_BASE: Duration = Duration::from_millis(25);
const UNSTABLE_FLOOR_MAX: Duration = Duration::from_millis(250);

impl SlotPolicy {
    pub fn new(restart: RestartSpec, stop: StopSpec, ready: ReadyRule, overlap: bool) -> Self {
        SlotPolicy {
            phase: Phase::Stopped,
            retiring: None,
            restarts: Restarts::default(),
            is_ready: false,
            unstable: 0,
            backoff: None,
            last_exit: None,
            reload_pending: false,
            restart,
            stop,
            ready,
            overlap,
        }
    }

    /// Its state, for an in-place upgrade.
    pub fn state(&self) -> PolicyState {
        PolicyState {
            phase: self.phase,
            retiring: self.retiring,
            restarts: self.restarts,
            is_ready: self.is_ready,
            unstable: self.unstable,
            backoff: self.backoff,
            last_exit: self.last_exit,
            reload_pending: self.reload_pending,
        }
    }

    /// This policy (its settings) in `state`: where a slot was before an upgrade.
    pub fn with_state(self, state: PolicyState) -> Self {
        let PolicyState {
            phase,
            retiring,
            restarts,
            is_ready,
            unstable,
            backoff,
            last_exit,
            reload_pending,
        } = state;
        SlotPolicy {
            phase,
            retiring,
            restarts,
            is_ready,
            unstable,
            backoff,
            last_exit,
            reload_pending,
            ..self
        }
    }

    /// Applies one event at time `now`; returns what the slot must do, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        // The retiring worker is handled first, whatever the phase.
        if let Some(retiring) = self.retiring {
            match event {
                Event::Exited { pid, .. } if pid == retiring.pid => {
                    self.retiring = None;
                    return vec![Action::KillGroup(pid)];
                }
                Event::Timer if retiring.kill_at.is_some_and(|t| now >= t) => {
                    self.retiring = Some(Retiring {
                        kill_at: None,
                        ..retiring
                    });
                    actions.push(Action::KillGroup(retiring.pid));
                }
                _ => {}
            }
        }
        actions.extend(self.on_phase(event, now));
        actions
    }

    /// One arm per phase, and in each every event: what it does, or why it changes
    /// nothing. No catch-all, so a new `Event` does not compile until every phase says
    /// what it does with it.
    fn on_phase(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use Action::*;
        use Phase::*;
        match self.phase {
            Stopped | Errored => match event {
                // Starting a slot at rest replaces no worker: PM2 counts no restart
                // either (its e2e smart-start and reload scenarios).
                Event::Start | Event::RestartRequested | Event::ReloadRequested => {
                    self.reload_pending = event == Event::ReloadRequested;
                    self.unstable = 0;
                    self.backoff = None;
                    self.phase = Spawning;
                    vec![Spawn]
                }
                // A stop of a stopped slot.
                Event::StopRequested => vec![],
                // Stale: a timer armed before the slot came to rest.
                Event::Timer => vec![],
                // Stale: no worker of this phase; a late report about an earlier one.
                Event::Spawned { .. }
                | Event::SpawnFailed
                | Event::Ready { .. }
                | Event::Exited { .. }
                | Event::MemoryExceeded { .. }
                | Event::Unhealthy { .. } => vec![],
            },
            // Transient: `slot.rs` feeds `Spawned` or `SpawnFailed` right after the
            // `Spawn`, before any other event.
            Spawning => match event {
                Event::Spawned { pid } => {
                    self.phase = Starting {
                        pid,
                        since: now,
                        deadline: now + self.restart.listen_timeout,
                    };
                    vec![]
                }
                Event::SpawnFailed => {
                    let mut actions = self.fail_reload(Failure::SpawnFailed);
                    actions.extend(self.after_crash(Duration::ZERO, now));
                    actions
                }
                // Nothing to replace yet: this worker is new.
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    vec![]
                }
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no pid yet, so these are about an earlier worker.
                Event::Ready { .. }
                | Event::Exited { .. }
                | Event::MemoryExceeded { .. }
                | Event::Unhealthy { .. } => vec![],
                // Never seen here (see above); nothing to stop, no timer of its own.
                Event::StopRequested | Event::RestartRequested | Event::Timer => vec![],
            },
            Starting {
                pid,
                since,
                deadline,
            } => match event {
                Event::Ready { pid: ready } => {
                    if pid == ready {
                        self.go_online(pid, since)
                    } else {
                        vec![] // stale: another pid
                    }
                }
                Event::Timer => {
                    if self.uptime_ready_at(since).is_some_and(|t| now >= t) {
                        self.go_online(pid, since)
                    } else if now >= deadline {
                        let mut actions =
                            vec![Action::Report(self::Report::NotReadyInTime { pid })];
                        actions.extend(self.go_online(pid, since));
                        // Listed online, as PM2 does; not ready all the same.
                        self.is_ready = false;
                        actions
                    } else {
                        vec![] // early timer
                    }
                }
                Event::Exited {
                    pid: exited,
                    status,
                } => {
                    if pid == exited {
                        self.worker_exited(pid, since, status, now)
                    } else {
                        vec![] // stale: another pid
                    }
                }
                Event::RestartRequested => {
                    self.begin_stop(pid, since, AfterStop::Respawn(Cause::Restart), now)
                }
                Event::StopRequested => {
                    let mut actions = self.fail_reload(Failure::Stopped);
                    actions.extend(self.begin_stop(pid, since, AfterStop::Rest, now));
                    actions
                }
                // It was started before the reload was asked for, so it may run the old
                // code or environment (`reload --update-env`, a deploy): it is replaced.
                // Not being ready, it serves nobody, so stop-then-start loses nothing.
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    self.begin_stop(pid, since, AfterStop::Respawn(Cause::Reload), now)
                }
                // Not replaced for its memory before it is ready, and its health is
                // checked from when it is.
                Event::MemoryExceeded { .. } | Event::Unhealthy { .. } => vec![],
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no spawn is pending.
                Event::Spawned { .. } | Event::SpawnFailed => vec![],
            },
            Online { pid, since } => match event {
                Event::Exited {
                    pid: exited,
                    status,
                } => {
                    if pid == exited {
                        self.worker_exited(pid, since, status, now)
                    } else {
                        vec![] // stale: another pid
                    }
                }
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    self.replace(Incumbent { pid, since }, Why::Reload, now)
                }
                Event::MemoryExceeded { pid: over } => {
                    if pid == over {
                        self.replace(Incumbent { pid, since }, Why::Memory, now)
                    } else {
                        vec![] // stale: another pid's sample
                    }
                }
                // It takes no new connection from now on (`takes_connections`), and is
                // replaced without a gap.
                Event::Unhealthy { pid: sick } => {
                    if pid == sick {
                        self.replace(Incumbent { pid, since }, Why::Health, now)
                    } else {
                        vec![] // stale: an earlier worker's check
                    }
                }
                Event::RestartRequested => {
                    self.begin_stop(pid, since, AfterStop::Respawn(Cause::Restart), now)
                }
                Event::StopRequested => {
                    let mut actions = self.fail_reload(Failure::Stopped);
                    actions.extend(self.begin_stop(pid, since, AfterStop::Rest, now));
                    actions
                }
                // A sign after listen_timeout makes it ready after all; else a repeated
                // READY=1, or a late one of an earlier worker.
                Event::Ready { pid: ready } => {
                    if pid == ready {
                        self.is_ready = true;
                    }
                    vec![]
                }
                // No deadline of its own (a retiring worker's is handled in `on`).
                Event::Timer => vec![],
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no spawn is pending.
                Event::Spawned { .. } | Event::SpawnFailed => vec![],
            },
            // Transient, as `Spawning`.
            SpawningReplacement { old, why } => match event {
                Event::Spawned { pid } => {
                    self.phase = Replacing {
                        old,
                        new: pid,
                        new_since: now,
                        deadline: now + self.restart.listen_timeout,
                        why,
                    };
                    vec![]
                }
                Event::SpawnFailed => self.replacement_failed(old, why, Failure::SpawnFailed, now),
                // A replacement is already on its way.
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    vec![]
                }
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Never seen here: `Spawned` or `SpawnFailed` comes first.
                Event::Ready { .. }
                | Event::Exited { .. }
                | Event::MemoryExceeded { .. }
                | Event::Unhealthy { .. }
                | Event::StopRequested
                | Event::RestartRequested
                | Event::Timer => vec![],
            },
            Replacing {
                old,
                new,
                new_since,
                deadline,
                why,
            } => match event {
                Event::Ready { pid } => {
                    if pid == new {
                        self.promote(old, new, new_since, why, now)
                    } else {
                        vec![] // stale: another pid (the old worker is ready already)
                    }
                }
                Event::Timer => {
                    if self.uptime_ready_at(new_since).is_some_and(|t| now >= t) {
                        self.promote(old, new, new_since, why, now)
                    } else if now >= deadline {
                        // Stopped gracefully: it may already be serving connections.
                        let mut actions = vec![SendSignal(new, self.stop.kill_signal)];
                        self.retiring = Some(Retiring {
                            pid: new,
                            kill_at: Some(now + self.stop.kill_timeout),
                        });
                        actions.extend(self.replacement_failed(old, why, Failure::NotReady, now));
                        actions
                    } else {
                        vec![] // early timer
                    }
                }
                Event::Exited { pid, status } => {
                    if pid == new {
                        let mut actions = vec![KillGroup(new)];
                        actions.extend(self.replacement_failed(
                            old,
                            why,
                            Failure::Exited(status),
                            now,
                        ));
                        actions
                    } else if pid == old.pid {
                        // The old worker died on its own mid-replacement: the new one takes
                        // over.
                        self.last_exit = Some(status);
                        self.restarts.count(Cause::Crash);
                        self.phase = Starting {
                            pid: new,
                            since: new_since,
                            deadline,
                        };
                        vec![KillGroup(old.pid)]
                    } else {
                        vec![] // stale: another pid
                    }
                }
                Event::StopRequested => {
                    self.retiring = Some(Retiring {
                        pid: new,
                        kill_at: Some(now + self.stop.kill_timeout),
                    });
                    let mut actions = vec![SendSignal(new, self.stop.kill_signal)];
                    actions.extend(self.fail_reload(Failure::Stopped));
                    actions.extend(self.begin_stop(old.pid, old.since, AfterStop::Rest, now));
                    actions
                }
                Event::RestartRequested => {
                    self.retiring = Some(Retiring {
                        pid: new,
                        kill_at: Some(now + self.stop.kill_timeout),
                    });
                    let mut actions = vec![SendSignal(new, self.stop.kill_signal)];
                    actions.extend(self.begin_stop(
                        old.pid,
                        old.since,
                        AfterStop::Respawn(Cause::Restart),
                        now,
                    ));
                    actions
                }
                // A replacement is already under way.
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    vec![]
                }
                // A replacement is already under way; the old worker's memory ends with it.
                Event::MemoryExceeded { .. } => vec![],
                // The old worker, already being replaced, takes no new connection from
                // now on, and goes even if its replacement fails. The new one is checked
                // once it serves.
                Event::Unhealthy { pid } => {
                    if pid == old.pid {
                        self.phase = Replacing {
                            old,
                            new,
                            new_since,
                            deadline,
                            why: Why::Health,
                        };
                    }
                    vec![]
                }
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no spawn is pending.
                Event::Spawned { .. } | Event::SpawnFailed => vec![],
            },
            Stopping {
                pid,
                since,
                deadline,
                then,
            } => match event {
                // A stop cancels a pending respawn.
                Event::StopRequested => {
                    self.phase = Stopping {
                        pid,
                        since,
                        deadline,
                        then: AfterStop::Rest,
                    };
                    self.fail_reload(Failure::Stopped)
                }
                // The last command wins, as a restart does: this worker still goes, then
                // the next one starts, and the reload is done once it is ready.
                Event::ReloadRequested => {
                    self.reload_pending = true;
                    self.phase = Stopping {
                        pid,
                        since,
                        deadline,
                        then: AfterStop::Respawn(Cause::Reload),
                    };
                    vec![]
                }
                Event::Timer => match deadline {
                    Some(deadline) if now >= deadline => {
                        self.phase = Stopping {
                            pid,
                            since,
                            deadline: None,
                            then,
                        };
                        vec![KillGroup(pid)]
                    }
                    // Early timer, or SIGKILL already sent.
                    Some(_) | None => vec![],
                },
                Event::Exited {
                    pid: exited,
                    status,
                } => {
                    if pid == exited {
                        self.last_exit = Some(status);
                        match then {
                            AfterStop::Rest => {
                                self.phase = Stopped;
                                vec![KillGroup(pid), ReleaseListener]
                            }
                            AfterStop::Respawn(cause) => {
                                self.restarts.count(cause);
                                self.unstable = 0;
                                self.phase = Spawning;
                                vec![KillGroup(pid), Spawn]
                            }
                        }
                    } else {
                        vec![] // stale: another pid
                    }
                }
                // The last command wins: this worker still goes (no second signal, the
                // same kill deadline), then a new one starts.
                Event::RestartRequested => {
                    self.phase = Stopping {
                        pid,
                        since,
                        deadline,
                        then: AfterStop::Respawn(Cause::Restart),
                    };
                    vec![]
                }
                // On its way out: neither ready nor worth replacing for its memory or
                // its health.
                Event::Ready { .. } | Event::MemoryExceeded { .. } | Event::Unhealthy { .. } => {
                    vec![]
                }
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no spawn is pending.
                Event::Spawned { .. } | Event::SpawnFailed => vec![],
            },
            Waiting { until } => match event {
                Event::Timer => {
                    if now >= until {
                        self.restarts.count(Cause::Crash);
                        self.phase = Spawning;
                        vec![Spawn]
                    } else {
                        vec![] // early timer
                    }
                }
                // Asked for a worker now: the delay is skipped.
                Event::RestartRequested | Event::ReloadRequested => {
                    self.restarts.count(Cause::Crash);
                    self.reload_pending = event == Event::ReloadRequested;
                    self.phase = Spawning;
                    vec![Spawn]
                }
                Event::StopRequested => {
                    self.phase = Stopped;
                    let mut actions = self.fail_reload(Failure::Stopped);
                    actions.push(ReleaseListener);
                    actions
                }
                // `Start` comes once, to a stopped slot.
                Event::Start => vec![],
                // Stale: no worker runs while waiting; a late report about the last one.
                Event::Spawned { .. }
                | Event::SpawnFailed
                | Event::Ready { .. }
                | Event::Exited { .. }
                | Event::MemoryExceeded { .. }
                | Event::Unhealthy { .. } => vec![],
            },
        }
    }

    /// The serving (or launching) worker exited on its own: stopped when the exit means
    /// "done", else a crash.
    fn worker_exited(
        &mut self,
        pid: Pid,
        since: Instant,
        status: ExitKind,
        now: Instant,
    ) -> Vec<Action> {
        self.last_exit = Some(status);
        let mut actions = vec![Action::KillGroup(pid)];
        actions.extend(self.fail_reload(Failure::Exited(status)));
        if self.is_final(status) {
            self.phase = Phase::Stopped;
            actions.push(Action::ReleaseListener);
        } else {
            actions.extend(self.after_crash(now.saturating_duration_since(since), now));
        }
        actions
    }

    /// Starts replacing a serving worker: next to it when the listener is shared, else by
    /// stopping it first.
    fn replace(&mut self, old: Incumbent, why: Why, now: Instant) -> Vec<Action> {
        if self.overlap {
            self.phase = Phase::SpawningReplacement { old, why };
            vec![Action::Spawn]
        } else {
            self.begin_stop(old.pid, old.since, AfterStop::Respawn(why.into()), now)
        }
    }

    /// The replacement is ready: it serves, the old one retires.
    fn promote(
        &mut self,
        old: Incumbent,
        new: Pid,
        new_since: Instant,
        why: Why,
        now: Instant,
    ) -> Vec<Action> {
        self.restarts.count(why.into());
        self.unstable = 0;
        self.is_ready = true;
        self.phase = Phase::Online {
            pid: new,
            since: new_since,
        };
        let mut actions = Vec::new();
        // One retiring worker at a time: one still lingering from an earlier replacement
        // goes now.
        if let Some(earlier) = self.retiring.take() {
            actions.push(Action::KillGroup(earlier.pid));
        }
        self.retiring = Some(Retiring {
            pid: old.pid,
            kill_at: Some(now + self.stop.kill_timeout),
        });
        actions.push(Action::SendSignal(old.pid, self.stop.kill_signal));
        if std::mem::take(&mut self.reload_pending) {
            actions.push(Action::Report(Report::Reloaded {
                old: Some(old.pid),
                new,
            }));
        }
        actions
    }

    /// The replacement failed: the old worker keeps serving — unless it was being replaced
    /// for its memory, in which case it is restarted the plain way.
    fn replacement_failed(
        &mut self,
        old: Incumbent,
        why: Why,
        failure: Failure,
        now: Instant,
    ) -> Vec<Action> {
        self.phase = Phase::Online {
            pid: old.pid,
            since: old.since,
        };
        let mut actions = self.fail_reload(failure);
        // A worker replaced for its memory or its health must go all the same.
        if why != Why::Reload {
            actions.extend(self.begin_stop(
                old.pid,
                old.since,
                AfterStop::Respawn(why.into()),
                now,
            ));
        }
        actions
    }

    fn go_online(&mut self, pid: Pid, since: Instant) -> Vec<Action> {
        self.phase = Phase::Online { pid, since };
        self.is_ready = true;
        if std::mem::take(&mut self.reload_pending) {
            vec![Action::Report(Report::Reloaded {
                old: None,
                new: pid,
            })]
        } else {
            vec![]
        }
    }

    fn fail_reload(&mut self, failure: Failure) -> Vec<Action> {
        if std::mem::take(&mut self.reload_pending) {
            vec![Action::Report(Report::ReloadFailed(failure))]
        } else {
            vec![]
        }
    }

    /// Under the uptime rule, when a worker started at `since` counts as ready.
    fn uptime_ready_at(&self, since: Instant) -> Option<Instant> {
        match self.ready {
            ReadyRule::Uptime => {
                Some(since + self.restart.min_uptime.min(self.restart.listen_timeout))
            }
            ReadyRule::Signal => None,
        }
    }

    /// Whether an exit means "done" rather than "crashed".
    fn is_final(&self, status: ExitKind) -> bool {
        if !self.restart.autorestart {
            return true;
        }
        matches!(status, ExitKind::Code(code) if self.restart.stop_exit_codes.contains(&code))
    }

    fn begin_stop(
        &mut self,
        pid: Pid,
        since: Instant,
        then: AfterStop,
        now: Instant,
    ) -> Vec<Action> {
        let deadline = Some(now + self.stop.kill_timeout);
        self.phase = Phase::Stopping {
            pid,
            since,
            deadline,
            then,
        };
        vec![Action::SendSignal(pid, self.stop.kill_signal)]
    }

    /// A worker died on its own after `uptime`: errored, or respawn now or after a delay.
    fn after_crash(&mut self, uptime: Duration, now: Instant) -> Vec<Action> {
        if uptime < self.restart.min_uptime {
            self.unstable += 1;
        } else {
            self.unstable = 0;
        }
        // `unstable - 1` restarts already followed unstable runs.
        if self.unstable > self.restart.max_restarts {
            self.phase = Phase::Errored;
            return vec![Action::ReleaseListener];
        }
        let delay = self.restart_delay(uptime);
        if delay.is_zero() {
            self.restarts.count(Cause::Crash);
            self.phase = Phase::Spawning;
            return vec![Action::Spawn];
        }
        // Counted once the delay is over and the worker is replaced (PM2's restart_time
        // too): a stop meanwhile replaces nothing.
        self.phase = Phase::Waiting { until: now + delay };
        // Nobody accepts on this slot's listener meanwhile: past listen_timeout, stop
        // holding connections hostage.
        if delay > self.restart.listen_timeout {
            vec![Action::ReleaseListener]
        } else {
            vec![]
        }
    }

    fn restart_delay(&mut self, uptime: Duration) -> Duration {
        let configured = match self.restart.exp_backoff_restart_delay {
            Some(base) => {
                if uptime >= defaults::EXP_BACKOFF_RESET {
                    self.backoff = None;
                }
                let next = match self.backoff {
                    None => base,
                    Some(prev) => prev.mul_f64(1.5).min(defaults::EXP_BACKOFF_MAX),
                };
                self.backoff = Some(next);
                next
            }
            None => self.restart.restart_delay,
        };
        let floor = if self.unstable == 0 {
            Duration::ZERO
        } else {
            let doublings = (self.unstable - 1).min(8);
            (UNSTABLE_FLOOR_BASE * (1 << doublings)).min(UNSTABLE_FLOOR_MAX)
        };
        configured.max(floor)
    }

    /// When the slot's timer must fire next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Starting {
                since, deadline, ..
            } => Some(
                self.uptime_ready_at(since)
                    .map_or(deadline, |t| t.min(deadline)),
            ),
            Phase::Replacing {
                new_since,
                deadline,
                ..
            } => Some(
                self.uptime_ready_at(new_since)
                    .map_or(deadline, |t| t.min(deadline)),
            ),
            Phase::Stopping { deadline, .. } => deadline,
            Phase::Waiting { until } => Some(until),
            _ => None,
        };
        let retiring = self.retiring.and_then(|r| r.kill_at);
        match (phase, retiring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The status shown to users.
    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Spawning | Phase::Starting { .. } => Status::Launching,
            Phase::Online { .. } | Phase::SpawningReplacement { .. } | Phase::Replacing { .. } => {
                Status::Online
            }
            Phase::Stopping { .. } => Status::Stopping,
            Phase::Waiting { .. } => Status::Waiting,
            Phase::Stopped => Status::Stopped,
            Phase::Errored => Status::Errored,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The replaced worker still exiting, if any.
    pub fn retiring(&self) -> Option<Retiring> {
        self.retiring
    }

    /// Replacements of a running (or crashed) worker of this slot, whatever the cause
    /// (PM2's ↺); starting the slot again after a stop is not one.
    pub fn restarts(&self) -> u32 {
        self.restarts.total()
    }

    /// The same, by cause.
    pub fn restarts_by_cause(&self) -> Restarts {
        self.restarts
    }

    /// Whether the slot's listener should get new connections: its worker serves, is
    /// ready, and is not being replaced for its health. (A slot whose listener gets none
    /// still has what is queued on it served, by its worker or the next one.)
    pub fn takes_connections(&self) -> bool {
        match self.phase {
            Phase::Online { .. } => self.is_ready,
            Phase::SpawningReplacement { why, .. } | Phase::Replacing { why, .. } => {
                self.is_ready && why != Why::Health
            }
            Phase::Spawning
            | Phase::Starting { .. }
            | Phase::Stopping { .. }
            | Phase::Waiting { .. }
            | Phase::Stopped
            | Phase::Errored => false,
        }
    }

    /// PM2's `reset`: the restart count (↺) and the count of unstable restarts in a row
    /// back to 0, so a crash-looping slot has its whole `max_restarts` again. Nothing
    /// else changes: a worker keeps running, a delay under way keeps its length, an
    /// errored slot stays errored until started.
    pub fn reset_counters(&mut self) {
        self.restarts = Restarts::default();
        self.unstable = 0;
    }

    /// How the slot's last worker ended, if one has.
    pub fn last_exit(&self) -> Option<ExitKind> {
        self.last_exit
    }

    /// The worker that serves (or will): the one `list` shows.
    pub fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Starting { pid, .. }
            | Phase::Online { pid, .. }
            | Phase::Stopping { pid, .. } => Some(pid),
            Phase::SpawningReplacement { old, .. } | Phase::Replacing { old, .. } => Some(old.pid),
            _ => None,
        }
    }

    /// Every worker process the slot has (see [`PolicyState::workers`]).
    pub fn workers(&self) -> Vec<Pid> {
        self.state().workers()
    }

    /// When the current worker started.
    pub fn since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Starting { since, .. }
            | Phase::Online { since, .. }
            | Phase::Stopping { since, .. } => Some(since),
            Phase::SpawningReplacement { old, .. } | Phase::Replacing { old, .. } => {
                Some(old.since)
            }
            _ => None,
        }
    }

    /// Stopped or errored with nothing left exiting: nothing will happen until asked.
    pub fn is_at_rest(&self) -> bool {
        matches!(self.phase, Phase::Stopped | Phase::Errored) && self.retiring.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    type Rep = super::Report;

    fn spec() -> (RestartSpec, StopSpec) {
        (
            RestartSpec {
                autorestart: true,
                min_uptime: Duration::from_millis(1000),
                max_restarts: 3,
                restart_delay: Duration::ZERO,
                exp_backoff_restart_delay: None,
                stop_exit_codes: vec![0],
                wait_ready: false,
                listen_timeout: Duration::from_millis(3000),
            },
            StopSpec {
                kill_signal: Signal::SIGINT,
                kill_timeout: Duration::from_millis(1600),
                shutdown_with_message: false,
            },
        )
    }

    fn policy(ready: ReadyRule, overlap: bool) -> SlotPolicy {
        let (restart, stop) = spec();
        SlotPolicy::new(restart, stop, ready, overlap)
    }

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Start (or respawn) and make the worker ready by signal.
    fn online(policy: &mut SlotPolicy, n: i32, t: Instant) -> Pid {
        let pid = pid(n);
        if policy.phase != Phase::Spawning {
            assert_eq!(policy.on(Event::Start, t), vec![Spawn]);
        }
        assert_eq!(policy.on(Event::Spawned { pid }, t), vec![]);
        assert_eq!(policy.status(), Status::Launching);
        policy.on(Event::Ready { pid }, t);
        assert_eq!(policy.status(), Status::Online);
        pid
    }

    /// One row: a run of `uptime`, ending with `status`; expected status, actions.
    struct Row {
        uptime_ms: u64,
        status: ExitKind,
        expect_status: Status,
        expect_actions: fn(Pid) -> Vec<Action>,
        expect_wait_ms: Option<u64>,
    }

    #[test]
    fn exits_follow_the_pm2_table() {
        let crash = ExitKind::Code(1);
        let rows = [
            // A stable run that crashes respawns at once, and resets the unstable count.
            Row {
                uptime_ms: 5000,
                status: crash,
                expect_status: Status::Launching,
                expect_actions: |p| vec![KillGroup(p), Spawn],
                expect_wait_ms: None,
            },
            // Unstable crashes: respawn after the anti-spin floor, 25 ms doubling.
            Row {
                uptime_ms: 10,
                status: crash,
                expect_status: Status::Waiting,
                expect_actions: |p| vec![KillGroup(p)],
                expect_wait_ms: Some(25),
            },
            Row {
                uptime_ms: 10,
                status: ExitKind::Signal(Signal::SIGKILL),
                expect_status: Status::Waiting,
                expect_actions: |p| vec![KillGroup(p)],
                expect_wait_ms: Some(50),
            },
            Row {
                uptime_ms: 10,
                status: crash,
                expect_status: Status::Waiting,
                expect_actions: |p| vec![KillGroup(p)],
                expect_wait_ms: Some(100),
            },
            // Three restarts after unstable runs were max_restarts = 3: the fourth
            // unstable run is errored.
            Row {
                uptime_ms: 10,
                status: crash,
                expect_status: Status::Errored,
                expect_actions: |p| vec![KillGroup(p), ReleaseListener],
                expect_wait_ms: None,
            },
        ];
        let mut policy = policy(ReadyRule::Signal, true);
        let mut t = Instant::now();
        let mut expected_restarts = 0;
        for (i, row) in rows.iter().enumerate() {
            match policy.phase {
                Phase::Waiting { until } => {
                    // The restart delay is over: the crashed worker is replaced now.
                    assert_eq!(policy.restarts(), expected_restarts, "row {i}");
                    t = until;
                    assert_eq!(policy.on(Event::Timer, t), vec![Spawn], "row {i}");
                    expected_restarts += 1;
                }
                Phase::Spawning => {}
                _ => assert_eq!(policy.on(Event::Start, t), vec![Spawn], "row {i}"),
            }
            let pid = online(&mut policy, 100 + i as i32, t);
            t += ms(row.uptime_ms);
            let actions = policy.on(
                Event::Exited {
                    pid,
                    status: row.status,
                },
                t,
            );
            assert_eq!(actions, (row.expect_actions)(pid), "row {i}");
            assert_eq!(policy.status(), row.expect_status, "row {i}");
            assert_eq!(
                policy.next_deadline(),
                row.expect_wait_ms.map(|w| t + ms(w)),
                "row {i}"
            );
            // Replaced at once; after a delay, once it is over.
            if row.expect_status == Status::Launching {
                expected_restarts += 1;
            }
            assert_eq!(policy.restarts(), expected_restarts, "row {i}");
        }
        // errored is at rest: a stale timer does nothing; a restart request brings it back.
        assert!(policy.is_at_rest());
        assert_eq!(policy.on(Event::Timer, t), vec![]);
        assert_eq!(policy.on(Event::RestartRequested, t), vec![Spawn]);
        assert_eq!(policy.unstable, 0);
    }

    /// `reset` in a crash loop: ↺ reads 0 and the loop gets max_restarts (3) unstable
    /// restarts again before it is errored.
    #[test]
    fn reset_counters_gives_a_crash_loop_its_whole_max_restarts_again() {
        fn crash(p: &mut SlotPolicy, t: &mut Instant, n: i32) {
            match p.phase {
                Phase::Waiting { until } => {
                    *t = until;
                    assert_eq!(p.on(Event::Timer, *t), vec![Spawn]);
                }
                _ => assert_eq!(p.on(Event::Start, *t), vec![Spawn]),
            }
            let pid = online(p, n, *t);
            *t += ms(10);
            p.on(
                Event::Exited {
                    pid,
                    status: ExitKind::Code(1),
                },
                *t,
            );
        }
        let mut p = policy(ReadyRule::Signal, true);
        let mut t = Instant::now();
        // Three unstable runs: two restarts so far, the third after its delay.
        for n in 0..3 {
            crash(&mut p, &mut t, n);
        }
        assert_eq!((p.restarts(), p.status()), (2, Status::Waiting));
        p.reset_counters();
        assert_eq!((p.restarts(), p.status()), (0, Status::Waiting));
        assert!(p.next_deadline().is_some(), "the delay under way is kept");
        for n in 3..6 {
            crash(&mut p, &mut t, n);
            assert_eq!(p.status(), Status::Waiting, "crash {n}");
        }
        // The fourth unstable run in a row since the reset is one too many.
        crash(&mut p, &mut t, 6);
        assert_eq!((p.restarts(), p.status()), (4, Status::Errored));
        // An errored slot stays errored: reset is no start.
        p.reset_counters();
        assert_eq!((p.restarts(), p.status()), (0, Status::Errored));
    }

    #[test]
    fn stop_exit_codes_and_autorestart_false_stop_the_slot() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let w = online(&mut p, 7, t);
        let actions = p.on(
            Event::Exited {
                pid: w,
                status: ExitKind::Code(0),
            },
            t + ms(5),
        );
        assert_eq!(actions, vec![KillGroup(w), ReleaseListener]);
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.restarts(), 0);

        let (restart, stop) = spec();
        let mut p = SlotPolicy::new(
            RestartSpec {
                autorestart: false,
                ..restart
            },
            stop,
            ReadyRule::Signal,
            true,
        );
        let w = online(&mut p, 8, t);
        p.on(
            Event::Exited {
                pid: w,
                status: ExitKind::Code(3),
            },
            t + ms(5000),
        );
        assert_eq!(p.status(), Status::Stopped);
    }

    #[test]
    fn a_reload_replaces_a_worker_still_launching_and_a_restart_from_rest_counts_nothing() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        assert_eq!(p.on(Event::Start, t), vec![Spawn]);
        p.on(Event::Spawned { pid: pid(40) }, t);
        assert_eq!(p.status(), Status::Launching);
        // Started before the reload: it may run the old code, so it goes.
        assert_eq!(
            p.on(Event::ReloadRequested, t + ms(10)),
            vec![SendSignal(pid(40), Signal::SIGINT)]
        );
        let actions = p.on(
            Event::Exited {
                pid: pid(40),
                status: ExitKind::Code(0),
            },
            t + ms(20),
        );
        assert_eq!(actions, vec![KillGroup(pid(40)), Spawn]);
        p.on(Event::Spawned { pid: pid(41) }, t + ms(20));
        let actions = p.on(Event::Ready { pid: pid(41) }, t + ms(30));
        assert!(
            matches!(
                actions.as_slice(),
                [Report(super::Report::Reloaded { old: None, new })] if *new == pid(41)
            ),
            "{actions:?}"
        );
        assert_eq!(p.restarts(), 1);

        // Stopped, then started again: no worker was replaced.
        p.on(Event::StopRequested, t + ms(40));
        p.on(
            Event::Exited {
                pid: pid(41),
                status: ExitKind::Signal(Signal::SIGINT),
            },
            t + ms(50),
        );
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.on(Event::RestartRequested, t + ms(60)), vec![Spawn]);
        assert_eq!(p.restarts(), 1);
    }

    #[test]
    fn graceful_stop_escalates_to_sigkill_after_kill_timeout() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let w = online(&mut p, 9, t);
        let deadline = t + ms(1600);
        assert_eq!(
            p.on(Event::StopRequested, t),
            vec![SendSignal(w, Signal::SIGINT)]
        );
        assert_eq!(p.next_deadline(), Some(deadline));
        assert_eq!(p.status(), Status::Stopping);
        assert_eq!(
            p.on(Event::Timer, t + ms(100)),
            vec![],
            "early timer is stale"
        );
        assert_eq!(p.on(Event::Timer, deadline), vec![KillGroup(w)]);
        let actions = p.on(
            Event::Exited {
                pid: w,
                status: ExitKind::Signal(Signal::SIGKILL),
            },
            deadline,
        );
        assert_eq!(actions, vec![KillGroup(w), ReleaseListener]);
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.restarts(), 0, "a stop is not a restart");
    }

    #[test]
    fn the_last_of_a_stop_and_a_restart_wins() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let w = online(&mut p, 9, t);
        p.on(Event::StopRequested, t);
        // A restart during the stop: the worker still goes (no second signal), then a
        // new one starts.
        assert_eq!(p.on(Event::RestartRequested, t + ms(10)), vec![]);
        assert_eq!(p.status(), Status::Stopping);
        assert_eq!(
            p.next_deadline(),
            Some(t + ms(1600)),
            "the same kill deadline"
        );
        let exited = Event::Exited {
            pid: w,
            status: ExitKind::Code(0),
        };
        assert_eq!(p.on(exited, t + ms(20)), vec![KillGroup(w), Spawn]);
        // A stop during that restart's stop: it rests instead.
        let w = pid(10);
        p.on(Event::Spawned { pid: w }, t + ms(20));
        p.on(Event::Ready { pid: w }, t + ms(30));
        p.on(Event::RestartRequested, t + ms(40));
        assert_eq!(p.on(Event::StopRequested, t + ms(50)), vec![]);
        let exited = Event::Exited {
            pid: w,
            status: ExitKind::Code(0),
        };
        assert_eq!(
            p.on(exited, t + ms(60)),
            vec![KillGroup(w), ReleaseListener]
        );
        assert_eq!(p.status(), Status::Stopped);
    }

    #[test]
    fn a_reload_during_a_stop_starts_the_slot_again_and_reports_it_once_ready() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let w = online(&mut p, 9, t);
        p.on(Event::StopRequested, t);
        assert_eq!(p.on(Event::ReloadRequested, t + ms(10)), vec![]);
        assert_eq!(p.status(), Status::Stopping);
        let exited = Event::Exited {
            pid: w,
            status: ExitKind::Code(0),
        };
        assert_eq!(p.on(exited, t + ms(20)), vec![KillGroup(w), Spawn]);
        let new = pid(10);
        p.on(Event::Spawned { pid: new }, t + ms(20));
        assert_eq!(
            p.on(Event::Ready { pid: new }, t + ms(30)),
            vec![Action::Report(super::Report::Reloaded { old: None, new })]
        );
        assert_eq!(p.status(), Status::Online);
    }

    #[test]
    fn readiness_by_signal_by_uptime_and_by_listen_timeout() {
        let t = Instant::now();
        // Signal: launching until READY, whatever the time.
        let mut p = policy(ReadyRule::Signal, true);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(1) }, t);
        assert_eq!(p.next_deadline(), Some(t + ms(3000)), "only listen_timeout");
        assert_eq!(p.on(Event::Timer, t + ms(1000)), vec![]);
        assert_eq!(p.status(), Status::Launching);
        // Never signalled: counted online at listen_timeout, with a warning.
        assert_eq!(
            p.on(Event::Timer, t + ms(3000)),
            vec![Report(Rep::NotReadyInTime { pid: pid(1) })]
        );
        assert_eq!(p.status(), Status::Online);

        // Uptime: ready after min_uptime (1000 ms).
        let mut p = policy(ReadyRule::Uptime, true);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(2) }, t);
        assert_eq!(p.next_deadline(), Some(t + ms(1000)));
        assert_eq!(p.on(Event::Timer, t + ms(1000)), vec![]);
        assert_eq!(p.status(), Status::Online);
    }

    /// Reload rows: how a replacement ends, and what the slot does.
    #[test]
    fn reload_starts_the_new_worker_first_and_retires_the_old_once_ready() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let old = online(&mut p, 10, t);
        assert_eq!(p.on(Event::ReloadRequested, t), vec![Spawn]);
        assert_eq!(p.on(Event::Spawned { pid: pid(11) }, t), vec![]);
        assert_eq!(
            p.pid(),
            Some(old),
            "the old worker is the one serving meanwhile"
        );
        assert_eq!(p.status(), Status::Online);
        let ready = t + ms(200);
        let actions = p.on(Event::Ready { pid: pid(11) }, ready);
        assert_eq!(
            actions,
            vec![
                SendSignal(old, Signal::SIGINT),
                Report(Rep::Reloaded {
                    old: Some(old),
                    new: pid(11)
                })
            ]
        );
        assert_eq!(p.pid(), Some(pid(11)));
        assert_eq!(p.restarts(), 1);
        // The old one gets SIGKILL at kill_timeout if it lingers, then is reaped.
        assert_eq!(p.next_deadline(), Some(ready + ms(1600)));
        assert_eq!(p.on(Event::Timer, ready + ms(1600)), vec![KillGroup(old)]);
        assert_eq!(
            p.on(
                Event::Exited {
                    pid: old,
                    status: ExitKind::Signal(Signal::SIGKILL)
                },
                ready + ms(1601)
            ),
            vec![KillGroup(old)]
        );
        assert_eq!(p.retiring, None);
        assert_eq!(
            p.status(),
            Status::Online,
            "the old worker's exit is not a crash"
        );
    }

    #[test]
    fn a_replacement_that_is_not_ready_in_time_or_exits_goes_and_the_old_one_stays() {
        let t = Instant::now();
        for how in ["timeout", "exit"] {
            let mut p = policy(ReadyRule::Signal, true);
            let old = online(&mut p, 20, t);
            p.on(Event::ReloadRequested, t);
            p.on(Event::Spawned { pid: pid(21) }, t);
            let actions = match how {
                "timeout" => p.on(Event::Timer, t + ms(3000)),
                _ => p.on(
                    Event::Exited {
                        pid: pid(21),
                        status: ExitKind::Code(1),
                    },
                    t + ms(50),
                ),
            };
            let failure = if how == "timeout" {
                Failure::NotReady
            } else {
                Failure::Exited(ExitKind::Code(1))
            };
            // Not ready: stopped gracefully (it may serve already). Exited: its group killed.
            let first = if how == "timeout" {
                SendSignal(pid(21), Signal::SIGINT)
            } else {
                KillGroup(pid(21))
            };
            assert_eq!(
                actions,
                vec![first, Report(Rep::ReloadFailed(failure))],
                "{how}"
            );
            assert_eq!(p.phase, Phase::Online { pid: old, since: t }, "{how}");
            assert_eq!(p.restarts(), 0, "{how}");
        }
    }

    /// Who takes new connections, and what an unhealthy worker becomes, as a table: each
    /// row is an event, the actions it must give, and whether the slot's listener takes
    /// connections after it.
    #[test]
    fn an_unhealthy_worker_takes_no_connection_and_is_replaced_without_a_gap() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        p.on(Event::Start, t);
        let exit = |n: i32| Event::Exited {
            pid: pid(n),
            status: ExitKind::Code(1),
        };
        let rows: Vec<(Event, Vec<Action>, bool)> = vec![
            (Event::Spawned { pid: pid(1) }, vec![], false),
            // Booting: not ready, takes nothing; its health is not checked yet.
            (Event::Unhealthy { pid: pid(1) }, vec![], false),
            (Event::Ready { pid: pid(1) }, vec![], true),
            (Event::Unhealthy { pid: pid(9) }, vec![], true), // another pid: stale
            // Steered out at once, a replacement started next to it.
            (Event::Unhealthy { pid: pid(1) }, vec![Spawn], false),
            (Event::Spawned { pid: pid(2) }, vec![], false),
            (
                Event::Ready { pid: pid(2) },
                vec![SendSignal(pid(1), Signal::SIGINT)],
                true,
            ),
            (exit(1), vec![KillGroup(pid(1))], true),
            // A replacement for its health that fails: the sick worker goes all the same.
            (Event::Unhealthy { pid: pid(2) }, vec![Spawn], false),
            (Event::Spawned { pid: pid(3) }, vec![], false),
            (
                exit(3),
                vec![KillGroup(pid(3)), SendSignal(pid(2), Signal::SIGINT)],
                false,
            ),
            (exit(2), vec![KillGroup(pid(2)), Spawn], false),
            (Event::Spawned { pid: pid(4) }, vec![], false),
            (Event::Ready { pid: pid(4) }, vec![], true),
            // Unhealthy during a reload: out at once, the reload goes on.
            (Event::ReloadRequested, vec![Spawn], true),
            (Event::Spawned { pid: pid(5) }, vec![], true),
            (Event::Unhealthy { pid: pid(4) }, vec![], false),
            (
                Event::Ready { pid: pid(5) },
                vec![
                    SendSignal(pid(4), Signal::SIGINT),
                    Report(Rep::Reloaded {
                        old: Some(pid(4)),
                        new: pid(5),
                    }),
                ],
                true,
            ),
        ];
        for (i, (event, actions, takes)) in rows.into_iter().enumerate() {
            assert_eq!(p.on(event, t), actions, "row {i}: {event:?}");
            assert_eq!(p.takes_connections(), takes, "row {i}: {event:?}");
        }
        assert_eq!(
            p.restarts_by_cause(),
            Restarts {
                health: 3,
                ..Restarts::default()
            },
            "the one replaced during a reload counts as a health replacement too"
        );

        // Without a shared listener: stopped, then started again.
        let mut p = policy(ReadyRule::Signal, false);
        let sick = online(&mut p, 10, t);
        assert_eq!(
            p.on(Event::Unhealthy { pid: sick }, t),
            vec![SendSignal(sick, Signal::SIGINT)]
        );
        assert!(!p.takes_connections());
        assert_eq!(p.on(exit(10), t), vec![KillGroup(sick), Spawn]);
        assert_eq!(p.restarts_by_cause().health, 1);
    }

    /// A worker that never says it is ready is listed online after listen_timeout (as
    /// PM2), but takes no connection until it does say so.
    #[test]
    fn a_worker_counted_online_without_a_sign_takes_no_connection_until_it_gives_one() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(1) }, t);
        assert_eq!(
            p.on(Event::Timer, t + ms(3000)),
            vec![Report(Rep::NotReadyInTime { pid: pid(1) })]
        );
        assert_eq!(p.status(), Status::Online);
        assert!(!p.takes_connections());
        p.on(Event::Ready { pid: pid(2) }, t + ms(4000));
        assert!(!p.takes_connections(), "another pid's sign");
        p.on(Event::Ready { pid: pid(1) }, t + ms(4000));
        assert!(p.takes_connections());

        // The uptime rule: ready once up min_uptime.
        let mut p = policy(ReadyRule::Uptime, true);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(3) }, t);
        assert!(!p.takes_connections());
        p.on(Event::Timer, t + ms(1000));
        assert!(p.takes_connections());
    }

    /// Each replacement is counted under its cause; the total is PM2's ↺.
    #[test]
    fn restarts_are_counted_by_cause() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let first = online(&mut p, 1, t);
        // reload
        p.on(Event::ReloadRequested, t);
        p.on(Event::Spawned { pid: pid(2) }, t);
        p.on(Event::Ready { pid: pid(2) }, t);
        p.on(
            Event::Exited {
                pid: first,
                status: ExitKind::Code(0),
            },
            t,
        );
        // memory
        p.on(Event::MemoryExceeded { pid: pid(2) }, t);
        p.on(Event::Spawned { pid: pid(3) }, t);
        p.on(Event::Ready { pid: pid(3) }, t);
        // restart
        p.on(Event::RestartRequested, t);
        p.on(
            Event::Exited {
                pid: pid(3),
                status: ExitKind::Code(0),
            },
            t,
        );
        p.on(Event::Spawned { pid: pid(4) }, t);
        p.on(Event::Ready { pid: pid(4) }, t);
        // crash, after a stable run
        p.on(
            Event::Exited {
                pid: pid(4),
                status: ExitKind::Code(1),
            },
            t + ms(5000),
        );
        assert_eq!(
            p.restarts_by_cause(),
            Restarts {
                crash: 1,
                memory: 1,
                health: 0,
                reload: 1,
                restart: 1,
            }
        );
        assert_eq!(p.restarts(), 4);
    }

    #[test]
    fn memory_limit_replaces_without_a_gap_or_restarts_when_the_port_is_the_apps_own() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Uptime, true);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(30) }, t);
        p.on(Event::Timer, t + ms(1000));
        assert_eq!(
            p.on(Event::MemoryExceeded { pid: pid(99) }, t),
            vec![],
            "another pid's sample"
        );
        assert_eq!(
            p.on(Event::MemoryExceeded { pid: pid(30) }, t + ms(2000)),
            vec![Spawn]
        );
        p.on(Event::Spawned { pid: pid(31) }, t + ms(2000));
        let actions = p.on(Event::Timer, t + ms(3000));
        assert_eq!(actions, vec![SendSignal(pid(30), Signal::SIGINT)]);
        assert_eq!(p.restarts(), 1);

        // No shared listener: stop first, then respawn.
        let mut p = policy(ReadyRule::Uptime, false);
        p.on(Event::Start, t);
        p.on(Event::Spawned { pid: pid(40) }, t);
        p.on(Event::Timer, t + ms(1000));
        assert_eq!(
            p.on(Event::MemoryExceeded { pid: pid(40) }, t + ms(2000)),
            vec![SendSignal(pid(40), Signal::SIGINT)]
        );
        // A shutdown during that stop wins: no respawn.
        let mut shutdown = p.clone();
        shutdown.on(Event::StopRequested, t + ms(2000));
        shutdown.on(
            Event::Exited {
                pid: pid(40),
                status: ExitKind::Code(0),
            },
            t + ms(2010),
        );
        assert_eq!(shutdown.status(), Status::Stopped);
        let actions = p.on(
            Event::Exited {
                pid: pid(40),
                status: ExitKind::Code(0),
            },
            t + ms(2010),
        );
        assert_eq!(actions, vec![KillGroup(pid(40)), Spawn]);
        assert_eq!(p.restarts(), 1);
    }

    #[test]
    fn a_failed_memory_replacement_falls_back_to_a_restart() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        let old = online(&mut p, 50, t);
        p.on(Event::MemoryExceeded { pid: old }, t);
        p.on(Event::Spawned { pid: pid(51) }, t);
        let actions = p.on(
            Event::Exited {
                pid: pid(51),
                status: ExitKind::Code(1),
            },
            t + ms(10),
        );
        assert_eq!(
            actions,
            vec![KillGroup(pid(51)), SendSignal(old, Signal::SIGINT)]
        );
        assert_eq!(p.status(), Status::Stopping);
    }

    #[test]
    fn reload_of_a_stopped_slot_starts_it_and_stop_mid_reload_stops_both() {
        let t = Instant::now();
        let mut p = policy(ReadyRule::Signal, true);
        assert_eq!(p.on(Event::ReloadRequested, t), vec![Spawn]);
        p.on(Event::Spawned { pid: pid(60) }, t);
        assert_eq!(
            p.on(Event::Ready { pid: pid(60) }, t),
            vec![Report(Rep::Reloaded {
                old: None,
                new: pid(60)
            })]
        );

        p.on(Event::ReloadRequested, t);
        p.on(Event::Spawned { pid: pid(61) }, t);
        let actions = p.on(Event::StopRequested, t);
        assert_eq!(
            actions,
            vec![
                SendSignal(pid(61), Signal::SIGINT),
                Report(Rep::ReloadFailed(Failure::Stopped)),
                SendSignal(pid(60), Signal::SIGINT)
            ]
        );
        assert!(!p.is_at_rest());
        p.on(
            Event::Exited {
                pid: pid(61),
                status: ExitKind::Code(0),
            },
            t,
        );
        p.on(
            Event::Exited {
                pid: pid(60),
                status: ExitKind::Code(0),
            },
            t,
        );
        assert!(p.is_at_rest());
    }

    #[test]
    fn exponential_backoff_grows_by_half_caps_at_15s_and_resets_after_30s_up() {
        let (restart, stop) = spec();
        let restart = RestartSpec {
            exp_backoff_restart_delay: Some(ms(100)),
            max_restarts: 1000,
            min_uptime: ms(10),
            ..restart
        };
        let mut p = SlotPolicy::new(restart, stop, ReadyRule::Signal, true);
        let mut t = Instant::now();
        let run = |p: &mut SlotPolicy, uptime: Duration, t: &mut Instant| {
            let w = online(p, 20, *t);
            *t += uptime;
            p.on(
                Event::Exited {
                    pid: w,
                    status: ExitKind::Code(1),
                },
                *t,
            );
            let Phase::Waiting { until } = p.phase else {
                panic!("waiting")
            };
            let delay = until - *t;
            *t = until;
            p.on(Event::Timer, *t);
            delay
        };
        let delays: Vec<u128> = (0..16)
            .map(|_| run(&mut p, ms(50), &mut t).as_millis())
            .collect();
        assert_eq!(&delays[..4], &[100, 150, 225, 337]);
        assert_eq!(*delays.last().unwrap(), 15_000);
        assert_eq!(run(&mut p, Duration::from_secs(31), &mut t), ms(100));
    }

    #[test]
    fn a_long_wait_releases_the_listener() {
        let (restart, stop) = spec();
        let restart = RestartSpec {
            restart_delay: Duration::from_secs(5),
            ..restart
        };
        let mut p = SlotPolicy::new(restart, stop, ReadyRule::Signal, true);
        let t = Instant::now();
        let w = online(&mut p, 30, t);
        let actions = p.on(
            Event::Exited {
                pid: w,
                status: ExitKind::Code(1),
            },
            t + ms(5000),
        );
        assert_eq!(actions, vec![KillGroup(w), ReleaseListener]);
        assert_eq!(p.next_deadline(), Some(t + ms(10_000)));
        assert_eq!(p.on(Event::StopRequested, t), vec![ReleaseListener]);
        assert_eq!(p.status(), Status::Stopped);
    }

    /// Events about a pid the slot no longer (or never) ran change nothing, in every
    /// phase that has a worker.
    #[test]
    fn events_of_another_pid_are_stale_in_every_phase() {
        let t = Instant::now();
        let stranger = pid(999);
        let stale = [
            Event::Ready { pid: stranger },
            Event::Exited {
                pid: stranger,
                status: ExitKind::Code(1),
            },
            Event::MemoryExceeded { pid: stranger },
        ];
        let mut starting = policy(ReadyRule::Signal, true);
        starting.on(Event::Start, t);
        starting.on(Event::Spawned { pid: pid(1) }, t);
        let mut online = policy(ReadyRule::Signal, true);
        self::online(&mut online, 2, t);
        let mut replacing = online.clone();
        replacing.on(Event::ReloadRequested, t);
        replacing.on(Event::Spawned { pid: pid(3) }, t);
        let mut stopping = online.clone();
        stopping.on(Event::StopRequested, t);
        for mut p in [starting, online, replacing, stopping] {
            let before = p.phase();
            for event in stale {
                assert_eq!(p.on(event, t), vec![], "{before:?} {event:?}");
                assert_eq!(p.phase(), before, "{event:?}");
            }
        }
    }

    /// A policy rebuilt from its state (an in-place upgrade) goes on exactly as the one
    /// it was taken from: cut a run of events at every point, and both answer the rest
    /// alike, crash counting, backoff, readiness, a replacement under way and all.
    #[test]
    fn a_policy_rebuilt_from_its_state_goes_on_as_before() {
        let t = Instant::now();
        let crash = |n: i32| Event::Exited {
            pid: pid(n),
            status: ExitKind::Code(1),
        };
        let events: Vec<(Event, Duration)> = vec![
            (Event::Start, ms(0)),
            (Event::Spawned { pid: pid(1) }, ms(0)),
            (Event::Ready { pid: pid(1) }, ms(10)),
            (crash(1), ms(20)),
            (Event::Timer, ms(60)),
            (Event::Spawned { pid: pid(2) }, ms(60)),
            (crash(2), ms(70)),
            (Event::Timer, ms(200)),
            (Event::Spawned { pid: pid(3) }, ms(200)),
            (Event::Ready { pid: pid(3) }, ms(210)),
            (Event::MemoryExceeded { pid: pid(3) }, ms(5000)),
            (Event::Spawned { pid: pid(4) }, ms(5000)),
            (Event::Ready { pid: pid(4) }, ms(5100)),
            (Event::Timer, ms(20_000)),
            (crash(3), ms(20_001)),
            (Event::ReloadRequested, ms(30_000)),
            (Event::Spawned { pid: pid(5) }, ms(30_000)),
            (Event::Ready { pid: pid(5) }, ms(30_050)),
            (Event::StopRequested, ms(40_000)),
            (Event::Timer, ms(60_000)),
            (crash(5), ms(60_001)),
            (crash(4), ms(60_002)),
        ];
        for cut in 0..=events.len() {
            let mut original = policy(ReadyRule::Signal, true);
            for (event, at) in &events[..cut] {
                original.on(*event, t + *at);
            }
            let mut rebuilt = policy(ReadyRule::Signal, true).with_state(original.state());
            assert_eq!(rebuilt.state(), original.state(), "cut at {cut}");
            for (event, at) in &events[cut..] {
                let a = original.on(*event, t + *at);
                let b = rebuilt.on(*event, t + *at);
                assert_eq!(a, b, "cut at {cut}, {event:?}");
                assert_eq!(rebuilt.state(), original.state(), "cut at {cut}, {event:?}");
                assert_eq!(rebuilt.next_deadline(), original.next_deadline());
            }
        }
    }
}
