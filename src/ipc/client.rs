//! The CLI's end of the control socket: synchronous, std only, so a command answers in
//! milliseconds with no runtime to start.
//!
//! One [`Client`] is one connection, and one connection carries one request: [`Client::call`]
//! for a single answer, or [`Client::send`] then [`Client::recv`] until `Ok(None)` for a
//! stream (`logs --follow`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use crate::protocol::{self, DecodeError, ErrorKind, MAX_FRAME, Request, Response};

/// How long [`Client::connect_or_spawn`] waits for a supervisor it started to answer.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Between two attempts to reach a supervisor that is starting.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The background supervisor's stdout and stderr, inside `$DROVER_HOME`.
pub const LOG_NAME: &str = "drover.log";

/// Lines of the supervisor's log quoted when it failed to start.
const LOG_TAIL_LINES: usize = 20;

/// The control socket of the supervisor of `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join(super::SOCKET_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no supervisor is running for DROVER_HOME={} (start one with `drover start` or `drover daemon`)",
        .0.display()
    )]
    NotRunning(PathBuf),
    /// The OS or the supervisor refused us (permission denied, another user's socket).
    #[error("{0}")]
    Refused(String),
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("bad answer from the supervisor: {0}")]
    Protocol(#[from] DecodeError),
    /// The supervisor answered with an error.
    #[error("{message}")]
    Supervisor { kind: ErrorKind, message: String },
    /// The background supervisor did not come up; the message quotes its log.
    #[error("{0}")]
    SpawnFailed(String),
}

/// One connection to the supervisor.
#[derive(Debug)]
pub struct Client {
    stream: BufReader<UnixStream>,
    /// The start of a line a timed-out [`Client::recv`] left behind.
    partial: Vec<u8>,
}

impl Client {
    /// Connects to the supervisor of `home`; no socket, or nobody listening on it, is
    /// [`ClientError::NotRunning`]. Requests carry the caller's environment, so the
    /// socket must be a socket (not a symlink planted there) and the process serving it
    /// must run as our user or root, else [`ClientError::Refused`], before anything is
    /// sent.
    pub fn connect(home: &Path) -> Result<Client, ClientError> {
        let path = socket_path(home);
        if let Ok(meta) = fs::symlink_metadata(&path)
            && !meta.file_type().is_socket()
        {
            return Err(ClientError::Refused(format!(
                "{} is not a socket (a symlink or a file put there?); refusing to use it",
                path.display()
            )));
        }
        match UnixStream::connect(&path) {
            Ok(stream) => {
                let server_uid = nix::sys::socket::getsockopt(
                    &stream,
                    nix::sys::socket::sockopt::PeerCredentials,
                )
                .map_err(io::Error::from)?
                .uid();
                let our_uid = nix::unistd::geteuid().as_raw();
                if !crate::ipc::server::is_allowed(server_uid, our_uid) {
                    return Err(ClientError::Refused(format!(
                        "{} is served by uid {server_uid}, not by uid {our_uid} or root; refusing to send it anything",
                        path.display()
                    )));
                }
                Ok(Client {
                    stream: BufReader::new(stream),
                    partial: Vec::new(),
                })
            }
            Err(e) => Err(match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning(home.to_owned())
                }
                io::ErrorKind::PermissionDenied => ClientError::Refused(format!(
                    "permission denied on {}: the supervisor of this DROVER_HOME belongs to another user",
                    path.display()
                )),
                kind => ClientError::Io(io::Error::new(
                    kind,
                    format!("cannot connect to {}: {e}", path.display()),
                )),
            }),
        }
    }

    /// Connects, first starting the supervisor in the background if none answers:
    /// `<current_exe> daemon` with `DROVER_HOME=home`, stdin null, stdout and stderr
    /// appended to `home/drover.log`, in a session of its own. Then polls until it answers
    /// a Ping, for up to [`SPAWN_TIMEOUT`].
    ///
    /// Two clients racing here may both start a daemon; the daemon takes an exclusive
    /// lock on `home/drover.lock` and the loser exits 0, so a daemon that exits 0 is
    /// waited out, while one that exits with an error fails at once, quoting its log.
    pub fn connect_or_spawn(home: &Path) -> Result<Client, ClientError> {
        match Client::connect(home) {
            Err(ClientError::NotRunning(_)) => {}
            done => return done,
        }
        let exe = std::env::current_exe().map_err(|e| {
            ClientError::SpawnFailed(format!("cannot find drover's own executable: {e}"))
        })?;
        let mut cmd = Command::new(exe);
        cmd.arg("daemon");
        // A `drover start` run by a systemd unit (ExecStartPost=) must not hand the
        // unit's NOTIFY_SOCKET to the background supervisor it starts: that one is not
        // the unit's main process, and would claim to be.
        for var in crate::supervisor::spawn::SUPERVISOR_ONLY_VARS {
            cmd.env_remove(var);
        }
        spawn_and_connect(home, cmd, SPAWN_TIMEOUT)
    }

    /// Read and write timeout of this connection (`None`: wait forever, the default).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let stream = self.stream.get_ref();
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)
    }

    /// Sends one request. A request over [`MAX_FRAME`] is refused here (`InvalidInput`).
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let line = protocol::encode(req);
        if line.len() - 1 > MAX_FRAME {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "request of {} bytes is over the {MAX_FRAME}-byte message limit",
                    line.len() - 1
                ),
            )));
        }
        send_all(self.stream.get_ref(), &line).map_err(ClientError::Io)
    }

    /// The next response; `Ok(None)` once the supervisor has closed the connection. A line
    /// over [`MAX_FRAME`] is a [`ClientError::Protocol`] error; a timeout (see
    /// [`Client::set_timeout`]) is `Io(TimedOut)` and `recv` may be called again.
    pub fn recv(&mut self) -> Result<Option<Response>, ClientError> {
        let mut line = std::mem::take(&mut self.partial);
        let limit = (MAX_FRAME + 1).saturating_sub(line.len()) as u64;
        if let Err(e) = (&mut self.stream).take(limit).read_until(b'\n', &mut line) {
            self.partial = line;
            return Err(ClientError::Io(match e.kind() {
                io::ErrorKind::WouldBlock => io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the supervisor did not answer in time",
                ),
                _ => e,
            }));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            return Ok(Some(protocol::decode(&line)?));
        }
        if line.len() > MAX_FRAME {
            return Err(ClientError::Protocol(DecodeError::Malformed(format!(
                "message over {MAX_FRAME} bytes"
            ))));
        }
        if line.is_empty() {
            return Ok(None);
        }
        Err(ClientError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the supervisor closed the connection in the middle of a message",
        )))
    }

    /// One exchange: sends `req` and returns the response. `Response::Error` becomes
    /// [`ClientError::Supervisor`]; a connection closed without an answer is
    /// `Io(UnexpectedEof)`. One connection carries one request: connect again for the next.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        if let Err(e) = self.send(req) {
            // The supervisor may have closed early after saying why (permission denied…).
            if let ClientError::Io(io) = &e
                && matches!(
                    io.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                )
                && let Ok(Some(Response::Error { kind, message })) = self.recv()
            {
                return Err(ClientError::Supervisor { kind, message });
            }
            return Err(e);
        }
        match self.recv()? {
            Some(Response::Error { kind, message }) => {
                Err(ClientError::Supervisor { kind, message })
            }
            Some(response) => Ok(response),
            None => Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the supervisor closed the connection without answering",
            ))),
        }
    }
}

/// Writes all of `buf` with MSG_NOSIGNAL: a supervisor that went away is an EPIPE error,
/// never a SIGPIPE that kills the CLI (which may run with SIGPIPE's default action).
fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::sys::socket::send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the supervisor did not take the request in time",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Starts `cmd` as the background supervisor of `home` and polls until it answers a
/// Ping, for up to `timeout`; then returns a fresh connection.
fn spawn_and_connect(
    home: &Path,
    mut cmd: Command,
    timeout: Duration,
) -> Result<Client, ClientError> {
    let spawn_failed = |what: &str, e: io::Error| ClientError::SpawnFailed(format!("{what}: {e}"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .map_err(|e| spawn_failed(&format!("cannot create {}", home.display()), e))?;
    let log_path = home.join(LOG_NAME);
    // O_NOFOLLOW: a symlink planted at drover.log must not make the supervisor append
    // to a file of the planter's choosing.
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)
        .map_err(|e| {
            let what = if e.raw_os_error() == Some(libc::ELOOP) {
                format!(
                    "{} is a symlink; refusing to write through it",
                    log_path.display()
                )
            } else {
                format!("cannot open {}", log_path.display())
            };
            spawn_failed(&what, e)
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log
        .try_clone()
        .map_err(|e| spawn_failed(&format!("cannot open {}", log_path.display()), e))?;
    cmd.env("DROVER_HOME", home)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    crate::os::detach(&mut cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_failed(&format!("cannot start {program}"), e))?;

    let deadline = Instant::now() + timeout;
    let mut exited = false;
    loop {
        // Reap it if it is gone (a zombie otherwise, for as long as we run).
        if !exited && let Ok(Some(status)) = child.try_wait() {
            exited = true;
            if !status.success() {
                return Err(ClientError::SpawnFailed(with_log_tail(
                    format!("the supervisor exited at once ({status})"),
                    &log_path,
                    log_start,
                )));
            }
            // Exit 0: another daemon won the lock; it will answer.
        }
        match Client::connect(home) {
            Ok(mut client) => {
                let left = deadline.saturating_duration_since(Instant::now());
                client.set_timeout(Some(left.max(Duration::from_millis(50))))?;
                match client.call(&Request::Ping) {
                    Ok(Response::Pong { .. }) => return Client::connect(home),
                    Ok(other) => {
                        return Err(ClientError::Protocol(DecodeError::Malformed(format!(
                            "expected an answer to ping, got {other:?}"
                        ))));
                    }
                    // An answer, but an error (another protocol version…): final.
                    Err(e @ ClientError::Supervisor { .. }) | Err(e @ ClientError::Protocol(_)) => {
                        return Err(e);
                    }
                    // Listening but not serving yet, or gone again: keep trying.
                    Err(_) => {}
                }
            }
            Err(ClientError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(ClientError::SpawnFailed(with_log_tail(
                format!(
                    "the supervisor started in the background did not answer within {} ms",
                    timeout.as_millis()
                ),
                &log_path,
                log_start,
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `why`, then the last lines the supervisor wrote to its log since `from`.
fn with_log_tail(why: String, log: &Path, from: u64) -> String {
    let tail = read_tail(log, from).unwrap_or_default();
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return format!("{why}; {} says nothing", log.display());
    }
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!(
        "{why}; the end of {}:\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

/// What was appended to `path` after offset `from`, at most the last 16 KiB.
fn read_tail(path: &Path, from: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = from.max(len.saturating_sub(16 << 10));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(len - start.min(len)).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    fn home() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("dcli")
            .tempdir_in("/tmp")
            .unwrap()
    }

    fn pong() -> Response {
        Response::Pong {
            pid: 1,
            version: "t".into(),
            metrics: None,
            binary: None,
            started_at_ms: None,
            last_update: None,
        }
    }

    /// A one-thread fake supervisor: answers every connection's request with `answer`.
    fn fake_server(listener: UnixListener, answer: Vec<u8>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).is_err() {
                    continue;
                }
                if line == b"quit\n" {
                    return;
                }
                let _ = reader.get_mut().write_all(&answer);
            }
        })
    }

    fn quit(home: &Path) {
        UnixStream::connect(socket_path(home))
            .unwrap()
            .write_all(b"quit\n")
            .unwrap();
    }

    #[test]
    fn no_socket_or_a_dead_one_is_not_running() {
        let home = home();
        let err = Client::connect(home.path()).unwrap_err();
        assert!(matches!(&err, ClientError::NotRunning(p) if p == home.path()));
        assert!(err.to_string().contains("drover start"), "{err}");
        drop(UnixListener::bind(socket_path(home.path())).unwrap());
        assert!(matches!(
            Client::connect(home.path()),
            Err(ClientError::NotRunning(_))
        ));
    }

    #[test]
    fn call_maps_errors_and_eof() {
        let home = home();
        let listener = UnixListener::bind(socket_path(home.path())).unwrap();
        let error = protocol::encode(&Response::Error {
            kind: ErrorKind::NotFound,
            message: "no app named api".into(),
        });
        let server = fake_server(listener, error);
        let err = Client::connect(home.path())
            .unwrap()
            .call(&Request::List)
            .unwrap_err();
        assert!(
            matches!(
                &err,
                ClientError::Supervisor {
                    kind: ErrorKind::NotFound,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "no app named api");
        quit(home.path());
        server.join().unwrap();

        // Closed without an answer.
        let listener = UnixListener::bind(socket_path(home.path()))
            .or_else(|_| {
                fs::remove_file(socket_path(home.path()))?;
                UnixListener::bind(socket_path(home.path()))
            })
            .unwrap();
        let server = fake_server(listener, Vec::new());
        let err = Client::connect(home.path())
            .unwrap()
            .call(&Request::Ping)
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        quit(home.path());
        server.join().unwrap();
    }

    #[test]
    fn recv_caps_lines_and_tells_eof_from_truncation() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut client = Client {
            stream: BufReader::new(a),
            partial: Vec::new(),
        };
        client.set_timeout(Some(Duration::from_millis(50))).unwrap();
        // Half a line, then a timeout: recv can be called again.
        let line = protocol::encode(&pong());
        b.write_all(&line[..5]).unwrap();
        let err = client.recv().unwrap_err();
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::TimedOut),
            "{err:?}"
        );
        b.write_all(&line[5..]).unwrap();
        assert_eq!(client.recv().unwrap(), Some(pong()));
        // A version-2 answer is a protocol error.
        b.write_all(b"{\"v\":3,\"reply\":\"pong\"}\n").unwrap();
        assert!(matches!(
            client.recv(),
            Err(ClientError::Protocol(DecodeError::Version { theirs: 3 }))
        ));
        // Truncated, then EOF.
        b.write_all(b"{\"v\":2").unwrap();
        drop(b);
        let err = client.recv().unwrap_err();
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert!(matches!(client.recv(), Ok(None)));

        // Over the cap.
        let (a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut b = b;
            let _ = b.write_all(&vec![b'x'; MAX_FRAME + 10]);
        });
        let mut client = Client {
            stream: BufReader::new(a),
            partial: Vec::new(),
        };
        let err = client.recv().unwrap_err();
        assert!(
            matches!(&err, ClientError::Protocol(DecodeError::Malformed(m)) if m.contains("over")),
            "{err:?}"
        );
        drop(client);
        writer.join().unwrap();
    }

    #[test]
    fn an_oversized_request_is_refused_before_sending() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut client = Client {
            stream: BufReader::new(a),
            partial: Vec::new(),
        };
        let req = Request::Scale {
            name: "x".repeat(MAX_FRAME),
            instances: 1,
        };
        let err = client.send(&req).unwrap_err();
        assert!(
            matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::InvalidInput),
            "{err:?}"
        );
    }

    #[test]
    fn a_daemon_that_fails_at_once_is_reported_with_its_log() {
        let home = home();
        fs::write(home.path().join(LOG_NAME), "an old run\n").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo \"home is $DROVER_HOME\"; echo 'cannot bind: boom' >&2; exit 3",
        ]);
        let started = Instant::now();
        let err = spawn_and_connect(home.path(), cmd, Duration::from_secs(10)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let message = err.to_string();
        assert!(matches!(err, ClientError::SpawnFailed(_)), "{err:?}");
        assert!(message.contains("cannot bind: boom"), "{message}");
        assert!(
            message.contains(&format!("home is {}", home.path().display())),
            "{message}"
        );
        assert!(!message.contains("an old run"), "{message}");
    }

    #[test]
    fn a_silent_daemon_times_out() {
        let home = home();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo starting; sleep 1"]);
        let err = spawn_and_connect(home.path(), cmd, Duration::from_millis(300)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("did not answer within 300 ms"),
            "{message}"
        );
        assert!(message.contains("starting"), "{message}");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(home.path().join(LOG_NAME))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    /// The started process exits 0 (it lost the lock race); the winner comes up a little
    /// later and answers: the client keeps polling and connects to it.
    #[test]
    fn a_losing_daemon_is_waited_out_until_the_winner_answers() {
        let home = home();
        let home_path = home.path().to_owned();
        let winner = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let listener = UnixListener::bind(socket_path(&home_path)).unwrap();
            fake_server(listener, protocol::encode(&pong()))
                .join()
                .unwrap();
        });
        let mut cmd = Command::new("true");
        cmd.arg("daemon");
        let mut client = spawn_and_connect(home.path(), cmd, Duration::from_secs(10)).unwrap();
        // The returned connection is fresh: it carries a request of its own.
        assert_eq!(client.call(&Request::Ping).unwrap(), pong());
        quit(home.path());
        winner.join().unwrap();
    }

    #[test]
    fn connect_or_spawn_uses_a_running_supervisor() {
        let home = home();
        let listener = UnixListener::bind(socket_path(home.path())).unwrap();
        let server = fake_server(listener, protocol::encode(&pong()));
        let mut client = Client::connect_or_spawn(home.path()).unwrap();
        assert_eq!(client.call(&Request::Ping).unwrap(), pong());
        quit(home.path());
        server.join().unwrap();
        assert!(!home.path().join(LOG_NAME).exists());
    }
}
