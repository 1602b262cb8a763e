//! [`RawApp`]: one app entry as written (every key optional, each value already of
//! its type), read from a YAML/JSON map with PM2's key names and aliases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer};
use yaml_serde::{Mapping, Value};

use super::error::{FieldError, Seg, did_you_mean};
use super::keys::{self, KeyKind, Noop, Policy, Unsupported};
use super::spec::{ExecMode, SocketMode};
use super::values::{
    ArgList, CombinedLog, ExitCodes, FromLoose, Instances, KillSignal, ListenSpec, LogRetain,
    LogRotate, Loose, MemorySize, Millis, Watch, parse_port,
};

/// One app as written in an ecosystem file or given as CLI flags; `None` = not given
/// (the default applies). [`super::resolve_cli`] / [`super::load_str`] validate it
/// into an [`super::AppSpec`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawApp {
    pub name: Option<String>,
    /// Relative to `cwd` (or the file's directory); a bare name may be found on PATH.
    pub script: Option<PathBuf>,
    pub args: Option<ArgList>,
    /// `"none"` runs the script directly.
    pub interpreter: Option<String>,
    pub interpreter_args: Option<ArgList>,
    pub cwd: Option<PathBuf>,
    pub instances: Option<Instances>,
    pub exec_mode: Option<ExecMode>,
    pub env: Option<BTreeMap<String, String>>,
    /// `env_<name>` maps, by name (without the `env_` prefix).
    pub env_named: BTreeMap<String, BTreeMap<String, String>>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    /// PM2's combined file: every line of stdout and stderr.
    pub log_file: Option<CombinedLog>,
    /// PM2's: no log file at all.
    pub disable_logs: Option<bool>,
    pub merge_logs: Option<bool>,
    pub log_date_format: Option<String>,
    pub time: Option<bool>,
    /// Built-in rotation: the size a file rotates at, rotated files kept, when, gzip.
    pub log_max_size: Option<MemorySize>,
    pub log_retain: Option<LogRetain>,
    pub log_rotate: Option<LogRotate>,
    pub log_compress: Option<bool>,
    pub autorestart: Option<bool>,
    pub min_uptime: Option<Millis>,
    pub wait_ready: Option<bool>,
    pub shutdown_with_message: Option<bool>,
    pub listen_timeout: Option<Millis>,
    pub max_restarts: Option<u32>,
    pub restart_delay: Option<Millis>,
    pub exp_backoff_restart_delay: Option<Millis>,
    pub stop_exit_codes: Option<ExitCodes>,
    pub kill_timeout: Option<Millis>,
    pub kill_signal: Option<KillSignal>,
    pub instance_var: Option<String>,
    pub increment_var: Option<String>,
    pub max_memory_restart: Option<MemorySize>,
    /// PM2's `port`: sets env PORT; in cluster mode also the default `listen`.
    pub port: Option<u16>,
    pub listen: Option<ListenSpec>,
    pub socket: Option<SocketMode>,
    pub watchdog: Option<Millis>,
    pub health: Option<RawHealth>,
    pub watch: Option<Watch>,
    pub ignore_watch: Option<ArgList>,
    pub watch_delay: Option<Millis>,
    pub cron_restart: Option<String>,
    /// PM2 keys that were skipped ([`Policy::Skip`]), as spelled, in the map's order:
    /// the file's warning names them.
    pub(crate) skipped: Vec<String>,
    /// A flag value [`RawApp::from_flags`] could not parse (key, message): reported by
    /// [`super::resolve_cli`], which is where the CLI's errors come out.
    pub(crate) invalid: Option<(String, String)>,
}

impl<'de> Deserialize<'de> for RawApp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Mapping(map) => RawApp::from_mapping(&map).map_err(|e| {
                let msg = match (&e.label, e.keyed) {
                    (Some(label), true) => format!("{label}: {}", e.message),
                    _ => e.message,
                };
                de::Error::custom(msg)
            }),
            other => Err(de::Error::custom(format!(
                "expected a map of keys (script, name, instances, …), got {}",
                describe_value(&other)
            ))),
        }
    }
}

/// How a YAML value is shown after "got".
pub(crate) fn describe_value(v: &Value) -> String {
    match v {
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(_) => "a tagged value".into(),
        other => Loose::deserialize(other).map_or_else(|_| "a value".into(), |l| l.describe()),
    }
}

/// A map key as text (keys are strings in any sane file; numbers are shown as written).
pub(crate) fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn loose(key: &str, v: &Value) -> Result<Loose, FieldError> {
    Loose::deserialize(v).map_err(|e| FieldError::value(key, e.to_string()))
}

fn typed<T: FromLoose>(key: &str, v: &Value) -> Result<T, FieldError> {
    T::from_loose(&loose(key, v)?).map_err(|m| FieldError::value(key, m))
}

impl RawApp {
    /// Read one app's map. Checks every key (unknown, unsupported, alias clashes) and
    /// the type of every value; cross-key rules are left to resolution. PM2 keys drover
    /// skips are listed in `skipped`.
    pub(crate) fn from_mapping(map: &Mapping) -> Result<RawApp, FieldError> {
        let mut raw = RawApp::default();
        let mut seen: BTreeMap<&'static str, String> = BTreeMap::new();
        for (k, v) in map {
            let Some(key) = key_text(k) else {
                return Err(FieldError::app(format!(
                    "keys must be names, found {} as a key",
                    describe_value(k)
                )));
            };
            match keys::classify(&key) {
                KeyKind::Unknown => return Err(unknown_key(&key)),
                KeyKind::Unsupported(u) => {
                    if check_unsupported(u, &key, v)? {
                        raw.skipped.push(key.clone());
                    }
                }
                KeyKind::NamedEnv(name) => {
                    if name.is_empty() {
                        return Err(FieldError::at_key(
                            &key,
                            "env_ needs a name after it, like env_production",
                        ));
                    }
                    if !v.is_null() {
                        raw.env_named.insert(name, env_map(&key, v)?);
                    }
                }
                KeyKind::Known(canon) => {
                    if let Some(prev) = seen.insert(canon, key.clone()) {
                        return Err(FieldError::at_key(
                            &key,
                            format!("{key} and {prev} are the same setting; keep one"),
                        ));
                    }
                    if !v.is_null() {
                        raw.set(canon, &key, v)?;
                    }
                }
            }
        }
        Ok(raw)
    }

    fn set(&mut self, canon: &str, key: &str, v: &Value) -> Result<(), FieldError> {
        match canon {
            "name" => self.name = Some(typed(key, v)?),
            "script" => self.script = Some(typed(key, v)?),
            "args" => self.args = Some(typed(key, v)?),
            "interpreter" => self.interpreter = Some(typed(key, v)?),
            "interpreter_args" => self.interpreter_args = Some(typed(key, v)?),
            "cwd" => self.cwd = Some(typed(key, v)?),
            "instances" => self.instances = Some(typed(key, v)?),
            "exec_mode" => self.exec_mode = Some(typed(key, v)?),
            "env" => self.env = Some(env_map(key, v)?),
            "out_file" => self.out_file = Some(typed(key, v)?),
            "error_file" => self.error_file = Some(typed(key, v)?),
            "log_file" => self.log_file = Some(typed(key, v)?),
            "disable_logs" => self.disable_logs = Some(typed(key, v)?),
            "merge_logs" => self.merge_logs = Some(typed(key, v)?),
            "log_date_format" => self.log_date_format = Some(typed(key, v)?),
            "time" => self.time = Some(typed(key, v)?),
            "log_max_size" => self.log_max_size = Some(typed(key, v)?),
            "log_retain" => self.log_retain = Some(typed(key, v)?),
            "log_rotate" => self.log_rotate = Some(typed(key, v)?),
            "log_compress" => self.log_compress = Some(typed(key, v)?),
            "autorestart" => self.autorestart = Some(typed(key, v)?),
            "min_uptime" => self.min_uptime = Some(typed(key, v)?),
            "wait_ready" => self.wait_ready = Some(typed(key, v)?),
            "shutdown_with_message" => self.shutdown_with_message = Some(typed(key, v)?),
            "listen_timeout" => self.listen_timeout = Some(typed(key, v)?),
            "max_restarts" => self.max_restarts = Some(typed(key, v)?),
            "restart_delay" => self.restart_delay = Some(typed(key, v)?),
            "exp_backoff_restart_delay" => self.exp_backoff_restart_delay = Some(typed(key, v)?),
            "stop_exit_codes" => self.stop_exit_codes = Some(typed(key, v)?),
            "kill_timeout" => self.kill_timeout = Some(typed(key, v)?),
            "kill_signal" => self.kill_signal = Some(typed(key, v)?),
            "instance_var" => self.instance_var = Some(typed(key, v)?),
            "increment_var" => self.increment_var = Some(typed(key, v)?),
            "max_memory_restart" => self.max_memory_restart = Some(typed(key, v)?),
            "port" => {
                self.port =
                    Some(parse_port(&loose(key, v)?).map_err(|m| FieldError::value(key, m))?)
            }
            "listen" => self.listen = Some(typed(key, v)?),
            "socket" => self.socket = Some(typed(key, v)?),
            "watchdog" => self.watchdog = Some(typed(key, v)?),
            "watch" => self.watch = Some(typed(key, v)?),
            "ignore_watch" => self.ignore_watch = Some(typed(key, v)?),
            "watch_delay" => self.watch_delay = Some(typed(key, v)?),
            "cron_restart" => self.cron_restart = Some(typed(key, v)?),
            "health" => self.health = Some(health_map(key, v)?),
            other => {
                return Err(FieldError::at_key(
                    key,
                    format!("internal error: key {other} has no handler"),
                ));
            }
        }
        Ok(())
    }
}

/// `health:` as written: one of `http`/`exec`, and how often, how long, how many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawHealth {
    pub http: Option<String>,
    pub exec: Option<ArgList>,
    pub interval: Option<Millis>,
    pub timeout: Option<Millis>,
    pub failures: Option<u32>,
}

/// The keys `health:` may have.
pub(crate) const HEALTH_KEYS: &[&str] = &["http", "exec", "interval", "timeout", "failures"];

fn health_map(key: &str, v: &Value) -> Result<RawHealth, FieldError> {
    let Value::Mapping(map) = v else {
        return Err(FieldError::value(
            key,
            format!(
                "expected a map (http: /health, or exec: \"command\"; interval, timeout, failures), got {}",
                describe_value(v)
            ),
        ));
    };
    let mut health = RawHealth::default();
    for (k, val) in map {
        let Some(name) = key_text(k) else {
            return Err(FieldError::value(
                key,
                format!("keys must be names, found {}", describe_value(k)),
            ));
        };
        let label = format!("{key}.{name}");
        let path = vec![Seg::Key(key.to_owned()), Seg::Key(name.clone())];
        let at = |msg: String| FieldError::value(key, msg).with_path(label.clone(), path.clone());
        let loose = Loose::deserialize(val).map_err(|e| at(e.to_string()))?;
        match name.as_str() {
            "http" => {
                health.http = Some(match &loose {
                    Loose::Str(s) => s.clone(),
                    other => {
                        return Err(at(format!(
                            "expected a path like /health, got {}",
                            other.describe()
                        )));
                    }
                })
            }
            "exec" => health.exec = Some(ArgList::from_loose(&loose).map_err(at)?),
            "interval" => health.interval = Some(Millis::from_loose(&loose).map_err(at)?),
            "timeout" => health.timeout = Some(Millis::from_loose(&loose).map_err(at)?),
            "failures" => health.failures = Some(u32::from_loose(&loose).map_err(at)?),
            other => {
                let msg = match did_you_mean(other, HEALTH_KEYS) {
                    Some(near) => {
                        format!("unknown key {other:?} in {key} (did you mean {near:?}?)")
                    }
                    None => format!(
                        "unknown key {other:?} in {key} (it has {})",
                        HEALTH_KEYS.join(", ")
                    ),
                };
                return Err(FieldError::at_key(key, msg).with_path(label, path));
            }
        }
    }
    Ok(health)
}

/// `env` / `env_<name>`: a map of names to scalars (numbers and booleans become text).
fn env_map(key: &str, v: &Value) -> Result<BTreeMap<String, String>, FieldError> {
    let Value::Mapping(map) = v else {
        return Err(FieldError::value(
            key,
            format!(
                "expected a map of variables (NAME: value), got {}",
                describe_value(v)
            ),
        ));
    };
    let mut env = BTreeMap::new();
    for (k, val) in map {
        let Some(name) = key_text(k) else {
            return Err(FieldError::value(
                key,
                format!("variable names must be text, found {}", describe_value(k)),
            ));
        };
        let at = |msg: String| {
            FieldError::value(key, msg).with_path(
                format!("{key}.{name}"),
                vec![Seg::Key(key.to_owned()), Seg::Key(name.clone())],
            )
        };
        // An object or a list is stringified, as PM2 does (JSON.stringify).
        if matches!(val, Value::Mapping(_) | Value::Sequence(_)) {
            let json = serde_json::to_string(val).map_err(|e| at(e.to_string()))?;
            env.insert(name, json);
            continue;
        }
        let value = Loose::deserialize(val).map_err(|e| at(e.to_string()))?;
        let text = value.scalar_text().ok_or_else(|| {
            let hint = if value == Loose::Null {
                " (write \"\" for an empty value)"
            } else {
                ""
            };
            at(format!(
                "expected a string, number or true/false, got {}{hint}",
                value.describe()
            ))
        })?;
        env.insert(name, text);
    }
    Ok(env)
}

fn unknown_key(key: &str) -> FieldError {
    let names = keys::all_names();
    let msg = match did_you_mean(key, &names) {
        Some(near) => format!("unknown key {key:?} (did you mean {near:?}?)"),
        None => format!("unknown key {key:?}"),
    };
    FieldError::at_key(key, msg)
}

/// An unimplemented PM2 key: fine if its value asks for what drover does anyway
/// (`Ok(false)`), skipped if it only feeds PM2's own machinery (`Ok(true)`), else an
/// error.
fn check_unsupported(u: &Unsupported, key: &str, v: &Value) -> Result<bool, FieldError> {
    let accepted = match (u.noop, v) {
        (_, Value::Null) => true,
        (Noop::Bool(want), Value::Bool(b)) => *b == want,
        (Noop::AnyBool, Value::Bool(_)) => true,
        (Noop::Str(want), Value::String(s)) => s == want,
        _ => false,
    };
    if accepted {
        return Ok(false);
    }
    if u.policy == Policy::Skip {
        return Ok(true);
    }
    let only = match u.noop {
        Noop::Never => String::new(),
        Noop::Bool(b) => format!(" (only {key}: {b} is accepted)"),
        Noop::AnyBool => format!(" (only true or false is accepted for {key})"),
        Noop::Str(s) => format!(" (only {key}: {s} is accepted)"),
    };
    let mut err = FieldError::at_key(key, format!("{key} is not supported{only}: {}", u.why));
    if let Some(hint) = u.hint {
        err = err.with_hint(hint);
    }
    Err(err)
}
