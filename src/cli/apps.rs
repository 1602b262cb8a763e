//! What `drover run`, `drover start`, and a lifecycle command given an ecosystem file,
//! hand to a supervisor: the apps their arguments name, validated, and the caller's
//! environment, which the workers inherit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::RunArgs;
use crate::config::{self, AppSpec, MetricsSpec, ResolveContext};
use crate::error::Error;

/// The apps to run: those of every target in order (an ecosystem file's, `--only` some
/// of them; one app per script, from it and the flags); and the metrics endpoint the
/// files ask for.
pub fn load(args: &RunArgs, home: &Path) -> Result<(Vec<AppSpec>, Option<MetricsSpec>), Error> {
    let targets: Vec<&Path> = args.targets.iter().map(PathBuf::as_path).collect();
    let each = load_each(args, &targets, home)?;
    let metrics = one_endpoint(each.iter().filter_map(|t| t.metrics.as_ref()))?;
    Ok((each.into_iter().flat_map(|t| t.apps).collect(), metrics))
}

/// The apps one target of `run` or `start` describes.
#[derive(Debug)]
pub struct TargetApps {
    pub source: Source,
    pub apps: Vec<AppSpec>,
    /// An ecosystem file's top-level `metrics:`.
    pub metrics: Option<MetricsSpec>,
}

/// One supervisor serves one metrics endpoint: the files that name one must name the
/// same address. The endpoint they ask for, if any.
pub fn one_endpoint<'a>(
    asked: impl IntoIterator<Item = &'a MetricsSpec>,
) -> Result<Option<MetricsSpec>, Error> {
    let mut first: Option<&MetricsSpec> = None;
    for spec in asked {
        match first {
            None => first = Some(spec),
            Some(one) if one.listen == spec.listen => {}
            Some(one) => {
                return Err(Error::Usage(format!(
                    "{}: {} and {}: {}: one supervisor serves one metrics endpoint; name the same address in both, or leave metrics: out of one",
                    one.origin.key(),
                    one.listen,
                    spec.origin.key(),
                    spec.listen
                )));
            }
        }
    }
    Ok(first.cloned())
}

/// The apps of each of `targets` (some of `args.targets`), validated together: the
/// flags describe every script, `--only` picks among all the files, and no two apps
/// may have one name.
pub fn load_each(args: &RunArgs, targets: &[&Path], home: &Path) -> Result<Vec<TargetApps>, Error> {
    if targets.len() > 1
        && let Some(name) = &args.app.name
    {
        return Err(Error::Usage(format!(
            "--name {name} names one app, and {} targets were given: start them one at a time, or name them in an ecosystem file",
            targets.len()
        )));
    }
    let ctx = context(home, args.env.clone())?;
    let mut each = Vec::new();
    let mut files = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let source = Source::of(target);
        match source {
            Source::Script => {
                check_with_script(args, target)?;
                let raw = config::RawApp::from_flags(&args.app, target, &args.args);
                each.push(TargetApps {
                    source,
                    apps: vec![config::resolve_cli(raw, &ctx)?],
                    metrics: None,
                });
            }
            Source::Ecosystem(kind) => {
                args.app.check_with_ecosystem_file(!args.args.is_empty())?;
                if kind == Ecosystem::Stdin && targets[..i].iter().any(|t| *t == Path::new("-")) {
                    return Err(Error::Usage("- (stdin) can be given once".into()));
                }
                let file = ecosystem(kind, target, &ctx)?;
                warn(&file.warnings);
                files.push((each.len(), file.apps));
                each.push(TargetApps {
                    source,
                    apps: Vec::new(),
                    metrics: file.metrics,
                });
            }
        }
    }
    let (slots, mut file_apps): (Vec<usize>, Vec<FileApps>) = files.into_iter().unzip();
    only(&mut file_apps, args.only.as_deref())?;
    for (slot, (_, apps)) in slots.into_iter().zip(file_apps) {
        each[slot].apps = apps;
    }
    let mut seen: Vec<(&str, &Path)> = Vec::new();
    for (t, target) in each.iter().zip(targets) {
        for app in &t.apps {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == app.name) {
                return Err(Error::Usage(format!(
                    "two apps named {}: from {} and {}; give them names of their own (--name, or name: in a file)",
                    app.name,
                    first.display(),
                    target.display()
                )));
            }
            seen.push((&app.name, target));
        }
    }
    for app in each.iter().flat_map(|t| &t.apps) {
        if let Some(warning) = port_fight(app) {
            eprintln!("drover: warning: {warning}");
        }
    }
    Ok(each)
}

/// `--env` selects a section of an ecosystem file, `--only` some of its apps: a script
/// has neither.
fn check_with_script(args: &RunArgs, script: &Path) -> Result<(), Error> {
    if let Some(env) = &args.env {
        return Err(Error::Usage(format!(
            "--env {env} selects env_{env} of an ecosystem file; {} is a script (set variables in your shell or an ecosystem file)",
            script.display()
        )));
    }
    if let Some(only) = &args.only {
        return Err(Error::Usage(format!(
            "--only {only} picks apps of an ecosystem file; {} is a script",
            script.display()
        )));
    }
    Ok(())
}

/// Several workers and no address to share: each worker that binds a port of its own
/// fights the others for it (all but one crash-loop on EADDRINUSE).
fn port_fight(app: &AppSpec) -> Option<String> {
    (app.instances > 1
        && app.listen.is_none()
        && app.increment_var.is_none()
        && !app.shares_first_listen())
    .then(|| {
        format!(
            "app {}: {} workers and no address to share: if they bind a port, all but one will fail with EADDRINUSE; give --listen PORT (or port:/env PORT in cluster mode), or increment_var: PORT for a port each",
            app.name, app.instances
        )
    })
}

/// What resolution needs from here: DROVER_HOME, our cwd, the CPUs we may use (affinity
/// and cgroup quota, see `cpus`), `--env`.
pub fn context(home: &Path, env_name: Option<String>) -> Result<ResolveContext, Error> {
    Ok(ResolveContext {
        home: home.to_path_buf(),
        cwd: std::env::current_dir().context("cannot read the current directory")?,
        cpus: crate::cpus::usable(),
        env_name,
    })
}

/// What a target of `run` or `start` names, or a target of a lifecycle command names
/// once it is known to be no app's name or id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Ecosystem(Ecosystem),
    /// A script, a program, or a command string (`"python3 -m http.server"`).
    Script,
}

/// Where an ecosystem file's apps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecosystem {
    /// `-`: the file is on stdin (YAML or JSON).
    Stdin,
    /// `*.config.js` / `.cjs` / `.mjs`, evaluated by node.
    Js,
    /// YAML or JSON.
    Text,
}

impl Source {
    /// By the name, as PM2 decides, except that words with spaces that name no file are
    /// a command (`"cat conf.json"` is no ecosystem file).
    pub fn of(target: &Path) -> Source {
        let command = target.to_string_lossy().contains(char::is_whitespace) && !target.exists();
        if target == Path::new("-") {
            Source::Ecosystem(Ecosystem::Stdin)
        } else if command {
            Source::Script
        } else if crate::js_ecosystem::is_js_ecosystem(target) {
            Source::Ecosystem(Ecosystem::Js)
        } else if config::is_ecosystem_path(target) {
            Source::Ecosystem(Ecosystem::Text)
        } else {
            Source::Script
        }
    }
}

/// The name an ecosystem file is shown by, and its validated apps.
pub type FileApps = (String, Vec<AppSpec>);

/// An ecosystem file, read.
#[derive(Debug)]
pub struct EcosystemFile {
    pub apps: FileApps,
    /// Its top-level `metrics:`.
    pub metrics: Option<MetricsSpec>,
    /// What a command that applies its settings shows ([`warn`]): PM2 keys it skips, an
    /// `--env` none of its apps has.
    pub warnings: Vec<String>,
}

/// Loads the ecosystem file `target` (a path, or `-`), validating every app.
pub fn ecosystem(
    kind: Ecosystem,
    target: &Path,
    ctx: &ResolveContext,
) -> Result<EcosystemFile, Error> {
    let loaded = match kind {
        Ecosystem::Stdin => {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| Error::Usage(format!("-: cannot read stdin: {e}")))?;
            match config::load_stdin(&text, ctx) {
                // PM2 evaluates what is piped to it, as a .json file.
                Err(e) if is_javascript(&text) => {
                    match crate::js_ecosystem::evaluate_expression_text(&text, config::STDIN) {
                        Ok(json) => config::load_js_exports(&json, Path::new(config::STDIN), ctx)?,
                        Err(_) => return Err(e.into()),
                    }
                }
                loaded => loaded?,
            }
        }
        Ecosystem::Js => {
            let json = crate::js_ecosystem::evaluate(target).map_err(Error::Usage)?;
            config::load_js_exports(&json, target, ctx)?
        }
        Ecosystem::Text => match config::load_file(target, ctx) {
            Err(e) if is_javascript_json(target) => {
                // PM2 evaluates a .json file: its users' files may be JavaScript.
                match crate::js_ecosystem::evaluate_expression(target) {
                    Ok(json) => config::load_js_exports(&json, target, ctx)?,
                    Err(_) => return Err(e.into()),
                }
            }
            loaded => loaded?,
        },
    };
    let warnings = loaded
        .skipped
        .warning()
        .into_iter()
        .chain(loaded.env_unknown)
        .collect();
    let shown = match kind {
        Ecosystem::Stdin => config::STDIN.to_owned(),
        _ => target.display().to_string(),
    };
    Ok(EcosystemFile {
        apps: (shown, loaded.apps),
        metrics: loaded.metrics,
        warnings,
    })
}

/// Prints the warnings of files whose settings a command applies.
pub fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("drover: warning: {warning}");
    }
}

/// A `.json` file that neither JSON nor YAML reads: PM2 would read it as JavaScript.
pub fn is_javascript_json(path: &Path) -> bool {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    json && std::fs::read_to_string(path).is_ok_and(|text| is_javascript(&text))
}

/// Text that neither JSON nor YAML reads, and that starts as a JavaScript object or
/// array would (after comments): PM2's JSON files may be JavaScript.
fn is_javascript(text: &str) -> bool {
    let code = text.lines().map(str::trim_start).find(|l| {
        !l.is_empty() && !l.starts_with("//") && !l.starts_with("/*") && !l.starts_with('*')
    });
    code.is_some_and(|l| l.starts_with('{') || l.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err()
        && yaml_serde::from_str::<yaml_serde::Value>(&text.replace('\t', " ")).is_err()
}

/// `--only a,b` (PM2 also splits at spaces): keep those apps of the files, each of
/// which must be an app of one of them.
pub fn only(files: &mut [FileApps], only: Option<&str>) -> Result<(), Error> {
    let Some(only) = only else {
        return Ok(());
    };
    let names: Vec<&str> = only.split([',', ' ']).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err(Error::Usage("--only: expected app names (a,b)".into()));
    }
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "--only {only} picks apps of an ecosystem file, and no target is one"
        )));
    }
    for name in &names {
        if !files
            .iter()
            .any(|(_, apps)| apps.iter().any(|a| a.name == *name))
        {
            let shown: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
            let has: Vec<&str> = files
                .iter()
                .flat_map(|(_, apps)| apps.iter().map(|a| a.name.as_str()))
                .collect();
            return Err(Error::Usage(format!(
                "{}: --only {name}: no app of that name (it has {})",
                shown.join(", "),
                has.join(", ")
            )));
        }
    }
    for (_, apps) in files.iter_mut() {
        apps.retain(|a| names.contains(&a.name.as_str()));
    }
    Ok(())
}

/// The caller's environment, which workers inherit under their app's env; without
/// what describes the caller's own fds and sockets (systemd's NOTIFY_SOCKET when the
/// caller is a unit's `drover run`, LISTEN_FDS…), which is never a worker's.
pub fn caller_env() -> BTreeMap<String, String> {
    use crate::supervisor::spawn::SUPERVISOR_ONLY_VARS;
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| !SUPERVISOR_ONLY_VARS.contains(&k.as_str()))
        .collect()
}
