//! `drover start` and `drover resurrect`: hand apps to the background supervisor,
//! starting it first if needed.

use clap::Args;

use super::{RunArgs, apps};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppConfig, OnRunning, Request, Response, Target};

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Give a stopped app this shell's environment instead of the one it was started with.
    #[arg(short = 'a', long)]
    pub update_env: bool,
}

/// `how`: what becomes of apps that run already; `None` is `start`'s rule: an ecosystem
/// file reloads them (one command that deploys), a script reports them.
pub fn run(args: StartArgs, home: &std::path::Path, how: Option<OnRunning>) -> Result<(), Error> {
    if let Some(target) = known_app(&args, home)? {
        // PM2: `start <name|id>` of an app it runs (stopped or not) restarts it.
        let env = args.update_env.then(apps::caller_env);
        let mut client = Client::connect(home)?;
        print_done(client.call(&Request::Restart { target, env })?);
        return Ok(());
    }
    // Validated here: a bad file is reported by the CLI and nothing reaches the supervisor.
    let apps = apps::load(&args.run, home)?;
    let request = Request::Start {
        apps: apps.iter().map(AppConfig::from).collect(),
        env: apps::caller_env(),
        update_env: args.update_env,
        running: how.unwrap_or(match apps::Source::of(&args.run.target) {
            apps::Source::Ecosystem(_) => OnRunning::Reload,
            apps::Source::Script => OnRunning::Report,
        }),
        parallel: 1,
    };
    let mut client = Client::connect_or_spawn(home)?;
    print_done(client.call(&request)?);
    Ok(())
}

/// The app `start`'s target names, when it is no file but the name or id of an app the
/// running supervisor has, and no flag describes a new app.
fn known_app(args: &StartArgs, home: &std::path::Path) -> Result<Option<Target>, Error> {
    let target = &args.run.target;
    let word = target.to_string_lossy();
    if target.exists()
        || word.contains('/')
        || apps::Source::of(target) != apps::Source::Script
        || !args.run.app.given().is_empty()
    {
        return Ok(None);
    }
    let Ok(mut client) = Client::connect(home) else {
        return Ok(None);
    };
    let Response::Workers { workers } = client.call(&Request::List)? else {
        return Ok(None);
    };
    let known = workers
        .iter()
        .any(|w| w.name == word || w.id.to_string() == word);
    Ok(known.then(|| word.parse().expect("a non-empty word is a target")))
}

pub fn resurrect(home: &std::path::Path) -> Result<(), Error> {
    let mut client = Client::connect_or_spawn(home)?;
    print_done(client.call(&Request::Resurrect)?);
    Ok(())
}

pub(crate) fn print_done(response: Response) {
    if let Response::Done { message } = response {
        println!("{message}");
    }
}
