//! A known app's settings changed by flags: `drover restart api --node-args=--harmony`,
//! `reload`, `start api -k 5s` (PM2's app-config-update). The app is written back as the
//! [`RawApp`] that resolves to it, the flags go over it, and the result is resolved
//! again, so every rule of a new app holds for the changed one (a bad value names its
//! flag, `--shutdown-with-message` still needs Node).

use std::path::PathBuf;

use super::error::ConfigError;
use super::flags::AppFlags;
use super::raw::{RawApp, RawHealth};
use super::spec::{
    AppSpec, Command, HealthCheck, ListenAddr, LogRotation, LogSpec, RestartSpec, StopSpec,
};
use super::values::{
    ArgList, CombinedLog, ExitCodes, FromLoose, Instances, KillSignal, ListenSpec, LogRetain,
    LogRotate, Loose, MemorySize, Millis, Watch,
};
use super::{ResolveContext, resolve_cli};

/// `spec` with `flags` over it, and `args` for the script's arguments when there are
/// some, validated. Relative paths in the flags resolve against `ctx.cwd`, as
/// `start`'s do. The name is the app's identity, so `--name` is refused
/// (PM2 renames; here the app would be a new one, with new ids).
pub fn update(
    spec: &AppSpec,
    flags: &AppFlags,
    args: &[String],
    ctx: &ResolveContext,
) -> Result<AppSpec, ConfigError> {
    if let Some(name) = &flags.name {
        return Err(ConfigError::usage(format!(
            "--name {name}: {} keeps its name when its settings change; to rename it, delete it and start it again as {name}",
            spec.name
        )));
    }
    let mut raw = RawApp::from_spec(spec);
    let rotation_off = flags
        .log_rotate
        .as_deref()
        .is_some_and(|v| LogRotate::from_loose(&Loose::Str(v.into())) == Ok(LogRotate::Off));
    if flags.disable_logs || rotation_off {
        // Its rotation was the default or its own; with no rotation (or no file) there
        // is none, and the settings it had would be refused as doing nothing.
        raw.log_max_size = None;
        raw.log_retain = None;
        raw.log_compress = None;
    }
    if flags.disable_logs {
        // Its files were the default or its own; with no log at all there are none.
        raw.out_file = None;
        raw.error_file = None;
        raw.log_file = None;
        raw.log_rotate = raw.log_rotate.filter(|r| *r == LogRotate::Off);
    }
    let sets_rotation =
        flags.log_max_size.is_some() || flags.log_retain.is_some() || flags.log_compress;
    if sets_rotation && flags.log_rotate.is_none() && raw.log_rotate == Some(LogRotate::Off) {
        // `--log-max-size 5M` on an app that does not rotate asks for rotation.
        raw.log_rotate = None;
    }
    if !args.is_empty() {
        raw.args = Some(ArgList(args.to_vec()));
    }
    resolve_cli(raw.with_flags(flags), ctx)
}

impl RawApp {
    /// The app as written, every key given, so that resolving it gives `spec` again
    /// (a test checks this on every kind of app). Each field of the spec is named, so
    /// a new one does not compile until it is written back here.
    pub(crate) fn from_spec(spec: &AppSpec) -> RawApp {
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
        } = spec;
        RawApp {
            name: Some(name.clone()),
            script: Some(script.clone()),
            args: Some(ArgList(args.clone())),
            interpreter: Some(interpreter.clone().unwrap_or_else(|| "none".into())),
            interpreter_args: Some(ArgList(interpreter_args.clone())),
            cwd: Some(cwd.clone()),
            instances: Some(Instances(i64::from(*instances))),
            exec_mode: Some(*exec_mode),
            env: Some(env.clone()),
            out_file: Some(out_file.clone()),
            error_file: Some(error_file.clone()),
            log_file: Some(log_file.clone().map_or(CombinedLog::Off, CombinedLog::Path)),
            merge_logs: Some(*merge),
            log_date_format: date_format.clone(),
            log_max_size: rotation.map(|r| MemorySize(r.max_size)),
            log_retain: rotation.map(|r| LogRetain(r.retain)),
            log_rotate: Some(match rotation {
                None => LogRotate::Off,
                Some(LogRotation { daily: true, .. }) => LogRotate::Daily,
                Some(LogRotation { daily: false, .. }) => LogRotate::Size,
            }),
            log_compress: rotation.map(|r| r.compress),
            autorestart: Some(*autorestart),
            min_uptime: Some(Millis(*min_uptime)),
            wait_ready: Some(*wait_ready),
            shutdown_with_message: Some(*shutdown_with_message),
            listen_timeout: Some(Millis(*listen_timeout)),
            max_restarts: Some(*max_restarts),
            restart_delay: Some(Millis(*restart_delay)),
            exp_backoff_restart_delay: exp_backoff_restart_delay.map(Millis),
            stop_exit_codes: Some(ExitCodes(stop_exit_codes.clone())),
            kill_timeout: Some(Millis(*kill_timeout)),
            kill_signal: Some(KillSignal(*kill_signal)),
            instance_var: Some(instance_var.clone()),
            increment_var: increment_var.clone(),
            max_memory_restart: max_memory_restart.map(MemorySize),
            listen: listen.as_ref().map(|addr| match addr {
                ListenAddr::Tcp(addr) => ListenSpec::Tcp(*addr),
                ListenAddr::Unix(path) => ListenSpec::Unix(PathBuf::from(path)),
            }),
            socket: listen.as_ref().map(|_| *socket),
            watchdog: watchdog.map(Millis),
            health: health.as_ref().map(|h| {
                let (http, exec) = match &h.check {
                    HealthCheck::Http { path } => (Some(path.clone()), None),
                    HealthCheck::Exec { program, args } => {
                        let mut words = vec![program.to_string_lossy().into_owned()];
                        words.extend(args.iter().cloned());
                        (None, Some(ArgList(words)))
                    }
                };
                RawHealth {
                    http,
                    exec,
                    interval: Some(Millis(h.interval)),
                    timeout: Some(Millis(h.timeout)),
                    failures: Some(h.failures),
                }
            }),
            watch: watch.as_ref().map(|w| Watch::Paths(w.paths.clone())),
            ignore_watch: watch.as_ref().map(|w| ArgList(w.ignore.clone())),
            watch_delay: watch.as_ref().map(|w| Millis(w.delay)),
            cron_restart: cron_restart.clone(),
            ..RawApp::default()
        }
    }
}
