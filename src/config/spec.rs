//! The validated, typed description of an app. Everything downstream of `config`
//! trusts these values: no string is re-parsed after this point.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// One app: a program run as `instances` worker processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    /// Validated: 1–64 chars of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
    pub name: String,
    /// What is executed: the interpreter when there is one, else the script itself.
    pub command: Command,
    /// Working directory of every worker (absolute).
    pub cwd: PathBuf,
    /// Resolved count (never 0: `max`, 0 and -1 are resolved against the CPU count).
    pub instances: u32,
    pub exec_mode: ExecMode,
    /// The app's own environment (`env` merged with `env_<name>` when chosen).
    /// Workers get the supervisor's environment overlaid with this.
    pub env: BTreeMap<String, String>,
    /// The address the supervisor binds and shares with the workers (fd 3).
    pub listen: Option<ListenAddr>,
    pub socket: SocketMode,
    pub logs: LogSpec,
    pub restart: RestartSpec,
    pub stop: StopSpec,
    /// Set to the instance index in each worker (PM2: NODE_APP_INSTANCE).
    pub instance_var: String,
    /// An env var whose value is incremented per instance (base + index), e.g. PORT.
    pub increment_var: Option<String>,
    /// Restart a worker whose process tree's RSS exceeds this many bytes.
    pub max_memory_restart: Option<u64>,
    /// A worker must say WATCHDOG=1 at least this often once it is ready (sd_notify; the
    /// Node shim says it from the event loop), or it is unhealthy.
    #[serde(default, with = "opt_duration_ms")]
    pub watchdog: Option<Duration>,
    /// The check each ready worker must pass, or it is unhealthy.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// Reload when files change here.
    #[serde(default)]
    pub watch: Option<WatchSpec>,
    /// Reload at these times (a cron expression, validated).
    #[serde(default)]
    pub cron_restart: Option<String>,
}

/// What `watch` watches: directories and files, what it leaves out, how long a burst
/// of changes must be quiet before the one reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSpec {
    /// Absolute, existing.
    pub paths: Vec<PathBuf>,
    /// Names and globs (`ignore_watch`), validated.
    pub ignore: Vec<String>,
    #[serde(with = "duration_ms")]
    pub delay: Duration,
}

/// A health check of each worker, run every `interval` once the worker is ready; after
/// `failures` failures in a row the worker takes no new connection and is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub check: HealthCheck,
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheck {
    /// GET this path on the worker itself (its slot's listener, reached through the
    /// shared address by steering; or its own port with `increment_var: PORT`): a 2xx or
    /// 3xx status passes.
    Http { path: String },
    /// This program, run with the worker's environment and DROVER_WORKER_PID, passes
    /// when it exits 0.
    Exec { program: PathBuf, args: Vec<String> },
}

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthCheck::Http { path } => write!(f, "GET {path}"),
            HealthCheck::Exec { program, args } => {
                write!(f, "{}", program.display())?;
                for arg in args {
                    write!(f, " {arg}")?;
                }
                Ok(())
            }
        }
    }
}

impl AppSpec {
    /// A Node app in cluster mode with no address of its own to share (no `listen:`, no
    /// `port:` or env PORT, no `increment_var`): as under PM2 and Node's cluster module,
    /// the port its workers first listen on is bound once, by the supervisor, and shared
    /// (the Node shim asks for it over the worker's IPC channel).
    pub fn shares_first_listen(&self) -> bool {
        self.exec_mode == ExecMode::Cluster
            && self.listen.is_none()
            && self.increment_var.is_none()
            && self.command.runtime() == Runtime::Node
    }
}

/// Python servers started by their own script (a console entry point of a virtualenv):
/// their workers are Python processes, which the supervisor helps as such.
const PYTHON_SERVERS: &[&str] = &["gunicorn", "uvicorn", "hypercorn", "daphne", "granian"];

/// The program and arguments of a worker, interpreter already resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// `node`, `python3`, `bash`, … or None to exec the script directly.
    pub interpreter: Option<String>,
    /// Arguments given to the interpreter before the script (PM2: interpreter_args / node_args).
    pub interpreter_args: Vec<String>,
    /// Absolute path of the script, or a bare program name found on PATH.
    pub script: PathBuf,
    /// Arguments after the script.
    pub args: Vec<String>,
}

impl Command {
    /// Which runtime the worker is, so the supervisor can help it (Node shim, Python unbuffered).
    pub fn runtime(&self) -> Runtime {
        let program = match &self.interpreter {
            Some(interp) => PathBuf::from(interp),
            None => self.script.clone(),
        };
        let base = program
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if base == "node"
            || base == "nodejs"
            || base.starts_with("node") && base[4..].chars().all(|c| c.is_ascii_digit())
        {
            Runtime::Node
        } else if base.starts_with("python") || PYTHON_SERVERS.contains(&base.as_str()) {
            Runtime::Python
        } else {
            Runtime::Other
        }
    }

    /// argv as executed: interpreter (if any), its args, the script, the script's args.
    pub fn argv(&self) -> Vec<std::ffi::OsString> {
        let mut argv = Vec::new();
        if let Some(interp) = &self.interpreter {
            argv.push(interp.into());
            argv.extend(self.interpreter_args.iter().map(Into::into));
        }
        argv.push(self.script.clone().into_os_string());
        argv.extend(self.args.iter().map(Into::into));
        argv
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Node,
    Python,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    Cluster,
    Fork,
}

impl fmt::Display for ExecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecMode::Cluster => "cluster",
            ExecMode::Fork => "fork",
        })
    }
}

/// Where the shared listener is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    /// One SO_REUSEPORT listener per worker slot, all on the same address.
    Reuseport,
    /// One listener inherited by every worker.
    Shared,
}

impl fmt::Display for SocketMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketMode::Reuseport => "reuseport",
            SocketMode::Shared => "shared",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSpec {
    /// stdout log; per-instance files get `-<i>` before the extension unless `merge`.
    pub out_file: PathBuf,
    /// stderr log; same naming rule.
    pub error_file: PathBuf,
    /// PM2's combined log: every line of stdout and stderr, as in their own files; same
    /// naming rule. None: no such file.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    pub merge: bool,
    /// PM2 moment-style format for a line prefix (`time: true` gives `YYYY-MM-DDTHH:mm:ss`).
    pub date_format: Option<String>,
    /// Built-in rotation of these files; None: drover never rotates them (`log_rotate:
    /// false`, for logrotate(8) and `drover reload-logs`).
    #[serde(default)]
    pub rotation: Option<LogRotation>,
}

/// How an app's log files rotate (pm2-logrotate's settings, built in). A file is
/// renamed `<stem>__<YYYY-MM-DD_HH-mm-ss>.<ext>` between two lines, so a line is never
/// split or lost; see `logs::rotation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// A file is rotated before a line would take it past this many bytes (a line
    /// longer than this goes alone into a file).
    pub max_size: u64,
    /// Rotated files kept per log file (at least 1); older ones are deleted.
    pub retain: u32,
    /// Also rotate at local midnight.
    pub daily: bool,
    /// gzip rotated files (off the supervisor's control loop and log writers).
    pub compress: bool,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_size: defaults::LOG_MAX_SIZE,
            retain: defaults::LOG_RETAIN,
            daily: false,
            compress: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartSpec {
    pub autorestart: bool,
    /// A worker that exits before this is an unstable restart.
    #[serde(with = "duration_ms")]
    pub min_uptime: Duration,
    /// Unstable restarts allowed before the slot is `errored`.
    pub max_restarts: u32,
    #[serde(with = "duration_ms")]
    pub restart_delay: Duration,
    /// Initial delay of PM2's exponential backoff (×1.5, capped at 15 s).
    #[serde(with = "opt_duration_ms")]
    pub exp_backoff_restart_delay: Option<Duration>,
    /// Exit codes that mean "done": no restart.
    pub stop_exit_codes: Vec<i32>,
    /// A worker is ready when it says so (`READY=1` on NOTIFY_SOCKET, or PM2's
    /// `process.send('ready')` in Node), not when it starts.
    pub wait_ready: bool,
    /// How long a new worker may take to become ready.
    #[serde(with = "duration_ms")]
    pub listen_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopSpec {
    #[serde(with = "signal_name")]
    pub kill_signal: Signal,
    #[serde(with = "duration_ms")]
    pub kill_timeout: Duration,
    /// PM2's `shutdown_with_message`: a Node worker is asked to stop with
    /// `process.send('shutdown')` on its IPC channel instead of `kill_signal` (SIGKILL still
    /// follows after `kill_timeout`).
    #[serde(default)]
    pub shutdown_with_message: bool,
}

/// PM2's defaults (lib/API/schema.json, constants.js).
pub mod defaults {
    use std::time::Duration;
    pub const KILL_TIMEOUT: Duration = Duration::from_millis(1600);
    pub const MIN_UPTIME: Duration = Duration::from_millis(1000);
    pub const MAX_RESTARTS: u32 = 16;
    pub const LISTEN_TIMEOUT: Duration = Duration::from_millis(3000);
    pub const INSTANCE_VAR: &str = "NODE_APP_INSTANCE";
    pub const EXP_BACKOFF_MAX: Duration = Duration::from_millis(15_000);
    pub const EXP_BACKOFF_RESET: Duration = Duration::from_millis(30_000);
    pub const TIME_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss";
    pub const WATCH_DELAY: Duration = Duration::from_millis(1000);
    /// PM2's: what `watch` leaves out unless `ignore_watch` says otherwise.
    pub const IGNORE_WATCH: &[&str] = &["node_modules", ".git", "logs"];
    pub const HEALTH_INTERVAL: Duration = Duration::from_millis(5000);
    pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(2000);
    pub const HEALTH_FAILURES: u32 = 3;
    /// pm2-logrotate's `max_size` and `retain`.
    pub const LOG_MAX_SIZE: u64 = 10 << 20;
    pub const LOG_RETAIN: u32 = 30;
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

mod signal_name {
    use nix::sys::signal::Signal;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::str::FromStr;
    pub fn serialize<S: Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(sig.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Signal, D::Error> {
        let name = String::deserialize(d)?;
        Signal::from_str(&name).map_err(|_| D::Error::custom(format!("unknown signal {name}")))
    }
}
