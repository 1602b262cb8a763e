//! The keys an app entry may have: the ones drover implements (with PM2's aliases),
//! the PM2 keys drover does not implement, each with what drover does about it (skip it
//! with a warning, or refuse the file), and `env_<name>`. README's "Coming from PM2"
//! keys table is generated from these tables (`tests` here fails when they differ), and
//! a test checks every key of PM2's schema is in one of them.

/// A key drover implements: canonical name, PM2's aliases (lib/API/schema.json), and
/// what a PM2 user should know about it (empty: it does what PM2's does).
pub(crate) struct Known {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    /// For README's "Coming from PM2" table, which the tests generate.
    #[cfg_attr(not(test), allow(dead_code))]
    pub note: &'static str,
    /// drover's own key, not PM2's.
    #[cfg_attr(not(test), allow(dead_code))]
    pub own: bool,
}

const fn known(key: &'static str, aliases: &'static [&'static str]) -> Known {
    Known {
        key,
        aliases,
        note: "",
        own: false,
    }
}

const fn noted(key: &'static str, aliases: &'static [&'static str], note: &'static str) -> Known {
    Known {
        key,
        aliases,
        note,
        own: false,
    }
}

const fn own(key: &'static str, note: &'static str) -> Known {
    Known {
        key,
        aliases: &[],
        note,
        own: true,
    }
}

/// Keys drover implements.
pub(crate) const KNOWN: &[Known] = &[
    known("name", &[]),
    noted(
        "script",
        &["exec"],
        "a command string (`python3 -m http.server`) runs that program with those arguments, without a shell; a file without extension, not executable and without `#!`, runs with node",
    ),
    known("args", &[]),
    known("interpreter", &["exec_interpreter"]),
    known("interpreter_args", &["node_args", "interpreterArgs"]),
    known("cwd", &[]),
    known("instances", &[]),
    noted(
        "exec_mode",
        &[],
        "cluster: the workers share one listener the supervisor binds (any language)",
    ),
    noted(
        "env",
        &[],
        "an object or list value becomes its JSON text, as PM2",
    ),
    known("out_file", &["out", "output", "out_log"]),
    known("error_file", &["error", "err", "err_file", "err_log"]),
    noted(
        "log_file",
        &["log"],
        "`true`: `$DROVER_HOME/logs/<name>.log`; `-<i>` per instance unless `merge_logs`, as PM2",
    ),
    noted(
        "disable_logs",
        &[],
        "every stream to `/dev/null`; `drover logs --follow` still shows the lines",
    ),
    known("merge_logs", &["combine_logs"]),
    known("log_date_format", &[]),
    known("time", &[]),
    known("autorestart", &[]),
    known("min_uptime", &[]),
    noted(
        "max_restarts",
        &[],
        "counts consecutive unstable runs, at any age of the app (PM2 only near its start)",
    ),
    known("restart_delay", &[]),
    known("exp_backoff_restart_delay", &[]),
    known("stop_exit_codes", &[]),
    known("kill_timeout", &[]),
    known("instance_var", &[]),
    known("increment_var", &[]),
    noted(
        "max_memory_restart",
        &[],
        "the RSS of the worker's whole process tree",
    ),
    noted(
        "port",
        &[],
        "sets env `PORT`; in cluster mode also the address the workers share",
    ),
    noted(
        "wait_ready",
        &[],
        "`process.send('ready')` in Node, `READY=1` on `$NOTIFY_SOCKET` in any language",
    ),
    known("listen_timeout", &[]),
    known("shutdown_with_message", &[]),
    // drover's own keys
    own(
        "listen",
        "the address the workers share: a port, `host:port`, `[v6]:port`, `unix:/path`",
    ),
    own(
        "socket",
        "how the workers share it: `reuseport` (a listener each) or `shared`",
    ),
    own(
        "kill_signal",
        "the stop signal of this app (PM2 has one for all, `PM2_KILL_SIGNAL`); SIGINT, SIGTERM for gunicorn",
    ),
];

/// The value of an unimplemented key that asks for what drover does anyway, so a PM2
/// file that spells out a default (`watch: false`, `treekill: true`) is accepted
/// without a word.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Noop {
    /// No value is drover's behaviour.
    Never,
    Bool(bool),
    /// Any boolean (the key has no effect on this platform).
    AnyBool,
    Str(&'static str),
}

/// What drover does with a PM2 key it does not implement, when its value is not the
/// [`Noop`] one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Skipped and named in the file's one warning: the key feeds PM2's own machinery
    /// (monitoring, versioning, modules, Windows), so the app runs the same without it.
    Skip,
    /// The file is refused: running the app without the key would change what it does
    /// (as whom it runs, when it restarts, what it logs), and a warning scrolls by.
    Refuse,
}

#[derive(Debug)]
pub(crate) struct Unsupported {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    pub noop: Noop,
    pub policy: Policy,
    /// Why, for the refusal and README's table.
    pub why: &'static str,
    /// What to do instead, shown with a refusal.
    pub hint: Option<&'static str>,
}

const fn skip(key: &'static str, noop: Noop, why: &'static str) -> Unsupported {
    Unsupported {
        key,
        aliases: &[],
        noop,
        policy: Policy::Skip,
        why,
        hint: None,
    }
}

const fn refuse(
    key: &'static str,
    noop: Noop,
    why: &'static str,
    hint: &'static str,
) -> Unsupported {
    Unsupported {
        key,
        aliases: &[],
        noop,
        policy: Policy::Refuse,
        why,
        hint: Some(hint),
    }
}

const PM2_PLUS: &str = "PM2 Plus / Keymetrics monitoring";

/// PM2 keys drover does not implement (lib/API/schema.json, and `max`, which PM2's own
/// example files carry and PM2 ignores).
pub(crate) const UNSUPPORTED: &[Unsupported] = &[
    Unsupported {
        key: "cron_restart",
        aliases: &["cron"],
        noop: Noop::Never,
        policy: Policy::Refuse,
        why: "not implemented yet, and an app that must restart on a schedule would silently not",
        hint: Some("run `drover restart <name>` from cron or a systemd timer"),
    },
    refuse(
        "watch",
        Noop::Bool(false),
        "not implemented yet, and an app that must restart on change would silently not",
        "restart on change with a file watcher, e.g. `watchexec -r -- drover restart <name>`",
    ),
    skip(
        "watch_delay",
        Noop::Never,
        "only used with `watch: true`, which is refused",
    ),
    skip(
        "ignore_watch",
        Noop::Never,
        "only used with `watch: true`, which is refused",
    ),
    skip(
        "watch_options",
        Noop::Never,
        "only used with `watch: true`, which is refused",
    ),
    skip(
        "source_map_support",
        Noop::Bool(false),
        "PM2 preloads source-map-support in Node; only stack traces differ (use `node --enable-source-maps` in interpreter_args)",
    ),
    skip(
        "disable_source_map_support",
        Noop::Bool(true),
        "see source_map_support",
    ),
    skip(
        "vizion",
        Noop::Bool(false),
        "PM2's versioning metadata (git revision in `pm2 show`)",
    ),
    skip("pmx", Noop::Bool(false), PM2_PLUS),
    skip("automation", Noop::Bool(false), PM2_PLUS),
    skip("trace", Noop::Bool(false), PM2_PLUS),
    skip("disable_trace", Noop::Bool(true), PM2_PLUS),
    skip("v8", Noop::Bool(false), PM2_PLUS),
    skip("event_loop_inspector", Noop::Bool(false), PM2_PLUS),
    skip("deep_monitoring", Noop::Bool(false), PM2_PLUS),
    skip("io", Noop::Never, PM2_PLUS),
    skip(
        "post_update",
        Noop::Never,
        "commands PM2 Plus runs after a pull; drover pulls nothing",
    ),
    skip(
        "namespace",
        Noop::Str("default"),
        "PM2's grouping for commands; drover targets names, ids, `/regex/` and files",
    ),
    skip("name_prefix", Noop::Never, "set by PM2 for its modules"),
    skip("install_url", Noop::Never, "set by PM2 for its modules"),
    skip(
        "username",
        Noop::Never,
        "metadata: PM2 overwrites it with the user who ran pm2",
    ),
    skip("windowsHide", Noop::AnyBool, "Windows only"),
    skip(
        "kill_retry_time",
        Noop::Never,
        "PM2's polling interval while a worker stops; drover is told by SIGCHLD",
    ),
    skip(
        "write",
        Noop::Never,
        "PM2's `-w`: write the configuration to a file, nothing about the app",
    ),
    skip(
        "max",
        Noop::Never,
        "an old key in PM2's own example files; PM2 ignores it",
    ),
    refuse(
        "treekill",
        Noop::Bool(true),
        "drover always stops the worker's whole process group, so children PM2 would leave running would stop",
        "a child that must outlive its worker should start its own session (setsid)",
    ),
    refuse(
        "force",
        Noop::Bool(false),
        "PM2 would start a second copy of a running script; drover's names are unique",
        "give the second copy a name: of its own",
    ),
    refuse(
        "append_env_to_name",
        Noop::Bool(false),
        "the app would get another name than PM2 gives it (`<name>-<env>`)",
        "write the name you want in name:",
    ),
    refuse(
        "filter_env",
        Noop::Bool(false),
        "the workers would see variables PM2 would have kept from them",
        "start drover from an environment without them (env -u NAME drover start …)",
    ),
    refuse(
        "execute_command",
        Noop::Bool(false),
        "PM2 forces fork mode with it: with `instances`, drover would run the app in cluster mode",
        "set exec_mode: fork",
    ),
    refuse(
        "log_type",
        Noop::Str("raw"),
        "PM2 writes JSON log lines, and whatever parses them would find raw lines",
        "drover writes raw lines; `drover logs --json` prints them as JSON",
    ),
    Unsupported {
        key: "pid_file",
        aliases: &["pid"],
        noop: Noop::Never,
        policy: Policy::Refuse,
        why: "whatever reads the pid file would find none",
        hint: Some("`drover list --json` shows the pids"),
    },
    refuse(
        "autostart",
        Noop::Bool(true),
        "an app meant to stay stopped would start",
        "start it, then `drover stop <name>`; or keep it in another file",
    ),
    Unsupported {
        key: "uid",
        aliases: &["user"],
        noop: Noop::Never,
        policy: Policy::Refuse,
        why: "the app would run as the wrong user",
        hint: Some("run drover itself as that user"),
    },
    refuse(
        "gid",
        Noop::Never,
        "the app would run with the wrong group",
        "run drover itself as that group",
    ),
];

pub(crate) enum KeyKind {
    /// An implemented key, by canonical name.
    Known(&'static str),
    /// `env_<name>` (the name without the prefix).
    NamedEnv(String),
    Unsupported(&'static Unsupported),
    Unknown,
}

pub(crate) fn classify(key: &str) -> KeyKind {
    for k in KNOWN {
        if k.key == key || k.aliases.contains(&key) {
            return KeyKind::Known(k.key);
        }
    }
    for u in UNSUPPORTED {
        if u.key == key || u.aliases.contains(&key) {
            return KeyKind::Unsupported(u);
        }
    }
    if let Some(name) = key.strip_prefix("env_") {
        return KeyKind::NamedEnv(name.to_owned());
    }
    KeyKind::Unknown
}

/// The aliases of a canonical implemented key.
pub(crate) fn aliases(canon: &str) -> &'static [&'static str] {
    KNOWN
        .iter()
        .find(|k| k.key == canon)
        .map_or(&[], |k| k.aliases)
}

/// Every key name an app may have, for "did you mean".
pub(crate) fn all_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for k in KNOWN {
        names.push(k.key);
        names.extend(k.aliases.iter());
    }
    for u in UNSUPPORTED {
        names.push(u.key);
        names.extend(u.aliases.iter());
    }
    names
}

/// Top-level keys of an ecosystem file (`pm2` is PM2's other name for `apps`).
pub(crate) const TOP_LEVEL: &[&str] = &["apps", "pm2"];

/// PM2's top-level section for `pm2 deploy`: skipped with a warning, like a [`Policy::Skip`]
/// key (it describes deploying the apps, not running them).
pub(crate) const DEPLOY: &str = "deploy";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of PM2's lib/API/schema.json (Unitech/pm2 master), with its aliases,
    /// and `max` (in PM2's own example files; PM2 ignores it).
    const PM2_KEYS: &[&str] = &[
        "script",
        "exec",
        "name",
        "name_prefix",
        "filter_env",
        "namespace",
        "install_url",
        "cwd",
        "args",
        "exec_interpreter",
        "interpreter",
        "node_args",
        "interpreterArgs",
        "interpreter_args",
        "out_file",
        "out",
        "output",
        "out_log",
        "error_file",
        "error",
        "err",
        "err_file",
        "err_log",
        "log_file",
        "log",
        "disable_logs",
        "log_type",
        "log_date_format",
        "time",
        "env",
        "max_memory_restart",
        "pid_file",
        "pid",
        "restart_delay",
        "exp_backoff_restart_delay",
        "source_map_support",
        "disable_source_map_support",
        "wait_ready",
        "instances",
        "kill_timeout",
        "shutdown_with_message",
        "listen_timeout",
        "cron_restart",
        "cron",
        "merge_logs",
        "combine_logs",
        "vizion",
        "autostart",
        "autorestart",
        "stop_exit_codes",
        "watch_delay",
        "watch",
        "ignore_watch",
        "watch_options",
        "min_uptime",
        "max_restarts",
        "execute_command",
        "exec_mode",
        "force",
        "append_env_to_name",
        "post_update",
        "trace",
        "disable_trace",
        "v8",
        "event_loop_inspector",
        "deep_monitoring",
        "increment_var",
        "instance_var",
        "pmx",
        "automation",
        "treekill",
        "port",
        "username",
        "uid",
        "user",
        "gid",
        "windowsHide",
        "kill_retry_time",
        "write",
        "io",
        "max",
    ];

    #[test]
    fn every_pm2_key_is_honoured_skipped_or_refused() {
        for key in PM2_KEYS {
            assert!(
                matches!(classify(key), KeyKind::Known(_) | KeyKind::Unsupported(_)),
                "{key} is in no table"
            );
        }
        assert!(matches!(classify("env_production"), KeyKind::NamedEnv(n) if n == "production"));
        // Each name in one table only.
        let names = all_names();
        for name in &names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
    }

    fn names(key: &str, aliases: &[&str]) -> String {
        std::iter::once(key)
            .chain(aliases.iter().copied())
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// README's "Coming from PM2" keys table, from the tables above.
    fn readme_table() -> String {
        let mut rows = vec![
            "| key (PM2's aliases) | drover | |".to_owned(),
            "|---|---|---|".to_owned(),
        ];
        let mut row = |names: String, verdict: String, why: &str| {
            rows.push(format!("| {names} | {verdict} | {why} |"));
        };
        for k in KNOWN.iter().filter(|k| !k.own) {
            row(names(k.key, k.aliases), "honoured".into(), k.note);
        }
        row(
            "`env_<name>`".into(),
            "honoured".into(),
            "`--env <name>` merges it over `env`",
        );
        for k in KNOWN.iter().filter(|k| k.own) {
            row(names(k.key, k.aliases), "drover's own".into(), k.note);
        }
        for policy in [Policy::Skip, Policy::Refuse] {
            for u in UNSUPPORTED.iter().filter(|u| u.policy == policy) {
                let noop = match u.noop {
                    Noop::Never => String::new(),
                    Noop::Bool(b) => format!("`{}: {b}`", u.key),
                    Noop::AnyBool => "`true` or `false`".into(),
                    Noop::Str(s) => format!("`{}: {s}`", u.key),
                };
                let verdict = match (policy, noop.is_empty()) {
                    (Policy::Skip, true) => "skipped, warned".to_owned(),
                    (Policy::Skip, false) => format!("skipped, warned (silent for {noop})"),
                    (Policy::Refuse, true) => "refused".to_owned(),
                    (Policy::Refuse, false) => format!("refused, but {noop} is accepted"),
                };
                let why = match u.hint {
                    Some(hint) => format!("{}; instead: {hint}", u.why),
                    None => u.why.to_owned(),
                };
                row(names(u.key, u.aliases), verdict, &why);
            }
        }
        let table = rows.join("\n") + "\n";
        assert!(
            !table.lines().any(|l| l.matches('|').count() != 4),
            "a cell holds a `|`:\n{table}"
        );
        table
    }

    /// README's table is this one: `UPDATE_README=1 cargo test readme_keys` rewrites it.
    #[test]
    fn readme_keys_table_is_generated_from_these_tables() {
        const BEGIN: &str = "<!-- pm2-keys: generated from src/config/keys.rs, do not edit -->\n";
        const END: &str = "<!-- pm2-keys: end -->\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
        let end = start
            + readme[start..]
                .find(END)
                .expect("README has the end marker");
        let want = readme_table();
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{want}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).unwrap();
        } else {
            assert!(
                readme[start..end] == want,
                "README's PM2 keys table is out of date: run UPDATE_README=1 cargo test readme_keys"
            );
        }
    }
}
