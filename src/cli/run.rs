//! `drover run`: the supervisor in the foreground, as pm2-runtime in a container or a
//! systemd unit. Workers' output goes to our stdout/stderr with a `name#i |` prefix.

use anyhow::Context;

use super::RunArgs;
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
        args.app.check_with_ecosystem_file(!args.args.is_empty())?;
        Ok(config::load_file(&args.target, &ctx)?)
    } else {
        args.app.check_with_script(&args.target)?;
        let raw = config::RawApp::from_flags(&args.app, &args.target, &args.args);
        Ok(vec![config::resolve_cli(raw, &ctx)?])
    }
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
