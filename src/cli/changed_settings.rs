//! Flags given to `restart`, `reload` or `start` of apps the supervisor knows change
//! their settings, as PM2's do (`pm2 restart api --node-args=--harmony`): the apps are
//! read from the supervisor, the flags go over them (`config::update`), and they go
//! back in one `Start` that restarts or reloads those running and starts those stopped.

use std::path::Path;

use super::apps;
use crate::config::{self, AppFlags, AppSpec};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppConfig, OnRunning, Request, Response, Target};

/// The apps `targets` name, with `flags` (and `args`, when given, for the script) over
/// their settings, in order, each once.
pub fn changed_apps(
    targets: &[Target],
    flags: &AppFlags,
    args: &[String],
    home: &Path,
) -> Result<Vec<AppSpec>, Error> {
    let ctx = apps::context(home, None)?;
    let mut changed: Vec<AppSpec> = Vec::new();
    for target in targets {
        let found = match Client::connect(home)?.call(&Request::Describe {
            target: target.clone(),
        })? {
            Response::Apps { apps } => apps,
            _ => Vec::new(),
        };
        for info in found {
            if changed.iter().any(|a| a.name == info.spec.name) {
                continue;
            }
            let spec = AppSpec::try_from(info.spec).map_err(Error::Usage)?;
            changed.push(config::update(&spec, flags, args, &ctx)?);
        }
    }
    Ok(changed)
}

/// The request that gives the apps their new settings: running ones are replaced
/// `how`, stopped ones start.
pub fn request(apps: &[AppSpec], how: OnRunning, parallel: u32, update_env: bool) -> Request {
    Request::Start {
        apps: apps.iter().map(AppConfig::from).collect(),
        env: apps::caller_env(),
        update_env,
        running: how,
        parallel,
        metrics: None,
    }
}
