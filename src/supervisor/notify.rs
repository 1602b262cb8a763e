//! The supervisor's sd_notify socket (`$DROVER_HOME/notify.sock`, NOTIFY_SOCKET in the
//! environment of `wait_ready` and `watchdog` workers): a worker of any language says
//! `READY=1` or `WATCHDOG=1` in a datagram, as under systemd. The sender is known by its credentials (SO_PASSCRED), so
//! a message from a process of a worker's tree (a gunicorn worker, say) counts for that
//! worker.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, UnixAddr, sockopt};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::net::UnixDatagram;

use super::Shared;
use super::slot::SlotMsg;

/// Binds the socket (replacing a stale file) and lets it receive sender credentials.
pub fn bind(path: &Path) -> std::io::Result<UnixDatagram> {
    let _ = std::fs::remove_file(path);
    let socket = UnixDatagram::bind(path)?;
    socket::setsockopt(&socket, sockopt::PassCred, &true)?;
    Ok(socket)
}

/// Reads notifications until the task is dropped.
pub(crate) async fn serve(socket: UnixDatagram, shared: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        let received = socket.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(nix::libc::ucred);
            let msg = socket::recvmsg::<UnixAddr>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            )
            .map_err(std::io::Error::from)?;
            let pid = msg
                .cmsgs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|c| match c {
                    ControlMessageOwned::ScmCredentials(cred) => Some(Pid::from_raw(cred.pid())),
                    _ => None,
                });
            Ok((pid, msg.bytes))
        });
        let (Some(pid), len) = (match received {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => continue,
        }) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]);
        let said = |what: &str| text.lines().any(|l| l.trim() == what);
        let (ready, watchdog) = (said("READY=1"), said("WATCHDOG=1"));
        if (ready || watchdog)
            && let Some((worker, tx)) = worker_of(&shared, pid)
        {
            if ready {
                let _ = tx.send(SlotMsg::Ready { pid: worker });
            }
            if watchdog {
                let _ = tx.send(SlotMsg::Watchdog { pid: worker });
            }
        }
    }
}

/// The worker whose tree `pid` belongs to: itself, or the nearest registered ancestor.
fn worker_of(
    shared: &Shared,
    mut pid: Pid,
) -> Option<(Pid, tokio::sync::mpsc::UnboundedSender<SlotMsg>)> {
    for _ in 0..16 {
        if let Some(tx) = shared.slot_of(pid) {
            return Some((pid, tx));
        }
        pid = parent_of(pid)?;
    }
    None
}

fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    let ppid = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    (ppid > 1).then(|| Pid::from_raw(ppid))
}
