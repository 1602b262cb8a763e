//! The IPC channel of a Node worker, as PM2 and `child_process.fork` give one: a Unix
//! stream socket on the worker's fd 4 (`NODE_CHANNEL_FD`), over which Node speaks its own
//! protocol (`NODE_CHANNEL_SERIALIZATION_MODE=json`: one JSON value per line, a file
//! descriptor travelling as SCM_RIGHTS with the line of a `NODE_HANDLE` message, see
//! Node's lib/internal/child_process.js).
//!
//! What comes from the worker:
//! - `"ready"`: the app's `process.send('ready')` (PM2's wait_ready signal);
//! - `{"cmd":"NODE_DROVER_READY"}`: the shim saw the shared server's 'listening';
//! - `{"cmd":"NODE_DROVER_WATCHDOG"}`: the shim's watchdog ping, sent from the event loop;
//! - `{"cmd":"NODE_DROVER_LISTEN","address":…,"port":…,"seq":…}`: the shim asks for a
//!   listener of a Node app in cluster mode without `listen:` (each `listen(port)`); the
//!   answer carries the request's `seq`, since a worker may ask for several ports at once;
//! - anything else (the app's own messages, Node's `NODE_HANDLE_ACK`) is read and dropped,
//!   so the app's `process.send` never fills the socket.
//!
//! What goes to it ([`ToWorker`]): `"shutdown"` (PM2's `shutdown_with_message`), and the
//! answer to a listen request: the listener as a `net.Native` handle wrapped in an
//! internal `NODE_DROVER_LISTEN` message, which Node hands to the shim's
//! 'internalMessage' listener (never to the app's 'message' listeners), or an error.
//!
//! The channel stays open as long as the worker lives: Node turns a `process.send` after
//! the channel closed into an 'error' event on `process`, which would kill the app.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tracing::warn;

use super::slot::SlotMsg;
use crate::sync::Freeze;

/// A message for the worker.
#[derive(Debug)]
pub enum ToWorker {
    /// PM2's `shutdown_with_message`: the app's `process.on('message')` gets 'shutdown'.
    Shutdown,
    /// The answer to the shim's listen request `seq`: the listener, or why there is none
    /// (the shim then binds by itself, as without drover).
    Listener {
        seq: u64,
        answer: Result<OwnedFd, String>,
    },
}

/// A message from the worker that the supervisor acts on.
#[derive(Debug, PartialEq)]
pub enum FromWorker {
    Ready,
    /// The shim's watchdog ping, from the event loop.
    Watchdog,
    Listen {
        addr: SocketAddr,
        seq: u64,
    },
    /// A listen request that makes no sense (bad address): answered with an error.
    BadListen {
        why: String,
        seq: u64,
    },
}

/// Longest line kept: a longer message from the app is skipped whole.
const MAX_LINE: usize = 64 * 1024;

#[derive(Deserialize)]
struct Internal {
    cmd: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    seq: u64,
}

/// What a line from the worker means to the supervisor, if anything.
pub fn parse(line: &[u8]) -> Option<FromWorker> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if value.as_str() == Some("ready") {
        return Some(FromWorker::Ready);
    }
    let internal: Internal = serde_json::from_value(value).ok()?;
    match internal.cmd.as_str() {
        "NODE_DROVER_READY" => Some(FromWorker::Ready),
        "NODE_DROVER_WATCHDOG" => Some(FromWorker::Watchdog),
        "NODE_DROVER_LISTEN" => Some(listen_request(&internal)),
        _ => None,
    }
}

fn listen_request(request: &Internal) -> FromWorker {
    let seq = request.seq;
    let bad = |why: String| FromWorker::BadListen { why, seq };
    let port = match request.port.map(u16::try_from) {
        Some(Ok(port)) => port,
        _ => return bad(format!("bad port {:?}", request.port)),
    };
    // No address: Node's own default, both stacks (the sockets module falls back to
    // 0.0.0.0 where the host has no IPv6).
    let ip = match request.address.as_deref() {
        None | Some("") => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return bad(format!("bad address {text:?}")),
        },
    };
    FromWorker::Listen {
        addr: SocketAddr::new(ip, port),
        seq,
    }
}

/// The line that answers listen request `seq`, and the fd that travels with it.
fn listener_reply(seq: u64, answer: Result<OwnedFd, String>) -> (Vec<u8>, Option<OwnedFd>) {
    let (value, fd) = match answer {
        Ok(fd) => (
            serde_json::json!({
                "cmd": "NODE_HANDLE",
                "type": "net.Native",
                "msg": { "cmd": "NODE_DROVER_LISTEN", "ok": true, "seq": seq },
            }),
            Some(fd),
        ),
        Err(error) => (
            serde_json::json!({ "cmd": "NODE_DROVER_LISTEN", "ok": false, "error": error, "seq": seq }),
            None,
        ),
    };
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    (line, fd)
}

/// A Node worker's channel as it crosses an in-place upgrade (`crate::upgrade`): the
/// socket, and the start of a message not yet whole.
#[derive(Debug)]
pub struct ChannelHandover {
    pub pid: Pid,
    pub stream: OwnedFd,
    pub partial: Vec<u8>,
    /// Inside an overlong message, skipping to its end.
    pub skipping: bool,
}

/// How long the messages the slot queued for the worker may take to be written when
/// the channel is frozen for an upgrade (a worker that does not read its channel).
const FREEZE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the channel of worker `pid` until the worker closes it (it exited): what it
/// says goes to its slot as [`SlotMsg`]s, what the slot sends in `outgoing` is written.
/// On `freeze` (an upgrade), writes what the slot queued and hands the channel back,
/// between two messages; `partial` is what a previous image had read of the next one.
pub async fn serve(
    stream: std::os::unix::net::UnixStream,
    pid: Pid,
    slot: mpsc::UnboundedSender<SlotMsg>,
    mut outgoing: mpsc::UnboundedReceiver<ToWorker>,
    partial: (Vec<u8>, bool),
    mut freeze: Freeze,
) -> Option<ChannelHandover> {
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(stream))
    {
        Ok(stream) => stream,
        Err(e) => {
            warn!("pid {pid}: cannot watch its IPC channel: {e}");
            return None;
        }
    };
    let mut lines = LineBuffer {
        partial: partial.0,
        skipping: partial.1,
    };
    let mut chunk = vec![0u8; 16 * 1024];
    let mut outgoing_open = true;
    loop {
        tokio::select! {
            () = freeze.frozen() => {
                let flushed = tokio::time::timeout(FREEZE_WRITE_TIMEOUT, async {
                    while let Ok(msg) = outgoing.try_recv() {
                        let (line, fd) = encode(msg);
                        write(&stream, &line, fd.as_ref()).await?;
                    }
                    io::Result::Ok(())
                })
                .await;
                if !matches!(flushed, Ok(Ok(()))) {
                    warn!("pid {pid}: a message to its IPC channel was lost in the upgrade");
                }
                return match stream.into_std() {
                    Ok(stream) => Some(ChannelHandover {
                        pid,
                        stream: stream.into(),
                        partial: lines.partial,
                        skipping: lines.skipping,
                    }),
                    Err(e) => {
                        warn!("pid {pid}: cannot hand its IPC channel over: {e}");
                        None
                    }
                };
            }
            readable = stream.readable() => {
                if readable.is_err() {
                    return None;
                }
                match stream.try_read(&mut chunk) {
                    Ok(0) => return None,
                    Ok(n) => {
                        for line in lines.push(&chunk[..n]) {
                            let msg = match parse(&line) {
                                Some(FromWorker::Ready) => SlotMsg::Ready { pid },
                                Some(FromWorker::Watchdog) => SlotMsg::Watchdog { pid },
                                Some(FromWorker::Listen { addr, seq }) => {
                                    SlotMsg::Listen { pid, addr, seq }
                                }
                                Some(FromWorker::BadListen { why, seq }) => {
                                    let (line, _) = listener_reply(seq, Err(why));
                                    if write(&stream, &line, None).await.is_err() {
                                        return None;
                                    }
                                    continue;
                                }
                                None => continue,
                            };
                            let _ = slot.send(msg);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
            msg = outgoing.recv(), if outgoing_open => {
                let Some(msg) = msg else {
                    // The slot is done with this worker; keep reading until it exits.
                    outgoing_open = false;
                    continue;
                };
                let (line, fd) = encode(msg);
                if let Err(e) = write(&stream, &line, fd.as_ref()).await {
                    warn!("pid {pid}: cannot write to its IPC channel: {e}");
                }
            }
        }
    }
}

/// The line of a message for the worker, and the fd that travels with it.
fn encode(msg: ToWorker) -> (Vec<u8>, Option<OwnedFd>) {
    match msg {
        ToWorker::Shutdown => (b"\"shutdown\"\n".to_vec(), None),
        ToWorker::Listener { seq, answer } => listener_reply(seq, answer),
    }
}

/// Writes `line`, with `fd` attached to its first byte.
async fn write(stream: &UnixStream, line: &[u8], fd: Option<&OwnedFd>) -> io::Result<()> {
    let mut sent = 0;
    let mut fd = fd.map(|fd| fd.as_raw_fd());
    while sent < line.len() {
        stream.writable().await?;
        let result = stream.try_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(&line[sent..])];
            let fds = fd.map(|fd| [fd]);
            let cmsgs: Vec<ControlMessage<'_>> =
                fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
            sendmsg::<()>(
                stream.as_raw_fd(),
                &iov,
                &cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(io::Error::from)
        });
        match result {
            Ok(n) => {
                sent += n;
                fd = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Splits what the worker writes into lines, skipping a line longer than [`MAX_LINE`].
#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
    /// Inside a line that was too long: drop bytes up to its end.
    skipping: bool,
}

impl LineBuffer {
    fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            if !std::mem::take(&mut self.skipping) {
                self.partial.extend_from_slice(&data[..end]);
                lines.push(std::mem::take(&mut self.partial));
            }
            data = &data[end + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(data);
            if self.partial.len() > MAX_LINE {
                self.partial = Vec::new();
                self.skipping = true;
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_worker_says() {
        let addr = |s: &str| {
            Some(FromWorker::Listen {
                addr: s.parse().unwrap(),
                seq: 0,
            })
        };
        let cases: &[(&str, Option<FromWorker>)] = &[
            (r#""ready""#, Some(FromWorker::Ready)),
            (r#"{"cmd":"NODE_DROVER_READY"}"#, Some(FromWorker::Ready)),
            (
                r#"{"cmd":"NODE_DROVER_WATCHDOG"}"#,
                Some(FromWorker::Watchdog),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","port":3000}"#,
                addr("[::]:3000"),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","address":"127.0.0.1","port":0}"#,
                addr("127.0.0.1:0"),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","address":"::1","port":8080}"#,
                addr("[::1]:8080"),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","port":9100,"seq":2}"#,
                Some(FromWorker::Listen {
                    addr: "[::]:9100".parse().unwrap(),
                    seq: 2,
                }),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","port":70000,"seq":3}"#,
                Some(FromWorker::BadListen {
                    why: "bad port Some(70000)".into(),
                    seq: 3,
                }),
            ),
            (
                r#"{"cmd":"NODE_DROVER_LISTEN","address":"localhost","port":1}"#,
                Some(FromWorker::BadListen {
                    why: "bad address \"localhost\"".into(),
                    seq: 0,
                }),
            ),
            // The app's own messages and Node's acknowledgements are not ours.
            (r#""shutdown""#, None),
            (r#"{"cmd":"NODE_HANDLE_ACK"}"#, None),
            (r#"{"type":"process:msg","data":{"ready":true}}"#, None),
            (r#"{"cmd":42}"#, None),
            ("not json", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line.as_bytes()), *expected, "{line}");
        }
    }

    #[test]
    fn lines_are_split_and_overlong_ones_skipped() {
        let mut buffer = LineBuffer::default();
        assert_eq!(buffer.push(b"\"re"), Vec::<Vec<u8>>::new());
        assert_eq!(
            buffer.push(b"ady\"\n1\n2"),
            vec![b"\"ready\"".to_vec(), b"1".to_vec()]
        );
        let long = vec![b'x'; MAX_LINE + 1];
        assert!(buffer.push(&long).is_empty());
        assert!(buffer.push(b"more of it").is_empty());
        assert_eq!(buffer.push(b"\n\"ready\"\n"), vec![b"\"ready\"".to_vec()]);
    }

    #[test]
    fn a_listener_travels_inside_an_internal_message() {
        let (line, fd) = listener_reply(7, Err("taken".into()));
        assert!(fd.is_none());
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["cmd"], "NODE_DROVER_LISTEN");
        assert_eq!(value["ok"], false);
        assert_eq!(value["seq"], 7);
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
