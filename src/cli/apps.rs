//! What `drover run`, `drover start` and `restart --update-env` hand to a supervisor:
//! the apps their arguments name, validated, and the caller's environment, which the
//! workers inherit.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::RunArgs;
use crate::config::{self, AppSpec, ResolveContext};
use crate::error::Error;

/// The apps to run: every app of an ecosystem file, or one app from a script and flags.
pub fn load(args: &RunArgs, home: &Path) -> Result<Vec<AppSpec>, Error> {
    let apps = load_specs(args, home)?;
    for app in &apps {
        if let Some(warning) = port_fight(app) {
            eprintln!("drover: warning: {warning}");
        }
    }
    Ok(apps)
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

fn load_specs(args: &RunArgs, home: &Path) -> Result<Vec<AppSpec>, Error> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let ctx = ResolveContext {
        home: home.to_path_buf(),
        cwd,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        env_name: args.app.env.clone(),
    };
    let loaded = match Source::of(&args.target) {
        Source::JsFile => {
            args.app.check_with_ecosystem_file(!args.args.is_empty())?;
            let json = crate::js_ecosystem::evaluate(&args.target).map_err(Error::Usage)?;
            config::load_js_exports(&json, &args.target, &ctx)?
        }
        Source::File => {
            args.app.check_with_ecosystem_file(!args.args.is_empty())?;
            config::load_file(&args.target, &ctx)?
        }
        Source::Script => {
            args.app.check_with_script(&args.target)?;
            let raw = config::RawApp::from_flags(&args.app, &args.target, &args.args);
            return Ok(vec![config::resolve_cli(raw, &ctx)?]);
        }
    };
    if let Some(warning) = loaded.skipped.warning() {
        eprintln!("drover: warning: {warning}");
    }
    Ok(loaded.apps)
}

/// What the target of `run` or `start` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `*.config.js` / `.cjs` / `.mjs`, evaluated by node.
    JsFile,
    /// YAML or JSON.
    File,
    /// A script, a program, or a command string (`"python3 -m http.server"`).
    Script,
}

impl Source {
    /// By the name, as PM2 decides, except that words with spaces that name no file are
    /// a command (`"cat conf.json"` is no ecosystem file).
    pub fn of(target: &Path) -> Source {
        let command = target.to_string_lossy().contains(char::is_whitespace) && !target.exists();
        if command {
            Source::Script
        } else if crate::js_ecosystem::is_js_ecosystem(target) {
            Source::JsFile
        } else if config::is_ecosystem_path(target) {
            Source::File
        } else {
            Source::Script
        }
    }
}

/// The caller's environment, which workers inherit under their app's env.
pub fn caller_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
