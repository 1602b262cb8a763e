//! `stop`, `restart`, `reload`, `delete`, `reset`, `scale`, `flush`, `reload-logs`,
//! `save`: one request per target to the running supervisor (`cli::targets` reads the
//! targets).

use std::path::Path;

use clap::Args;

use super::changed_settings;
use super::targets::{self, TargetWords};
use crate::config::{AppFlags, AppSpec};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{MetricsConfig, OnRunning, Request, Target};

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub words: TargetWords,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub words: TargetWords,
    /// With an ecosystem file: its env_<NAME> on top of env (the apps take the file's
    /// settings, as `start FILE` gives them).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Give the workers this shell's environment instead of the one they were started with.
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// Settings to change (names, ids, scripts, `all`, /regex/; not with an ecosystem
    /// file, which has its own): as `start` takes them, except --name.
    #[command(flatten)]
    pub app: AppFlags,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub words: TargetWords,
    /// With an ecosystem file: its env_<NAME> on top of env (the apps take the file's
    /// settings, as `start FILE` gives them).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// How many workers to replace at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: u32,
    /// Give the new workers this shell's environment instead of the one the app was
    /// started with.
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// Settings to change (names, ids, scripts, `all`, /regex/; not with an ecosystem
    /// file, which has its own): as `start` takes them, except --name.
    #[command(flatten)]
    pub app: AppFlags,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The app's name.
    pub name: String,
    /// How many workers it should have: N, or +N / -N more or fewer than now (PM2's).
    #[arg(allow_hyphen_values = true, value_parser = parse_count)]
    pub instances: Count,
}

/// `scale`'s count: absolute, or relative to the workers the app has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    To(u32),
    By(i64),
}

fn parse_count(s: &str) -> Result<Count, String> {
    let bad = || format!("{s:?}: expected a number of workers, or +N / -N");
    if let Some(rest) = s.strip_prefix('+') {
        rest.parse::<u32>()
            .map(|n| Count::By(i64::from(n)))
            .map_err(|_| bad())
    } else if let Some(rest) = s.strip_prefix('-') {
        rest.parse::<u32>()
            .map(|n| Count::By(-i64::from(n)))
            .map_err(|_| bad())
    } else {
        s.parse().map(Count::To).map_err(|_| bad())
    }
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    /// An app name or worker id (default: every app).
    #[arg(value_parser = parse_target)]
    pub target: Option<Target>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Replace a dump that lists apps even when no app is running (the old dump is kept
    /// as dump.yaml.bak). A dump that cannot be read is never replaced.
    #[arg(long)]
    pub force: bool,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

pub fn stop(args: TargetArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, None, home)?;
    let names = targets::with_known_file_apps(&picked, home)?;
    each(
        home,
        names.into_iter().map(|target| Request::Stop { target }),
    )
}

pub fn delete(args: TargetArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, None, home)?;
    let names = targets::with_known_file_apps(&picked, home)?;
    each(
        home,
        names.into_iter().map(|target| Request::Delete { target }),
    )
}

/// PM2's `reset`: the restart counters of the targets' workers back to 0.
pub fn reset(args: TargetArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, None, home)?;
    let names = targets::with_known_file_apps(&picked, home)?;
    each(
        home,
        names.into_iter().map(|target| Request::Reset { target }),
    )
}

pub fn restart(args: RestartArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, args.env.as_deref(), home)?;
    super::apps::warn(&picked.warnings);
    if let Some(apps) = with_new_settings(&picked, &args.app, home)? {
        return simple(
            home,
            changed_settings::request(&apps, OnRunning::Restart, 1, args.update_env),
        );
    }
    let env = args.update_env.then(super::apps::caller_env);
    let mut requests: Vec<Request> = picked
        .targets
        .iter()
        .map(|target| Request::Restart {
            target: target.clone(),
            env: env.clone(),
        })
        .collect();
    requests.extend(redeploy(&picked, OnRunning::Restart, 1, args.update_env));
    each(home, requests)
}

pub fn reload(args: ReloadArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, args.env.as_deref(), home)?;
    super::apps::warn(&picked.warnings);
    if let Some(apps) = with_new_settings(&picked, &args.app, home)? {
        return simple(
            home,
            changed_settings::request(&apps, OnRunning::Reload, args.parallel, args.update_env),
        );
    }
    let env = args.update_env.then(super::apps::caller_env);
    let mut requests: Vec<Request> = picked
        .targets
        .iter()
        .map(|target| Request::Reload {
            target: target.clone(),
            parallel: args.parallel,
            env: env.clone(),
        })
        .collect();
    requests.extend(redeploy(
        &picked,
        OnRunning::Reload,
        args.parallel,
        args.update_env,
    ));
    each(home, requests)
}

/// With flags, the apps the targets name, with the flags over their settings (PM2's
/// `restart api --node-args=…`); an ecosystem file has its own settings, so flags next
/// to one are refused. None: no flag given.
fn with_new_settings(
    picked: &targets::Picked,
    flags: &AppFlags,
    home: &Path,
) -> Result<Option<Vec<AppSpec>>, Error> {
    if flags.given().is_empty() {
        return Ok(None);
    }
    if !picked.files.is_empty() {
        flags.check_with_ecosystem_file(false)?;
    }
    changed_settings::changed_apps(&picked.targets, flags, &[], home).map(Some)
}

/// `restart FILE` / `reload FILE` are PM2's startOrRestart / startOrReload: the file's
/// apps take its settings (what `start FILE` does with them), those not running start.
fn redeploy(
    picked: &targets::Picked,
    how: OnRunning,
    parallel: u32,
    update_env: bool,
) -> Option<Request> {
    let apps = picked.file_apps();
    (!apps.is_empty()).then(|| {
        let mut request = changed_settings::request(&apps, how, parallel, update_env);
        // The files' settings include where the supervisor serves its metrics.
        if let Request::Start { metrics, .. } = &mut request {
            *metrics = picked.metrics.as_ref().map(MetricsConfig::from);
        }
        request
    })
}

/// The requests, all at once (each on its own connection, so a stop that waits on one
/// app does not delay the others), answers printed in their order. Every failure is
/// reported; the first one decides the exit status.
pub(super) fn each(home: &Path, requests: impl IntoIterator<Item = Request>) -> Result<(), Error> {
    let requests: Vec<Request> = requests.into_iter().collect();
    if let [request] = &requests[..] {
        return simple(home, request.clone());
    }
    let calls: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let home = home.to_path_buf();
            std::thread::spawn(move || Client::connect(&home)?.call(&request))
        })
        .collect();
    let mut first = None;
    for call in calls {
        match call.join().expect("a request thread does not panic") {
            Ok(answer) => super::start::print_done(answer),
            Err(e) if first.is_none() => first = Some(Error::from(e)),
            Err(e) => eprintln!("drover: {e}"),
        }
    }
    first.map_or(Ok(()), Err)
}

pub fn scale(args: ScaleArgs, home: &Path) -> Result<(), Error> {
    let instances = match args.instances {
        Count::To(n) => n,
        Count::By(delta) => {
            let now = match Client::connect(home)?.call(&Request::List)? {
                crate::protocol::Response::Workers { workers } => {
                    workers.iter().filter(|w| w.name == args.name).count() as i64
                }
                _ => 0,
            };
            if now == 0 {
                return Err(Error::Client(crate::ipc::client::ClientError::Supervisor {
                    kind: crate::protocol::ErrorKind::NotFound,
                    message: format!("no app named {}", args.name),
                }));
            }
            u32::try_from((now + delta).max(0)).unwrap_or(u32::MAX)
        }
    };
    simple(
        home,
        Request::Scale {
            name: args.name,
            instances,
        },
    )
}

pub fn flush(args: FlushArgs, home: &Path) -> Result<(), Error> {
    simple(
        home,
        Request::Flush {
            target: args.target.unwrap_or(Target::All),
        },
    )
}

pub fn save(args: SaveArgs, home: &Path) -> Result<(), Error> {
    simple(home, Request::Save { force: args.force })
}

/// Sends one request to the running supervisor (never starts one: there is nothing to
/// stop in a supervisor that is not running) and prints its answer.
pub fn simple(home: &Path, request: Request) -> Result<(), Error> {
    let mut client = Client::connect(home)?;
    super::start::print_done(client.call(&request)?);
    Ok(())
}
