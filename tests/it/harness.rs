//! Runs the real `drover` binary in a temp DROVER_HOME and cleans up every process it
//! started. Nothing here sleeps to synchronise: every wait polls a condition with a
//! deadline.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use drover::ipc::client::{Client, ClientError};
use drover::protocol::{Request, Response};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const DROVER: &str = env!("CARGO_BIN_EXE_drover");

/// Generous: CI machines have 2 cores and run tests in parallel.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Polls `cond` until it returns Some or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A temp DROVER_HOME (short path: unix socket paths are limited to 108 bytes).
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("d")
            .tempdir_in("/tmp")
            .expect("temp home");
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file under the home (e.g. an ecosystem file) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DROVER);
        cmd.args(args)
            .env("DROVER_HOME", self.path())
            .current_dir(self.path());
        cmd.env_remove("NODE_OPTIONS").env_remove("DROVER_LOG");
        cmd
    }

    /// Runs a drover command to completion.
    pub fn output(&self, args: &[&str]) -> Output {
        self.output_with_stdin(args, "")
    }

    /// Runs a drover command to completion with `input` on its stdin (PM2's `cat
    /// ecosystem.json | pm2 start -`).
    pub fn output_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run drover");
        let mut stdin = child.stdin.take().expect("stdin");
        // A command that does not read its stdin may exit first: a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().expect("run drover");
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `drover run …` in the background.
    pub fn run(&self, args: &[&str]) -> Running {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        self.spawn_running(self.command(&full))
    }

    /// Starts `<wrapper…> drover <args…>` in the background (`taskset -c 0`,
    /// `unshare …`, `env NAME=value`): the wrapper gets the drover binary and the
    /// arguments after its own.
    pub fn spawn_wrapped(&self, wrapper: &[&str], args: &[&str]) -> Running {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(DROVER)
            .args(args)
            .env("DROVER_HOME", self.path())
            .current_dir(self.path())
            .env_remove("NODE_OPTIONS")
            .env_remove("DROVER_LOG");
        self.spawn_running(cmd)
    }

    fn spawn_running(&self, mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drover run");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
            pids: Mutex::new(BTreeSet::new()),
            status: None,
        }
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    text
}

/// A `drover run` supervisor. Dropping it kills it and every worker pid a test saw.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Every process a test learned of (workers, grandchildren), killed on drop.
    pids: Mutex<BTreeSet<i32>>,
    status: Option<ExitStatus>,
}

impl Running {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a line of stderr containing `needle` and returns it.
    pub fn wait_stderr(&self, needle: &str) -> String {
        wait_for(&format!("stderr line with {needle:?}"), DEADLINE, || {
            self.stderr()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
    }

    /// Counts stderr lines containing `needle`.
    pub fn count_stderr(&self, needle: &str) -> usize {
        self.stderr().lines().filter(|l| l.contains(needle)).count()
    }

    /// The address the supervisor bound for `app` ("<app> listening on <addr> (…)").
    pub fn listen_addr(&self, app: &str) -> SocketAddr {
        let line = self.wait_stderr(&format!("{app} listening on "));
        let rest = line.split(" listening on ").nth(1).unwrap();
        rest.split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("a socket address")
    }

    pub fn remember(&self, pid: i32) {
        self.pids.lock().unwrap().insert(pid);
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("signal drover");
    }

    /// Waits for the supervisor to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let status = wait_for("drover to exit", timeout, || self.child.try_wait().unwrap());
        self.status = Some(status);
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid(), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in self.pids.lock().unwrap().iter() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

/// Whether a process is gone (no such pid, or a zombie awaiting its reaper).
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// The result of one HTTP GET with a new connection.
#[derive(Debug)]
pub enum Reply {
    Ok(String),
    Refused,
    /// Reset, EOF before a response, or a timeout: the connection was accepted then lost.
    Failed(String),
}

/// GET `path` on a new connection (Connection: close); returns the body.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Reply::Refused,
        Err(e) => return Reply::Failed(format!("connect: {e}")),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Reply::Failed(format!("write: {e}"));
    }
    let mut response = String::new();
    if let Err(e) = stream.read_to_string(&mut response) {
        return Reply::Failed(format!("read: {e}"));
    }
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head[8..].starts_with(" 200") => {
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                match dechunk(body) {
                    Some(body) => Reply::Ok(body),
                    None => Reply::Failed(format!("truncated chunked body: {body:?}")),
                }
            } else {
                Reply::Ok(body.to_owned())
            }
        }
        _ => Reply::Failed(format!("bad response: {response:?}")),
    }
}

/// A client that keeps its connection open between requests (HTTP/1.1 keep-alive), as
/// browsers, proxies and HTTP client pools do. It reconnects when the server said
/// `Connection: close` (or closed after a complete response); a request that was sent and
/// got no complete response is a failure, also on a reused connection.
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, conn: None }
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => match TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    BufReader::new(s)
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Reply::Refused;
                }
                Err(e) => return Reply::Failed(format!("connect: {e}")),
            },
        };
        let mut conn = conn;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        if let Err(e) = conn.get_mut().write_all(request.as_bytes()) {
            return Reply::Failed(format!("write (kept-alive): {e}"));
        }
        match read_response(&mut conn) {
            Ok((body, keep)) => {
                if keep {
                    self.conn = Some(conn);
                }
                Reply::Ok(body)
            }
            Err(e) => Reply::Failed(format!("read (kept-alive): {e}")),
        }
    }
}

/// Reads one HTTP/1.1 response: its body (Content-Length or chunked) if the status is
/// 200, and whether the connection stays open.
fn read_response(conn: &mut BufReader<TcpStream>) -> Result<(String, bool), String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match conn.read_line(&mut line) {
            Ok(0) => return Err(format!("EOF after {} bytes of head", head.len())),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    if !(head.starts_with("HTTP/1.") && head[8..].starts_with(" 200")) {
        return Err(format!("bad response: {head:?}"));
    }
    let lower = head.to_ascii_lowercase();
    let header = |name: &str| {
        lower
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let keep = header("connection:").is_none_or(|v| v != "close") && head.starts_with("HTTP/1.1");
    let body = if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut body = String::new();
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {size:?}"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.push_str(&String::from_utf8_lossy(&chunk[..size]));
        }
        body
    } else {
        let len: usize = header("content-length:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no content-length: {head:?}"))?;
        let mut body = vec![0; len];
        conn.read_exact(&mut body).map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&body).into_owned()
    };
    Ok((body, keep))
}

/// GET and parse a JSON body; panics on failure.
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    match get(addr, path) {
        Reply::Ok(body) => {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad JSON {body:?}: {e}"))
        }
        other => panic!("GET {path} failed: {other:?}"),
    }
}

/// Waits until the app answers at `addr` and returns the first reply.
pub fn wait_serving(addr: SocketAddr) -> serde_json::Value {
    wait_for(
        &format!("a worker answering on {addr}"),
        DEADLINE,
        || match get(addr, "/") {
            Reply::Ok(body) => serde_json::from_str(&body).ok(),
            _ => None,
        },
    )
}

/// The pid field of a worker's JSON reply.
pub fn pid_of(reply: &serde_json::Value) -> i32 {
    reply["pid"].as_i64().expect("pid in reply") as i32
}

/// Decodes an HTTP/1.1 chunked body; None if it is cut short.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// The compiled example worker (examples/rust_worker.rs), built on demand.
pub fn rust_worker() -> PathBuf {
    // target/<profile>/deps/it-<hash> → target/<profile>/examples/rust_worker
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples/rust_worker");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "rust_worker"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example rust_worker");
        assert!(status.success());
    }
    path
}

/// A background supervisor started by `drover start` in a temp home; dropping it runs
/// `drover kill` and, should that fail, kills the supervisor by pid.
pub struct Daemon {
    pub home: Home,
}

impl Daemon {
    pub fn new() -> Daemon {
        Daemon { home: Home::new() }
    }

    /// Runs a drover command and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.home.output(args);
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Runs a drover command that must fail and returns what it said on stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.home.output(args);
        assert!(
            !out.status.success(),
            "drover {args:?} succeeded: {}",
            out.stdout
        );
        out.stderr
    }

    /// `drover list --json`, parsed.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["list", "--json"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap_or_else(|e| panic!("list --json: {e}: {out:?}"))
    }

    /// Waits until the app's workers are all `online` (n of them) and returns them.
    pub fn wait_online(&self, name: &str, n: usize) -> Vec<serde_json::Value> {
        wait_for(&format!("{n} online workers of {name}"), DEADLINE, || {
            let workers: Vec<_> = self
                .list()
                .into_iter()
                .filter(|w| w["name"] == name)
                .collect();
            (workers.len() == n && workers.iter().all(|w| w["status"] == "online"))
                .then_some(workers)
        })
    }

    /// Starts `instances` workers of the Node test app (`http_worker.js`) as `name` on a
    /// port the OS picks, with `extra` flags; waits until they are online and answering.
    pub fn start_http(&self, name: &str, instances: u32, extra: &[&str]) -> SocketAddr {
        let script = fixture("http_worker.js");
        let n = instances.to_string();
        let mut args = vec![
            "start",
            script.to_str().unwrap(),
            "-i",
            &n,
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
        let workers = self.wait_online(name, instances as usize);
        let addr = listen_of(&workers[0]);
        wait_serving(addr);
        addr
    }

    /// One request on the control socket, from this process: the supervisor's own
    /// answer time, without the cost of starting a CLI process.
    pub fn call(&self, request: &Request) -> (Result<Response, ClientError>, Duration) {
        let started = Instant::now();
        let answer = Client::connect(self.home.path()).and_then(|mut c| c.call(request));
        (answer, started.elapsed())
    }

    /// Runs a drover command in a thread of its own; join it for the output.
    pub fn spawn(&self, args: &[&str]) -> thread::JoinHandle<Output> {
        let mut cmd = self.home.command(args);
        cmd.stdin(Stdio::null());
        thread::spawn(move || {
            let out = cmd.output().expect("run drover");
            Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
    }

    /// The status of every worker of `name`, from `list --json`.
    pub fn statuses(&self, name: &str) -> Vec<String> {
        self.list()
            .iter()
            .filter(|w| w["name"] == name)
            .map(|w| w["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn supervisor_pid(&self) -> Option<i32> {
        let out = self.home.output(&["ping"]);
        out.stdout
            .split("pid ")
            .nth(1)?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let socket = self.home.path().join("drover.sock");
        if !socket.exists() {
            return;
        }
        let pid = Command::new(DROVER)
            .arg("ping")
            .env("DROVER_HOME", self.home.path())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split("pid ")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .trim()
                    .parse::<i32>()
                    .ok()
            });
        let killed = self
            .home
            .command(&["kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !killed.is_ok_and(|s| s.success())
            && let Some(pid) = pid
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The address a worker listens on, from `list --json`.
pub fn listen_of(worker: &serde_json::Value) -> SocketAddr {
    worker["listen"]
        .as_str()
        .expect("listen address")
        .parse()
        .unwrap()
}

/// Processes running `drover daemon` for this home.
pub fn daemons_for(home: &Path) -> Vec<i32> {
    let needle = format!("DROVER_HOME={}", home.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.get(1) == Some(&&b"daemon"[..])
                && args[0].ends_with(b"drover")
                && environ.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
                && !is_gone(*pid)
        })
        .collect()
}

/// A process's resident set size in kB (`VmRSS` in /proc/<pid>/status).
pub fn vm_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// How many file descriptors a process has open (entries of /proc/<pid>/fd).
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Runs a drover command with a time limit. One that is still running at `timeout`
/// (a `drover run` that started an app it should have rejected) gets SIGTERM, then
/// SIGKILL; the second value says whether that happened. Output read after the
/// process is gone is waited for at most 5 s more (a leaked grandchild may hold the
/// pipes open).
pub fn output_within(home: &Home, args: &[&str], timeout: Duration) -> (Output, bool) {
    let mut child = home
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover");
    let read_all = |stream: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut stream = stream;
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        rx
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for drover") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let grace = Instant::now() + Duration::from_secs(10);
            while Instant::now() < grace && child.try_wait().ok().flatten().is_none() {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            break child.wait().expect("wait for drover");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let text = |rx: std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    };
    (
        Output {
            status,
            stdout: text(stdout),
            stderr: text(stderr),
        },
        timed_out,
    )
}

/// A process's start time (clock ticks since boot, field 22 of /proc/<pid>/stat): with
/// its pid, it names one process even after the pid is reused. None if there is no
/// such pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// What a load's clients saw: a refusal is always a bug; a failure is a connection
/// accepted and then lost (a killed worker's own, in the fault tests).
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub refused: u64,
    pub failed: Vec<String>,
    /// The workers that answered.
    pub pids: BTreeSet<i32>,
}

impl Tally {
    fn count(&mut self, reply: Reply) {
        match reply {
            Reply::Ok(body) => {
                self.ok += 1;
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    self.pids.insert(pid_of(&v));
                }
            }
            Reply::Refused => self.refused += 1,
            Reply::Failed(e) => self.failed.push(e),
        }
    }

    /// Nothing refused, nothing lost.
    pub fn clean(&self) -> bool {
        self.refused == 0 && self.failed.is_empty()
    }
}

/// A bounded client on 127.0.0.1: `threads` loops, each a new connection per request,
/// until `finish` or 200,000 requests per thread.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Tally>>,
}

impl Load {
    /// `fresh` clients with a new connection per request and `kept` keep-alive clients,
    /// each asking for `/slow` (an answer that takes a while, so requests are in flight
    /// at any moment) every 8th request and `/` otherwise.
    pub fn mixed(addr: SocketAddr, fresh: usize, kept: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..fresh + kept)
            .map(|i| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut t = Tally::default();
                    let mut client = (i >= fresh).then(|| KeepAlive::new(addr));
                    for n in 0..200_000u32 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let path = if n % 8 == 7 { "/slow" } else { "/" };
                        let reply = match &mut client {
                            Some(client) => client.get(path),
                            None => get(addr, path),
                        };
                        t.count(reply);
                    }
                    t
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn start(addr: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut t = Tally::default();
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        t.count(get(addr, "/"));
                    }
                    t
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            let t = t.join().unwrap();
            all.ok += t.ok;
            all.refused += t.refused;
            all.failed.extend(t.failed);
            all.pids.extend(t.pids);
        }
        all
    }
}
