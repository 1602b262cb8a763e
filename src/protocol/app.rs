//! An app as the protocol carries it: a flat struct of plain values, apart from
//! [`config::AppSpec`] so that reshaping the internal type cannot silently change the
//! wire. Durations are milliseconds, the signal is its name, the listen address is its
//! text form (`127.0.0.1:3000`, `[::1]:3000`, `unix:/path`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::ExecMode;
use crate::config::{self, AppSpec, ListenAddr};

/// One app in `Start` and `AppInfo`, every setting resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppConfig {
    pub name: String,
    /// Absolute path of the script, or a bare program name found on PATH.
    pub script: PathBuf,
    /// None: the script is executed itself.
    pub interpreter: Option<String>,
    pub interpreter_args: Vec<String>,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub instances: u32,
    pub exec_mode: ExecMode,
    pub env: BTreeMap<String, String>,
    /// The address asked for, in [`ListenAddr`]'s text form.
    pub listen: Option<String>,
    pub socket: SocketMode,
    pub out_file: PathBuf,
    pub error_file: PathBuf,
    /// PM2's combined log of both streams (absent from older peers: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    pub merge_logs: bool,
    pub log_date_format: Option<String>,
    /// Built-in rotation: the size a log file rotates at, in bytes, and the rotated
    /// files kept; both absent when the app's logs do not rotate (and from older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_retain: Option<u32>,
    /// Also at local midnight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_rotate_daily: bool,
    /// gzip rotated files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_compress: bool,
    pub autorestart: bool,
    pub min_uptime_ms: u64,
    pub max_restarts: u32,
    pub restart_delay_ms: u64,
    pub exp_backoff_restart_delay_ms: Option<u64>,
    pub stop_exit_codes: Vec<i32>,
    pub wait_ready: bool,
    pub listen_timeout_ms: u64,
    /// A signal name, e.g. `SIGINT`.
    pub kill_signal: String,
    pub kill_timeout_ms: u64,
    #[serde(default)]
    pub shutdown_with_message: bool,
    pub instance_var: String,
    pub increment_var: Option<String>,
    /// Bytes.
    pub max_memory_restart: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
}

/// `watch:` on the wire (and in `describe --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchConfig {
    pub paths: Vec<PathBuf>,
    pub ignore: Vec<String>,
    pub delay_ms: u64,
}

/// `health:` on the wire (and in the dump): `http` or `exec`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// The program, then its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub failures: u32,
}

impl From<&config::HealthSpec> for HealthConfig {
    fn from(h: &config::HealthSpec) -> Self {
        let (http, exec) = match &h.check {
            config::HealthCheck::Http { path } => (Some(path.clone()), None),
            config::HealthCheck::Exec { program, args } => {
                let mut words = vec![program.to_string_lossy().into_owned()];
                words.extend(args.iter().cloned());
                (None, Some(words))
            }
        };
        HealthConfig {
            http,
            exec,
            interval_ms: millis(h.interval),
            timeout_ms: millis(h.timeout),
            failures: h.failures,
        }
    }
}

impl TryFrom<HealthConfig> for config::HealthSpec {
    type Error = String;
    fn try_from(h: HealthConfig) -> Result<Self, String> {
        let check = match (h.http, h.exec) {
            (Some(path), None) => config::HealthCheck::Http { path },
            (None, Some(mut words)) if !words.is_empty() => {
                let program = PathBuf::from(words.remove(0));
                config::HealthCheck::Exec {
                    program,
                    args: words,
                }
            }
            _ => return Err("health: give http or exec".into()),
        };
        Ok(config::HealthSpec {
            check,
            interval: Duration::from_millis(h.interval_ms),
            timeout: Duration::from_millis(h.timeout_ms),
            failures: h.failures,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    Reuseport,
    Shared,
}

impl std::fmt::Display for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SocketMode::Reuseport => "reuseport",
            SocketMode::Shared => "shared",
        })
    }
}

impl From<config::SocketMode> for SocketMode {
    fn from(mode: config::SocketMode) -> Self {
        match mode {
            config::SocketMode::Reuseport => SocketMode::Reuseport,
            config::SocketMode::Shared => SocketMode::Shared,
        }
    }
}

impl From<SocketMode> for config::SocketMode {
    fn from(mode: SocketMode) -> Self {
        match mode {
            SocketMode::Reuseport => config::SocketMode::Reuseport,
            SocketMode::Shared => config::SocketMode::Shared,
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl From<&AppSpec> for AppConfig {
    fn from(spec: &AppSpec) -> Self {
        let AppSpec {
            name,
            command,
            cwd,
            instances,
            exec_mode,
            env,
            listen,
            socket,
            logs,
            restart,
            stop,
            instance_var,
            increment_var,
            max_memory_restart,
            watchdog,
            health,
            watch,
            cron_restart,
        } = spec;
        AppConfig {
            name: name.clone(),
            script: command.script.clone(),
            interpreter: command.interpreter.clone(),
            interpreter_args: command.interpreter_args.clone(),
            args: command.args.clone(),
            cwd: cwd.clone(),
            instances: *instances,
            exec_mode: (*exec_mode).into(),
            env: env.clone(),
            listen: listen.as_ref().map(ListenAddr::to_string),
            socket: (*socket).into(),
            out_file: logs.out_file.clone(),
            error_file: logs.error_file.clone(),
            log_file: logs.log_file.clone(),
            merge_logs: logs.merge,
            log_date_format: logs.date_format.clone(),
            log_max_size: logs.rotation.map(|r| r.max_size),
            log_retain: logs.rotation.map(|r| r.retain),
            log_rotate_daily: logs.rotation.is_some_and(|r| r.daily),
            log_compress: logs.rotation.is_some_and(|r| r.compress),
            autorestart: restart.autorestart,
            min_uptime_ms: millis(restart.min_uptime),
            max_restarts: restart.max_restarts,
            restart_delay_ms: millis(restart.restart_delay),
            exp_backoff_restart_delay_ms: restart.exp_backoff_restart_delay.map(millis),
            stop_exit_codes: restart.stop_exit_codes.clone(),
            wait_ready: restart.wait_ready,
            listen_timeout_ms: millis(restart.listen_timeout),
            kill_signal: stop.kill_signal.as_str().to_owned(),
            kill_timeout_ms: millis(stop.kill_timeout),
            shutdown_with_message: stop.shutdown_with_message,
            instance_var: instance_var.clone(),
            increment_var: increment_var.clone(),
            max_memory_restart: *max_memory_restart,
            watchdog_ms: watchdog.map(millis),
            health: health.as_ref().map(HealthConfig::from),
            watch: watch.as_ref().map(|w| WatchConfig {
                paths: w.paths.clone(),
                ignore: w.ignore.clone(),
                delay_ms: millis(w.delay),
            }),
            cron_restart: cron_restart.clone(),
        }
    }
}

/// The error is one line for the peer: a bad value from the wire is a bad request.
impl TryFrom<AppConfig> for AppSpec {
    type Error = String;
    fn try_from(app: AppConfig) -> Result<Self, String> {
        let listen = app
            .listen
            .as_deref()
            .map(parse_listen)
            .transpose()
            .map_err(|e| format!("app {}: listen: {e}", app.name))?;
        let rotation = match (app.log_max_size, app.log_retain) {
            (Some(max_size), Some(retain)) if max_size > 0 && retain > 0 => {
                Some(config::LogRotation {
                    max_size,
                    retain,
                    daily: app.log_rotate_daily,
                    compress: app.log_compress,
                })
            }
            (None, None) if !app.log_rotate_daily && !app.log_compress => None,
            _ => {
                return Err(format!(
                    "app {}: log rotation needs log_max_size and log_retain, both above 0",
                    app.name
                ));
            }
        };
        let kill_signal = Signal::from_str(&app.kill_signal).map_err(|_| {
            format!(
                "app {}: unknown kill_signal {:?}",
                app.name, app.kill_signal
            )
        })?;
        Ok(AppSpec {
            command: config::Command {
                interpreter: app.interpreter,
                interpreter_args: app.interpreter_args,
                script: app.script,
                args: app.args,
            },
            cwd: app.cwd,
            instances: app.instances,
            exec_mode: app.exec_mode.into(),
            env: app.env,
            listen,
            socket: app.socket.into(),
            logs: config::LogSpec {
                out_file: app.out_file,
                error_file: app.error_file,
                log_file: app.log_file,
                merge: app.merge_logs,
                date_format: app.log_date_format,
                rotation,
            },
            restart: config::RestartSpec {
                autorestart: app.autorestart,
                min_uptime: Duration::from_millis(app.min_uptime_ms),
                max_restarts: app.max_restarts,
                restart_delay: Duration::from_millis(app.restart_delay_ms),
                exp_backoff_restart_delay: app
                    .exp_backoff_restart_delay_ms
                    .map(Duration::from_millis),
                stop_exit_codes: app.stop_exit_codes,
                wait_ready: app.wait_ready,
                listen_timeout: Duration::from_millis(app.listen_timeout_ms),
            },
            stop: config::StopSpec {
                kill_signal,
                kill_timeout: Duration::from_millis(app.kill_timeout_ms),
                shutdown_with_message: app.shutdown_with_message,
            },
            instance_var: app.instance_var,
            increment_var: app.increment_var,
            max_memory_restart: app.max_memory_restart,
            watchdog: app.watchdog_ms.map(Duration::from_millis),
            health: app
                .health
                .map(config::HealthSpec::try_from)
                .transpose()
                .map_err(|e| format!("app {}: {e}", app.name))?,
            watch: app.watch.map(|w| config::WatchSpec {
                paths: w.paths,
                ignore: w.ignore,
                delay: Duration::from_millis(w.delay_ms),
            }),
            cron_restart: app.cron_restart,
            name: app.name,
        })
    }
}

/// The inverse of [`ListenAddr`]'s `Display`: only the resolved forms, no bare port or
/// host name (the client resolved those already).
fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() || path.contains('\0') {
            return Err(format!("bad unix socket path {text:?}"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    SocketAddr::from_str(text)
        .map(ListenAddr::Tcp)
        .map_err(|_| format!("expected ip:port or unix:/path, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set to something other than its default, so a field dropped or
    /// renamed on either side shows.
    fn spec() -> AppSpec {
        AppSpec {
            name: "api".into(),
            command: config::Command {
                interpreter: Some("node".into()),
                interpreter_args: vec!["--max-old-space-size=512".into()],
                script: "/srv/api/server.js".into(),
                args: vec!["--port".into(), "two words".into()],
            },
            cwd: "/srv/api".into(),
            instances: 4,
            exec_mode: config::ExecMode::Cluster,
            env: BTreeMap::from([
                ("NODE_ENV".into(), "production".into()),
                ("PORT".into(), "3000".into()),
            ]),
            listen: Some(ListenAddr::Tcp("[::1]:3000".parse().unwrap())),
            socket: config::SocketMode::Shared,
            logs: config::LogSpec {
                out_file: "/home/u/.drover/logs/api-out.log".into(),
                error_file: "/home/u/.drover/logs/api-error.log".into(),
                log_file: Some("/home/u/.drover/logs/api.log".into()),
                merge: true,
                date_format: Some("YYYY-MM-DD HH:mm:ss Z".into()),
                rotation: Some(config::LogRotation {
                    max_size: 1 << 20,
                    retain: 5,
                    daily: true,
                    compress: true,
                }),
            },
            restart: config::RestartSpec {
                autorestart: false,
                min_uptime: Duration::from_millis(1500),
                max_restarts: 7,
                restart_delay: Duration::from_millis(250),
                exp_backoff_restart_delay: Some(Duration::from_millis(100)),
                stop_exit_codes: vec![0, 2],
                wait_ready: true,
                listen_timeout: Duration::from_millis(8000),
            },
            stop: config::StopSpec {
                kill_signal: Signal::SIGTERM,
                kill_timeout: Duration::from_millis(5000),
                shutdown_with_message: false,
            },
            instance_var: "INSTANCE_ID".into(),
            increment_var: Some("PORT".into()),
            max_memory_restart: Some(512 << 20),
            watchdog: Some(Duration::from_millis(10_000)),
            health: Some(config::HealthSpec {
                check: config::HealthCheck::Http {
                    path: "/health".into(),
                },
                interval: Duration::from_millis(5000),
                timeout: Duration::from_millis(2000),
                failures: 3,
            }),
            watch: Some(config::WatchSpec {
                paths: vec!["/srv/api/src".into()],
                ignore: vec!["node_modules".into(), "*.log".into()],
                delay: Duration::from_millis(500),
            }),
            cron_restart: Some("0 3 * * *".into()),
        }
    }

    /// The wire form of [`spec`], checked in: a change here is a protocol change.
    const GOLDEN: &str = concat!(
        r#"{"name":"api","script":"/srv/api/server.js","interpreter":"node","#,
        r#""interpreter_args":["--max-old-space-size=512"],"args":["--port","two words"],"#,
        r#""cwd":"/srv/api","instances":4,"exec_mode":"cluster","#,
        r#""env":{"NODE_ENV":"production","PORT":"3000"},"listen":"[::1]:3000","#,
        r#""socket":"shared","out_file":"/home/u/.drover/logs/api-out.log","#,
        r#""error_file":"/home/u/.drover/logs/api-error.log","#,
        r#""log_file":"/home/u/.drover/logs/api.log","merge_logs":true,"#,
        r#""log_date_format":"YYYY-MM-DD HH:mm:ss Z","log_max_size":1048576,"log_retain":5,"#,
        r#""log_rotate_daily":true,"log_compress":true,"autorestart":false,"#,
        r#""min_uptime_ms":1500,"max_restarts":7,"restart_delay_ms":250,"#,
        r#""exp_backoff_restart_delay_ms":100,"stop_exit_codes":[0,2],"wait_ready":true,"#,
        r#""listen_timeout_ms":8000,"kill_signal":"SIGTERM","kill_timeout_ms":5000,"shutdown_with_message":false,"#,
        r#""instance_var":"INSTANCE_ID","increment_var":"PORT","max_memory_restart":536870912,"#,
        r#""watchdog_ms":10000,"health":{"http":"/health","interval_ms":5000,"timeout_ms":2000,"failures":3},"#,
        r#""watch":{"paths":["/srv/api/src"],"ignore":["node_modules","*.log"],"delay_ms":500},"cron_restart":"0 3 * * *"}"#,
    );

    #[test]
    fn a_spec_encodes_to_the_golden_text_and_decodes_back_equal() {
        let text = serde_json::to_string(&AppConfig::from(&spec())).unwrap();
        assert_eq!(text, GOLDEN);
        let decoded: AppConfig = serde_json::from_str(GOLDEN).unwrap();
        assert_eq!(AppSpec::try_from(decoded), Ok(spec()));
    }

    #[test]
    fn unset_options_and_unix_addresses_round_trip() {
        let mut spec = spec();
        spec.command.interpreter = None;
        spec.listen = Some(ListenAddr::Unix("/run/api.sock".into()));
        spec.logs.date_format = None;
        spec.restart.exp_backoff_restart_delay = None;
        spec.increment_var = None;
        spec.max_memory_restart = None;
        spec.logs.rotation = None;
        let config = AppConfig::from(&spec);
        assert_eq!(config.listen.as_deref(), Some("unix:/run/api.sock"));
        assert_eq!(AppSpec::try_from(config), Ok(spec.clone()));
        spec.listen = None;
        assert_eq!(AppSpec::try_from(AppConfig::from(&spec)), Ok(spec));
    }

    /// A peer from before log rotation sends none of its fields: the app does not rotate.
    #[test]
    fn an_older_peer_without_rotation_fields_parses_as_no_rotation() {
        let older = GOLDEN.replace(
            r#""log_max_size":1048576,"log_retain":5,"log_rotate_daily":true,"log_compress":true,"#,
            "",
        );
        assert_ne!(older, GOLDEN);
        let decoded: AppConfig = serde_json::from_str(&older).unwrap();
        let mut want = spec();
        want.logs.rotation = None;
        assert_eq!(AppSpec::try_from(decoded), Ok(want));
        // Half a rotation is a bad request, not a guess.
        for (size, retain) in [
            (Some(1), None),
            (None, Some(3)),
            (Some(0), Some(3)),
            (Some(1), Some(0)),
        ] {
            let mut app = AppConfig::from(&spec());
            app.log_max_size = size;
            app.log_retain = retain;
            let err = AppSpec::try_from(app).unwrap_err();
            assert!(err.contains("log rotation"), "{err}");
        }
    }

    #[test]
    fn a_bad_signal_or_address_from_a_peer_is_an_error_not_a_panic() {
        let good = AppConfig::from(&spec());
        for (field, bad) in [
            ("kill_signal", "SIGNOPE"),
            ("kill_signal", ""),
            ("listen", "3000"),
            ("listen", "localhost:3000"),
            ("listen", "unix:"),
            ("listen", "999.0.0.1:80"),
        ] {
            let mut app = good.clone();
            match field {
                "kill_signal" => app.kill_signal = bad.into(),
                _ => app.listen = Some(bad.into()),
            }
            let err = AppSpec::try_from(app).unwrap_err();
            assert!(err.starts_with("app api: ") && err.contains(field), "{err}");
        }
    }
}
