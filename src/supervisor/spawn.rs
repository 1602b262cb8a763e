//! The only place that builds a worker's `Command`: its argv, environment, working
//! directory, process group, pipes and fd 3. The child goes through the exec trampoline
//! (`drover __exec …`, see `os::exec_trampoline`), which sets LISTEN_PID to the worker's
//! own pid and resets signal dispositions before exec'ing the real program.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::unistd::Pid;
use std::os::unix::net::UnixStream;
use tokio::net::unix::pipe;

use crate::config::{AppSpec, Runtime};
use crate::os;
use crate::shim::Shims;

/// Everything a worker needs that is not in its app spec.
pub struct WorkerLaunch<'a> {
    pub app: &'a AppSpec,
    /// The environment the worker inherits under the app's own (the caller's, at start).
    pub env: &'a BTreeMap<String, String>,
    pub instance: u32,
    /// The listener to hand over as fd 3.
    pub listener: Option<BorrowedFd<'a>>,
    /// The TCP port actually bound, for PORT.
    pub bound_port: Option<u16>,
    /// The drover binary, which doubles as the exec trampoline.
    pub trampoline: &'a Path,
    /// The Node and Python preloads.
    pub shims: Option<&'a Shims>,
    /// The supervisor's sd_notify socket, for `wait_ready` apps.
    pub notify_socket: Option<&'a Path>,
}

pub struct SpawnedWorker {
    pub pid: Pid,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    /// The supervisor's end of a Node worker's IPC channel (the worker's fd 4).
    pub channel: Option<UnixStream>,
}

/// Variables a worker must never inherit from the supervisor's own environment: they
/// describe fds and sockets of the supervisor (e.g. when systemd started it: systemd's
/// NOTIFY_SOCKET is the supervisor's to answer, `supervisor::service_manager`). The
/// CLI also leaves them out of the environment it sends (`cli::apps::caller_env`), so
/// no app's saved environment carries them.
pub const SUPERVISOR_ONLY_VARS: &[&str] = &[
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    // A Node IPC channel of whoever started the supervisor.
    "NODE_CHANNEL_FD",
    "NODE_CHANNEL_SERIALIZATION_MODE",
];

/// What a worker's environment is made of. The spawn builds the worker's environment
/// from it, and `drover env` shows the same ([`environment`]), so the two cannot drift.
pub struct EnvSource<'a> {
    pub app: &'a AppSpec,
    /// The environment the worker inherits under the app's own (the caller's, at start).
    pub inherited: &'a BTreeMap<String, String>,
    pub instance: u32,
    /// The worker gets the app's listener as fd 3 (LISTEN_FDS…).
    pub gets_listener: bool,
    /// The TCP port the listener is bound to, for PORT.
    pub bound_port: Option<u16>,
    /// The Node and Python preloads.
    pub shims: Option<&'a Shims>,
    /// The supervisor's sd_notify socket, for `wait_ready` apps.
    pub notify_socket: Option<&'a Path>,
}

impl<'a> WorkerLaunch<'a> {
    fn env_source(&self) -> EnvSource<'a> {
        EnvSource {
            app: self.app,
            inherited: self.env,
            instance: self.instance,
            gets_listener: self.listener.is_some(),
            bound_port: self.bound_port,
            shims: self.shims,
            notify_socket: self.notify_socket,
        }
    }
}

/// A worker's whole environment: the inherited one (without the supervisor's own
/// variables), the app's env over it, and what drover adds over both
/// ([`worker_env`]). The exec trampoline adds LISTEN_PID once it knows its pid.
pub fn environment(src: &EnvSource<'_>) -> BTreeMap<String, OsString> {
    let mut env: BTreeMap<String, OsString> = src
        .inherited
        .iter()
        .filter(|(key, _)| !SUPERVISOR_ONLY_VARS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), OsString::from(v)))
        .collect();
    // Later wins, as it did for Command::env.
    env.extend(worker_env(src));
    env
}

/// The environment worker `pid` was started with, as text (`drover env`): [`environment`]
/// and the LISTEN_PID the exec trampoline adds to it (`os::exec_trampoline`). Without a
/// pid, what the slot's next worker gets.
pub fn started_environment(src: &EnvSource<'_>, pid: Option<Pid>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = environment(src)
        .into_iter()
        .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
        .collect();
    if env.contains_key("LISTEN_FDS")
        && let Some(pid) = pid
    {
        env.insert("LISTEN_PID".into(), pid.to_string());
    }
    env
}

pub fn spawn_worker(launch: &WorkerLaunch<'_>) -> io::Result<SpawnedWorker> {
    let app = launch.app;
    let mut cmd = Command::new(launch.trampoline);
    cmd.arg(os::TRAMPOLINE_ARG)
        .arg("--")
        .args(app.command.argv());
    cmd.current_dir(&app.cwd);
    cmd.env_clear();
    cmd.envs(environment(&launch.env_source()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a stop reaches its whole tree and a Ctrl-C at the
    // terminal of `drover run` reaches the supervisor only (it then stops workers in order).
    cmd.process_group(0);
    // A Node worker gets an IPC channel, as PM2 (and child_process.fork) give one: its
    // process.send('ready'), the shim's 'listening' and its requests for a shared
    // listener come this way (Node has no Unix datagram sockets for sd_notify).
    let channel = match uses_shim(&launch.env_source()) {
        true => Some(UnixStream::pair()?),
        false => None,
    };
    os::prepare_child(
        &mut cmd,
        launch.listener,
        channel.as_ref().map(|(_, theirs)| theirs.as_fd()),
    );

    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}#{}: {e}", app.name, launch.instance),
        )
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    // The std Child is dropped without waiting: the supervisor reaps every child itself
    // (os::reap_all on SIGCHLD), orphans included.
    let stdout = output_pipe(OwnedFd::from(child.stdout.take().expect("piped")))?;
    let stderr = output_pipe(OwnedFd::from(child.stderr.take().expect("piped")))?;
    // The worker's end is closed here, so ours sees EOF when the worker exits.
    let channel = channel.map(|(ours, _theirs)| ours);
    Ok(SpawnedWorker {
        pid,
        stdout,
        stderr,
        channel,
    })
}

/// Every Node worker gets the shim and an IPC channel, as PM2 always gives Node apps one:
/// apps call `process.send('ready')` whether or not `wait_ready` is set.
fn uses_shim(src: &EnvSource<'_>) -> bool {
    src.shims.is_some() && src.app.command.runtime() == Runtime::Node
}

/// The read end of a worker's output pipe, grown to 1 MiB (the unprivileged maximum):
/// Node puts its stdout in non-blocking mode and drops what is still queued in the
/// process when it calls `process.exit()`, so room in the pipe is room for lines that
/// would otherwise be lost during a burst.
fn output_pipe(fd: OwnedFd) -> io::Result<pipe::Receiver> {
    let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    pipe::Receiver::from_owned_fd(fd)
}

/// The variables drover sets on top of the inherited environment, in order of precedence
/// (later wins): the app's env, then drover's own (which the app's env may pre-empt where
/// noted).
fn worker_env(launch: &EnvSource<'_>) -> Vec<(String, OsString)> {
    let app = launch.app;
    let mut env = app_env(app, launch.instance);
    let has = |key: &str| app.env.contains_key(key);
    if launch.gets_listener {
        env.push(("LISTEN_FDS".into(), "1".into()));
        env.push(("LISTEN_FDNAMES".into(), app.name.clone().into()));
        if let Some(port) = launch.bound_port
            && !has("PORT")
        {
            env.push(("PORT".into(), port.to_string().into()));
        }
    }
    if let Some(socket) = launch.notify_socket {
        env.push(("NOTIFY_SOCKET".into(), socket.into()));
    }
    // WATCHDOG_PID is the worker's own pid: the trampoline sets it, as LISTEN_PID.
    if let Some(period) = app.watchdog {
        env.push((
            "WATCHDOG_USEC".into(),
            period.as_micros().to_string().into(),
        ));
    }
    match app.command.runtime() {
        Runtime::Node => {
            if let Some(shims) = launch.shims.filter(|_| uses_shim(launch)) {
                env.push(("NODE_OPTIONS".into(), node_options(launch, &shims.node)));
                env.push((
                    "NODE_CHANNEL_FD".into(),
                    os::NODE_CHANNEL_FD.to_string().into(),
                ));
                env.push(("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into()));
                if app.shares_first_listen() {
                    env.push(("DROVER_LISTEN".into(), "ask".into()));
                }
                // With wait_ready only the app's own word counts, not 'listening'.
                let on = if app.restart.wait_ready {
                    "message"
                } else {
                    "listening"
                };
                env.push(("DROVER_READY_ON".into(), on.into()));
            }
        }
        Runtime::Python => {
            if !has("PYTHONUNBUFFERED") && !launch.inherited.contains_key("PYTHONUNBUFFERED") {
                env.push(("PYTHONUNBUFFERED".into(), "1".into()));
            }
            if let Some(shims) = launch.shims {
                env.push(("PYTHONPATH".into(), python_path(launch, &shims.python_dir)));
                let ctl = format!("{}-{}.ctl", app.name, launch.instance);
                env.push((
                    "DROVER_GUNICORN_CTL".into(),
                    shims.gunicorn_ctl_dir.join(ctl).into(),
                ));
            }
        }
        Runtime::Other => {}
    }
    env
}

/// The app's own environment as instance `instance` sees it: `env`, its instance number
/// (`instance_var`) and, with `increment_var`, its own value of that variable.
fn app_env(app: &AppSpec, instance: u32) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = app
        .env
        .iter()
        .map(|(k, v)| (k.clone(), OsString::from(v)))
        .collect();
    env.push((app.instance_var.clone(), instance.to_string().into()));
    if let Some(var) = &app.increment_var {
        // Config guarantees the base is an integer.
        let base: i64 = app
            .env
            .get(var)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        env.push((var.clone(), (base + i64::from(instance)).to_string().into()));
    }
    env
}

/// A health-check command of a worker (`health: {exec: …}`), started.
pub struct SpawnedCheck {
    pub pid: Pid,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

/// Starts the health-check command `program args` of worker `worker` (instance
/// `instance` of `app`) through the trampoline (so it gets default signal dispositions),
/// in its own process group, in the app's cwd, with the worker's environment (the
/// caller's `env` under the app's) and DROVER_WORKER_PID. Register its pid with the
/// reaper before any await.
pub fn spawn_check(
    app: &AppSpec,
    env: &BTreeMap<String, String>,
    instance: u32,
    worker: Pid,
    trampoline: &Path,
    program: &Path,
    args: &[String],
) -> io::Result<SpawnedCheck> {
    let mut cmd = Command::new(trampoline);
    cmd.arg(os::TRAMPOLINE_ARG)
        .arg("--")
        .arg(program)
        .args(args);
    cmd.current_dir(&app.cwd);
    cmd.env_clear();
    for (key, value) in env {
        if !SUPERVISOR_ONLY_VARS.contains(&key.as_str()) {
            cmd.env(key, value);
        }
    }
    for (key, value) in app_env(app, instance) {
        cmd.env(key, value);
    }
    cmd.env("DROVER_WORKER_PID", worker.to_string());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let stdout = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stdout.take().expect("piped")))?;
    let stderr = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stderr.take().expect("piped")))?;
    Ok(SpawnedCheck {
        pid,
        stdout,
        stderr,
    })
}

/// PYTHONPATH with the preload's directory first, keeping whatever the app or the caller
/// set after it.
fn python_path(launch: &EnvSource<'_>, dir: &Path) -> OsString {
    let mut value = OsString::from(dir);
    let existing = launch
        .app
        .env
        .get("PYTHONPATH")
        .or_else(|| launch.inherited.get("PYTHONPATH"))
        .filter(|p| !p.is_empty());
    if let Some(existing) = existing {
        value.push(":");
        value.push(existing);
    }
    value
}

/// NODE_OPTIONS with the shim preloaded, keeping whatever the app or the caller set.
fn node_options(launch: &EnvSource<'_>, shim: &Path) -> OsString {
    let existing = launch
        .app
        .env
        .get("NODE_OPTIONS")
        .or_else(|| launch.inherited.get("NODE_OPTIONS"))
        .map(OsString::from)
        .unwrap_or_default();
    let shim: PathBuf = shim.into();
    // NODE_OPTIONS splits on spaces unless quoted.
    let mut value = OsString::from(format!("--require \"{}\"", shim.display()));
    if !existing.is_empty() {
        value.push(" ");
        value.push(existing);
    }
    value
}
