//! Ecosystem files (YAML or JSON, PM2's keys) and CLI flags → validated [`AppSpec`]s.
//!
//! No processes, no sockets: only parsing and checks. Bad input is rejected here with
//! the file, line, app, key and a hint, so nothing downstream re-checks strings.
//!
//! - `values`: the value types (instances, durations, sizes, listen, …), each parsed
//!   the same from a file (serde) and from a flag (`FromStr`)
//! - `raw`: one app entry as written ([`RawApp`]): key names, aliases, types
//! - `flags`: the per-app CLI flags ([`AppFlags`], a clap `Args`) → a [`RawApp`]
//! - `keys`: which keys exist, documented; what becomes of the PM2 keys drover does not
//!   implement (drover-ecosystem(5) is generated from them: `man_page`, a test)
//! - `skipped`: the PM2 keys a file has that drover skips, for its one warning
//! - `resolve`: [`RawApp`] → [`AppSpec`]: defaults, paths, cross-key rules
//! - `update`: a known app's [`AppSpec`] changed by flags (`restart api --node-args …`)
//! - `locate`: the line of a key, found after the fact
//! - `metrics`: the file's top-level `metrics:` and `--metrics`: the supervisor's endpoint
//! - `error`: [`ConfigError`] and "did you mean"

pub mod spec;

mod error;
mod flags;
mod keys;
mod locate;
mod metrics;
mod raw;
mod resolve;
mod skipped;
mod update;
mod values;

#[cfg(test)]
mod man_page;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

pub use error::{ConfigError, ErrorInfo};
pub use flags::AppFlags;
pub(crate) use keys::why_unsupported;
pub use metrics::{MetricsAddr, MetricsOrigin, MetricsSpec, is_loopback};
pub use raw::RawApp;
pub use resolve::MAX_UNIX_PATH;
pub use skipped::Skipped;
pub use spec::*;
pub use update::update;
pub use values::{
    ArgList, CombinedLog, ExitCodes, Instances, KillSignal, ListenSpec, LogRetain, LogRotate,
    MAX_INSTANCES, MemorySize, Millis, Watch, any_signal,
};

use error::{FieldError, Seg, did_you_mean};
use raw::{describe_value, key_text};

/// What resolution needs from the caller's world.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// DROVER_HOME: default logs go to `$home/logs/<name>-out.log` / `-error.log`.
    pub home: PathBuf,
    /// The caller's working directory (absolute): base of relative CLI paths and of
    /// a relative ecosystem file name.
    pub cwd: PathBuf,
    /// CPU count, for `instances: max` / `-1`.
    pub cpus: u32,
    /// `--env <name>`: merge each app's `env_<name>` over its `env`.
    pub env_name: Option<String>,
}

/// Whether `p` names an ecosystem file drover reads (`.yaml`, `.yml`, `.json`, and, as
/// PM2, `*.config.js`/`.cjs`/`.mjs`, which `crate::js_ecosystem` evaluates).
pub fn is_ecosystem_path(p: &Path) -> bool {
    crate::js_ecosystem::is_js_ecosystem(p)
        || p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|x| e.eq_ignore_ascii_case(x))
        })
}

/// The validated apps of an ecosystem file, and the PM2 keys it has that drover skips
/// (the caller shows [`Skipped::warning`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub apps: Vec<AppSpec>,
    pub skipped: Skipped,
    /// `--env <name>` that no app of the file has an `env_<name>` for: the apps run
    /// with their `env` alone, as under PM2, which only warns.
    pub env_unknown: Option<String>,
    /// The file's top-level `metrics:`: where the supervisor serves its metrics.
    pub metrics: Option<MetricsSpec>,
}

/// Validate the apps a JavaScript ecosystem file exported, as node serialised them
/// (`json`). Relative paths resolve against the file's directory; errors name `origin`,
/// the app and the key, but no line: it would be a line of the JSON, not of the file.
pub fn load_js_exports(
    json: &str,
    origin: &Path,
    ctx: &ResolveContext,
) -> Result<Loaded, ConfigError> {
    match load_text(json, origin, ctx, true) {
        Ok(loaded) => Ok(Loaded {
            skipped: loaded.skipped.without_lines(),
            // A line of node's JSON is no line of the file.
            metrics: loaded.metrics.map(|m| MetricsSpec {
                origin: MetricsOrigin::File(origin.display().to_string()),
                ..m
            }),
            ..loaded
        }),
        Err(mut e) => {
            e.line = None;
            e.column = None;
            Err(e)
        }
    }
}

/// Read and validate an ecosystem file.
pub fn load_file(path: &Path, ctx: &ResolveContext) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
    load_str(&text, path, ctx)
}

/// How [`load_stdin`] names the file it reads in messages.
pub const STDIN: &str = "<stdin>";

/// Validate an ecosystem file read from stdin (PM2's `-`): YAML, or JSON (which YAML
/// reads too, once its tabs are spaces). Errors name `<stdin>`, with line and key;
/// relative paths resolve against `ctx.cwd`.
pub fn load_stdin(text: &str, ctx: &ResolveContext) -> Result<Loaded, ConfigError> {
    let json = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    load_text(text, Path::new(STDIN), ctx, json)
}

/// The absolute path a script given as `given` stands for, as the apps' `script`s are
/// resolved (relative to `cwd`, `.` and `..` folded, symlinks kept).
pub fn script_path(given: &Path, cwd: &Path) -> PathBuf {
    resolve::normalize(&cwd.join(given))
}

/// Validate an ecosystem file's text. `origin` is the file's name as shown in
/// messages; relative paths in the file resolve against its directory.
pub fn load_str(text: &str, origin: &Path, ctx: &ResolveContext) -> Result<Loaded, ConfigError> {
    let ext = origin
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(ext.as_deref(), Some("js" | "cjs" | "mjs" | "ts")) {
        return Err(ConfigError::file(
            origin,
            "a JavaScript ecosystem file is evaluated by node, not read as text",
        )
        .with_hint("name it *.config.js (PM2's rule), or write the apps as ecosystem.yaml"));
    }
    load_text(text, origin, ctx, ext.as_deref() == Some("json"))
}

/// [`load_str`] once the format is known: `json` text may indent with tabs.
fn load_text(
    text: &str,
    origin: &Path,
    ctx: &ResolveContext,
    json: bool,
) -> Result<Loaded, ConfigError> {
    // YAML allows no tabs for indentation; JSON does, and tabs cannot occur inside
    // JSON strings, so turning them into spaces keeps every line and column.
    let text: Cow<'_, str> = if json && text.contains('\t') {
        Cow::Owned(text.replace('\t', " "))
    } else {
        Cow::Borrowed(text)
    };
    let file = File {
        origin,
        text: &text,
    };
    if let Some(line) = flow_too_deep(&text) {
        return Err(ConfigError::file(
            origin,
            format!("[ and {{ are nested more than {MAX_FLOW_DEPTH} levels deep"),
        )
        .at(Some(line)));
    }
    let mut doc: Value = yaml_serde::from_str(&text).map_err(|e| file.syntax_error(&e))?;
    doc.apply_merge()
        .map_err(|e| ConfigError::file(origin, format!("merge key (<<): {e}")))?;
    let mut skipped = Skipped::new(origin);
    let (apps, prefix) = file.apps(&doc, &mut skipped)?;
    let metrics = file.metrics(&doc)?;
    let base = resolve::normalize(&ctx.cwd.join(origin.parent().unwrap_or(Path::new(""))));

    let mut specs: Vec<AppSpec> = Vec::with_capacity(apps.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut env_names: BTreeSet<String> = BTreeSet::new();
    for (i, item) in apps.iter().enumerate() {
        let mut app_path = prefix.clone();
        // One app object is the whole file: its keys are at the top.
        if !is_single_app(&doc) {
            app_path.push(Seg::Index(i));
        }
        let Value::Mapping(map) = item else {
            let line = locate::locate(&text, &app_path).map(|l| l.0);
            return Err(ConfigError::file(
                origin,
                format!(
                    "app #{}: expected a map of keys (script:, name:, instances:, …), got {}",
                    i + 1,
                    describe_value(item)
                ),
            )
            .at(line));
        };
        let app = AppInFile {
            file: &file,
            path: &app_path,
            map,
            label: app_label(map, i),
        };
        let raw = RawApp::from_mapping(map).map_err(|e| app.error(e))?;
        for key in &raw.skipped {
            let mut at = app_path.clone();
            at.push(Seg::Key(key.clone()));
            skipped.key(key, locate::locate(&text, &at).map(|l| l.0));
        }
        env_names.extend(raw.env_named.keys().cloned());
        let spec = resolve::resolve(raw, &base, ctx).map_err(|e| app.error(e))?;
        if let Some(prev) = names.get(&spec.name) {
            return Err(app.error(
                FieldError::at_key(
                    "name",
                    format!(
                        "the name {:?} is already used by app #{}",
                        spec.name,
                        prev + 1
                    ),
                )
                .with_hint("names must be unique: give one of them another `name:`"),
            ));
        }
        names.insert(spec.name.clone(), i);
        specs.push(spec);
    }
    let env_unknown = match &ctx.env_name {
        Some(env) if !env_names.contains(env) => {
            let found = if env_names.is_empty() {
                "no app has an env_<name> section".to_owned()
            } else {
                let list: Vec<String> = env_names.iter().map(|n| format!("env_{n}")).collect();
                format!("found: {}", list.join(", "))
            };
            Some(format!(
                "{}: --env {env}: no app has env_{env} ({found}); the apps run with their env alone",
                origin.display()
            ))
        }
        _ => None,
    };
    Ok(Loaded {
        apps: specs,
        skipped,
        env_unknown,
        metrics,
    })
}

/// Validate one app given as CLI flags: the same rules as a file entry, with paths
/// relative to `ctx.cwd` and errors naming the flag (`--instances: …`).
/// `ctx.env_name` merges `env_<name>` when the app has it and is ignored otherwise.
pub fn resolve_cli(raw: RawApp, ctx: &ResolveContext) -> Result<AppSpec, ConfigError> {
    resolve::resolve(raw, &ctx.cwd, ctx).map_err(ConfigError::from_cli)
}

/// The file being loaded: its name for messages and its text for line lookups.
struct File<'a> {
    origin: &'a Path,
    text: &'a str,
}

impl File<'_> {
    fn syntax_error(&self, e: &yaml_serde::Error) -> ConfigError {
        let full = e.to_string();
        let mut err = ConfigError::file(self.origin, "");
        if let Some(loc) = e.location() {
            err.line = Some(loc.line());
            err.column = Some(loc.column());
        }
        if full.starts_with("EOF while parsing") {
            err.message = "the file is empty".into();
            err.line = None;
            err.column = None;
            return err.with_hint(HINT_SHAPE);
        }
        let msg = strip_first_mark(&full);
        if let Some(at) = msg.find("duplicate entry with key ") {
            let key = msg[at + "duplicate entry with key ".len()..].trim();
            let unquoted = key.trim_matches('"');
            if let Some(line) = err.line {
                err.line = Some(second_occurrence(self.text, line, unquoted).unwrap_or(line));
                err.column = None;
            }
            err.message = format!("the key {key} appears twice in the same map");
            return err.with_hint("keep one of them");
        }
        // libyaml's own messages are syntax errors; serde's (tags, anchors, limits)
        // carry a path like `.[0].instances:` and are about values.
        let kind = if msg.starts_with('.') || msg.contains("invalid") {
            "invalid YAML"
        } else {
            "syntax error"
        };
        err.message = format!("{kind}: {msg}");
        let tabbed = err
            .line
            .and_then(|n| self.text.lines().nth(n.saturating_sub(1)))
            .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'));
        if tabbed {
            return err.with_hint("YAML indents with spaces, not tabs: replace the tabs");
        }
        err
    }

    /// The list of apps, and the path to it (`apps`, or nothing for a bare list). A
    /// `deploy:` section is noted in `skipped`.
    fn apps<'v>(
        &self,
        doc: &'v Value,
        skipped: &mut Skipped,
    ) -> Result<(&'v [Value], Vec<Seg>), ConfigError> {
        let top = match doc {
            Value::Sequence(list) => return self.non_empty(list, Vec::new()),
            Value::Mapping(top) => top,
            Value::Null => {
                return Err(
                    ConfigError::file(self.origin, "the file is empty").with_hint(HINT_SHAPE)
                );
            }
            other => {
                return Err(ConfigError::file(
                    self.origin,
                    format!(
                        "expected apps: with a list of apps, got {}",
                        describe_value(other)
                    ),
                )
                .with_hint(HINT_SHAPE));
            }
        };
        if is_single_app(doc) {
            return Ok((std::slice::from_ref(doc), Vec::new()));
        }
        let mut apps = None;
        let mut apps_key = "apps";
        for (k, v) in top {
            let key = key_text(k).unwrap_or_else(|| describe_value(k));
            match key.as_str() {
                // `pm2:` is PM2's other name for the list.
                "apps" | "pm2" if apps.is_none() => {
                    apps = Some(v);
                    apps_key = if key == "pm2" { "pm2" } else { "apps" };
                }
                "apps" | "pm2" => {
                    return Err(self
                        .at_key(&key, "apps: and pm2: both list apps; keep one")
                        .with_hint(HINT_SHAPE));
                }
                // Read by `File::metrics`.
                keys::METRICS => {}
                keys::DEPLOY => {
                    let line = locate::locate(self.text, &[Seg::Key(key.clone())]).map(|l| l.0);
                    skipped.deploy(line);
                }
                other if !matches!(keys::classify(other), keys::KeyKind::Unknown) => {
                    return Err(self
                        .at_key(
                            &key,
                            format!(
                                "{other} is an app key, but it is at the top level of the file"
                            ),
                        )
                        .with_hint(HINT_SHAPE));
                }
                other => {
                    let msg = match did_you_mean(other, keys::TOP_LEVEL) {
                        Some(near) => {
                            format!("unknown top-level key {other:?} (did you mean {near:?}?)")
                        }
                        None => format!("unknown top-level key {other:?} (expected apps:)"),
                    };
                    return Err(self.at_key(&key, msg));
                }
            }
        }
        match apps {
            None => {
                Err(ConfigError::file(self.origin, "no apps: key in the file")
                    .with_hint(HINT_SHAPE))
            }
            Some(Value::Sequence(list)) => self.non_empty(list, vec![Seg::Key(apps_key.into())]),
            Some(Value::Null) => {
                Err(self.at_key(apps_key, format!("{apps_key}: the list of apps is empty")))
            }
            Some(other) => Err(self
                .at_key(
                    apps_key,
                    format!(
                        "{apps_key}: expected a list of apps, got {}",
                        describe_value(other)
                    ),
                )
                .with_hint("start each app with `- `, as in `- script: app.js`")),
        }
    }

    /// The top-level `metrics:` (None in a file of one app, whose keys are the app's).
    fn metrics(&self, doc: &Value) -> Result<Option<MetricsSpec>, ConfigError> {
        let (Value::Mapping(top), false) = (doc, is_single_app(doc)) else {
            return Ok(None);
        };
        let Some(value) = top.get(keys::METRICS) else {
            return Ok(None);
        };
        let line = locate::locate(self.text, &[Seg::Key(keys::METRICS.into())]).map(|l| l.0);
        let origin = MetricsOrigin::File(match line {
            Some(line) => format!("{}:{line}", self.origin.display()),
            None => self.origin.display().to_string(),
        });
        metrics::from_value(value, origin).map_err(|e| {
            let at = locate::locate(self.text, &e.path).map(|l| l.0).or(line);
            let mut err = ConfigError::file(self.origin, e.message).at(at);
            err.key = Some(
                e.path
                    .iter()
                    .filter_map(|s| match s {
                        Seg::Key(k) => Some(k.as_str()),
                        Seg::Index(_) => None,
                    })
                    .collect::<Vec<_>>()
                    .join("."),
            );
            match e.hint {
                Some(hint) => err.with_hint(hint),
                None => err,
            }
        })
    }

    /// An error at a top-level key.
    fn at_key(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let line = locate::locate(self.text, &[Seg::Key(key.to_owned())]).map(|l| l.0);
        ConfigError::file(self.origin, msg).at(line)
    }

    fn non_empty<'v>(
        &self,
        list: &'v [Value],
        prefix: Vec<Seg>,
    ) -> Result<(&'v [Value], Vec<Seg>), ConfigError> {
        if list.is_empty() {
            let line = locate::locate(self.text, &prefix).map(|l| l.0);
            return Err(ConfigError::file(self.origin, "the list of apps is empty").at(line));
        }
        Ok((list, prefix))
    }
}

/// A file holding one app object rather than a list (PM2 reads it as a list of one).
fn is_single_app(doc: &Value) -> bool {
    matches!(doc, Value::Mapping(top) if top.contains_key("script") || top.contains_key("exec"))
}

const HINT_SHAPE: &str = "an ecosystem file looks like:\n    apps:\n      - name: api\n        script: server.js\n        instances: max";

/// One app entry of the file, for placing its errors.
struct AppInFile<'a> {
    file: &'a File<'a>,
    path: &'a [Seg],
    map: &'a Mapping,
    label: String,
}

impl AppInFile<'_> {
    fn error(&self, mut e: FieldError) -> ConfigError {
        self.respell(&mut e);
        let mut full = self.path.to_vec();
        full.extend(e.path.iter().cloned());
        let line = locate::locate(self.file.text, &full)
            .or_else(|| locate::locate(self.file.text, self.path))
            .map(|l| l.0);
        ConfigError::from_field(self.file.origin, line, self.label.clone(), e)
    }

    /// Resolution names keys canonically; show them as the file spells them
    /// (`node_args` rather than `interpreter_args`).
    fn respell(&self, e: &mut FieldError) {
        let Some(Seg::Key(canon)) = e.path.first() else {
            return;
        };
        if self.map.contains_key(canon.as_str()) {
            return;
        }
        let Some(alias) = keys::aliases(canon)
            .iter()
            .find(|a| self.map.contains_key(**a))
        else {
            return;
        };
        if let Some(label) = &mut e.label
            && let Some(rest) = label.strip_prefix(canon.as_str())
        {
            *label = format!("{alias}{rest}");
        }
        e.path[0] = Seg::Key((*alias).to_owned());
    }
}

/// `app "api"` when the entry has a usable name (or script to take it from), else `app #2`.
fn app_label(map: &Mapping, i: usize) -> String {
    let text = |k: &str| match map.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let name = text("name").or_else(|| {
        text("script").or_else(|| text("exec")).and_then(|s| {
            Path::new(&s)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
    });
    match name {
        Some(n) if resolve::validate_name(&n).is_ok() => format!("app {n:?}"),
        _ => format!("app #{}", i + 1),
    }
}

/// Remove the first ` at line N column M` (or ` at position N`) from a yaml_serde
/// message: the location is shown in front.
fn strip_first_mark(msg: &str) -> String {
    for marker in [" at line ", " at position "] {
        if let Some(start) = msg.find(marker) {
            let rest = &msg[start + marker.len()..];
            let mut end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if let Some(col) = rest[end..].strip_prefix(" column ") {
                end +=
                    " column ".len() + col.find(|c: char| !c.is_ascii_digit()).unwrap_or(col.len());
            }
            return format!("{}{}", &msg[..start], &rest[end..]);
        }
    }
    msg.to_owned()
}

/// The line of the second `key:` at or after line `from` (1-based), for duplicate keys.
fn second_occurrence(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut seen = 0;
    for (n, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        let t = t
            .strip_prefix(key)
            .or_else(|| t.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| t.strip_prefix(&format!("'{key}'")));
        if t.is_some_and(|rest| rest.trim_start().starts_with(':')) {
            seen += 1;
            if seen == 2 {
                return Some(n + 1);
            }
        }
    }
    None
}

/// yaml_serde refuses nesting deeper than 128 anyway, but its scanner takes time
/// quadratic in the depth of `[`/`{` to get there (200 KB of `k: [[[…` took 17 s), so
/// a file nested far deeper is refused before parsing. Brackets are counted everywhere,
/// in strings and comments too: a real file is nowhere near the limit.
const MAX_FLOW_DEPTH: usize = 1000;

/// The line where `[`/`{` nesting first exceeds [`MAX_FLOW_DEPTH`].
fn flow_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
    }
    None
}
