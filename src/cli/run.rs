//! `drover run`: the supervisor in the foreground, as pm2-runtime in a container or a
//! systemd unit. Workers' output goes to our stdout/stderr with a `name#i |` prefix.

use clap::Args;

use super::host::{self, Beginning};
use super::{RunArgs, apps};
use crate::error::Error;
use crate::supervisor::{NewApp, RunOutcome};
use crate::upgrade::state::{HostKind, State};

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
    let lock = host::lock(&home)?;
    let outcome = host::supervise(
        &home,
        HostKind::Run,
        &lock,
        Beginning::Fresh { apps, metrics },
        None,
    )?;
    finished(outcome)
}

/// `drover run` again, in the image an in-place update (SIGUSR2) executed.
pub fn resumed(state: State) -> Result<(), Error> {
    host::init_tracing(false, None);
    let home = state.supervisor.home.clone();
    let lock = host::adopt_lock(state.host.lock_fd)?;
    let begin = Beginning::Resumed {
        state: Box::new(state),
        failure: None,
    };
    finished(host::supervise(&home, HostKind::Run, &lock, begin, None)?)
}

/// How `drover run` ends: an error when workers ended errored (crash loops).
fn finished(outcome: RunOutcome) -> Result<(), Error> {
    if outcome.all_done {
        tracing::info!("every worker has stopped; exiting");
    }
    if outcome.errored.is_empty() {
        Ok(())
    } else {
        Err(Error::Errored(outcome.errored))
    }
}
