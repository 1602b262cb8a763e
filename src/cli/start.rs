//! `drover start` and `drover resurrect`: hand apps to the background supervisor,
//! starting it first if needed.

use std::path::Path;

use clap::Args;

use super::{RunArgs, apps, changed_settings};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppConfig, MetricsConfig, OnRunning, Request, Response, Target};

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Give a stopped app this shell's environment instead of the one it was started with.
    #[arg(short = 'a', long)]
    pub update_env: bool,
}

/// `how`: what becomes of apps that run already; `None` is `start`'s rule: an ecosystem
/// file reloads them (one command that deploys), a script reports them. The targets are
/// taken in order, as PM2 does; all are read and validated before any reaches the
/// supervisor.
pub fn run(args: StartArgs, home: &Path, how: Option<OnRunning>) -> Result<(), Error> {
    let known = known_apps(&args, home)?;
    let new: Vec<&Path> = args
        .run
        .targets
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(t, _)| t.as_path())
        .collect();
    let loaded = apps::load_each(&args.run, &new, home)?;
    // The files that ask for an endpoint ask for one address; each carries it.
    let metrics = apps::one_endpoint(loaded.iter().filter_map(|t| t.metrics.as_ref()))?;
    let mut loaded = loaded.into_iter();
    let env = apps::caller_env();
    let mut requests = Vec::new();
    let new_settings = !args.run.app.given().is_empty() || !args.run.args.is_empty();
    for known in known {
        let request = match known {
            // PM2: `start <name|id>` of an app it runs (stopped or not) restarts it, with
            // the settings the flags give.
            Some(target) if new_settings => {
                let apps =
                    changed_settings::changed_apps(&[target], &args.run.app, &args.run.args, home)?;
                changed_settings::request(&apps, OnRunning::Restart, 1, args.update_env)
            }
            Some(target) => Request::Restart {
                target,
                env: args.update_env.then(|| env.clone()),
            },
            None => {
                let target = loaded.next().expect("one load per new target");
                // `--only` may leave a file none of its apps.
                if target.apps.is_empty() {
                    continue;
                }
                Request::Start {
                    apps: target.apps.iter().map(AppConfig::from).collect(),
                    env: env.clone(),
                    update_env: args.update_env,
                    running: how.unwrap_or(match target.source {
                        apps::Source::Ecosystem(_) => OnRunning::Reload,
                        apps::Source::Script => OnRunning::Report,
                    }),
                    parallel: 1,
                    metrics: metrics
                        .as_ref()
                        .filter(|_| target.metrics.is_some())
                        .map(MetricsConfig::from),
                }
            }
        };
        requests.push(request);
    }
    // One request per connection, as the control socket takes them.
    for (i, request) in requests.iter().enumerate() {
        let mut client = if i == 0 && !new.is_empty() {
            Client::connect_or_spawn(home)?
        } else {
            Client::connect(home)?
        };
        print_done(client.call(request)?);
    }
    Ok(())
}

/// For each target of `start`, the app it names, when it is no file but the name or id
/// of an app the running supervisor has (names first, as PM2), or `all` of them.
fn known_apps(args: &StartArgs, home: &Path) -> Result<Vec<Option<Target>>, Error> {
    let words = &args.run.targets;
    let could_name = |target: &Path| {
        let word = target.to_string_lossy();
        !(target.exists() || word.contains('/') || apps::Source::of(target) != apps::Source::Script)
    };
    if !words.iter().any(|t| could_name(t)) {
        return Ok(vec![None; words.len()]);
    }
    let workers = match Client::connect(home) {
        Ok(mut client) => match client.call(&Request::List)? {
            Response::Workers { workers } => workers,
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    Ok(words
        .iter()
        .map(|target| {
            let word = target.to_string_lossy();
            // `start all` restarts every app, as PM2 (an app named all is that app).
            let known = could_name(target)
                && (word == "all" && !workers.is_empty()
                    || workers
                        .iter()
                        .any(|w| w.name == word || w.id.to_string() == word));
            known.then(|| word.parse().expect("a non-empty word is a target"))
        })
        .collect())
}

pub fn resurrect(home: &Path) -> Result<(), Error> {
    // With nothing saved, a supervisor started for it would only sit there idle.
    let dump = crate::supervisor::dump::path(home);
    let saved = [dump.clone(), dump.with_extension("yaml.bak")]
        .iter()
        .any(|p| p.symlink_metadata().is_ok());
    if !saved && Client::connect(home).is_err() {
        return Err(Error::Failed(format!(
            "nothing to resurrect: {} does not exist (`drover save` writes it)",
            dump.display()
        )));
    }
    let mut client = Client::connect_or_spawn(home)?;
    print_done(client.call(&Request::Resurrect)?);
    Ok(())
}

pub(crate) fn print_done(response: Response) {
    if let Response::Done { message } = response {
        println!("{message}");
    }
}
