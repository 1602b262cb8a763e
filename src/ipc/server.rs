//! The supervisor's end of the control socket (async, tokio).
//!
//! [`bind`] makes `$DROVER_HOME/drover.sock` (0600), [`serve`] accepts connections until
//! its shutdown future resolves. Each connection is one task that checks the peer's uid,
//! reads one request line (capped at [`MAX_FRAME`], within [`REQUEST_TIMEOUT`]), hands it
//! to the supervisor as an [`Incoming`] and writes back every [`Response`] the handler
//! sends, one line each, until the handler drops its sender or the client hangs up.
//!
//! Nothing a client sends can panic the server, grow its memory without bound, or hold
//! the accept loop: garbage, other protocol versions, oversized or truncated lines and
//! silent clients all get an error line (when they are still there to read it) and are
//! closed. Memory is capped per connection and in total: a request line may buffer
//! [`FREE_REQUEST_BYTES`] on its own, and beyond that draws on one pool of
//! [`REQUEST_POOL_BYTES`] shared by every connection (a connection that finds the pool
//! empty is refused as busy); at most [`MAX_CONNECTIONS`] are open at once, and a new
//! connection past that evicts the oldest one still waiting for its request line (a
//! silent or dribbling client), so clients that say what they want are always served.
//!
//! A handler that streams (`logs --follow`) keeps sending until `reply.send` fails, which
//! happens once the client has closed its end. A client that half-closes its socket after
//! the request (`shutdown(SHUT_WR)`) is taken as gone: keep the write side open while
//! reading responses. Replies queue up to [`REPLY_QUEUE`] per connection; a streaming
//! handler that must not be slowed down by a client that stops reading should use
//! `try_send` and drop what does not fit.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt::PeerCredentials,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::protocol::{self, DecodeError, ErrorKind, MAX_FRAME, Request, Response};

/// How long a client has, after connecting, to send its whole request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`serve`] lets open exchanges finish after its shutdown future resolved (so
/// the answer to `drover kill` gets out) before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Responses a handler can send ahead of the client reading them.
pub const REPLY_QUEUE: usize = 64;

/// Largest batch of queued responses written with one syscall.
const WRITE_BATCH: usize = 64 << 10;

/// Bytes of request line any connection may buffer without drawing on the pool: every
/// ordinary request (a `list`, a `start` with a normal environment) fits.
pub const FREE_REQUEST_BYTES: usize = 16 << 10;

/// Bytes of request line all connections together may buffer beyond their free part.
pub const REQUEST_POOL_BYTES: usize = 16 << 20;

/// Connections open at once; one more evicts the oldest that has not sent its request
/// yet, or, when every one has, is refused at once, without a task.
pub const MAX_CONNECTIONS: usize = 512;

/// The pool draws are made in steps of this many bytes.
const POOL_STEP: usize = 64 << 10;

/// The shared pool of request-buffer bytes.
#[derive(Debug)]
struct Pool {
    left: AtomicUsize,
}

/// What one connection holds of the pool; given back when dropped.
struct Draw {
    pool: Arc<Pool>,
    held: usize,
}

impl Draw {
    fn new(pool: Arc<Pool>) -> Draw {
        Draw { pool, held: 0 }
    }

    /// Holds `total` bytes of the pool (more than now, or nothing changes); false if the
    /// pool has not that much left.
    fn hold(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.held);
        if more == 0 {
            return true;
        }
        let taken = self
            .pool
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(more)
            });
        if taken.is_ok() {
            self.held = total;
        }
        taken.is_ok()
    }
}

impl Drop for Draw {
    fn drop(&mut self) {
        self.pool.left.fetch_add(self.held, Ordering::AcqRel);
    }
}

/// One decoded request and where its responses go. The handler sends one or more
/// Responses; dropping `reply` ends the exchange (the server then closes the connection
/// after flushing). For a follow stream the handler keeps sending until `reply.send`
/// fails (client gone).
#[derive(Debug)]
pub struct Incoming {
    pub request: Request,
    pub reply: mpsc::Sender<Response>,
}

/// Knobs of [`serve_with`]; [`serve`] uses the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            request_timeout: REQUEST_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Binds the control socket at `path` (call it from inside the tokio runtime).
///
/// A socket file nobody listens on (left by a supervisor that crashed) is removed first;
/// one that accepts connections is left alone and the result is an `AddrInUse` error.
/// A file at `path` that is not a socket is never removed (`AlreadyExists`). The socket
/// is made 0600 right after bind, whatever the umask (`$DROVER_HOME` is 0700 anyway, so
/// the moment between the two is not a window for another user).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    remove_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|e| context(e, "cannot bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| context(e, "cannot chmod 0600", path))?;
    Ok(listener)
}

/// Removes `path` if it is a socket that refuses connections.
fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; move it away",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(context(e, "cannot inspect", path)),
    }
    match probe(path) {
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "a supervisor is already listening on {} (use `drover kill` to stop it)",
                path.display()
            ),
        )),
        Err(Errno::ECONNREFUSED) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(context(e, "cannot remove the stale socket", path))
            }
            _ => {
                tracing::info!(path = %path.display(), "removed a stale control socket");
                Ok(())
            }
        },
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(context(io::Error::from(e), "cannot probe", path)),
    }
}

/// Connects to `path` without blocking: a live listener whose backlog is full answers
/// EAGAIN instead of making us wait.
fn probe(path: &Path) -> Result<(), Errno> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Whether a peer with `peer_uid` may use the supervisor run by `our_uid`: the same user,
/// or root.
pub fn is_allowed(peer_uid: u32, our_uid: u32) -> bool {
    peer_uid == our_uid || peer_uid == 0
}

/// Why the server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The supervisor stops: open exchanges get [`SHUTDOWN_GRACE`].
    Shutdown,
    /// The supervisor hands itself over to a new binary (`drover update`), which serves
    /// the same listener: open exchanges get [`HANDOVER_GRACE`], and connections not
    /// yet accepted wait in the backlog for the new image.
    HandOver,
}

/// How long open exchanges may still take when the supervisor hands over: an answer is
/// a matter of microseconds, and the socket does not answer meanwhile.
pub const HANDOVER_GRACE: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` resolves, forwarding each request on `requests`.
/// Then stops accepting, gives open exchanges a grace to finish (see [`Stop`]), drops
/// the rest, and returns `listener` (dropping it leaves the socket file; [`bind`]
/// replaces it).
pub async fn serve(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming>,
    shutdown: impl Future<Output = Stop>,
) -> UnixListener {
    serve_with(listener, requests, shutdown, Options::default()).await
}

/// [`serve`] with its timeouts given.
pub async fn serve_with(
    listener: UnixListener,
    requests: mpsc::Sender<Incoming>,
    shutdown: impl Future<Output = Stop>,
    options: Options,
) -> UnixListener {
    let our_uid = nix::unistd::geteuid().as_raw();
    let pool = Arc::new(Pool {
        left: AtomicUsize::new(REQUEST_POOL_BYTES),
    });
    let mut connections = JoinSet::new();
    // Connections in the order they came, each with "still reading its request".
    let mut arrivals: VecDeque<(AbortHandle, Arc<AtomicBool>)> = VecDeque::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let stop = loop {
        tokio::select! {
            stop = &mut shutdown => break stop,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() >= MAX_CONNECTIONS
                    && !evict_oldest_reader(&mut arrivals) => {
                    // Said without waiting: a client too slow to take one line is dropped.
                    let line = protocol::encode(&Response::Error {
                        kind: ErrorKind::Busy,
                        message: format!("the supervisor has {MAX_CONNECTIONS} control connections open; try again"),
                    });
                    let _ = stream.try_write(&line);
                }
                Ok((stream, _)) => {
                    let draw = Draw::new(pool.clone());
                    let reading = Arc::new(AtomicBool::new(true));
                    let task = connection(stream, requests.clone(), our_uid, options, draw, reading.clone());
                    arrivals.push_back((connections.spawn(task), reading));
                    // An AbortHandle keeps its finished task's memory: forget those
                    // often enough that they stay a handful past the open connections.
                    if arrivals.len() > connections.len() + 16 {
                        arrivals.retain(|(task, _)| !task.is_finished());
                    }
                }
                Err(e) => {
                    // EMFILE and the like: do not spin; the pending connection stays queued.
                    tracing::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("control connection task failed: {e}");
                }
            }
        }
    };
    drop(requests);
    let grace = match stop {
        Stop::Shutdown => options.shutdown_grace,
        Stop::HandOver => HANDOVER_GRACE.min(options.shutdown_grace),
    };
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::debug!(
            open = connections.len(),
            "closing control connections still open at shutdown"
        );
    }
    connections.shutdown().await;
    listener
}

/// Aborts the oldest connection still reading its request; false if there is none.
fn evict_oldest_reader(arrivals: &mut VecDeque<(AbortHandle, Arc<AtomicBool>)>) -> bool {
    while let Some((task, reading)) = arrivals.pop_front() {
        if reading.load(Ordering::Acquire) && !task.is_finished() {
            tracing::debug!(
                "control socket: at {MAX_CONNECTIONS} connections, evicting the oldest silent one"
            );
            task.abort();
            return true;
        }
    }
    false
}

async fn connection(
    stream: UnixStream,
    requests: mpsc::Sender<Incoming>,
    our_uid: u32,
    options: Options,
    draw: Draw,
    reading: Arc<AtomicBool>,
) {
    if let Err(e) = exchange(stream, requests, our_uid, options, draw, &reading).await {
        // The client went away mid-exchange: nothing to tell anyone.
        tracing::debug!("control connection: {e}");
    }
}

/// What reading the request line found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line, without its '\n'.
    Complete(Vec<u8>),
    /// The client closed without sending anything.
    Empty,
    /// The client closed in the middle of a line.
    Truncated,
    /// More than the cap without a '\n'.
    TooLong,
    /// Longer than [`FREE_REQUEST_BYTES`], and the pool had no room for it.
    NoRoom,
}

/// Reads one line of at most `cap` bytes (without its '\n'). Its buffer grows in exact
/// steps, each beyond [`FREE_REQUEST_BYTES`] held from the pool through `draw`, so what a
/// connection holds is what it is charged. Bytes after the '\n' are dropped (a client
/// sends one request).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    cap: usize,
    draw: &mut Draw,
) -> io::Result<Line> {
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(if line.is_empty() {
                Line::Empty
            } else {
                Line::Truncated
            });
        }
        let (part, complete) = match chunk[..n].iter().position(|&b| b == b'\n') {
            Some(end) => (&chunk[..end], true),
            None => (&chunk[..n], false),
        };
        let needed = line.len() + part.len();
        if needed > cap {
            return Ok(Line::TooLong);
        }
        if needed > line.capacity() {
            let size = if needed <= FREE_REQUEST_BYTES {
                FREE_REQUEST_BYTES.min(cap)
            } else {
                needed
                    .div_ceil(POOL_STEP)
                    .saturating_mul(POOL_STEP)
                    .min(cap)
            };
            if !draw.hold(size.saturating_sub(FREE_REQUEST_BYTES)) {
                return Ok(Line::NoRoom);
            }
            line.reserve_exact(size - line.len());
        }
        line.extend_from_slice(part);
        if complete {
            return Ok(Line::Complete(line));
        }
    }
}

async fn exchange(
    stream: UnixStream,
    requests: mpsc::Sender<Incoming>,
    our_uid: u32,
    options: Options,
    mut draw: Draw,
    reading: &AtomicBool,
) -> io::Result<()> {
    let peer_uid = socket::getsockopt(&stream, PeerCredentials)?.uid();
    let (mut reader, mut writer) = stream.into_split();
    if !is_allowed(peer_uid, our_uid) {
        tracing::warn!(peer_uid, "refused a control connection from another user");
        let message = format!("permission denied: uid {peer_uid} is not the supervisor's user");
        return refuse(&mut writer, ErrorKind::Failed, message).await;
    }
    let line = match tokio::time::timeout(
        options.request_timeout,
        read_line(&mut reader, MAX_FRAME, &mut draw),
    )
    .await
    {
        Err(_elapsed) => {
            let message = format!(
                "no request within {} ms of connecting",
                options.request_timeout.as_millis()
            );
            return refuse(&mut writer, ErrorKind::BadRequest, message).await;
        }
        Ok(read) => match read? {
            Line::Complete(line) => line,
            Line::Empty => return Ok(()),
            Line::Truncated => {
                let message = "truncated message: the connection ended mid-line".to_owned();
                return refuse(&mut writer, ErrorKind::BadRequest, message).await;
            }
            Line::TooLong => {
                let message = format!("message over {MAX_FRAME} bytes");
                return refuse(&mut writer, ErrorKind::BadRequest, message).await;
            }
            Line::NoRoom => {
                let message = format!(
                    "the supervisor is already reading {} MiB of large requests; try again",
                    REQUEST_POOL_BYTES >> 20
                );
                return refuse(&mut writer, ErrorKind::Busy, message).await;
            }
        },
    };
    let request: Request = match protocol::decode(&line) {
        Ok(request) => request,
        Err(e @ DecodeError::Version { .. }) => {
            return refuse(&mut writer, ErrorKind::Version, e.to_string()).await;
        }
        Err(e @ DecodeError::Malformed(_)) => {
            return refuse(&mut writer, ErrorKind::BadRequest, e.to_string()).await;
        }
    };
    drop(line);
    drop(draw);
    reading.store(false, Ordering::Release);

    let (reply, mut replies) = mpsc::channel(REPLY_QUEUE);
    if requests.send(Incoming { request, reply }).await.is_err() {
        let message = "the supervisor is shutting down".to_owned();
        return refuse(&mut writer, ErrorKind::Failed, message).await;
    }
    drop(requests);

    let mut batch = Vec::new();
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            biased;
            first = replies.recv() => {
                let Some(first) = first else { break };
                batch.clear();
                let mut fits = push_line(&mut batch, &first);
                while fits && batch.len() < WRITE_BATCH {
                    match replies.try_recv() {
                        Ok(next) => fits = push_line(&mut batch, &next),
                        Err(_) => break,
                    }
                }
                writer.write_all(&batch).await?;
                if !fits {
                    break;
                }
            }
            // Anything after the request line is ignored; EOF (or an error) means the
            // client is gone: returning drops `replies`, so the handler's next send fails.
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
        }
    }
    writer.shutdown().await
}

/// Appends `response` as a line; one that would be over the cap becomes an error line
/// instead, and the result is `false` (the exchange ends after it).
fn push_line(batch: &mut Vec<u8>, response: &Response) -> bool {
    let line = protocol::encode(response);
    if line.len() - 1 <= MAX_FRAME {
        batch.extend_from_slice(&line);
        return true;
    }
    tracing::warn!(
        bytes = line.len(),
        "control socket: a response is over the frame limit"
    );
    batch.extend_from_slice(&protocol::encode(&Response::Error {
        kind: ErrorKind::Failed,
        message: format!(
            "the answer ({} bytes) is over the {MAX_FRAME}-byte message limit",
            line.len() - 1
        ),
    }));
    false
}

/// Writes one error line and closes our side.
async fn refuse(writer: &mut OwnedWriteHalf, kind: ErrorKind, message: String) -> io::Result<()> {
    writer
        .write_all(&protocol::encode(&Response::Error { kind, message }))
        .await?;
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::client::{Client, ClientError, socket_path};
    use crate::protocol::{LogLine, Target};
    use std::io::{BufRead, Read, Write};
    use std::os::unix::net::UnixStream as StdStream;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use tokio::sync::oneshot;

    /// Short home dirs: socket paths are limited to 108 bytes.
    fn home() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("dipc")
            .tempdir_in("/tmp")
            .unwrap()
    }

    struct Harness {
        home: tempfile::TempDir,
        stop: Option<oneshot::Sender<()>>,
        server: tokio::task::JoinHandle<UnixListener>,
        handler: tokio::task::JoinHandle<()>,
        /// Set when a follow stream's send failed.
        follow_ended: Arc<AtomicBool>,
        /// Requests the handler saw.
        seen: Arc<AtomicU32>,
    }

    impl Harness {
        fn path(&self) -> PathBuf {
            socket_path(self.home.path())
        }

        /// Stops the server; returns the home, which the caller may keep alive.
        async fn stop(mut self) -> tempfile::TempDir {
            let _ = self.stop.take().unwrap().send(());
            drop(self.server.await.unwrap());
            // Every Sender<Incoming> is gone once serve returned: the handler ends.
            self.handler.await.unwrap();
            self.home
        }
    }

    /// A server with the trivial handler: Ping → Pong; Logs → LogLines until send fails;
    /// anything else → Done.
    fn start(options: Options) -> Harness {
        let home = home();
        let listener = bind(&socket_path(home.path())).unwrap();
        let (tx, mut rx) = mpsc::channel::<Incoming>(16);
        let follow_ended = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicU32::new(0));
        let (ended, count) = (follow_ended.clone(), seen.clone());
        let handler = tokio::spawn(async move {
            while let Some(Incoming { request, reply }) = rx.recv().await {
                count.fetch_add(1, Ordering::SeqCst);
                match request {
                    Request::Ping => {
                        let _ = reply
                            .send(Response::Pong {
                                pid: std::process::id(),
                                version: "test".into(),
                                metrics: None,
                                binary: None,
                                started_at_ms: None,
                                last_update: None,
                            })
                            .await;
                    }
                    Request::Logs { .. } => {
                        let ended = ended.clone();
                        tokio::spawn(async move {
                            for n in 0u64.. {
                                let line = Response::LogLine(LogLine {
                                    id: 0,
                                    app: "api".into(),
                                    instance: 0,
                                    stream: "out".into(),
                                    timestamp: "2024-01-01T00:00:00Z".into(),
                                    message: format!("line {n}"),
                                });
                                if reply.send(line).await.is_err() {
                                    ended.store(true, Ordering::SeqCst);
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        });
                    }
                    _ => {
                        let _ = reply
                            .send(Response::Done {
                                message: "ok".into(),
                            })
                            .await;
                    }
                }
            }
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let server = tokio::spawn(serve_with(
            listener,
            tx,
            async {
                let _ = stop_rx.await;
                Stop::Shutdown
            },
            options,
        ));
        Harness {
            home,
            stop: Some(stop_tx),
            server,
            handler,
            follow_ended,
            seen,
        }
    }

    fn fast() -> Options {
        Options {
            request_timeout: Duration::from_millis(300),
            shutdown_grace: Duration::from_millis(200),
        }
    }

    /// Runs blocking client code off the runtime's thread (the server runs on it).
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    async fn ping(home: PathBuf) {
        let response = blocking(move || Client::connect(&home).unwrap().call(&Request::Ping))
            .await
            .unwrap();
        assert!(
            matches!(response, Response::Pong { pid, .. } if pid == std::process::id()),
            "{response:?}"
        );
    }

    /// Sends raw bytes, optionally closes the write side, and reads every response line.
    async fn raw(path: PathBuf, bytes: Vec<u8>, close_write: bool) -> Vec<Response> {
        blocking(move || {
            let mut stream = StdStream::connect(&path).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(&bytes).unwrap();
            if close_write {
                stream.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let mut out = Vec::new();
            for line in std::io::BufReader::new(stream).split(b'\n') {
                match line {
                    Ok(line) => out.push(protocol::decode(&line).unwrap()),
                    Err(_) => break,
                }
            }
            out
        })
        .await
    }

    fn assert_error(responses: &[Response], want: ErrorKind, needle: &str) {
        match responses {
            [Response::Error { kind, message }] => {
                assert_eq!(*kind, want, "{message}");
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
            other => panic!("expected one {want:?} error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn round_trip_and_socket_mode() {
        let h = start(fast());
        let mode = std::fs::metadata(h.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        ping(h.home.path().to_owned()).await;

        // A request the handler answers with Done; the connection then ends (EOF).
        let home = h.home.path().to_owned();
        let (response, after) = blocking(move || {
            let mut client = Client::connect(&home).unwrap();
            let r = client
                .call(&Request::Stop {
                    target: Target::Name("api".into()),
                })
                .unwrap();
            (r, client.recv().unwrap())
        })
        .await;
        assert_eq!(
            response,
            Response::Done {
                message: "ok".into()
            }
        );
        assert_eq!(after, None);
        h.stop().await;
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused() {
        let home = home();
        let path = socket_path(home.path());
        // A socket file nobody listens on (a supervisor that crashed).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let listener = bind(&path).unwrap();
        // Now live: a second bind must not steal it.
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(listener);
        // A regular file is never removed.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"precious").unwrap();
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn hostile_input_gets_an_error_and_the_server_survives() {
        let h = start(fast());
        let path = h.path();
        let home = h.home.path().to_owned();

        let over = format!("over {MAX_FRAME} bytes");
        let cases: Vec<(&str, Vec<u8>, bool, ErrorKind, &str)> = vec![
            (
                "garbage",
                b"hello there\n".to_vec(),
                false,
                ErrorKind::BadRequest,
                "malformed",
            ),
            (
                "invalid utf-8",
                b"\xff\xfe\xfd{\"v\":2}\n".to_vec(),
                false,
                ErrorKind::BadRequest,
                "malformed",
            ),
            (
                "wrong shape",
                b"{\"v\":2,\"cmd\":\"stop\",\"target\":[1,2]}\n".to_vec(),
                false,
                ErrorKind::BadRequest,
                "malformed",
            ),
            (
                "unknown command",
                b"{\"v\":2,\"cmd\":\"format_disk\"}\n".to_vec(),
                false,
                ErrorKind::BadRequest,
                "malformed",
            ),
            (
                "version 3",
                b"{\"v\":3,\"cmd\":\"list\"}\n".to_vec(),
                false,
                ErrorKind::Version,
                "version 3",
            ),
            (
                "truncated then EOF",
                b"{\"v\":2,\"cmd\":\"pi".to_vec(),
                true,
                ErrorKind::BadRequest,
                "truncated",
            ),
            (
                "oversized",
                vec![b'x'; MAX_FRAME + 1],
                false,
                ErrorKind::BadRequest,
                &over,
            ),
        ];
        for (name, bytes, close_write, kind, needle) in cases {
            let responses = raw(path.clone(), bytes, close_write).await;
            assert_error(&responses, kind, needle);
            eprintln!("{name}: ok");
            ping(home.clone()).await;
        }
        // Only the pings reached the handler.
        assert_eq!(h.seen.load(Ordering::SeqCst), 7);

        // A line of exactly MAX_FRAME bytes is read whole (and is malformed, not too long).
        let mut big = vec![b' '; MAX_FRAME];
        big.push(b'\n');
        assert_error(
            &raw(path.clone(), big, false).await,
            ErrorKind::BadRequest,
            "malformed",
        );

        // Connects and closes at once: no answer, no harm.
        assert!(raw(path.clone(), Vec::new(), true).await.is_empty());
        drop(StdStream::connect(&path).unwrap());
        ping(home.clone()).await;

        // Vanishes in the middle of a big write.
        let p = path.clone();
        blocking(move || {
            let mut s = StdStream::connect(&p).unwrap();
            s.write_all(&vec![b'{'; 100_000]).unwrap();
        })
        .await;
        ping(home.clone()).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn a_silent_client_does_not_hold_the_server() {
        let h = start(Options {
            request_timeout: Duration::from_secs(1),
            ..fast()
        });
        let path = h.path();
        let silent = blocking(move || {
            let s = StdStream::connect(&path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .await;
        // Others are served while the silent one waits.
        let started = std::time::Instant::now();
        for _ in 0..3 {
            ping(h.home.path().to_owned()).await;
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        // The server ends it at the timeout, with a line saying why.
        let (line, elapsed) = blocking(move || {
            let mut reader = std::io::BufReader::new(silent);
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).unwrap();
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            (line, started.elapsed())
        })
        .await;
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        let response: Response = protocol::decode(line.trim_ascii_end()).unwrap();
        assert!(
            matches!(&response, Response::Error { kind: ErrorKind::BadRequest, message } if message.contains("no request")),
            "{response:?}"
        );
        ping(h.home.path().to_owned()).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn a_follow_stream_ends_when_the_client_leaves() {
        let h = start(fast());
        let home = h.home.path().to_owned();
        let got = blocking(move || {
            let mut client = Client::connect(&home).unwrap();
            client
                .send(&Request::Logs {
                    target: Target::All,
                    more: vec![],
                    follow: true,
                })
                .unwrap();
            let mut got = Vec::new();
            for _ in 0..5 {
                match client.recv().unwrap() {
                    Some(Response::LogLine(line)) => got.push(line.message),
                    other => panic!("{other:?}"),
                }
            }
            got
        })
        .await;
        assert_eq!(got, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
        // The client is dropped: the handler's send fails soon after.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !h.follow_ended.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "handler still streaming"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ping(h.home.path().to_owned()).await;
        h.stop().await;
    }

    #[tokio::test]
    async fn shutdown_ends_open_streams_and_the_handler_sees_no_more_requests() {
        let h = start(fast());
        let home = h.home.path().to_owned();
        // A follow client that never hangs up on its own.
        let client = blocking(move || {
            let mut client = Client::connect(&home).unwrap();
            client
                .send(&Request::Logs {
                    target: Target::All,
                    more: vec![],
                    follow: true,
                })
                .unwrap();
            assert!(matches!(client.recv(), Ok(Some(Response::LogLine(_)))));
            client
        })
        .await;
        let ended = h.follow_ended.clone();
        let path = h.path();
        let home = h.stop().await;
        // The stream was dropped after the grace period; the client reads to EOF.
        let count = blocking(move || {
            let mut client = client;
            let mut n = 0;
            while let Ok(Some(_)) = client.recv() {
                n += 1;
            }
            n
        })
        .await;
        assert!(count < 10_000);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(ended.load(Ordering::SeqCst));
        // Nobody listens any more: the client says so.
        assert!(matches!(
            StdStream::connect(&path).map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionRefused)
        ));
        assert!(matches!(
            Client::connect(home.path()),
            Err(ClientError::NotRunning(_))
        ));
    }

    #[test]
    fn only_our_user_and_root_are_served() {
        assert!(is_allowed(1000, 1000));
        assert!(is_allowed(0, 1000));
        assert!(is_allowed(0, 0));
        assert!(!is_allowed(1001, 1000));
        assert!(!is_allowed(1000, 0));
        assert!(!is_allowed(65534, 1000));
    }

    #[tokio::test]
    async fn read_line_caps_and_classifies() {
        let pool = || {
            Arc::new(Pool {
                left: AtomicUsize::new(REQUEST_POOL_BYTES),
            })
        };
        async fn read(input: &[u8], cap: usize, pool: Arc<Pool>) -> Line {
            let mut draw = Draw::new(pool);
            read_line(&mut &input[..], cap, &mut draw).await.unwrap()
        }
        assert_eq!(
            read(b"abc\nrest", 3, pool()).await,
            Line::Complete(b"abc".to_vec())
        );
        assert_eq!(read(b"abcd\n", 3, pool()).await, Line::TooLong);
        assert_eq!(read(b"abcd", 3, pool()).await, Line::TooLong);
        assert_eq!(read(b"ab", 3, pool()).await, Line::Truncated);
        assert_eq!(read(b"", 3, pool()).await, Line::Empty);
        assert_eq!(read(b"\n", 3, pool()).await, Line::Complete(Vec::new()));
    }

    #[tokio::test]
    async fn large_lines_draw_on_one_pool_and_give_it_back() {
        let pool = Arc::new(Pool {
            left: AtomicUsize::new(4 * POOL_STEP),
        });
        let big = vec![b'x'; 3 * POOL_STEP];
        // Held while the line is: a second one finds too little left.
        let mut first = Draw::new(pool.clone());
        let line = read_line(&mut &big[..], MAX_FRAME, &mut first)
            .await
            .unwrap();
        assert_eq!(line, Line::Truncated);
        assert_eq!(first.held, 3 * POOL_STEP - FREE_REQUEST_BYTES);
        let mut second = Draw::new(pool.clone());
        assert_eq!(
            read_line(&mut &big[..], MAX_FRAME, &mut second)
                .await
                .unwrap(),
            Line::NoRoom
        );
        // A small line needs nothing of the pool, even when it is empty.
        assert_eq!(
            read_line(&mut &b"ping\n"[..], MAX_FRAME, &mut second)
                .await
                .unwrap(),
            Line::Complete(b"ping".to_vec())
        );
        drop(second);
        drop(first);
        assert_eq!(pool.left.load(Ordering::Acquire), 4 * POOL_STEP);
    }
}
