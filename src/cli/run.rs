//! `drover run`: the supervisor in the foreground, as pm2-runtime in a container or a
//! systemd unit. Workers' output goes to our stdout/stderr with a `name#i |` prefix.

use clap::Args;

use super::{RunArgs, apps, host};
use crate::error::Error;
use crate::supervisor::NewApp;

#[derive(Debug, Args)]
pub struct RunCommandArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub metrics: host::MetricsArgs,
}

pub fn run(args: RunCommandArgs, home: std::path::PathBuf) -> Result<(), Error> {
    let RunCommandArgs { run: args, metrics } = args;
    // `--metrics` over the files' `metrics:`.
    let flag = metrics.spec()?;
    let (specs, asked) = apps::load(&args, &home)?;
    let metrics = flag.or(asked);
    let env = apps::caller_env();
    let apps = specs
        .into_iter()
        .map(|spec| NewApp {
            spec,
            env: env.clone(),
            stopped: false,
        })
        .collect();
    host::init_tracing(false, None);
    // `list`, `logs`, `stop` … work against this supervisor too.
    let _lock = host::lock(&home)?;

    let outcome = host::supervise(&home, apps, true, metrics)?;
    if outcome.all_done {
        tracing::info!("every worker has stopped; exiting");
    }
    if outcome.errored.is_empty() {
        Ok(())
    } else {
        Err(Error::Errored(outcome.errored))
    }
}
