//! The lifecycle of one worker slot as a pure state machine: `(phase, event) → (phase,
//! actions)`. No I/O, no clock: time comes in with each event, so the whole table is
//! tested without processes. `slot.rs` carries the actions out.
//!
//! Restart rules (PM2's, with one deliberate difference):
//! - An exit with a code listed in `stop_exit_codes`, or any exit when `autorestart` is
//!   false, leaves the slot `stopped`.
//! - A run shorter than `min_uptime` is an unstable restart. `max_restarts` consecutive
//!   unstable restarts leave the slot `errored`; a run that lasted `min_uptime` resets the
//!   count. (PM2 only counts crashes within `min_uptime × max_restarts` of the app's
//!   creation, so an app that starts crash-looping later restarts forever; drover does not.)
//! - The delay before a respawn is `restart_delay`, or PM2's exponential backoff when
//!   `exp_backoff_restart_delay` is set (×1.5 per crash, capped at 15 s, reset after a run
//!   of 30 s). Consecutive unstable restarts also wait at least 25 ms × 2ⁿ⁻¹ (capped at
//!   250 ms), so a crash loop never spins a core even with a huge `max_restarts`.
//! - `restarts` counts every replacement of the slot's worker, whatever the cause.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::config::{RestartSpec, StopSpec, defaults};
use crate::os::ExitKind;

/// Where a slot is in its lifecycle; each phase carries its own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Spawn requested, pid not known yet (transient: `Spawned` or `SpawnFailed` follows).
    Launching,
    Online {
        pid: Pid,
        since: Instant,
    },
    Stopping {
        pid: Pid,
        since: Instant,
        deadline: Instant,
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
    Respawn,
}

/// Why a running worker is being replaced or stopped (for `restarts` and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    Spawned {
        pid: Pid,
    },
    SpawnFailed,
    Exited {
        pid: Pid,
        status: ExitKind,
    },
    MemoryExceeded {
        pid: Pid,
    },
    StopRequested,
    RestartRequested,
    /// The slot's one timer fired (backoff over, or kill_timeout reached).
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
    /// (Re)arm the slot's single timer.
    ArmTimer(Instant),
    /// Nobody will accept on this slot's listener for a while: stop holding connections.
    ReleaseListener,
}

/// The policy's view of one slot.
#[derive(Debug, Clone)]
pub struct SlotPolicy {
    pub phase: Phase,
    /// Replacements of this slot's worker, whatever the cause (PM2's ↺).
    pub restarts: u32,
    /// Consecutive unstable restarts.
    pub unstable: u32,
    /// Current exponential backoff delay, if that policy is on.
    backoff: Option<Duration>,
    pub last_exit: Option<ExitKind>,
    restart: RestartSpec,
    stop: StopSpec,
}

/// Above this, a slot waiting to respawn releases its listener (PM2's listen_timeout).
const HOSTAGE_LIMIT: Duration = defaults::LISTEN_TIMEOUT;
const UNSTABLE_FLOOR_BASE: Duration = Duration::from_millis(25);
const UNSTABLE_FLOOR_MAX: Duration = Duration::from_millis(250);

impl SlotPolicy {
    pub fn new(restart: RestartSpec, stop: StopSpec) -> Self {
        SlotPolicy {
            phase: Phase::Stopped,
            restarts: 0,
            unstable: 0,
            backoff: None,
            last_exit: None,
            restart,
            stop,
        }
    }

    /// Applies one event at time `now`; returns what the slot must do, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use Action::*;
        use Phase::*;
        match (self.phase, event) {
            (Stopped | Errored, Event::Start | Event::RestartRequested) => {
                if event == Event::RestartRequested && self.last_exit.is_some() {
                    self.restarts += 1;
                }
                self.unstable = 0;
                self.backoff = None;
                self.phase = Launching;
                vec![Spawn]
            }
            (Waiting { .. }, Event::RestartRequested) => {
                self.phase = Launching;
                vec![Spawn]
            }
            (Launching, Event::Spawned { pid }) => {
                self.phase = Online { pid, since: now };
                vec![]
            }
            (Launching, Event::SpawnFailed) => self.after_crash(Duration::ZERO, now),
            (
                Online { pid, since },
                Event::Exited {
                    pid: exited,
                    status,
                },
            ) if pid == exited => {
                self.last_exit = Some(status);
                let mut actions = vec![KillGroup(pid)];
                if self.is_final(status) {
                    self.phase = Stopped;
                    actions.push(ReleaseListener);
                } else {
                    actions.extend(self.after_crash(now.saturating_duration_since(since), now));
                }
                actions
            }
            (Online { pid, since }, Event::MemoryExceeded { pid: over }) if pid == over => {
                self.begin_stop(pid, since, AfterStop::Respawn, now)
            }
            (Online { pid, since }, Event::RestartRequested) => {
                self.begin_stop(pid, since, AfterStop::Respawn, now)
            }
            (Online { pid, since }, Event::StopRequested) => {
                self.begin_stop(pid, since, AfterStop::Rest, now)
            }
            (
                Stopping {
                    pid,
                    since,
                    deadline,
                    ..
                },
                Event::StopRequested,
            ) => {
                self.phase = Stopping {
                    pid,
                    since,
                    deadline,
                    then: AfterStop::Rest,
                };
                vec![]
            }
            (Stopping { pid, deadline, .. }, Event::Timer) if now >= deadline => {
                vec![KillGroup(pid)]
            }
            (
                Stopping { pid, then, .. },
                Event::Exited {
                    pid: exited,
                    status,
                },
            ) if pid == exited => {
                self.last_exit = Some(status);
                match then {
                    AfterStop::Rest => {
                        self.phase = Stopped;
                        vec![KillGroup(pid), ReleaseListener]
                    }
                    AfterStop::Respawn => {
                        self.restarts += 1;
                        self.unstable = 0;
                        self.phase = Launching;
                        vec![KillGroup(pid), Spawn]
                    }
                }
            }
            (Waiting { until }, Event::Timer) if now >= until => {
                self.phase = Launching;
                vec![Spawn]
            }
            (Waiting { .. }, Event::StopRequested) => {
                self.phase = Stopped;
                vec![ReleaseListener]
            }
            // Anything else is stale (an exit of a pid already handled, a timer that was
            // re-armed, a stop of a stopped slot) and changes nothing.
            _ => vec![],
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
        let deadline = now + self.stop.kill_timeout;
        self.phase = Phase::Stopping {
            pid,
            since,
            deadline,
            then,
        };
        vec![
            Action::SendSignal(pid, self.stop.kill_signal),
            Action::ArmTimer(deadline),
        ]
    }

    /// A worker died on its own after `uptime`: errored, or respawn now or after a delay.
    fn after_crash(&mut self, uptime: Duration, now: Instant) -> Vec<Action> {
        if uptime < self.restart.min_uptime {
            self.unstable += 1;
        } else {
            self.unstable = 0;
        }
        if self.unstable > 0 && self.unstable >= self.restart.max_restarts {
            self.phase = Phase::Errored;
            return vec![Action::ReleaseListener];
        }
        self.restarts += 1;
        let delay = self.restart_delay(uptime);
        if delay.is_zero() {
            self.phase = Phase::Launching;
            return vec![Action::Spawn];
        }
        let until = now + delay;
        self.phase = Phase::Waiting { until };
        let mut actions = vec![Action::ArmTimer(until)];
        if delay > HOSTAGE_LIMIT {
            actions.push(Action::ReleaseListener);
        }
        actions
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

    /// The status word shown to users.
    pub fn status(&self) -> &'static str {
        match self.phase {
            Phase::Launching => "launching",
            Phase::Online { .. } => "online",
            Phase::Stopping { .. } => "stopping",
            Phase::Waiting { .. } => "waiting",
            Phase::Stopped => "stopped",
            Phase::Errored => "errored",
        }
    }

    pub fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Online { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// When the current worker started.
    pub fn since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Online { since, .. } | Phase::Stopping { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Stopped or errored: nothing will happen until someone asks.
    pub fn is_at_rest(&self) -> bool {
        matches!(self.phase, Phase::Stopped | Phase::Errored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn spec() -> (RestartSpec, StopSpec) {
        (
            RestartSpec {
                autorestart: true,
                min_uptime: Duration::from_millis(1000),
                max_restarts: 3,
                restart_delay: Duration::ZERO,
                exp_backoff_restart_delay: None,
                stop_exit_codes: vec![0],
            },
            StopSpec {
                kill_signal: Signal::SIGINT,
                kill_timeout: Duration::from_millis(1600),
            },
        )
    }

    fn online(policy: &mut SlotPolicy, pid: i32, t: Instant) -> Pid {
        let pid = Pid::from_raw(pid);
        if policy.phase != Phase::Launching {
            assert_eq!(policy.on(Event::Start, t), vec![Spawn]);
        }
        assert_eq!(policy.on(Event::Spawned { pid }, t), vec![]);
        pid
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One row: a run of `uptime`, ending with `status`; expected phase word, actions.
    struct Row {
        uptime_ms: u64,
        status: ExitKind,
        expect_status: &'static str,
        expect_actions: fn(Pid, Instant) -> Vec<Action>,
    }

    #[test]
    fn exits_follow_the_pm2_table() {
        let t0 = Instant::now();
        let crash = ExitKind::Code(1);
        let rows = [
            // A stable run that crashes respawns at once, and resets the unstable count.
            Row {
                uptime_ms: 5000,
                status: crash,
                expect_status: "launching",
                expect_actions: |p, _| vec![KillGroup(p), Spawn],
            },
            // Unstable crashes: first respawns at once, then with the anti-spin floor.
            Row {
                uptime_ms: 10,
                status: crash,
                expect_status: "waiting",
                expect_actions: |p, t| vec![KillGroup(p), ArmTimer(t + ms(25))],
            },
            Row {
                uptime_ms: 10,
                status: ExitKind::Signal(Signal::SIGKILL),
                expect_status: "waiting",
                expect_actions: |p, t| vec![KillGroup(p), ArmTimer(t + ms(50))],
            },
            // Third consecutive unstable restart reaches max_restarts = 3: errored.
            Row {
                uptime_ms: 10,
                status: crash,
                expect_status: "errored",
                expect_actions: |p, _| vec![KillGroup(p), ReleaseListener],
            },
        ];
        let (restart, stop) = spec();
        let mut policy = SlotPolicy::new(restart, stop);
        let mut t = t0;
        let mut expected_restarts = 0;
        for (i, row) in rows.iter().enumerate() {
            // Bring the slot online (from waiting: fire the timer; else start).
            match policy.phase {
                Phase::Waiting { until } => {
                    t = until;
                    assert_eq!(policy.on(Event::Timer, t), vec![Spawn], "row {i}");
                }
                Phase::Launching => {}
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
            assert_eq!(actions, (row.expect_actions)(pid, t), "row {i}");
            assert_eq!(policy.status(), row.expect_status, "row {i}");
            if row.expect_status != "errored" {
                expected_restarts += 1;
            }
            assert_eq!(policy.restarts, expected_restarts, "row {i}");
        }
        // errored is at rest: a stale timer does nothing; a restart request brings it back.
        assert_eq!(policy.on(Event::Timer, t), vec![]);
        assert_eq!(policy.on(Event::RestartRequested, t), vec![Spawn]);
        assert_eq!(policy.unstable, 0);
    }

    #[test]
    fn stop_exit_codes_and_autorestart_false_stop_the_slot() {
        let (restart, stop) = spec();
        let t = Instant::now();
        let mut policy = SlotPolicy::new(restart.clone(), stop.clone());
        let pid = online(&mut policy, 7, t);
        let actions = policy.on(
            Event::Exited {
                pid,
                status: ExitKind::Code(0),
            },
            t + ms(5),
        );
        assert_eq!(actions, vec![KillGroup(pid), ReleaseListener]);
        assert_eq!(policy.status(), "stopped");
        assert_eq!(policy.restarts, 0);

        let mut policy = SlotPolicy::new(
            RestartSpec {
                autorestart: false,
                ..restart
            },
            stop,
        );
        let pid = online(&mut policy, 8, t);
        policy.on(
            Event::Exited {
                pid,
                status: ExitKind::Code(3),
            },
            t + ms(5000),
        );
        assert_eq!(policy.status(), "stopped");
    }

    #[test]
    fn graceful_stop_escalates_to_sigkill_after_kill_timeout() {
        let (restart, stop) = spec();
        let t = Instant::now();
        let mut policy = SlotPolicy::new(restart, stop);
        let pid = online(&mut policy, 9, t);
        let deadline = t + ms(1600);
        assert_eq!(
            policy.on(Event::StopRequested, t),
            vec![SendSignal(pid, Signal::SIGINT), ArmTimer(deadline)]
        );
        assert_eq!(policy.status(), "stopping");
        assert_eq!(
            policy.on(Event::Timer, t + ms(100)),
            vec![],
            "early timer is stale"
        );
        assert_eq!(policy.on(Event::Timer, deadline), vec![KillGroup(pid)]);
        let actions = policy.on(
            Event::Exited {
                pid,
                status: ExitKind::Signal(Signal::SIGKILL),
            },
            deadline,
        );
        assert_eq!(actions, vec![KillGroup(pid), ReleaseListener]);
        assert_eq!(policy.status(), "stopped");
        assert_eq!(policy.restarts, 0, "a stop is not a restart");
    }

    #[test]
    fn memory_limit_stops_gracefully_then_respawns_and_counts_a_restart() {
        let (restart, stop) = spec();
        let t = Instant::now();
        let mut policy = SlotPolicy::new(restart, stop);
        let pid = online(&mut policy, 10, t);
        let other = Pid::from_raw(11);
        assert_eq!(
            policy.on(Event::MemoryExceeded { pid: other }, t),
            vec![],
            "another pid's sample"
        );
        let actions = policy.on(Event::MemoryExceeded { pid }, t);
        assert_eq!(
            actions,
            vec![SendSignal(pid, Signal::SIGINT), ArmTimer(t + ms(1600))]
        );
        // A shutdown during that stop wins: no respawn.
        let mut shutdown = policy.clone();
        shutdown.on(Event::StopRequested, t);
        shutdown.on(
            Event::Exited {
                pid,
                status: ExitKind::Code(0),
            },
            t + ms(10),
        );
        assert_eq!(shutdown.status(), "stopped");
        // Otherwise the worker is replaced.
        let actions = policy.on(
            Event::Exited {
                pid,
                status: ExitKind::Code(0),
            },
            t + ms(10),
        );
        assert_eq!(actions, vec![KillGroup(pid), Spawn]);
        assert_eq!(policy.restarts, 1);
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
        let mut policy = SlotPolicy::new(restart, stop);
        let mut t = Instant::now();
        let mut delays = Vec::new();
        let run = |policy: &mut SlotPolicy, uptime: Duration, t: &mut Instant| {
            let pid = online(policy, 20, *t);
            *t += uptime;
            policy.on(
                Event::Exited {
                    pid,
                    status: ExitKind::Code(1),
                },
                *t,
            );
            let Phase::Waiting { until } = policy.phase else {
                panic!("waiting")
            };
            let delay = until - *t;
            *t = until;
            policy.on(Event::Timer, *t);
            delay
        };
        for _ in 0..16 {
            delays.push(run(&mut policy, ms(50), &mut t).as_millis());
        }
        assert_eq!(&delays[..4], &[100, 150, 225, 337]);
        assert_eq!(*delays.last().unwrap(), 15_000);
        assert_eq!(run(&mut policy, Duration::from_secs(31), &mut t), ms(100));
    }

    #[test]
    fn a_long_wait_releases_the_listener() {
        let (restart, stop) = spec();
        let restart = RestartSpec {
            restart_delay: Duration::from_secs(5),
            ..restart
        };
        let mut policy = SlotPolicy::new(restart, stop);
        let t = Instant::now();
        let pid = online(&mut policy, 30, t);
        let actions = policy.on(
            Event::Exited {
                pid,
                status: ExitKind::Code(1),
            },
            t + ms(5000),
        );
        assert_eq!(
            actions,
            vec![KillGroup(pid), ArmTimer(t + ms(10_000)), ReleaseListener]
        );
        assert_eq!(policy.on(Event::StopRequested, t), vec![ReleaseListener]);
        assert_eq!(policy.status(), "stopped");
    }
}
