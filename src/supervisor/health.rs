//! A worker's health: its `health:` check run once (an HTTP GET on the worker itself, or
//! a command), bounded by the check's timeout. The slot (slot.rs) decides when to run
//! one, counts failures, keeps the watchdog's clock, and turns enough failures into the
//! policy's `Unhealthy`.
//!
//! Through a shared port the kernel, not the supervisor, picks the worker that accepts a
//! connection, so an HTTP check connects from a source port of its own that the slot's
//! listeners steer to that slot's listener ([`AppListeners::probe`]); with `increment_var:
//! PORT` it connects to the worker's own port.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::Shared;
use super::spawn::spawn_check;
use crate::config::{AppSpec, ExecMode, HealthCheck, ListenAddr};
use crate::os::{self, ExitKind};
use crate::sockets::{AppListeners, ListenerCell};
use crate::sync::lock;

/// Most of a check's output kept for its failure's reason.
const REASON_BYTES: usize = 200;

/// Most of an HTTP check's answer read: the status line is all it needs.
const HTTP_HEAD_BYTES: usize = 8 * 1024;

/// What one check of worker `pid` of slot `instance` needs.
pub(crate) struct CheckRun {
    pub app: Arc<AppSpec>,
    pub env: Arc<BTreeMap<String, String>>,
    pub instance: u32,
    pub pid: Pid,
    pub listeners: Arc<ListenerCell>,
    pub shared: Arc<Shared>,
}

/// Runs the app's check once: `Ok` if the worker passed, else why not, in one line.
pub(crate) async fn check(run: CheckRun) -> Result<(), String> {
    let Some(health) = run.app.health.clone() else {
        return Ok(());
    };
    let timeout = health.timeout;
    match &health.check {
        HealthCheck::Http { path } => {
            let outcome = tokio::time::timeout(timeout, http(&run, path)).await;
            outcome.unwrap_or_else(|_| Err(format!("GET {path}: no answer within {timeout:?}")))
        }
        HealthCheck::Exec { program, args } => exec(&run, program, args, timeout).await,
    }
}

/// GET `path` on the worker: 2xx and 3xx pass.
async fn http(run: &CheckRun, path: &str) -> Result<(), String> {
    let what = |e: String| format!("GET {path}: {e}");
    let (target, steered) = http_target(run).map_err(what)?;
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| what(e.to_string()))?;
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(any).map_err(|e| what(e.to_string()))?;
    let source = socket.local_addr().map_err(|e| what(e.to_string()))?.port();
    // Steered to this slot's listener until connected (the SYN has then chosen it).
    let probe = match steered {
        Some(listeners) => Some(Probe::start(listeners, run.instance, source).map_err(what)?),
        None => None,
    };
    let connected = socket.connect(target).await;
    drop(probe);
    let mut stream = connected.map_err(|e| what(format!("cannot connect to {target}: {e}")))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: drover-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| what(e.to_string()))?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < HTTP_HEAD_BYTES {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| what(e.to_string()))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().trim();
    let status = line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(_) => Err(what(line.to_owned())),
        None if head.is_empty() => Err(what("the connection closed without an answer".into())),
        None => Err(what(format!("not an HTTP answer: {:?}", truncate(line)))),
    }
}

/// Where the check connects, and the listeners that steer it there (none: the worker's
/// own port).
fn http_target(
    run: &CheckRun,
) -> Result<(SocketAddr, Option<&std::sync::Mutex<AppListeners>>), String> {
    let app = &run.app;
    if let Some(listeners) = run.listeners.get() {
        let ListenAddr::Tcp(bound) = lock(listeners).bound().clone() else {
            return Err("the app listens on a unix socket".into());
        };
        return Ok((loopback_of(bound), Some(listeners)));
    }
    // increment_var: PORT, the worker's own port (config allows http no other way
    // without a listener, but for a Node cluster app whose workers have not listened yet).
    let port = app
        .increment_var
        .as_deref()
        .filter(|v| *v == "PORT")
        .and_then(|_| app.env.get("PORT"))
        .and_then(|base| base.trim().parse::<u32>().ok())
        .map(|base| base + run.instance)
        .and_then(|p| u16::try_from(p).ok());
    match (port, app.exec_mode) {
        (Some(port), _) => Ok((SocketAddr::from((Ipv4Addr::LOCALHOST, port)), None)),
        (None, ExecMode::Cluster) => Err("the workers have not listened on a port yet".into()),
        (None, ExecMode::Fork) => Err("the worker has no address of its own".into()),
    }
}

/// The address to connect to for `bound`: loopback for a wildcard (IPv4 loopback for a
/// dual-stack `[::]`), else the address itself.
fn loopback_of(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// A health probe's steering, ended on drop (also when the check times out).
struct Probe<'a> {
    listeners: &'a std::sync::Mutex<AppListeners>,
    source: u16,
}

impl<'a> Probe<'a> {
    fn start(
        listeners: &'a std::sync::Mutex<AppListeners>,
        slot: u32,
        source: u16,
    ) -> Result<Self, String> {
        lock(listeners)
            .probe(slot, source)
            .map_err(|e| e.to_string())?;
        Ok(Probe { listeners, source })
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        lock(self.listeners).unprobe(self.source);
    }
}

/// Runs the command: exit 0 passes. Its output is read (and dropped but for the end
/// of it, the reason of a failure) so a chatty command cannot block; past `timeout` its
/// process group is killed.
async fn exec(
    run: &CheckRun,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let shown = program.display();
    let spawned = spawn_check(
        &run.app,
        &run.env,
        run.instance,
        run.pid,
        run.shared.trampoline(),
        program,
        args,
    )
    .map_err(|e| format!("{shown}: cannot start it: {e}"))?;
    let exited = run.shared.register_check(spawned.pid);
    let out = tokio::spawn(tail(spawned.stdout));
    let err = tokio::spawn(tail(spawned.stderr));
    let status = match tokio::time::timeout(timeout, exited).await {
        Ok(Ok(status)) => status,
        // The reaper is gone: the supervisor is shutting down.
        Ok(Err(_)) => return Err(format!("{shown}: its exit was not seen")),
        Err(_) => {
            let _ = os::signal_group(spawned.pid, Signal::SIGKILL);
            out.abort();
            err.abort();
            return Err(format!("{shown}: no answer within {timeout:?} (killed)"));
        }
    };
    // What the group left running goes with it.
    let _ = os::signal_group(spawned.pid, Signal::SIGKILL);
    let said_err = err.await.unwrap_or_default();
    let said_out = out.await.unwrap_or_default();
    match status {
        ExitKind::Code(0) => Ok(()),
        status => {
            let said = if said_err.trim().is_empty() {
                said_out
            } else {
                said_err
            };
            let said = said.trim();
            if said.is_empty() {
                Err(format!("{shown}: {status}"))
            } else {
                Err(format!("{shown}: {status}: {}", truncate(said)))
            }
        }
    }
}

/// Reads a pipe to EOF, keeping its last [`REASON_BYTES`].
async fn tail(mut pipe: tokio::net::unix::pipe::Receiver) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * REASON_BYTES {
                    kept.drain(..kept.len() - REASON_BYTES);
                }
            }
        }
    }
    let start = kept.len().saturating_sub(REASON_BYTES);
    String::from_utf8_lossy(&kept[start..]).into_owned()
}

/// One line of at most [`REASON_BYTES`] characters.
fn truncate(text: &str) -> String {
    let line: String = text
        .split(['\n', '\r'])
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .chars()
        .take(REASON_BYTES)
        .collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_connect_to_loopback_for_a_wildcard() {
        let at = |s: &str| loopback_of(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:80"), "127.0.0.1:80");
        assert_eq!(at("[::]:80"), "127.0.0.1:80");
        assert_eq!(at("[::1]:80"), "[::1]:80");
        assert_eq!(at("10.1.2.3:80"), "10.1.2.3:80");
    }

    #[test]
    fn a_reason_is_the_last_line_said_cut_short() {
        assert_eq!(truncate("one\ntwo\n\n"), "two");
        assert_eq!(truncate(&"x".repeat(500)).len(), REASON_BYTES);
    }
}
