//! The supervisor's word to its own service manager, when systemd started it as a
//! `Type=notify` service (`drover startup`): `READY=1` once every worker is online or
//! has failed, `RELOADING=1` + `MONOTONIC_USEC=` then `READY=1` around a reload of every
//! app (`ExecReload=drover reload all`, SIGHUP), `STOPPING=1` at shutdown, `WATCHDOG=1`
//! at half of `WATCHDOG_USEC`, and a one-line `STATUS=` kept current.
//!
//! Not to be confused with `notify.rs`, the supervisor's *own* NOTIFY_SOCKET that its
//! workers report readiness to. The variables systemd gives drover (NOTIFY_SOCKET,
//! WATCHDOG_USEC, WATCHDOG_PID) are read once, here, and never reach a worker
//! (`spawn::SUPERVISOR_ONLY_VARS`, `cli::apps::caller_env`).
//!
//! Messages go out as non-blocking datagrams: a full socket drops one (logged), it never
//! holds up the control loop. The address is kept, not a connection, so a systemd that
//! re-executes itself (and recreates its socket) still hears us. The `sd-notify` crate
//! gives the message vocabulary, the monotonic clock and the watchdog variables; its
//! sender reads NOTIFY_SOCKET at every call and knows no abstract socket (`@…`), which a
//! user manager or a container manager may hand out, so the sending is done here.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Mutex;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

use crate::sync::lock;

/// How the workers are doing, for `STATUS=` and `READY=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Census {
    pub workers: usize,
    pub online: usize,
    pub errored: usize,
    /// Every worker is online or at rest (errored, stopped): startup is over.
    pub settled: bool,
}

impl Census {
    /// "4/4 workers online, 0 errored".
    fn line(&self) -> String {
        format!(
            "{}/{} worker{} online, {} errored",
            self.online,
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.errored
        )
    }
}

pub(crate) struct ServiceManager {
    socket: UnixDatagram,
    address: SocketAddr,
    /// Where the messages go, for the log.
    shown: String,
    /// How often to say WATCHDOG=1: half of WATCHDOG_USEC.
    watchdog: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ready: bool,
    stopping: bool,
    /// Reloads of every app under way: RELOADING=1 at the first, READY=1 after the last.
    reloads: u32,
    /// The last STATUS= sent, and the census it was made of.
    status: String,
    census: Census,
    /// A send failed already (said once in the log, then at debug level).
    send_failed: bool,
}

impl ServiceManager {
    /// From NOTIFY_SOCKET (and WATCHDOG_USEC, when WATCHDOG_PID is unset or ours), read
    /// once when the supervisor starts; None when not started by a service manager.
    pub fn from_env() -> Option<ServiceManager> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let shown = path.to_string_lossy().into_owned();
        let address = match address_of(&shown) {
            Ok(address) => address,
            Err(e) => {
                warn!("NOTIFY_SOCKET={shown}: {e}; not telling the service manager anything");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(socket) => socket,
            Err(e) => {
                warn!("cannot create a socket for NOTIFY_SOCKET: {e}");
                return None;
            }
        };
        let watchdog = sd_notify::watchdog_enabled()
            .filter(|usec| !usec.is_zero())
            .map(|usec| usec / 2);
        debug!("service manager at {shown}; watchdog ping every {watchdog:?}");
        Some(ServiceManager {
            socket,
            address,
            shown,
            watchdog,
            state: Mutex::new(State::default()),
        })
    }

    /// How often the control loop says WATCHDOG=1, if systemd watches it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The workers changed: STATUS= when its line did, and READY=1 the first time
    /// every worker is online or has failed.
    pub fn observe(&self, census: Census) {
        let mut state = lock(&self.state);
        let mut states = Vec::new();
        let ready_now = !state.ready && !state.stopping && state.reloads == 0 && census.settled;
        if ready_now {
            state.ready = true;
            states.push(NotifyState::Ready);
        }
        state.census = census;
        let line = status_line(&state, census);
        let changed = line != state.status;
        if changed {
            states.push(NotifyState::Status(&line));
        }
        self.send(&mut state, &states);
        if changed {
            state.status = line;
        }
    }

    /// A reload of every app begins: RELOADING=1 with the monotonic clock (systemd 253+
    /// requires it), unless one is already under way.
    pub fn reload_started(&self, census: Census) {
        let mut state = lock(&self.state);
        state.reloads += 1;
        if state.reloads == 1 {
            let mut states = vec![NotifyState::Reloading];
            match NotifyState::monotonic_usec_now() {
                Ok(now) => states.push(now),
                Err(e) => warn!("cannot read the monotonic clock: {e}"),
            }
            state.census = census;
            let line = status_line(&state, census);
            states.push(NotifyState::Status(&line));
            self.send(&mut state, &states);
            state.status = line;
        }
    }

    /// A reload of every app ended (done or failed: the old workers serve either way):
    /// READY=1 once no other is under way.
    pub fn reload_finished(&self) {
        let mut state = lock(&self.state);
        state.reloads = state.reloads.saturating_sub(1);
        if state.reloads == 0 && !state.stopping {
            state.ready = true;
            let line = status_line(&state, state.census);
            self.send(
                &mut state,
                &[NotifyState::Ready, NotifyState::Status(&line)],
            );
            state.status = line;
        }
    }

    /// Shutdown begins.
    pub fn stopping(&self, census: Census) {
        let mut state = lock(&self.state);
        state.stopping = true;
        state.census = census;
        let line = status_line(&state, census);
        self.send(
            &mut state,
            &[NotifyState::Stopping, NotifyState::Status(&line)],
        );
        state.status = line;
    }

    /// The control loop is alive.
    pub fn watchdog(&self) {
        let mut state = lock(&self.state);
        self.send(&mut state, &[NotifyState::Watchdog]);
    }

    fn send(&self, state: &mut State, states: &[NotifyState<'_>]) {
        if states.is_empty() {
            return;
        }
        let message: String = states.iter().map(|s| format!("{s}\n")).collect();
        match self.socket.send_to_addr(message.as_bytes(), &self.address) {
            Ok(_) => state.send_failed = false,
            Err(e) if state.send_failed => debug!("NOTIFY_SOCKET={}: {e}", self.shown),
            Err(e) => {
                state.send_failed = true;
                warn!(
                    "cannot tell the service manager ({}): {e}; message dropped: {}",
                    self.shown,
                    message.trim_end().replace('\n', " ")
                );
            }
        }
    }
}

/// "4/4 workers online, 0 errored", after what the supervisor is doing, if anything.
fn status_line(state: &State, census: Census) -> String {
    if state.stopping {
        format!("stopping: {}", census.line())
    } else if state.reloads > 0 {
        format!("reloading: {}", census.line())
    } else {
        census.line()
    }
}

/// NOTIFY_SOCKET's address: a path, or `@name` for an abstract socket.
fn address_of(value: &str) -> std::io::Result<SocketAddr> {
    match value.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None if value.starts_with('/') => SocketAddr::from_pathname(value),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a socket path or @abstract name (vsock: is not supported)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_reads_as_the_issue_shows_it() {
        let c = Census {
            workers: 4,
            online: 4,
            errored: 0,
            settled: true,
        };
        assert_eq!(c.line(), "4/4 workers online, 0 errored");
        let one = Census {
            workers: 1,
            online: 0,
            errored: 1,
            settled: true,
        };
        assert_eq!(one.line(), "0/1 worker online, 1 errored");
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(
            address_of("/run/systemd/notify")
                .unwrap()
                .as_pathname()
                .is_some()
        );
        let abs = address_of("@/org/freedesktop/systemd1/notify").unwrap();
        assert_eq!(
            abs.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify"[..])
        );
        assert!(address_of("vsock:2:1234").is_err());
    }
}
