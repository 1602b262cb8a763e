//! `save` / `resurrect`: the running apps (spec and inherited environment) in
//! `$DROVER_HOME/dump.yaml`, mode 0600 (environments hold secrets).
//!
//! The file has a layout of its own ([`FORMAT`], the private `*Record` types below),
//! converted explicitly from and to [`AppSpec`]: a change to `AppSpec` fails to compile
//! here rather than silently changing what is on disk. A dump is precious (PM2 issue
//! #2653: users lost theirs to a save of an empty list), so:
//! - a dump that cannot be read (damaged, of a future format, a symlink) is an error
//!   naming the file, and is never replaced;
//! - a dump listing apps is not replaced by an empty list unless forced;
//! - writing is a temp file (O_CREAT|O_EXCL|O_NOFOLLOW), fsync, rename, with the
//!   previous dump kept as `dump.yaml.bak`; reading opens with O_NOFOLLOW.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::config::{
    AppSpec, Command, ExecMode, HealthCheck, HealthSpec, ListenAddr, LogRotation, LogSpec,
    RestartSpec, SocketMode, StopSpec, WatchSpec,
};

pub const FILE: &str = "dump.yaml";

/// The layout of the file. Bump it on any change that a reader of the previous format
/// would misread or refuse; a drover refuses (and keeps) a dump of a format above its own.
pub const FORMAT: u32 = 1;

/// One saved app: what `resurrect` starts again.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedApp {
    pub spec: AppSpec,
    /// The environment its workers inherited (of the `start` that launched it).
    pub env: BTreeMap<String, String>,
    /// Every worker was stopped when it was saved: `resurrect` lists it, stopped (PM2).
    pub stopped: bool,
}

pub fn path(home: &Path) -> PathBuf {
    home.join(FILE)
}

/// Writes the dump; returns its path. Refuses to replace a dump that cannot be read, and,
/// unless `force`, one that lists apps with an empty list.
pub fn save(home: &Path, apps: &[SavedApp], force: bool) -> anyhow::Result<PathBuf> {
    let target = path(home);
    if let Some(text) = read_no_follow(&target)? {
        let previous = decode(&text).map_err(|e| {
            anyhow!(
                "{}: {e}; it is kept as it is (move it away to save anew)",
                target.display()
            )
        })?;
        if apps.is_empty() && !previous.is_empty() && !force {
            bail!(
                "no app is running, and {} holds {} app{}: not replacing it with an empty list (`drover save --force` does)",
                target.display(),
                previous.len(),
                if previous.len() == 1 { "" } else { "s" }
            );
        }
    }
    let text = encode(apps, env!("CARGO_PKG_VERSION"))?;
    let (tmp, mut file) = create_temp(home)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("cannot write {}", tmp.display())));
    }
    if std::fs::symlink_metadata(&target).is_ok() {
        let bak = home.join(format!("{FILE}.bak"));
        let _ = std::fs::remove_file(&bak);
        if let Err(e) = std::fs::hard_link(&target, &bak) {
            let _ = std::fs::remove_file(&tmp);
            return Err(anyhow::Error::new(e).context(format!("cannot keep {}", bak.display())));
        }
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("cannot replace {}", target.display())));
    }
    // The rename itself must reach the disk.
    if let Ok(dir) = std::fs::File::open(home) {
        let _ = dir.sync_all();
    }
    Ok(target)
}

/// What `load` found: the apps, and, when they came from `dump.yaml.bak`, why.
#[derive(Debug)]
pub struct Loaded {
    pub apps: Vec<SavedApp>,
    /// Set when the dump was missing or damaged and the previous one was read instead.
    pub from_backup: Option<String>,
}

/// Reads the dump; when it is missing or damaged, the previous one (`dump.yaml.bak`),
/// and a damaged dump is moved aside to `dump.yaml.damaged` (so it is kept, and the next
/// `save` may write a new one). A dump of a future format, or a symlink, is refused
/// without falling back: neither is damage, and the backup would be older news.
pub fn load(home: &Path) -> anyhow::Result<Loaded> {
    let path = path(home);
    let problem = match read_no_follow(&path)? {
        None => format!("{} does not exist", path.display()),
        Some(text) => match decode(&text) {
            Ok(apps) => {
                return Ok(Loaded {
                    apps,
                    from_backup: None,
                });
            }
            Err(e) if is_future_format(&text) => {
                bail!(
                    "cannot resurrect: {}: {e}; it is left as it is",
                    path.display()
                )
            }
            Err(e) => format!("{}: {e}", path.display()),
        },
    };
    let bak = home.join(format!("{FILE}.bak"));
    let backup = match read_no_follow(&bak) {
        Ok(Some(text)) => decode(&text).ok(),
        _ => None,
    };
    let Some(apps) = backup else {
        if path.exists() {
            bail!(
                "cannot resurrect: {problem}; it is left as it is (and no readable {} to fall back on)",
                bak.display()
            );
        }
        bail!("nothing to resurrect: {problem} (`drover save` writes it)");
    };
    let mut note = format!("{problem}: read {} instead", bak.display());
    if path.exists() {
        let aside = home.join(format!("{FILE}.damaged"));
        match std::fs::rename(&path, &aside) {
            Ok(()) => note.push_str(&format!("; the damaged one is kept as {}", aside.display())),
            Err(e) => note.push_str(&format!("; cannot move the damaged one aside: {e}")),
        }
    }
    Ok(Loaded {
        apps,
        from_backup: Some(note),
    })
}

/// Whether `text` is a dump of a format newer than this drover's.
fn is_future_format(text: &str) -> bool {
    yaml_serde::from_str::<HeaderRecord>(text)
        .ok()
        .and_then(|h| h.format?.as_u64())
        .is_some_and(|f| f > u64::from(FORMAT))
}

/// The file's text, `None` if there is none. A symlink is refused: the dump is written
/// by us, in a directory of ours, and a link there is someone else's doing.
fn read_no_follow(path: &Path) -> anyhow::Result<Option<String>> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => bail!(
            "{} is a symbolic link; refusing to follow it (drover writes the dump itself: remove the link)",
            path.display()
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text))
}

/// A new file next to the dump, created with O_EXCL and O_NOFOLLOW (so nothing already
/// there, file or link, is written through), mode 0600.
fn create_temp(home: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0u32;
    loop {
        let tmp = home.join(format!(
            ".{FILE}.{}.{nanos}.{attempt}.tmp",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            // A leftover of a save that died at this point, with the same pid.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot create {}", tmp.display()))
                );
            }
        }
    }
}

/// The file as written on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpRecord {
    format: u32,
    /// The drover version that wrote it (for messages).
    drover: String,
    apps: Vec<AppRecord>,
}

/// What is read before anything else: which format the rest is in.
#[derive(Debug, Deserialize)]
struct HeaderRecord {
    format: Option<yaml_serde::Value>,
    drover: Option<yaml_serde::Value>,
}

/// One app, flat, every setting spelled out (durations in ms, sizes in bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppRecord {
    name: String,
    script: PathBuf,
    interpreter: Option<String>,
    interpreter_args: Vec<String>,
    args: Vec<String>,
    cwd: PathBuf,
    instances: u32,
    exec_mode: ExecModeRecord,
    /// The app's own environment.
    env: BTreeMap<String, String>,
    /// `host:port`, `[v6]:port` or `unix:/path`.
    listen: Option<String>,
    socket: SocketRecord,
    out_file: PathBuf,
    error_file: PathBuf,
    /// Left out when there is none, so a dump without one stays readable by a drover
    /// that predates the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_file: Option<PathBuf>,
    merge_logs: bool,
    log_date_format: Option<String>,
    /// Log rotation: bytes a file rotates at, and rotated files kept; left out (as
    /// `log_file`) when the app's logs do not rotate, so a dump from before rotation
    /// loads as it was saved, without rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_max_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_retain: Option<u32>,
    /// Left out unless true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    log_rotate_daily: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    log_compress: bool,
    autorestart: bool,
    min_uptime_ms: u64,
    max_restarts: u32,
    restart_delay_ms: u64,
    exp_backoff_restart_delay_ms: Option<u64>,
    stop_exit_codes: Vec<i32>,
    wait_ready: bool,
    listen_timeout_ms: u64,
    /// `SIGINT`, `SIGTERM`, …
    kill_signal: String,
    kill_timeout_ms: u64,
    #[serde(default)]
    shutdown_with_message: bool,
    instance_var: String,
    increment_var: Option<String>,
    /// Bytes.
    max_memory_restart: Option<u64>,
    /// The environment the workers inherited, under `env`.
    inherited_env: BTreeMap<String, String>,
    /// Left out unless true, as `log_file`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    stopped: bool,
    /// Left out when there is none, as `log_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watchdog_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<HealthRecord>,
    /// Left out when there is none, as `log_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watch: Option<WatchRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron_restart: Option<String>,
}

/// `watch:`, as the dump keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchRecord {
    paths: Vec<PathBuf>,
    ignore: Vec<String>,
    delay_ms: u64,
}

/// `health:`, as the dump keeps it: `http`, or `exec` (program then arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<Vec<String>>,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
}

impl HealthRecord {
    fn from_spec(h: &HealthSpec) -> HealthRecord {
        let (http, exec) = match &h.check {
            HealthCheck::Http { path } => (Some(path.clone()), None),
            HealthCheck::Exec { program, args } => {
                let mut words = vec![program.to_string_lossy().into_owned()];
                words.extend(args.iter().cloned());
                (None, Some(words))
            }
        };
        HealthRecord {
            http,
            exec,
            interval_ms: millis(h.interval),
            timeout_ms: millis(h.timeout),
            failures: h.failures,
        }
    }

    fn into_spec(self) -> anyhow::Result<HealthSpec> {
        let check = match (self.http, self.exec) {
            (Some(path), None) => HealthCheck::Http { path },
            (None, Some(mut words)) if !words.is_empty() => HealthCheck::Exec {
                program: PathBuf::from(words.remove(0)),
                args: words,
            },
            _ => bail!("health: one of http and exec"),
        };
        Ok(HealthSpec {
            check,
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            failures: self.failures,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ExecModeRecord {
    Cluster,
    Fork,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SocketRecord {
    Reuseport,
    Shared,
}

fn encode(apps: &[SavedApp], written_by: &str) -> anyhow::Result<String> {
    let dump = DumpRecord {
        format: FORMAT,
        drover: written_by.to_owned(),
        apps: apps
            .iter()
            .map(AppRecord::from_saved)
            .collect::<anyhow::Result<_>>()?,
    };
    yaml_serde::to_string(&dump).context("cannot encode the dump")
}

/// The apps of a dump's text; the error says why it cannot be read (without the file's
/// name, which the caller adds).
fn decode(text: &str) -> anyhow::Result<Vec<SavedApp>> {
    let header: HeaderRecord = yaml_serde::from_str(text)
        .map_err(|e| anyhow!("not a dump (format:, drover:, apps:): {e}"))?;
    let written_by = match &header.drover {
        Some(yaml_serde::Value::String(v)) => format!("drover {v}"),
        _ => "an unknown drover".to_owned(),
    };
    let format = match &header.format {
        None => bail!(
            "no `format:` (written by {written_by}, before dumps had one?): this drover reads format {FORMAT}"
        ),
        Some(v) => v.as_u64().ok_or_else(|| {
            anyhow!("`format:` is not a number; this drover reads format {FORMAT}")
        })?,
    };
    if format > u64::from(FORMAT) {
        bail!(
            "written in format {format} by {written_by}; this drover ({}) reads format {FORMAT}: upgrade drover",
            env!("CARGO_PKG_VERSION")
        );
    }
    if format != u64::from(FORMAT) {
        bail!("unknown format {format}; this drover reads format {FORMAT}");
    }
    let dump: DumpRecord = yaml_serde::from_str(text).map_err(|e| anyhow!("damaged: {e}"))?;
    dump.apps
        .into_iter()
        .enumerate()
        .map(|(i, app)| {
            let name = app.name.clone();
            app.into_saved()
                .map_err(|e| anyhow!("damaged: app #{} ({name}): {e}", i + 1))
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl AppRecord {
    fn from_saved(saved: &SavedApp) -> anyhow::Result<AppRecord> {
        // Every field named: a field added to AppSpec does not compile until the dump
        // says what becomes of it.
        let AppSpec {
            name,
            command:
                Command {
                    interpreter,
                    interpreter_args,
                    script,
                    args,
                },
            cwd,
            instances,
            exec_mode,
            env,
            listen,
            socket,
            logs:
                LogSpec {
                    out_file,
                    error_file,
                    log_file,
                    merge,
                    date_format,
                    rotation,
                },
            restart:
                RestartSpec {
                    autorestart,
                    min_uptime,
                    max_restarts,
                    restart_delay,
                    exp_backoff_restart_delay,
                    stop_exit_codes,
                    wait_ready,
                    listen_timeout,
                },
            stop:
                StopSpec {
                    kill_signal,
                    kill_timeout,
                    shutdown_with_message,
                },
            instance_var,
            increment_var,
            max_memory_restart,
            watchdog,
            health,
            watch,
            cron_restart,
        } = &saved.spec;
        let listen = match listen {
            None => None,
            Some(ListenAddr::Tcp(addr)) => Some(addr.to_string()),
            Some(ListenAddr::Unix(path)) => Some(format!(
                "unix:{}",
                path.to_str()
                    .ok_or_else(|| anyhow!("app {name}: its socket path is not UTF-8"))?
            )),
        };
        Ok(AppRecord {
            name: name.clone(),
            script: script.clone(),
            interpreter: interpreter.clone(),
            interpreter_args: interpreter_args.clone(),
            args: args.clone(),
            cwd: cwd.clone(),
            instances: *instances,
            exec_mode: match exec_mode {
                ExecMode::Cluster => ExecModeRecord::Cluster,
                ExecMode::Fork => ExecModeRecord::Fork,
            },
            env: env.clone(),
            listen,
            socket: match socket {
                SocketMode::Reuseport => SocketRecord::Reuseport,
                SocketMode::Shared => SocketRecord::Shared,
            },
            out_file: out_file.clone(),
            error_file: error_file.clone(),
            log_file: log_file.clone(),
            merge_logs: *merge,
            log_date_format: date_format.clone(),
            log_max_size: rotation.map(|r| r.max_size),
            log_retain: rotation.map(|r| r.retain),
            log_rotate_daily: rotation.is_some_and(|r| r.daily),
            log_compress: rotation.is_some_and(|r| r.compress),
            autorestart: *autorestart,
            min_uptime_ms: millis(*min_uptime),
            max_restarts: *max_restarts,
            restart_delay_ms: millis(*restart_delay),
            exp_backoff_restart_delay_ms: exp_backoff_restart_delay.map(millis),
            stop_exit_codes: stop_exit_codes.clone(),
            wait_ready: *wait_ready,
            listen_timeout_ms: millis(*listen_timeout),
            kill_signal: kill_signal.as_str().to_owned(),
            kill_timeout_ms: millis(*kill_timeout),
            shutdown_with_message: *shutdown_with_message,
            instance_var: instance_var.clone(),
            increment_var: increment_var.clone(),
            max_memory_restart: *max_memory_restart,
            inherited_env: saved.env.clone(),
            stopped: saved.stopped,
            watchdog_ms: watchdog.map(millis),
            health: health.as_ref().map(HealthRecord::from_spec),
            watch: watch.as_ref().map(|w| WatchRecord {
                paths: w.paths.clone(),
                ignore: w.ignore.clone(),
                delay_ms: millis(w.delay),
            }),
            cron_restart: cron_restart.clone(),
        })
    }

    fn into_saved(self) -> anyhow::Result<SavedApp> {
        let listen = match self.listen {
            None => None,
            Some(text) => Some(match text.strip_prefix("unix:") {
                Some(path) => ListenAddr::Unix(PathBuf::from(path)),
                None => ListenAddr::Tcp(SocketAddr::from_str(&text).map_err(|_| {
                    anyhow!("listen: {text:?} is neither host:port nor unix:/path")
                })?),
            }),
        };
        let kill_signal = Signal::from_str(&self.kill_signal)
            .map_err(|_| anyhow!("kill_signal: unknown signal {:?}", self.kill_signal))?;
        let rotation = match (self.log_max_size, self.log_retain) {
            (Some(max_size), Some(retain)) if max_size > 0 && retain > 0 => Some(LogRotation {
                max_size,
                retain,
                daily: self.log_rotate_daily,
                compress: self.log_compress,
            }),
            (None, None) if !self.log_rotate_daily && !self.log_compress => None,
            _ => bail!("log rotation needs log_max_size and log_retain, both above 0"),
        };
        let spec = AppSpec {
            name: self.name,
            command: Command {
                interpreter: self.interpreter,
                interpreter_args: self.interpreter_args,
                script: self.script,
                args: self.args,
            },
            cwd: self.cwd,
            instances: self.instances,
            exec_mode: match self.exec_mode {
                ExecModeRecord::Cluster => ExecMode::Cluster,
                ExecModeRecord::Fork => ExecMode::Fork,
            },
            env: self.env,
            listen,
            socket: match self.socket {
                SocketRecord::Reuseport => SocketMode::Reuseport,
                SocketRecord::Shared => SocketMode::Shared,
            },
            logs: LogSpec {
                out_file: self.out_file,
                error_file: self.error_file,
                log_file: self.log_file,
                merge: self.merge_logs,
                date_format: self.log_date_format,
                rotation,
            },
            restart: RestartSpec {
                autorestart: self.autorestart,
                min_uptime: Duration::from_millis(self.min_uptime_ms),
                max_restarts: self.max_restarts,
                restart_delay: Duration::from_millis(self.restart_delay_ms),
                exp_backoff_restart_delay: self
                    .exp_backoff_restart_delay_ms
                    .map(Duration::from_millis),
                stop_exit_codes: self.stop_exit_codes,
                wait_ready: self.wait_ready,
                listen_timeout: Duration::from_millis(self.listen_timeout_ms),
            },
            stop: StopSpec {
                kill_signal,
                kill_timeout: Duration::from_millis(self.kill_timeout_ms),
                shutdown_with_message: self.shutdown_with_message,
            },
            instance_var: self.instance_var,
            increment_var: self.increment_var,
            max_memory_restart: self.max_memory_restart,
            watchdog: self.watchdog_ms.map(Duration::from_millis),
            health: self.health.map(HealthRecord::into_spec).transpose()?,
            watch: self.watch.map(|w| WatchSpec {
                paths: w.paths,
                ignore: w.ignore,
                delay: Duration::from_millis(w.delay_ms),
            }),
            cron_restart: self.cron_restart,
        };
        Ok(SavedApp {
            spec,
            env: self.inherited_env,
            stopped: self.stopped,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The format-1 text of [`golden_apps`], as checked in: if this test fails, the file
    /// format changed. Either that is a mistake, or it is a new format: bump [`FORMAT`].
    const GOLDEN: &str = include_str!("testdata/dump-format-1.yaml");

    /// Two apps that between them set every setting, and leave every optional one unset.
    fn golden_apps() -> Vec<SavedApp> {
        let api = AppSpec {
            name: "api".into(),
            command: Command {
                interpreter: Some("node".into()),
                interpreter_args: vec!["--max-old-space-size=512".into()],
                script: "/srv/api/server.js".into(),
                args: vec!["--port".into(), "3000".into()],
            },
            cwd: "/srv/api".into(),
            instances: 4,
            exec_mode: ExecMode::Cluster,
            env: BTreeMap::from([("NODE_ENV".into(), "production".into())]),
            listen: Some(ListenAddr::Tcp("127.0.0.1:3000".parse().unwrap())),
            socket: SocketMode::Reuseport,
            logs: LogSpec {
                out_file: "/var/log/api-out.log".into(),
                error_file: "/var/log/api-error.log".into(),
                log_file: Some("/var/log/api.log".into()),
                merge: true,
                date_format: Some("YYYY-MM-DD HH:mm:ss Z".into()),
                rotation: Some(LogRotation {
                    max_size: 10 << 20,
                    retain: 30,
                    daily: true,
                    compress: true,
                }),
            },
            restart: RestartSpec {
                autorestart: true,
                min_uptime: Duration::from_millis(1000),
                max_restarts: 16,
                restart_delay: Duration::from_millis(250),
                exp_backoff_restart_delay: Some(Duration::from_millis(100)),
                stop_exit_codes: vec![0, 3],
                wait_ready: true,
                listen_timeout: Duration::from_millis(3000),
            },
            stop: StopSpec {
                kill_signal: Signal::SIGTERM,
                kill_timeout: Duration::from_millis(1600),
                shutdown_with_message: false,
            },
            instance_var: "NODE_APP_INSTANCE".into(),
            increment_var: Some("PORT".into()),
            max_memory_restart: Some(512 << 20),
            watchdog: Some(Duration::from_millis(10_000)),
            health: Some(HealthSpec {
                check: HealthCheck::Exec {
                    program: "/usr/bin/curl".into(),
                    args: vec!["-fs".into(), "http://127.0.0.1:3000/health".into()],
                },
                interval: Duration::from_millis(5000),
                timeout: Duration::from_millis(2000),
                failures: 3,
            }),
            watch: Some(WatchSpec {
                paths: vec!["/srv/api/src".into()],
                ignore: vec!["node_modules".into(), "*.log".into()],
                delay: Duration::from_millis(500),
            }),
            cron_restart: Some("0 3 * * *".into()),
        };
        let worker = AppSpec {
            name: "worker".into(),
            command: Command {
                interpreter: None,
                interpreter_args: vec![],
                script: "/srv/bin/worker".into(),
                args: vec![],
            },
            cwd: "/srv".into(),
            instances: 1,
            exec_mode: ExecMode::Fork,
            env: BTreeMap::new(),
            listen: Some(ListenAddr::Unix("/run/worker.sock".into())),
            socket: SocketMode::Shared,
            logs: LogSpec {
                out_file: "/home/u/.drover/logs/worker-out.log".into(),
                error_file: "/home/u/.drover/logs/worker-error.log".into(),
                log_file: None,
                merge: false,
                date_format: None,
                rotation: None,
            },
            restart: RestartSpec {
                autorestart: false,
                min_uptime: Duration::from_millis(500),
                max_restarts: 0,
                restart_delay: Duration::ZERO,
                exp_backoff_restart_delay: None,
                stop_exit_codes: vec![],
                wait_ready: false,
                listen_timeout: Duration::from_millis(8000),
            },
            stop: StopSpec {
                kill_signal: Signal::SIGINT,
                kill_timeout: Duration::from_millis(5000),
                shutdown_with_message: false,
            },
            instance_var: "INSTANCE".into(),
            increment_var: None,
            max_memory_restart: None,
            watchdog: None,
            health: None,
            watch: None,
            cron_restart: None,
        };
        vec![
            SavedApp {
                spec: api,
                env: BTreeMap::from([
                    ("HOME".into(), "/home/u".into()),
                    ("PATH".into(), "/usr/bin:/bin".into()),
                ]),
                stopped: false,
            },
            SavedApp {
                spec: worker,
                env: BTreeMap::new(),
                stopped: true,
            },
        ]
    }

    #[test]
    fn the_format_is_the_checked_in_text_and_it_loads_back_equal() {
        assert_eq!(encode(&golden_apps(), "0.1.0").unwrap(), GOLDEN);
        assert_eq!(decode(GOLDEN).unwrap(), golden_apps());
        // Keys added to format 1 later are optional: a dump from before loads the same.
        let older = GOLDEN.replace("  shutdown_with_message: false\n", "");
        assert_ne!(older, GOLDEN);
        assert_eq!(decode(&older).unwrap(), golden_apps());
        let older = GOLDEN.replace("  log_file: /var/log/api.log\n", "");
        assert_ne!(older, GOLDEN);
        let mut apps = golden_apps();
        apps[0].spec.logs.log_file = None;
        assert_eq!(decode(&older).unwrap(), apps);
        // A dump from before log rotation: its apps load without rotation, as they ran.
        let older = GOLDEN
            .replace("  log_max_size: 10485760\n", "")
            .replace("  log_retain: 30\n", "")
            .replace("  log_rotate_daily: true\n", "")
            .replace("  log_compress: true\n", "");
        let mut apps = golden_apps();
        apps[0].spec.logs.rotation = None;
        assert_eq!(decode(&older).unwrap(), apps);
        // Half a rotation is damage, not a guess.
        let half = GOLDEN.replace("  log_retain: 30\n", "");
        let e = format!("{:#}", decode(&half).unwrap_err());
        assert!(e.contains("app #1 (api): log rotation needs"), "{e}");
    }

    fn home() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn read(home: &Path) -> Vec<u8> {
        std::fs::read(path(home)).unwrap()
    }

    /// A dump from before `stopped:` existed lists every app as running.
    #[test]
    fn a_dump_without_stopped_starts_every_app() {
        let older = GOLDEN.replace("  stopped: true\n", "");
        let apps = decode(&older).unwrap();
        assert!(apps.iter().all(|a| !a.stopped));
        assert_eq!(apps[1].spec, golden_apps()[1].spec);
    }

    #[test]
    fn save_then_load_round_trips_privately_and_keeps_the_previous_dump() {
        let home = home();
        let apps = golden_apps();
        let written = save(home.path(), &apps, false).unwrap();
        assert_eq!(written, path(home.path()));
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(home.path()).unwrap().apps, apps);

        save(home.path(), &apps[..1], false).unwrap();
        assert_eq!(load(home.path()).unwrap().apps, apps[..1]);
        let bak = std::fs::read_to_string(home.path().join("dump.yaml.bak")).unwrap();
        assert_eq!(decode(&bak).unwrap(), apps);
        let left: Vec<_> = std::fs::read_dir(home.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    #[test]
    fn a_dump_of_a_future_format_is_refused_and_kept() {
        let home = home();
        let future = GOLDEN
            .replace("format: 1", "format: 2")
            .replace("drover: 0.1.0", "drover: 9.0.0");
        std::fs::write(path(home.path()), &future).unwrap();
        let e = format!("{:#}", load(home.path()).unwrap_err());
        assert!(
            e.contains("dump.yaml: written in format 2 by drover 9.0.0"),
            "{e}"
        );
        assert!(e.contains("reads format 1"), "{e}");
        let e = format!("{:#}", save(home.path(), &golden_apps(), true).unwrap_err());
        assert!(e.contains("dump.yaml: written in format 2"), "{e}");
        assert!(e.contains("it is kept"), "{e}");
        assert_eq!(read(home.path()), future.as_bytes());
    }

    #[test]
    fn a_damaged_dump_is_refused_with_its_line_and_kept() {
        let home = home();
        for (damaged, needle) in [
            (GOLDEN.replace("instances: 4", "instances: four"), "line "),
            (
                GOLDEN.replace("kill_signal: SIGTERM", "kill_signal: SIGFOO"),
                "SIGFOO",
            ),
            (
                GOLDEN.replace("  merge_logs: true\n", "  merge_logs: true\n  extra: 1\n"),
                "extra",
            ),
            ("apps: [\n".to_owned(), "line "),
            (String::new(), "dump.yaml"),
            ("drover: 0.1.0\napps: []\n".to_owned(), "no `format:`"),
        ] {
            std::fs::write(path(home.path()), &damaged).unwrap();
            // With no backup to fall back on.
            let e = format!("{:#}", load(home.path()).unwrap_err());
            assert!(e.contains("dump.yaml: "), "{e}");
            assert!(e.contains(needle), "{e} lacks {needle:?}");
            let e = format!("{:#}", save(home.path(), &golden_apps(), true).unwrap_err());
            assert!(e.contains("it is kept"), "{e}");
            assert_eq!(read(home.path()), damaged.as_bytes());
        }
    }

    #[test]
    fn a_missing_or_damaged_dump_falls_back_on_the_backup_and_is_kept_aside() {
        let home = home();
        let apps = golden_apps();
        save(home.path(), &apps, false).unwrap();
        save(home.path(), &apps[..1], false).unwrap();
        // Damaged: the backup (the save before) is read, the damaged file moved aside.
        std::fs::write(path(home.path()), "apps: [\n").unwrap();
        let loaded = load(home.path()).unwrap();
        assert_eq!(loaded.apps, apps);
        let note = loaded.from_backup.unwrap();
        assert!(
            note.contains("dump.yaml: ") && note.contains("read"),
            "{note}"
        );
        assert!(note.contains("dump.yaml.bak instead"), "{note}");
        assert_eq!(
            std::fs::read(home.path().join("dump.yaml.damaged")).unwrap(),
            b"apps: [\n"
        );
        assert!(!path(home.path()).exists());
        // Missing: the backup too, saying so.
        let loaded = load(home.path()).unwrap();
        assert_eq!(loaded.apps, apps);
        assert!(loaded.from_backup.unwrap().contains("does not exist"));
        // A future format is not damage: no fallback, the file stays.
        let future = GOLDEN.replace("format: 1", "format: 2");
        std::fs::write(path(home.path()), &future).unwrap();
        assert!(load(home.path()).is_err());
        assert_eq!(read(home.path()), future.as_bytes());
    }

    #[test]
    fn an_empty_list_replaces_a_dump_with_apps_only_when_forced() {
        let home = home();
        save(home.path(), &golden_apps(), false).unwrap();
        let before = read(home.path());
        let e = format!("{:#}", save(home.path(), &[], false).unwrap_err());
        assert!(e.contains("holds 2 apps"), "{e}");
        assert!(e.contains("--force"), "{e}");
        assert_eq!(read(home.path()), before);

        save(home.path(), &[], true).unwrap();
        assert!(load(home.path()).unwrap().apps.is_empty());
        // An empty dump may be saved over again without force: nothing is lost.
        save(home.path(), &[], false).unwrap();
        // And with no dump at all.
        let fresh = tempfile::tempdir().unwrap();
        save(fresh.path(), &[], false).unwrap();
    }

    #[test]
    fn a_symlink_at_the_dump_is_refused_and_not_followed() {
        let home = home();
        let elsewhere = home.path().join("elsewhere.yaml");
        std::fs::write(&elsewhere, GOLDEN).unwrap();
        std::os::unix::fs::symlink(&elsewhere, path(home.path())).unwrap();
        let e = format!("{:#}", load(home.path()).unwrap_err());
        assert!(e.contains("dump.yaml is a symbolic link"), "{e}");
        let e = format!("{:#}", save(home.path(), &[], true).unwrap_err());
        assert!(e.contains("dump.yaml is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), GOLDEN);
        assert!(
            std::fs::symlink_metadata(path(home.path()))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn no_dump_is_nothing_to_resurrect() {
        let e = format!("{:#}", load(home().path()).unwrap_err());
        assert!(e.starts_with("nothing to resurrect: "), "{e}");
    }
}
