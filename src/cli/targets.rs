//! What the arguments of `stop`, `restart`, `reload` and `delete` name, as PM2 reads
//! them: app names and worker ids (names first), `all`, `/regex/`, and, when a word is
//! no app's name or id but a file: a script (the apps that run it) or an ecosystem file
//! (the apps it defines, `--only` some of them, `--env` applied); `-` is an ecosystem
//! file on stdin.

use std::path::Path;

use clap::Args;

use super::apps::{self, Ecosystem, FileApps, Source};
use crate::config::{self, AppSpec};
use crate::error::Error;
use crate::ipc::client::{Client, ClientError};
use crate::protocol::{AppInfo, ErrorKind, Request, Response, Target};

/// The targets of a lifecycle command, as written.
#[derive(Debug, Args)]
pub struct TargetWords {
    /// App names, worker ids, `all`, /regex/ of names, a script (the apps that run it),
    /// an ecosystem file (its apps) or `-` (one on stdin); several at once, as PM2.
    #[arg(value_parser = check_word, required = true, num_args = 1..)]
    pub targets: Vec<String>,
    /// With an ecosystem file: only these of its apps (a,b).
    #[arg(long, value_name = "NAMES")]
    pub only: Option<String>,
}

/// A word that cannot be a target (an empty one, a bad /regex/) is refused by clap.
pub(crate) fn check_word(s: &str) -> Result<String, String> {
    s.parse::<Target>().map(|_| s.to_owned())
}

/// What the words come to.
#[derive(Debug, Default)]
pub struct Picked {
    /// Names, ids, `all`, `/regex/`, and the apps that run the scripts named.
    pub targets: Vec<Target>,
    /// The ecosystem files named, with their apps (`--only` applied), validated.
    pub files: Vec<FileApps>,
    /// What the files warn of (skipped PM2 keys, an unknown `--env`): shown by the
    /// commands that apply their settings (`restart`, `reload`), not by `stop`/`delete`.
    pub warnings: Vec<String>,
    /// The metrics endpoint the files ask for (one address, checked): applied by the
    /// commands that apply their settings.
    pub metrics: Option<config::MetricsSpec>,
}

impl Picked {
    /// Every app of the files, in order.
    pub fn file_apps(&self) -> Vec<AppSpec> {
        self.files
            .iter()
            .flat_map(|(_, apps)| apps.iter().cloned())
            .collect()
    }
}

/// Reads `words` against what the supervisor of `home` runs. `env_name`: `--env`, which
/// selects `env_<name>` of the files (and needs one).
pub fn pick(words: &TargetWords, env_name: Option<&str>, home: &Path) -> Result<Picked, Error> {
    let ctx = apps::context(home, env_name.map(str::to_owned))?;
    let mut picked = Picked::default();
    // Asked for only when a word is a file: most commands name apps.
    let mut running: Option<Vec<AppInfo>> = None;
    let mut stdin_read = false;
    let mut asked = Vec::new();
    for word in &words.targets {
        let target: Target = word.parse().map_err(Error::Usage)?;
        let path = Path::new(word);
        let kind = match Source::of(path) {
            Source::Ecosystem(Ecosystem::Stdin) if stdin_read => {
                return Err(Error::Usage("- (stdin) can be given once".into()));
            }
            Source::Ecosystem(Ecosystem::Stdin) => Some(Ecosystem::Stdin),
            _ if !path.is_file() || matches!(target, Target::All | Target::Pattern(_)) => {
                picked.targets.push(target);
                continue;
            }
            // A file, unless the word also names an app or a worker: names first, as PM2.
            source => {
                let apps = match &running {
                    Some(apps) => apps,
                    None => running.insert(running_apps(home)?),
                };
                let names_one = apps.iter().any(|a| {
                    a.spec.name == *word || a.workers.iter().any(|w| w.id.to_string() == *word)
                });
                if names_one {
                    picked.targets.push(target);
                    continue;
                }
                match source {
                    Source::Ecosystem(kind) => Some(kind),
                    Source::Script => {
                        picked.targets.extend(runners(apps, path, &ctx.cwd)?);
                        None
                    }
                }
            }
        };
        if let Some(kind) = kind {
            stdin_read |= kind == Ecosystem::Stdin;
            let file = apps::ecosystem(kind, path, &ctx)?;
            picked.files.push(file.apps);
            picked.warnings.extend(file.warnings);
            asked.extend(file.metrics);
        }
    }
    picked.metrics = apps::one_endpoint(&asked)?;
    if let Some(env) = env_name
        && picked.files.is_empty()
    {
        return Err(Error::Usage(format!(
            "--env {env} selects env_{env} of an ecosystem file, and no target is one"
        )));
    }
    apps::only(&mut picked.files, words.only.as_deref())?;
    picked.targets = unique(picked.targets);
    Ok(picked)
}

/// Every app the supervisor has (none: an empty list, not an error).
fn running_apps(home: &Path) -> Result<Vec<AppInfo>, Error> {
    match Client::connect(home)?.call(&Request::Describe {
        target: Target::All,
    }) {
        Ok(Response::Apps { apps }) => Ok(apps),
        Ok(_) => Ok(Vec::new()),
        Err(ClientError::Supervisor {
            kind: ErrorKind::NotFound,
            ..
        }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The apps whose script is `script` (as the config resolves it), by name.
fn runners(apps: &[AppInfo], script: &Path, cwd: &Path) -> Result<Vec<Target>, Error> {
    let abs = config::script_path(script, cwd);
    let names: Vec<Target> = apps
        .iter()
        .filter(|a| a.spec.script == abs)
        .map(|a| Target::Name(a.spec.name.clone()))
        .collect();
    if names.is_empty() {
        return Err(Error::Client(ClientError::Supervisor {
            kind: ErrorKind::NotFound,
            message: format!(
                "no app named {} and none runs {}",
                script.display(),
                abs.display()
            ),
        }));
    }
    Ok(names)
}

/// For `stop` and `delete`, which act on what runs: the targets, then the apps of the
/// files that the supervisor has, by name (PM2 passes over the others); a file none of
/// whose apps it has is an error.
pub fn with_known_file_apps(picked: &Picked, home: &Path) -> Result<Vec<Target>, Error> {
    let mut targets = picked.targets.clone();
    if picked.files.is_empty() {
        return Ok(targets);
    }
    let running = running_apps(home)?;
    // A file `--only` left no app of is no error: the others have them.
    for (file, apps) in picked.files.iter().filter(|(_, apps)| !apps.is_empty()) {
        let known: Vec<Target> = apps
            .iter()
            .filter(|a| running.iter().any(|r| r.spec.name == a.name))
            .map(|a| Target::Name(a.name.clone()))
            .collect();
        if known.is_empty() {
            let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::Client(ClientError::Supervisor {
                kind: ErrorKind::NotFound,
                message: format!("{file}: none of its apps is known ({})", names.join(", ")),
            }));
        }
        targets.extend(known);
    }
    Ok(unique(targets))
}

/// `targets` without repeats, in order: a name given twice (also through a script or a
/// file) is acted on once.
fn unique(mut targets: Vec<Target>) -> Vec<Target> {
    let mut seen = Vec::new();
    targets.retain(|t| {
        let new = !seen.contains(t);
        seen.push(t.clone());
        new
    });
    targets
}
