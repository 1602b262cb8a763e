//! The messages between the CLI and the supervisor: typed, versioned, one JSON object per
//! line over the control socket, each line capped at [`MAX_FRAME`] bytes.
//!
//! A client sends one [`Request`] and reads [`Response`]s until the one that ends the
//! exchange (every response but `LogLine` does; `Logs { follow: true }` streams
//! `LogLine`s until the client hangs up).
//!
//! The messages use their own types ([`AppConfig`], [`WorkerStatus`], [`ExecMode`]), not
//! the supervisor's or the config's, so that changing an internal type cannot silently
//! change the wire.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config;
use crate::supervisor::policy;

mod app;
pub use app::{AppConfig, HealthConfig, SocketMode};

/// Bumped on any incompatible change; both sides refuse a peer of another version.
pub const VERSION: u32 = 2;

/// Longest line either side accepts (a Start of many apps with big environments fits).
pub const MAX_FRAME: usize = 4 << 20;

/// What travels on the wire: the version next to the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame<T> {
    pub v: u32,
    #[serde(flatten)]
    pub msg: T,
}

/// Which apps or workers a command is about: `all`, a name, or a worker id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Target {
    All,
    Id(u32),
    Name(String),
    /// `/pattern/`: every app whose name matches (PM2's regex targets).
    Pattern(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Id(id) => write!(f, "{id}"),
            Target::Name(name) => f.write_str(name),
            Target::Pattern(p) => write!(f, "/{p}/"),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("expected an app name, a worker id or `all`".into());
        }
        Ok(if s == "all" {
            Target::All
        } else if let Some(p) = s
            .strip_prefix('/')
            .and_then(|r| r.strip_suffix('/'))
            .filter(|p| !p.is_empty())
        {
            regex_lite::Regex::new(p).map_err(|e| format!("{s}: not a valid pattern: {e}"))?;
            Target::Pattern(p.to_owned())
        } else if let Ok(id) = s.parse() {
            Target::Id(id)
        } else {
            Target::Name(s.to_owned())
        })
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Start apps (validated by the client); `env` is the caller's environment, which the
    /// workers inherit under the app's own env.
    Start {
        apps: Vec<AppConfig>,
        env: BTreeMap<String, String>,
        update_env: bool,
        /// What becomes of an app of the batch that is already running.
        #[serde(default)]
        running: OnRunning,
        /// Workers replaced at a time when running apps are reloaded (`reload FILE
        /// --parallel N`; absent from older clients: 1).
        #[serde(default = "one")]
        parallel: u32,
        /// The file's top-level `metrics:`: the supervisor serves its endpoint there
        /// (before any app of the batch starts; refused if it serves another address).
        /// Absent from older clients: none asked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics: Option<MetricsConfig>,
    },
    Stop {
        target: Target,
    },
    /// `env: Some(..)` is `--update-env`: the caller's environment replaces the stored one.
    Restart {
        target: Target,
        env: Option<BTreeMap<String, String>>,
    },
    Delete {
        target: Target,
    },
    /// Rolling replacement without a gap: `parallel` slots at a time.
    Reload {
        target: Target,
        parallel: u32,
        /// `--update-env`: the new workers get the caller's environment.
        #[serde(default)]
        env: Option<BTreeMap<String, String>>,
    },
    Scale {
        name: String,
        instances: u32,
    },
    List,
    Describe {
        target: Target,
    },
    /// The log files of the targets (for `logs`, which reads their tails itself), then,
    /// with `follow`, every new line as it is written.
    Logs {
        target: Target,
        /// Further targets (`drover logs api worker`); absent from older clients. A
        /// supervisor that predates it reads only `target`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        more: Vec<Target>,
        follow: bool,
    },
    Flush {
        target: Target,
    },
    ReloadLogs,
    /// `force`: an empty list may replace a dump that lists apps (absent from an older
    /// client: not forced).
    Save {
        #[serde(default)]
        force: bool,
    },
    Resurrect,
    Kill,
    /// PM2's `reset`: the restart counters (↺, and the count of unstable restarts in a
    /// row that leads to `errored`) of the target's workers back to 0.
    Reset {
        target: Target,
    },
    /// PM2's `sendSignal`: `signal` to the process of each of the target's workers (the
    /// one `list` shows; not its process group).
    SendSignal {
        target: Target,
        signal: SignalName,
    },
    /// PM2's `env <id>`: the environment of one worker (the target must name one).
    Env {
        target: Target,
    },
    /// `drover update`: the supervisor re-executes `binary` (absolute) in its own
    /// process, every worker kept. Understood across protocol versions ([`Stable`]).
    Update {
        binary: std::path::PathBuf,
    },
}

fn one() -> u32 {
    1
}

/// Where a file asks the supervisor to serve its metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// `127.0.0.1:9615`, `[::1]:9615`.
    pub listen: String,
    /// A non-loopback address is allowed.
    pub public: bool,
    /// Who asked: `ecosystem.yaml:3`.
    pub origin: String,
}

impl From<&config::MetricsSpec> for MetricsConfig {
    fn from(spec: &config::MetricsSpec) -> Self {
        MetricsConfig {
            listen: spec.listen.to_string(),
            public: spec.public,
            origin: spec.origin.to_string(),
        }
    }
}

impl TryFrom<MetricsConfig> for config::MetricsSpec {
    type Error = String;
    /// Checked again as the file was: a peer is not trusted with the loopback rule.
    fn try_from(c: MetricsConfig) -> Result<Self, String> {
        let listen = c
            .listen
            .parse()
            .map_err(|_| format!("{}: metrics: not an address: {:?}", c.origin, c.listen))?;
        // Only files' endpoints travel: a flag's is served where it is given.
        config::MetricsSpec::new(listen, c.public, config::MetricsOrigin::File(c.origin))
    }
}

/// `start` of an app that runs already: say so (a script: PM2's "already launched"),
/// or take the new settings and replace its workers (an ecosystem file: PM2's
/// startOrReload / startOrRestart, one command that deploys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRunning {
    #[default]
    Report,
    Reload,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Pong {
        pid: u32,
        version: String,
        /// The binary the supervisor runs (absent from older peers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        binary: Option<String>,
        /// When the supervisor started, ms since the Unix epoch (absent from older
        /// peers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at_ms: Option<u64>,
        /// Its last in-place update, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_update: Option<Box<UpdateInfo>>,
        /// Where it serves its metrics endpoint (absent: it serves none, or an older
        /// supervisor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics: Option<String>,
    },
    /// The supervisor hands itself over to `binary` (`drover update`): it stops
    /// answering for a moment; `ping` then shows update `id` done or failed.
    Updating {
        id: u64,
        pid: u32,
        from_version: String,
        binary: String,
    },
    /// Success, with a line for the user.
    Done {
        message: String,
    },
    Workers {
        workers: Vec<WorkerInfo>,
    },
    Apps {
        apps: Vec<AppInfo>,
    },
    LogFiles {
        files: Vec<LogFile>,
    },
    LogLine(LogLine),
    /// A worker's environment, as drover builds it for the process (`env`).
    Env {
        id: u32,
        app: String,
        instance: u32,
        /// The worker's pid (the environment is that process's), or null: what the next
        /// worker of the slot gets.
        pid: Option<u32>,
        vars: BTreeMap<String, String>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// One in-place update of the supervisor, as `ping` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub id: u64,
    /// When the supervisor answered again, ms since the Unix epoch.
    pub at_ms: u64,
    pub from_version: String,
    pub from_binary: String,
    pub to_binary: String,
    /// The version that runs now: the new one, or the old one when the update failed.
    pub running_version: String,
    /// How long the supervisor did not answer.
    pub took_ms: u64,
    /// Why the new binary did not take over; the old one goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The messages every version of drover understands, whatever the protocol version in
/// their frame: `ping` and `update` and their answers, so that a newly installed drover
/// can see and upgrade the supervisor an older one started. Their shapes never change
/// but by fields with defaults (`stable_messages_keep_their_shape` pins them).
pub trait Stable {
    fn is_stable(&self) -> bool;
}

impl Stable for Request {
    fn is_stable(&self) -> bool {
        matches!(self, Request::Ping | Request::Update { .. })
    }
}

impl Stable for Response {
    fn is_stable(&self) -> bool {
        matches!(
            self,
            Response::Pong { .. } | Response::Updating { .. } | Response::Error { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No app or worker matches the target.
    NotFound,
    /// `start` of a name that is already running.
    Exists,
    /// A request the supervisor cannot decode or that makes no sense.
    BadRequest,
    /// The peer speaks another protocol version.
    Version,
    /// The OS refused (bind, spawn, files), or the operation did not succeed (a reload
    /// that kept the old workers, a stop that timed out).
    Failed,
    /// The app is in the middle of another change (a delete, a scale-down): try again
    /// once it is done.
    Busy,
    /// The supervisor is stopping every app and then itself: it answers what it is
    /// asked to show, and refuses changes.
    ShuttingDown,
}

/// One worker as `list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Stable numeric id (PM2's pm_id).
    pub id: u32,
    pub name: String,
    pub instance: u32,
    pub mode: ExecMode,
    pub pid: Option<u32>,
    pub status: WorkerStatus,
    pub restarts: u32,
    pub uptime_ms: u64,
    /// Percent of one core, whole process tree.
    pub cpu: f32,
    /// RSS of the whole process tree, bytes.
    pub memory: u64,
    /// The address actually bound, e.g. "127.0.0.1:40123", or null.
    pub listen: Option<String>,
    /// It takes new connections: ready, and not failing its health check (absent from
    /// older peers: false).
    #[serde(default)]
    pub ready: bool,
    /// Why its health check or watchdog last failed, while it has not passed since.
    #[serde(default)]
    pub health: Option<String>,
    /// `restarts` by cause (absent from older peers: zeros).
    #[serde(default)]
    pub restarts_by_cause: RestartCauses,
    /// How its last worker process ended ("exit code 1", "signal SIGSEGV"), if one did.
    #[serde(default)]
    pub last_exit: Option<String>,
    /// Why it is errored (its crash loop, in numbers), or null.
    #[serde(default)]
    pub errored_why: Option<String>,
}

/// Replacements of a worker by cause; their sum is `restarts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartCauses {
    pub crash: u32,
    pub memory: u32,
    pub health: u32,
    pub reload: u32,
    pub restart: u32,
}

/// One app as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    pub spec: AppConfig,
    pub listen: Option<String>,
    pub workers: Vec<WorkerInfo>,
    /// Log lines that could not be written (disk full and the like).
    pub dropped_log_lines: u64,
    /// When `cron_restart` next reloads it (RFC 3339, local time; absent: no schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_next: Option<String>,
}

/// A worker's state as `list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Launching,
    Online,
    Stopping,
    Waiting,
    Stopped,
    Errored,
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkerStatus::Launching => "launching",
            WorkerStatus::Online => "online",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Waiting => "waiting",
            WorkerStatus::Stopped => "stopped",
            WorkerStatus::Errored => "errored",
        })
    }
}

impl From<policy::Status> for WorkerStatus {
    fn from(status: policy::Status) -> Self {
        match status {
            policy::Status::Launching => WorkerStatus::Launching,
            policy::Status::Online => WorkerStatus::Online,
            policy::Status::Stopping => WorkerStatus::Stopping,
            policy::Status::Waiting => WorkerStatus::Waiting,
            policy::Status::Stopped => WorkerStatus::Stopped,
            policy::Status::Errored => WorkerStatus::Errored,
        }
    }
}

/// How an app's workers share the port (PM2's exec_mode).
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

impl From<config::ExecMode> for ExecMode {
    fn from(mode: config::ExecMode) -> Self {
        match mode {
            config::ExecMode::Cluster => ExecMode::Cluster,
            config::ExecMode::Fork => ExecMode::Fork,
        }
    }
}

impl From<ExecMode> for config::ExecMode {
    fn from(mode: ExecMode) -> Self {
        match mode {
            ExecMode::Cluster => config::ExecMode::Cluster,
            ExecMode::Fork => config::ExecMode::Fork,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFile {
    /// The worker that writes the file; with `merged`, the first of several.
    pub id: u32,
    pub app: String,
    /// As `id`.
    pub instance: u32,
    pub stream: String,
    pub path: std::path::PathBuf,
    /// Several workers write the file (merge_logs, or apps naming one path), so its lines
    /// name no worker (absent from older supervisors: false).
    #[serde(default)]
    pub merged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub id: u32,
    pub app: String,
    pub instance: u32,
    /// "out" or "err"
    pub stream: String,
    /// RFC 3339, when the supervisor read the line.
    pub timestamp: String,
    pub message: String,
}

/// A signal on the wire: its name (`SIGUSR2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SignalName(pub nix::sys::signal::Signal);

impl From<SignalName> for String {
    fn from(s: SignalName) -> String {
        s.0.as_str().to_owned()
    }
}

impl TryFrom<String> for SignalName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(SignalName)
            .map_err(|_| format!("{s}: not a signal name"))
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Encodes one frame as a line (with its '\n').
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, T> {
        v: u32,
        #[serde(flatten)]
        msg: &'a T,
    }
    let mut line = serde_json::to_vec(&Out { v: VERSION, msg }).expect("protocol types serialize");
    line.push(b'\n');
    line
}

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "protocol version {theirs}, this drover speaks {VERSION}: run `drover kill` and retry with one version"
    )]
    Version { theirs: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Decodes one line (without its '\n'), checking the version first so a peer of another
/// version gets a version error, not a parse error; but a [`Stable`] message is read
/// whatever its version.
pub fn decode<T: serde::de::DeserializeOwned + Stable>(line: &[u8]) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        v: u32,
    }
    match serde_json::from_slice::<VersionOnly>(line) {
        Ok(VersionOnly { v }) if v != VERSION => {
            return match serde_json::from_slice::<Frame<T>>(line) {
                Ok(frame) if frame.msg.is_stable() => Ok(frame.msg),
                _ => Err(DecodeError::Version { theirs: v }),
            };
        }
        Ok(_) => {}
        Err(e) => return Err(DecodeError::Malformed(e.to_string())),
    }
    serde_json::from_slice::<Frame<T>>(line)
        .map(|f| f.msg)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_carry_the_version() {
        for req in [
            Request::Ping,
            Request::Stop {
                target: Target::Name("api".into()),
            },
            Request::Restart {
                target: Target::Id(3),
                env: None,
            },
            Request::Logs {
                target: Target::All,
                more: vec![],
                follow: true,
            },
            Request::Logs {
                target: Target::Name("api".into()),
                more: vec![Target::Id(3), Target::Pattern("^w".into())],
                follow: false,
            },
            Request::Reset {
                target: Target::Pattern("^api".into()),
            },
            Request::SendSignal {
                target: Target::Name("api".into()),
                signal: SignalName(nix::sys::signal::Signal::SIGUSR2),
            },
            Request::Env {
                target: Target::Id(0),
            },
            Request::Scale {
                name: "api".into(),
                instances: 4,
            },
            Request::Save { force: true },
        ] {
            let line = encode(&req);
            assert!(
                line.starts_with(b"{\"v\":2,"),
                "{}",
                String::from_utf8_lossy(&line)
            );
            let back: Request = decode(&line[..line.len() - 1]).unwrap();
            assert_eq!(back, req);
        }
    }

    /// What older peers send still decodes: `logs` of one target, log files that do not
    /// say whether they are merged; a signal travels by name.
    #[test]
    fn fields_added_since_version_2_have_defaults() {
        assert_eq!(
            decode::<Request>(br#"{"v":2,"cmd":"logs","target":"api","follow":true}"#),
            Ok(Request::Logs {
                target: Target::Name("api".into()),
                more: vec![],
                follow: true,
            })
        );
        let line = encode(&Request::Logs {
            target: Target::All,
            more: vec![],
            follow: false,
        });
        assert!(!String::from_utf8_lossy(&line).contains("more"));
        let files: Response = decode(
            br#"{"v":2,"reply":"log_files","files":[{"id":0,"app":"a","instance":0,"stream":"out","path":"/l/a-out.log"}]}"#,
        )
        .unwrap();
        let Response::LogFiles { files } = files else {
            panic!("{files:?}")
        };
        assert!(!files[0].merged);
        let line = encode(&Request::SendSignal {
            target: Target::Id(1),
            signal: SignalName(nix::sys::signal::Signal::SIGHUP),
        });
        assert!(String::from_utf8_lossy(&line).contains(r#""signal":"SIGHUP""#));
        assert!(matches!(
            decode::<Request>(br#"{"v":2,"cmd":"send_signal","target":"1","signal":"SIGNOPE"}"#),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// A `save` from a client that predates `--force` is not forced.
    #[test]
    fn save_without_force_is_not_forced() {
        assert_eq!(
            decode::<Request>(b"{\"v\":2,\"cmd\":\"save\"}"),
            Ok(Request::Save { force: false })
        );
    }

    /// `ping`, `update` and their answers are read across versions ([`Stable`]): their
    /// JSON is pinned here, and may only gain fields with defaults.
    #[test]
    fn stable_messages_keep_their_shape() {
        let text = |line: Vec<u8>| String::from_utf8(line).unwrap();
        assert_eq!(
            text(encode(&Request::Ping)),
            format!("{{\"v\":{VERSION},\"cmd\":\"ping\"}}\n")
        );
        assert_eq!(
            text(encode(&Request::Update {
                binary: "/usr/bin/drover".into()
            })),
            format!("{{\"v\":{VERSION},\"cmd\":\"update\",\"binary\":\"/usr/bin/drover\"}}\n")
        );
        let pong = Response::Pong {
            pid: 7,
            version: "0.1.0".into(),
            binary: Some("/usr/bin/drover".into()),
            started_at_ms: Some(1),
            last_update: Some(Box::new(UpdateInfo {
                id: 2,
                at_ms: 3,
                from_version: "0.1.0".into(),
                from_binary: "/a".into(),
                to_binary: "/b".into(),
                running_version: "0.2.0".into(),
                took_ms: 4,
                failure: Some("why".into()),
            })),
            metrics: Some("http://127.0.0.1:9615/metrics".into()),
        };
        assert_eq!(
            text(encode(&pong)),
            format!(
                "{{\"v\":{VERSION},\"reply\":\"pong\",\"pid\":7,\"version\":\"0.1.0\",\"binary\":\"/usr/bin/drover\",\"started_at_ms\":1,\"last_update\":{{\"id\":2,\"at_ms\":3,\"from_version\":\"0.1.0\",\"from_binary\":\"/a\",\"to_binary\":\"/b\",\"running_version\":\"0.2.0\",\"took_ms\":4,\"failure\":\"why\"}},\"metrics\":\"http://127.0.0.1:9615/metrics\"}}\n"
            )
        );
        assert_eq!(
            text(encode(&Response::Updating {
                id: 2,
                pid: 7,
                from_version: "0.1.0".into(),
                binary: "/b".into()
            })),
            format!(
                "{{\"v\":{VERSION},\"reply\":\"updating\",\"id\":2,\"pid\":7,\"from_version\":\"0.1.0\",\"binary\":\"/b\"}}\n"
            )
        );
        assert_eq!(
            text(encode(&Response::Error {
                kind: ErrorKind::Busy,
                message: "m".into()
            })),
            format!(
                "{{\"v\":{VERSION},\"reply\":\"error\",\"kind\":\"busy\",\"message\":\"m\"}}\n"
            )
        );
    }

    #[test]
    fn garbage_and_other_versions_are_told_apart() {
        assert!(matches!(
            decode::<Request>(b"\xff\xfe garbage"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Request>(b"{\"v\":2,\"cmd\":\"nope\"}"),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode::<Request>(b"{\"v\":3,\"cmd\":\"list\"}"),
            Err(DecodeError::Version { theirs: 3 })
        );
        // ping and update are read whatever the version (`Stable`), so a newer drover
        // can see and upgrade the running supervisor.
        assert_eq!(
            decode::<Request>(b"{\"v\":3,\"cmd\":\"ping\"}"),
            Ok(Request::Ping)
        );
        assert_eq!(
            decode::<Request>(b"{\"v\":1,\"cmd\":\"update\",\"binary\":\"/usr/bin/drover\"}"),
            Ok(Request::Update {
                binary: "/usr/bin/drover".into()
            })
        );
        assert_eq!(
            decode::<Response>(
                b"{\"v\":9,\"reply\":\"pong\",\"pid\":7,\"version\":\"9.0.0\",\"future\":1}"
            ),
            Ok(Response::Pong {
                pid: 7,
                version: "9.0.0".into(),
                binary: None,
                started_at_ms: None,
                last_update: None,
                metrics: None
            })
        );
        assert_eq!(
            decode::<Response>(b"{\"v\":9,\"reply\":\"workers\",\"workers\":[]}"),
            Err(DecodeError::Version { theirs: 9 })
        );
        assert!(matches!(
            decode::<Request>(b"[1,2]"),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// The words `list --json` has always printed.
    #[test]
    fn statuses_and_modes_keep_their_json_words() {
        use policy::Status;
        for (status, word) in [
            (Status::Launching, "launching"),
            (Status::Online, "online"),
            (Status::Stopping, "stopping"),
            (Status::Waiting, "waiting"),
            (Status::Stopped, "stopped"),
            (Status::Errored, "errored"),
        ] {
            let status = WorkerStatus::from(status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{word}\"")
            );
            assert_eq!(status.to_string(), word);
            assert_eq!(
                serde_json::from_str::<WorkerStatus>(&format!("\"{word}\"")).unwrap(),
                status
            );
        }
        for (mode, word) in [
            (config::ExecMode::Cluster, "cluster"),
            (config::ExecMode::Fork, "fork"),
        ] {
            let wire = ExecMode::from(mode);
            assert_eq!(serde_json::to_string(&wire).unwrap(), format!("\"{word}\""));
            assert_eq!(wire.to_string(), word);
            assert_eq!(wire.to_string(), mode.to_string());
            assert_eq!(config::ExecMode::from(wire), mode);
        }
    }

    #[test]
    fn targets_parse_as_all_id_or_name() {
        assert_eq!("all".parse::<Target>().unwrap(), Target::All);
        assert_eq!("12".parse::<Target>().unwrap(), Target::Id(12));
        assert_eq!("api".parse::<Target>().unwrap(), Target::Name("api".into()));
        assert!("".parse::<Target>().is_err());
        assert_eq!(
            "/^api-/".parse::<Target>().unwrap(),
            Target::Pattern("^api-".into())
        );
        assert_eq!("/^api-/".parse::<Target>().unwrap().to_string(), "/^api-/");
        assert!("/(/".parse::<Target>().is_err());
        // A lone slash is no pattern: it is a name (refused later as no such app).
        assert_eq!("/".parse::<Target>().unwrap(), Target::Name("/".into()));
    }
}
