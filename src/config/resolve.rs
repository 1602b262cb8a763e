//! [`RawApp`] → [`AppSpec`]: defaults (PM2's), paths made absolute, the script found,
//! and every rule that involves more than one key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::ResolveContext;
use super::error::{FieldError, Seg};
use super::raw::RawApp;
use super::raw::RawHealth;
use super::spec::{
    AppSpec, Command, ExecMode, HealthCheck, HealthSpec, ListenAddr, LogRotation, LogSpec,
    RestartSpec, Runtime, SocketMode, StopSpec, WatchSpec, defaults,
};
use super::values::{CombinedLog, ListenSpec, LogRotate, Millis, Watch, shell_syntax, split_args};
use nix::sys::signal::Signal;
use std::time::Duration;

/// Longest unix socket path (sun_path is 108 bytes with its NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// Validate `raw` into a spec. `base` is the directory relative paths resolve against
/// when `cwd` is not given (the file's directory, or the CLI's cwd).
pub(crate) fn resolve(
    raw: RawApp,
    base: &Path,
    ctx: &ResolveContext,
) -> Result<AppSpec, FieldError> {
    if let Some((key, message)) = &raw.invalid {
        return Err(FieldError::value(key, message.clone()));
    }
    let cwd = resolve_cwd(raw.cwd.as_deref(), base)?;
    let script_given = raw.script.clone().ok_or_else(|| {
        FieldError::app("script is missing: every app needs the program to run").with_hint(
            "add for example `script: app.js` (a path relative to cwd, or a program on PATH)",
        )
    })?;
    let (script_given, leading_args) = command_words(&script_given, &cwd)?;
    let script = find_script(&script_given, &cwd)?;

    let name = match &raw.name {
        Some(name) => {
            validate_name(name).map_err(|m| FieldError::value("name", m))?;
            name.clone()
        }
        None => {
            let stem = script_stem(&script_given);
            validate_name(&stem).map_err(|m| {
                FieldError::app(format!(
                    "the name taken from the script's file name is not valid: {m}"
                ))
                .with_hint("set name: explicitly")
            })?;
            stem
        }
    };

    let command = resolve_command(&raw, &script_given, script, leading_args)?;

    let exec_mode = raw.exec_mode.unwrap_or(if raw.instances.is_some() {
        ExecMode::Cluster
    } else {
        ExecMode::Fork
    });
    let instances = raw.instances.map_or(1, |n| n.resolve(ctx.cpus));

    // env, then env_<name> over it, then PM2's `port` (it always sets PORT, as PM2).
    check_env("env", raw.env.as_ref())?;
    for (env_name, vars) in &raw.env_named {
        check_env(&format!("env_{env_name}"), Some(vars))?;
    }
    let mut env = raw.env.clone().unwrap_or_default();
    if let Some(env_name) = &ctx.env_name
        && let Some(over) = raw.env_named.get(env_name)
    {
        env.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(port) = raw.port
        && port != 0
    {
        env.insert("PORT".into(), port.to_string());
    }

    let increment_var = match &raw.increment_var {
        Some(var) => {
            check_var_name(var).map_err(|m| FieldError::value("increment_var", m))?;
            Some(var.clone())
        }
        None => None,
    };
    let increments_port = increment_var.as_deref() == Some("PORT");

    // The shared listener. In cluster mode a PM2 app shares its port with no new key:
    // `port`, else env PORT. We do not add PORT to env for a listen address: when env
    // has no PORT the supervisor sets it to the bound port at runtime.
    let listen_spec = match (&raw.listen, exec_mode) {
        (Some(_), ExecMode::Cluster) if increments_port => {
            return Err(FieldError::value(
                "increment_var",
                "PORT gives each instance its own port; it cannot be combined with a shared listen in cluster mode (use exec_mode: fork)",
            ));
        }
        (Some(l), _) => Some(l.clone()),
        // increment_var: PORT asks for one port per instance: no shared listener.
        (None, ExecMode::Cluster) if !increments_port => {
            raw.port.map(ListenSpec::Port).or_else(|| {
                env.get("PORT")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .filter(|p| *p != 0)
                    .map(ListenSpec::Port)
            })
        }
        (None, _) => None,
    };
    let listen = match listen_spec {
        None => None,
        // Both stacks, as Node's listen(port) does: `[::]` with IPV6_V6ONLY off (the
        // sockets module falls back to 0.0.0.0 where the host has no IPv6).
        Some(ListenSpec::Port(p)) => Some(ListenAddr::Tcp(SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            p,
        )))),
        Some(ListenSpec::Tcp(addr)) => Some(ListenAddr::Tcp(addr)),
        Some(ListenSpec::Unix(path)) => {
            let abs = normalize(&cwd.join(&path));
            let len = abs.as_os_str().len();
            if len > MAX_UNIX_PATH {
                return Err(FieldError::value(
                    "listen",
                    format!(
                        "the unix socket path {} is {len} bytes; the limit is {MAX_UNIX_PATH}",
                        abs.display()
                    ),
                )
                .with_hint("use a shorter path, like unix:/run/<name>.sock"));
            }
            Some(ListenAddr::Unix(abs))
        }
    };

    let socket = match (raw.socket, &listen) {
        (Some(SocketMode::Reuseport), Some(ListenAddr::Unix(_))) => {
            return Err(FieldError::value(
                "socket",
                "reuseport needs a TCP listen address (a unix socket is always shared: use socket: shared or leave it out)",
            ));
        }
        (Some(mode), None) => {
            return Err(FieldError::value(
                "socket",
                format!("{mode} has no effect without a listen address"),
            )
            .with_hint("set listen: (or port: with exec_mode: cluster), or remove socket:"));
        }
        (Some(mode), Some(_)) => mode,
        (None, Some(ListenAddr::Unix(_))) => SocketMode::Shared,
        (None, _) => SocketMode::Reuseport,
    };

    if let Some(var) = &increment_var {
        let base = match env.get(var) {
            Some(value) => value.trim().parse::<i64>().map_err(|_| {
                FieldError::value(
                    "increment_var",
                    format!("{var} must hold a whole number to count up from, but env {var} is {value:?}"),
                )
            })?,
            None => {
                let from_listen = match &listen {
                    Some(ListenAddr::Tcp(addr)) if addr.port() != 0 => Some(addr.port()),
                    _ => None,
                };
                match from_listen.filter(|_| increments_port) {
                    Some(port) => {
                        env.insert("PORT".into(), port.to_string());
                        i64::from(port)
                    }
                    None => {
                        let how = if increments_port {
                            "set env PORT or port:"
                        } else {
                            "set it in env"
                        };
                        return Err(FieldError::value(
                            "increment_var",
                            format!("{var} has no base value to count up from ({how})"),
                        ));
                    }
                }
            }
        };
        let last = base.checked_add(i64::from(instances) - 1);
        if increments_port && !matches!(last, Some(p) if base >= 1 && p <= 65535) {
            return Err(FieldError::value(
                "increment_var",
                format!("PORT {base} + {instances} instances goes outside 1-65535"),
            ));
        }
        if last.is_none() {
            return Err(FieldError::value(
                "increment_var",
                format!("{var} {base} is too large"),
            ));
        }
    }

    let instance_var = match &raw.instance_var {
        Some(var) => {
            check_var_name(var).map_err(|m| FieldError::value("instance_var", m))?;
            var.clone()
        }
        None => defaults::INSTANCE_VAR.to_owned(),
    };

    // PM2's file names: a fork app of one instance writes `<name>-out.log`; several
    // instances (and cluster mode) get `-<i>` each, unless merge_logs.
    let merge_default = exec_mode == ExecMode::Fork && instances == 1;
    let logs = resolve_logs(&raw, &name, &cwd, ctx, merge_default)?;

    let restart = RestartSpec {
        autorestart: raw.autorestart.unwrap_or(true),
        min_uptime: raw.min_uptime.map_or(defaults::MIN_UPTIME, |m| m.0),
        max_restarts: raw.max_restarts.unwrap_or(defaults::MAX_RESTARTS),
        restart_delay: raw.restart_delay.map(|m| m.0).unwrap_or_default(),
        exp_backoff_restart_delay: raw.exp_backoff_restart_delay.map(|m| m.0),
        stop_exit_codes: raw.stop_exit_codes.clone().map(|c| c.0).unwrap_or_default(),
        wait_ready: raw.wait_ready.unwrap_or(false),
        listen_timeout: raw.listen_timeout.map_or(defaults::LISTEN_TIMEOUT, |m| m.0),
    };
    let stop = StopSpec {
        kill_signal: raw
            .kill_signal
            .map_or_else(|| graceful_signal(&command), |s| s.0),
        kill_timeout: raw.kill_timeout.map_or(defaults::KILL_TIMEOUT, |m| m.0),
        shutdown_with_message: raw.shutdown_with_message.unwrap_or(false),
    };
    if stop.shutdown_with_message && command.runtime() != Runtime::Node {
        return Err(FieldError::value(
            "shutdown_with_message",
            "needs a Node app: the message goes over Node's IPC channel",
        )
        .with_hint("use kill_signal: for other programs"));
    }

    let watchdog = match raw.watchdog {
        Some(Millis(d)) if d < MIN_HEALTH_PERIOD => {
            return Err(FieldError::value(
                "watchdog",
                format!(
                    "{} ms is shorter than the shortest period drover checks, {} ms",
                    d.as_millis(),
                    MIN_HEALTH_PERIOD.as_millis()
                ),
            ));
        }
        Some(Millis(d)) => Some(d),
        None => None,
    };
    // Through the shared address a check reaches one worker only where its slot has a
    // listener of its own (reuseport over TCP, also a Node cluster app's first port), or
    // with a port per instance.
    let per_worker_address = match &listen {
        Some(ListenAddr::Tcp(_)) => socket == SocketMode::Reuseport,
        Some(ListenAddr::Unix(_)) => false,
        None => {
            increments_port
                || exec_mode == ExecMode::Cluster
                    && increment_var.is_none()
                    && command.runtime() == Runtime::Node
        }
    };
    let health = match raw.health.as_ref() {
        Some(h) => Some(resolve_health(h, &cwd, per_worker_address)?),
        None => None,
    };

    let watch = resolve_watch(&raw, &cwd)?;
    let cron_restart = match &raw.cron_restart {
        Some(expr) => {
            crate::schedule::parse(expr).map_err(|e| FieldError::value("cron_restart", e))?;
            Some(expr.trim().to_owned())
        }
        None => None,
    };

    Ok(AppSpec {
        name,
        command,
        cwd,
        instances,
        exec_mode,
        env,
        listen,
        socket,
        logs,
        restart,
        stop,
        instance_var,
        increment_var,
        max_memory_restart: raw.max_memory_restart.map(|m| m.0),
        watchdog,
        health,
        watch,
        cron_restart,
    })
}

/// `watch`, `ignore_watch` and `watch_delay`: the paths exist, the globs compile, and
/// the other two are only given with a watch.
fn resolve_watch(raw: &RawApp, cwd: &Path) -> Result<Option<WatchSpec>, FieldError> {
    let paths = match &raw.watch {
        None | Some(Watch::Off) => {
            for (key, given) in [
                ("ignore_watch", raw.ignore_watch.is_some()),
                ("watch_delay", raw.watch_delay.is_some()),
            ] {
                if given {
                    return Err(FieldError::value(
                        key,
                        "has no effect without watch (true, or the paths to watch)",
                    ));
                }
            }
            return Ok(None);
        }
        Some(Watch::Cwd) => vec![cwd.to_path_buf()],
        Some(Watch::Paths(given)) => {
            let mut paths = Vec::new();
            for path in given {
                let abs = normalize(&cwd.join(path));
                if !abs.exists() {
                    return Err(FieldError::value(
                        "watch",
                        shown_path(path, &abs, "does not exist"),
                    ));
                }
                paths.push(abs);
            }
            paths
        }
    };
    let ignore: Vec<String> = match &raw.ignore_watch {
        Some(list) => list.0.clone(),
        None => defaults::IGNORE_WATCH
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for pattern in &ignore {
        crate::watch::Ignore::check(pattern).map_err(|e| FieldError::value("ignore_watch", e))?;
    }
    Ok(Some(WatchSpec {
        paths,
        ignore,
        delay: raw.watch_delay.map_or(defaults::WATCH_DELAY, |m| m.0),
    }))
}

/// The shortest watchdog period or health interval: a check every few milliseconds
/// would cost more than the workers.
const MIN_HEALTH_PERIOD: Duration = Duration::from_millis(100);

fn resolve_health(
    raw: &RawHealth,
    cwd: &Path,
    per_worker_address: bool,
) -> Result<HealthSpec, FieldError> {
    let at = |key: &str, msg: String| {
        FieldError::value("health", msg).with_path(
            format!("health.{key}"),
            vec![Seg::Key("health".into()), Seg::Key(key.into())],
        )
    };
    let check = match (&raw.http, &raw.exec) {
        (Some(_), Some(_)) => {
            return Err(FieldError::at_key(
                "health",
                "health has both http: and exec:; give one",
            ));
        }
        (None, None) => {
            return Err(FieldError::at_key(
                "health",
                "health needs http: (a path to GET, like /health) or exec: (a command)",
            ));
        }
        (Some(path), None) => {
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(at("http", format!("{path:?} is not a path like /health")));
            }
            if !per_worker_address {
                return Err(at(
                    "http",
                    "a check through a shared socket (socket: shared, unix:) cannot choose which worker answers; use exec: or watchdog:, or a reuseport TCP listen".into(),
                ));
            }
            HealthCheck::Http { path: path.clone() }
        }
        (None, Some(words)) => {
            let mut words = words.0.clone();
            if words.is_empty() {
                return Err(at("exec", "is empty".into()));
            }
            let program = words.remove(0);
            let (program, _) = find_script(Path::new(&program), cwd)
                .map_err(|e| at("exec", e.message.replace("script ", "program ")))?;
            HealthCheck::Exec {
                program,
                args: words,
            }
        }
    };
    let interval = raw.interval.map_or(defaults::HEALTH_INTERVAL, |m| m.0);
    // The default timeout fits a shorter interval: `interval: 1s` alone is a whole check.
    let timeout = raw
        .timeout
        .map_or(defaults::HEALTH_TIMEOUT.min(interval), |m| m.0);
    if interval < MIN_HEALTH_PERIOD {
        return Err(at(
            "interval",
            format!("at least {} ms", MIN_HEALTH_PERIOD.as_millis()),
        ));
    }
    if timeout.is_zero() || timeout > interval {
        return Err(at(
            "timeout",
            format!(
                "{} ms: it must be more than 0 and at most the interval ({} ms)",
                timeout.as_millis(),
                interval.as_millis()
            ),
        ));
    }
    let failures = raw.failures.unwrap_or(defaults::HEALTH_FAILURES);
    if failures == 0 {
        return Err(at("failures", "at least 1".into()));
    }
    Ok(HealthSpec {
        check,
        interval,
        timeout,
        failures,
    })
}

fn resolve_cwd(given: Option<&Path>, base: &Path) -> Result<PathBuf, FieldError> {
    let Some(given) = given else {
        return Ok(normalize(base));
    };
    if given.as_os_str().is_empty() {
        return Err(FieldError::value("cwd", "is empty"));
    }
    let abs = normalize(&base.join(given));
    let problem = if !abs.exists() {
        "does not exist"
    } else if !abs.is_dir() {
        "is not a directory"
    } else {
        return Ok(abs);
    };
    Err(FieldError::value("cwd", shown_path(given, &abs, problem)))
}

/// `"./x" <problem> (resolved to /abs/x)`, without the part in brackets when `given`
/// is already that absolute path.
fn shown_path(given: &Path, abs: &Path, problem: &str) -> String {
    let quoted = format!("{:?}", given.display().to_string());
    if given == abs {
        format!("{quoted} {problem}")
    } else {
        format!("{quoted} {problem} (resolved to {})", abs.display())
    }
}

/// PM2 runs a script that is no file but has spaces in it as a command
/// (`python3 -m http.server`). drover runs it without a shell: the first word is the
/// program (found as a script is), the others are arguments before `args`. Shell syntax
/// is refused rather than passed along as text a shell would have read differently.
fn command_words(given: &Path, cwd: &Path) -> Result<(PathBuf, Vec<String>), FieldError> {
    let text = given.to_string_lossy();
    if !text.contains(char::is_whitespace) || cwd.join(given).exists() {
        return Ok((given.to_path_buf(), Vec::new()));
    }
    if let Some(c) = shell_syntax(&text) {
        return Err(FieldError::value(
            "script",
            format!("{text:?} runs as a command without a shell, and {c:?} is shell syntax"),
        )
        .with_hint(
            "to run it in a shell: script: bash, args: [-c, '…'] (drover start bash -- -c '…')",
        ));
    }
    let mut words = split_args(&text).map_err(|m| FieldError::value("script", m))?;
    if words.is_empty() {
        return Err(FieldError::value("script", "is empty"));
    }
    let program = words.remove(0);
    Ok((PathBuf::from(program), words))
}

/// The script's absolute path: relative to cwd, or a bare name found on PATH.
/// Returns the path and whether it came from PATH.
fn find_script(given: &Path, cwd: &Path) -> Result<(PathBuf, bool), FieldError> {
    let text = given.to_string_lossy();
    if text.trim().is_empty() {
        return Err(FieldError::value("script", "is empty"));
    }
    let abs = normalize(&cwd.join(given));
    if abs.is_file() {
        return Ok((abs, false));
    }
    let quoted = format!("{:?}", text);
    if abs.is_dir() {
        return Err(FieldError::at_key(
            "script",
            format!("script {quoted} is a directory ({})", abs.display()),
        )
        .with_hint("point script at the file to run"));
    }
    if !text.contains('/') {
        if let Some(found) = which(given, cwd) {
            return Ok((found, true));
        }
        return Err(FieldError::at_key(
            "script",
            format!(
                "script {quoted} not found (not in {} and not an executable on PATH)",
                cwd.display()
            ),
        ));
    }
    Err(FieldError::at_key(
        "script",
        format!("script {quoted} not found (resolved to {})", abs.display()),
    ))
}

fn which(name: &Path, cwd: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| normalize(&cwd.join(dir).join(name)))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn script_stem(script: &Path) -> String {
    script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// 1–64 chars of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    const ALLOWED: &str = "use letters, digits, '.', '_' and '-'";
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!("{name:?} is too long (at most 64 characters)"));
    }
    if name.contains('/') {
        return Err(format!("{name:?} contains a slash; {ALLOWED}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("{name:?} contains {c:?}; {ALLOWED}"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(format!("{name:?} must not start with '.' or '-'"));
    }
    Ok(())
}

/// `leading_args`: the words after the program of a command string, before `args`.
fn resolve_command(
    raw: &RawApp,
    given: &Path,
    (script, on_path): (PathBuf, bool),
    leading_args: Vec<String>,
) -> Result<Command, FieldError> {
    let interpreter = match raw.interpreter.as_deref().map(str::trim) {
        Some("") => {
            return Err(FieldError::value(
                "interpreter",
                "is empty (use interpreter: none to run the script directly)",
            ));
        }
        Some(i) if i.eq_ignore_ascii_case("none") => None,
        Some(i) => Some(i.to_owned()),
        None if on_path => None,
        None => infer_interpreter(given)
            .or_else(|| is_bare_node_file(given, &script).then_some("node"))
            .map(str::to_owned),
    };
    if interpreter.is_none() && !on_path && !is_executable_file(&script) {
        return Err(FieldError::at_key(
            "script",
            format!(
                "script {:?} is not executable and has no interpreter",
                given.display().to_string()
            ),
        )
        .with_hint(format!(
            "chmod +x {}, or set interpreter: (node, python3, bash, …)",
            script.display()
        )));
    }
    let interpreter_args = raw
        .interpreter_args
        .clone()
        .map(|a| a.0)
        .unwrap_or_default();
    if interpreter.is_none() && !interpreter_args.is_empty() {
        return Err(FieldError::value(
            "interpreter_args",
            "has no effect: the script runs without an interpreter",
        ));
    }
    let mut args = leading_args;
    args.extend(raw.args.clone().map(|a| a.0).unwrap_or_default());
    if args
        .iter()
        .chain(&interpreter_args)
        .any(|a| a.contains('\0'))
        || interpreter.as_ref().is_some_and(|i| i.contains('\0'))
    {
        return Err(FieldError::app(
            "an argument or the interpreter contains a NUL byte",
        ));
    }
    Ok(Command {
        interpreter,
        interpreter_args,
        script,
        args,
    })
}

/// PM2's inference from the extension: .js/.mjs/.cjs → node, .py → python3, .sh → bash.
fn infer_interpreter(script: &Path) -> Option<&'static str> {
    match script.extension()?.to_str()? {
        "js" | "mjs" | "cjs" => Some("node"),
        "py" => Some("python3"),
        "sh" => Some("bash"),
        _ => None,
    }
}

/// PM2 runs a file of a type it does not know with node. drover does so for a file
/// without extension that is not executable and has no `#!` line (a Node script saved
/// as `bin/server`, say); an executable file or one with `#!` is its own program.
fn is_bare_node_file(given: &Path, script: &Path) -> bool {
    given.extension().is_none() && !is_executable_file(script) && !starts_with_shebang(script)
}

fn starts_with_shebang(path: &Path) -> bool {
    let mut start = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut start))
        .is_ok_and(|()| start == *b"#!")
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_var_name(var: &str) -> Result<(), String> {
    let mut chars = var.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{var:?} is not a valid environment variable name (letters, digits and '_', not starting with a digit)"
        ))
    }
}

/// Names and values that can be passed to exec (no '=' in names, no NUL anywhere).
fn check_env(key: &str, vars: Option<&BTreeMap<String, String>>) -> Result<(), FieldError> {
    for (name, value) in vars.into_iter().flatten() {
        let problem = if name.is_empty() {
            Some("the variable name is empty")
        } else if name.contains('=') {
            Some("a variable name cannot contain '='")
        } else if name.contains('\0') || value.contains('\0') {
            Some("contains a NUL byte")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(FieldError::value(key, problem).with_path(
                format!("{key}.{name}"),
                vec![Seg::Key(key.to_owned()), Seg::Key(name.clone())],
            ));
        }
    }
    Ok(())
}

fn resolve_logs(
    raw: &RawApp,
    name: &str,
    cwd: &Path,
    ctx: &ResolveContext,
    merge_default: bool,
) -> Result<LogSpec, FieldError> {
    let path = |key: &str, given: &Option<PathBuf>, suffix: &str| -> Result<PathBuf, FieldError> {
        match given {
            Some(p) if p.as_os_str().is_empty() => Err(FieldError::value(key, "is empty")),
            // PM2's way to discard a stream.
            Some(p) if p.as_os_str().eq_ignore_ascii_case("NULL") => Ok("/dev/null".into()),
            Some(p) => Ok(normalize(&cwd.join(p))),
            None => Ok(ctx.home.join("logs").join(format!("{name}-{suffix}.log"))),
        }
    };
    let date_format = match (&raw.log_date_format, raw.time) {
        (Some(f), _) if f.trim().is_empty() => {
            return Err(FieldError::value(
                "log_date_format",
                "is empty (for example YYYY-MM-DD HH:mm:ss Z)",
            ));
        }
        (Some(f), _) => Some(f.clone()),
        (None, Some(true)) => Some(defaults::TIME_FORMAT.to_owned()),
        (None, _) => None,
    };
    let rotation = resolve_rotation(raw)?;
    if raw.disable_logs == Some(true) {
        let rotating = [
            ("log_max_size", raw.log_max_size.is_some()),
            ("log_retain", raw.log_retain.is_some()),
            ("log_rotate", raw.log_rotate == Some(LogRotate::Daily)),
            ("log_compress", raw.log_compress == Some(true)),
        ];
        if let Some((key, _)) = rotating.into_iter().find(|(_, given)| *given) {
            return Err(FieldError::value(
                key,
                "has nothing to rotate: disable_logs writes no log file",
            )
            .with_hint(format!("remove {key}, or disable_logs")));
        }
        let given = [
            ("out_file", raw.out_file.is_some()),
            ("error_file", raw.error_file.is_some()),
            (
                "log_file",
                matches!(
                    raw.log_file,
                    Some(CombinedLog::Default | CombinedLog::Path(_))
                ),
            ),
        ];
        if let Some((key, _)) = given.into_iter().find(|(_, given)| *given) {
            return Err(FieldError::value(
                "disable_logs",
                format!("discards every stream, but {key} names a file"),
            )
            .with_hint(format!("remove {key}, or disable_logs")));
        }
        return Ok(LogSpec {
            out_file: "/dev/null".into(),
            error_file: "/dev/null".into(),
            log_file: None,
            merge: raw.merge_logs.unwrap_or(merge_default),
            date_format,
            rotation,
        });
    }
    let out_file = path("out_file", &raw.out_file, "out")?;
    let error_file = path("error_file", &raw.error_file, "error")?;
    let log_file = match &raw.log_file {
        None | Some(CombinedLog::Off) => None,
        // PM2's `log_file: true` / `--log` without a path.
        Some(CombinedLog::Default) => Some(ctx.home.join("logs").join(format!("{name}.log"))),
        Some(CombinedLog::Path(p)) => {
            Some(path("log_file", &Some(p.clone()), "")?).filter(|p| p != Path::new("/dev/null"))
        }
    };
    if let Some(log) = &log_file {
        for (key, other) in [("out_file", &out_file), ("error_file", &error_file)] {
            if log == other {
                return Err(FieldError::value(
                    "log_file",
                    format!(
                        "{} is also the {key}: each of its lines would be written twice",
                        log.display()
                    ),
                )
                .with_hint(
                    "for one file of both streams, give out_file and error_file the same path",
                ));
            }
        }
    }
    Ok(LogSpec {
        out_file,
        error_file,
        log_file,
        merge: raw.merge_logs.unwrap_or(merge_default),
        date_format,
        rotation,
    })
}

/// The app's log rotation: on unless `log_rotate: false`, with pm2-logrotate's defaults
/// for what is not given. With rotation off, a rotation setting would do nothing, so it
/// is refused.
fn resolve_rotation(raw: &RawApp) -> Result<Option<LogRotation>, FieldError> {
    let when = raw.log_rotate.unwrap_or(LogRotate::Size);
    if when == LogRotate::Off {
        let given = [
            ("log_max_size", raw.log_max_size.is_some()),
            ("log_retain", raw.log_retain.is_some()),
            ("log_compress", raw.log_compress == Some(true)),
        ];
        if let Some((key, _)) = given.into_iter().find(|(_, given)| *given) {
            return Err(FieldError::value(
                key,
                "has no effect while rotation is off (log_rotate: false)",
            )
            .with_hint(format!(
                "remove {key}, or remove log_rotate: false to rotate"
            )));
        }
        return Ok(None);
    }
    Ok(Some(LogRotation {
        max_size: raw.log_max_size.map_or(defaults::LOG_MAX_SIZE, |m| m.0),
        retain: raw.log_retain.map_or(defaults::LOG_RETAIN, |r| r.0),
        daily: when == LogRotate::Daily,
        compress: raw.log_compress.unwrap_or(false),
    }))
}

/// Make `p` absolute-looking without touching the filesystem: drop `.`, fold `..`.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in p.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The signal that asks the server `command` runs to stop gracefully, when the app does
/// not set `kill_signal`: PM2's SIGINT, except for servers that treat SIGINT as a quick
/// shutdown (dropping requests in flight). The README's table lists them.
pub(crate) fn graceful_signal(command: &super::Command) -> Signal {
    let base = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let script = base(&command.script);
    // `python -m gunicorn …` names the server in the interpreter's arguments.
    let module = command
        .interpreter_args
        .windows(2)
        .find(|w| w[0] == "-m")
        .map(|w| w[1].clone());
    let server = module.unwrap_or(script);
    match server.as_str() {
        // SIGINT and SIGQUIT are its quick shutdown; SIGTERM waits for the workers'
        // requests (graceful_timeout).
        "gunicorn" => Signal::SIGTERM,
        _ => Signal::SIGINT,
    }
}
