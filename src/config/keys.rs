//! The keys an app entry may have: the ones drover implements (with PM2's aliases),
//! the PM2 keys drover does not implement, each with what drover does about it (skip it
//! with a warning, or refuse the file), and `env_<name>`.

/// A key drover implements: canonical name, PM2's aliases (lib/API/schema.json), and
/// what a PM2 user should know about it (empty: it does what PM2's does).
pub(crate) struct Known {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    /// For README's "Coming from PM2" table.
    #[allow(dead_code)]
    pub note: &'static str,
}

const fn known(key: &'static str, aliases: &'static [&'static str]) -> Known {
    Known {
        key,
        aliases,
        note: "",
    }
}

/// Keys drover implements.
pub(crate) const KNOWN: &[Known] = &[
    known("name", &[]),
    Known {
        key: "script",
        aliases: &["exec"],
        note: "a command string (`python3 -m http.server`) runs that program with those arguments, without a shell; a file without extension, not executable and without `#!`, runs with node",
    },
    known("args", &[]),
    known("interpreter", &["exec_interpreter"]),
    Known {
        key: "interpreter_args",
        aliases: &["node_args", "interpreterArgs"],
        note: "",
    },
    known("cwd", &[]),
    known("instances", &[]),
    Known {
        key: "exec_mode",
        aliases: &[],
        note: "cluster: the workers share one listener the supervisor binds (any language)",
    },
    Known {
        key: "env",
        aliases: &[],
        note: "an object or list value becomes its JSON text, as PM2",
    },
    known("out_file", &["out", "output", "out_log"]),
    known("error_file", &["error", "err", "err_file", "err_log"]),
    Known {
        key: "log_file",
        aliases: &["log"],
        note: "`true`: `$DROVER_HOME/logs/<name>.log`; `-<i>` per instance unless `merge_logs`, as PM2",
    },
    Known {
        key: "disable_logs",
        aliases: &[],
        note: "every stream to `/dev/null`; `drover logs --follow` still shows the lines",
    },
    known("merge_logs", &["combine_logs"]),
    known("log_date_format", &[]),
    known("time", &[]),
    known("autorestart", &[]),
    Known {
        key: "min_uptime",
        aliases: &[],
        note: "",
    },
    Known {
        key: "max_restarts",
        aliases: &[],
        note: "counts consecutive unstable runs, at any age of the app (PM2 only near its start)",
    },
    known("restart_delay", &[]),
    known("exp_backoff_restart_delay", &[]),
    known("stop_exit_codes", &[]),
    known("kill_timeout", &[]),
    Known {
        key: "kill_signal",
        aliases: &[],
        note: "PM2's `--kill-signal`; SIGINT by default, SIGTERM for gunicorn",
    },
    known("instance_var", &[]),
    known("increment_var", &[]),
    Known {
        key: "max_memory_restart",
        aliases: &[],
        note: "the RSS of the worker's whole process tree",
    },
    Known {
        key: "port",
        aliases: &[],
        note: "sets env `PORT`; in cluster mode also the address the workers share",
    },
    Known {
        key: "wait_ready",
        aliases: &[],
        note: "`process.send('ready')` in Node, `READY=1` on `$NOTIFY_SOCKET` in any language",
    },
    known("listen_timeout", &[]),
    known("shutdown_with_message", &[]),
    // drover's own keys
    Known {
        key: "listen",
        aliases: &[],
        note: "drover's own: the address the workers share",
    },
    Known {
        key: "socket",
        aliases: &[],
        note: "drover's own: reuseport or shared",
    },
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
    /// Why, for README's table.
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
        "PM2 forces fork mode with it, and the app would run in cluster mode",
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
