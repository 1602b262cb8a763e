//! `drover run`: the supervisor in the foreground, as pm2-runtime in a container or a
//! systemd unit. Workers' output goes to our stdout/stderr with a `name#i |` prefix.

use anyhow::Context;

use super::{AppFlags, RunArgs};
use crate::config::{self, AppSpec, ResolveContext};
use crate::error::Error;
use crate::supervisor::NewApp;

pub fn run(args: RunArgs, home: std::path::PathBuf) -> Result<(), Error> {
    let specs = load_apps(&args, &home)?;
    let env = caller_env();
    let apps = specs
        .into_iter()
        .map(|spec| NewApp {
            spec,
            env: env.clone(),
        })
        .collect();
    init_tracing(false);
    // `list`, `logs`, `stop` … work against this supervisor too.
    let _lock = super::daemon::lock(&home)?;

    let outcome = super::daemon::supervise(&home, apps, true)?;
    if outcome.all_done {
        tracing::info!("every worker has stopped; exiting");
    }
    if outcome.errored.is_empty() {
        Ok(())
    } else {
        Err(Error::Errored(outcome.errored))
    }
}

/// The apps to run: every app of an ecosystem file, or one app from a script and flags.
pub(crate) fn load_apps(args: &RunArgs, home: &std::path::Path) -> Result<Vec<AppSpec>, Error> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let ctx = ResolveContext {
        home: home.to_path_buf(),
        cwd,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        env_name: args.app.env.clone(),
    };
    if config::is_ecosystem_path(&args.target) {
        reject_script_flags(&args.app, !args.args.is_empty())?;
        Ok(config::load_file(&args.target, &ctx)?)
    } else {
        if let Some(env) = &args.app.env {
            return Err(Error::Usage(format!(
                "--env {env} selects env_{env} of an ecosystem file; {} is a script (set variables in your shell or an ecosystem file)",
                args.target.display()
            )));
        }
        let raw = raw_app(&args.app, &args.target, &args.args);
        Ok(vec![config::resolve_cli(raw, &ctx)?])
    }
}

/// Flags that describe a script make no sense next to an ecosystem file; accepting and
/// ignoring them would surprise.
fn reject_script_flags(flags: &AppFlags, has_args: bool) -> Result<(), Error> {
    let AppFlags {
        name,
        instances,
        listen,
        socket,
        env: _,
        interpreter,
        cwd,
        out_file,
        error_file,
        merge_logs,
        log_date_format,
        time,
        no_autorestart,
        max_memory_restart,
        kill_timeout,
        kill_signal,
        max_restarts,
        min_uptime,
        wait_ready,
        listen_timeout,
        restart_delay,
        exp_backoff_restart_delay,
    } = flags;
    let given = [
        ("--name", name.is_some()),
        ("--instances", instances.is_some()),
        ("--listen", listen.is_some()),
        ("--socket", socket.is_some()),
        ("--interpreter", interpreter.is_some()),
        ("--cwd", cwd.is_some()),
        ("--output", out_file.is_some()),
        ("--error", error_file.is_some()),
        ("--merge-logs", *merge_logs),
        ("--log-date-format", log_date_format.is_some()),
        ("--time", *time),
        ("--no-autorestart", *no_autorestart),
        ("--max-memory-restart", max_memory_restart.is_some()),
        ("--kill-timeout", kill_timeout.is_some()),
        ("--kill-signal", kill_signal.is_some()),
        ("--max-restarts", max_restarts.is_some()),
        ("--min-uptime", min_uptime.is_some()),
        ("--wait-ready", *wait_ready),
        ("--listen-timeout", listen_timeout.is_some()),
        ("--restart-delay", restart_delay.is_some()),
        (
            "--exp-backoff-restart-delay",
            exp_backoff_restart_delay.is_some(),
        ),
        ("-- <args>", has_args),
    ];
    let given: Vec<&str> = given
        .iter()
        .filter(|(_, on)| *on)
        .map(|(flag, _)| *flag)
        .collect();
    if given.is_empty() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{} describe{} a script; with an ecosystem file, set {} in the file (only --env applies)",
            given.join(", "),
            if given.len() == 1 { "s" } else { "" },
            if given.len() == 1 { "it" } else { "them" },
        )))
    }
}

fn raw_app(flags: &AppFlags, script: &std::path::Path, args: &[String]) -> config::RawApp {
    config::RawApp::from_cli(config::CliApp {
        script: script.to_path_buf(),
        args: args.to_vec(),
        name: flags.name.clone(),
        instances: flags.instances.clone(),
        listen: flags.listen.clone(),
        socket: flags.socket.clone(),
        interpreter: flags.interpreter.clone(),
        cwd: flags.cwd.clone(),
        out_file: flags.out_file.clone(),
        error_file: flags.error_file.clone(),
        merge_logs: flags.merge_logs,
        log_date_format: flags.log_date_format.clone(),
        time: flags.time,
        autorestart: !flags.no_autorestart,
        max_memory_restart: flags.max_memory_restart.clone(),
        kill_timeout: flags.kill_timeout.clone(),
        kill_signal: flags.kill_signal.clone(),
        max_restarts: flags.max_restarts.clone(),
        min_uptime: flags.min_uptime.clone(),
        wait_ready: flags.wait_ready,
        listen_timeout: flags.listen_timeout.clone(),
        restart_delay: flags.restart_delay.clone(),
        exp_backoff_restart_delay: flags.exp_backoff_restart_delay.clone(),
    })
}

/// The supervisor's own diagnostics on stderr; `timestamps` for the daemon's log file
/// (a terminal or journald adds its own).
pub(crate) fn init_tracing(timestamps: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DROVER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if timestamps {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

/// The caller's environment, which workers inherit under their app's env.
pub(crate) fn caller_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
