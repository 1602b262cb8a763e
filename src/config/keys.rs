//! The keys an app entry may have: the ones drover implements (with PM2's aliases),
//! the ones PM2 knows that drover does not implement yet, and `env_<name>`.

/// Keys drover implements: canonical name and PM2's aliases (lib/API/schema.json).
pub(crate) const KNOWN: &[(&str, &[&str])] = &[
    ("name", &[]),
    ("script", &["exec"]),
    ("args", &[]),
    ("interpreter", &["exec_interpreter"]),
    ("interpreter_args", &["node_args", "interpreterArgs"]),
    ("cwd", &[]),
    ("instances", &[]),
    ("exec_mode", &[]),
    ("env", &[]),
    ("out_file", &["out", "output", "out_log"]),
    ("error_file", &["error", "err", "err_file", "err_log"]),
    ("merge_logs", &["combine_logs"]),
    ("log_date_format", &[]),
    ("time", &[]),
    ("autorestart", &[]),
    ("min_uptime", &[]),
    ("max_restarts", &[]),
    ("restart_delay", &[]),
    ("exp_backoff_restart_delay", &[]),
    ("stop_exit_codes", &[]),
    ("kill_timeout", &[]),
    ("kill_signal", &[]),
    ("instance_var", &[]),
    ("increment_var", &[]),
    ("max_memory_restart", &[]),
    ("port", &[]),
    ("wait_ready", &[]),
    ("listen_timeout", &[]),
    ("shutdown_with_message", &[]),
    // drover's own keys
    ("listen", &[]),
    ("socket", &[]),
];

/// The value of an unimplemented key that asks for what drover does anyway, so a PM2
/// file that spells out a default (`watch: false`, `treekill: true`) is accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Noop {
    /// Any value is rejected.
    Never,
    Bool(bool),
    /// Any boolean is accepted (the key has no effect on this platform).
    AnyBool,
    Str(&'static str),
}

#[derive(Debug)]
pub(crate) struct Unsupported {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    pub noop: Noop,
    pub hint: Option<&'static str>,
}

const fn un(key: &'static str, noop: Noop) -> Unsupported {
    Unsupported {
        key,
        aliases: &[],
        noop,
        hint: None,
    }
}

/// PM2 keys drover does not implement (yet).
pub(crate) const UNSUPPORTED: &[Unsupported] = &[
    Unsupported {
        key: "cron_restart",
        aliases: &["cron"],
        noop: Noop::Never,
        hint: Some("run `drover restart <name>` from cron or a systemd timer"),
    },
    un("watch", Noop::Bool(false)),
    un("watch_delay", Noop::Never),
    un("ignore_watch", Noop::Never),
    un("watch_options", Noop::Never),
    un("source_map_support", Noop::Bool(false)),
    un("disable_source_map_support", Noop::Bool(true)),
    un("vizion", Noop::Bool(false)),
    un("pmx", Noop::Bool(false)),
    un("automation", Noop::Bool(false)),
    un("treekill", Noop::Bool(true)),
    un("force", Noop::Bool(false)),
    un("append_env_to_name", Noop::Bool(false)),
    un("post_update", Noop::Never),
    un("trace", Noop::Bool(false)),
    un("disable_trace", Noop::Bool(true)),
    un("v8", Noop::Bool(false)),
    un("event_loop_inspector", Noop::Bool(false)),
    un("deep_monitoring", Noop::Bool(false)),
    un("filter_env", Noop::Bool(false)),
    un("namespace", Noop::Str("default")),
    un("windowsHide", Noop::AnyBool),
    un("log_type", Noop::Never),
    Unsupported {
        key: "log_file",
        aliases: &["log"],
        noop: Noop::Bool(false),
        hint: Some("use out_file and error_file (merge_logs: true merges the instances)"),
    },
    un("disable_logs", Noop::Bool(false)),
    Unsupported {
        key: "pid_file",
        aliases: &["pid"],
        noop: Noop::Never,
        hint: Some("`drover list --json` shows the pids"),
    },
    un("autostart", Noop::Bool(true)),
    Unsupported {
        key: "uid",
        aliases: &["user"],
        noop: Noop::Never,
        hint: Some("run drover itself as that user"),
    },
    Unsupported {
        key: "gid",
        aliases: &[],
        noop: Noop::Never,
        hint: Some("run drover itself as that group"),
    },
    un("username", Noop::Never),
    un("name_prefix", Noop::Never),
    un("install_url", Noop::Never),
    un("execute_command", Noop::Never),
    un("kill_retry_time", Noop::Never),
    un("write", Noop::Never),
    un("io", Noop::Never),
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
    for (canon, aliases) in KNOWN {
        if *canon == key || aliases.contains(&key) {
            return KeyKind::Known(canon);
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
        .find(|(c, _)| *c == canon)
        .map_or(&[], |(_, a)| a)
}

/// Every key name an app may have, for "did you mean".
pub(crate) fn all_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for (canon, aliases) in KNOWN {
        names.push(canon);
        names.extend(aliases.iter());
    }
    for u in UNSUPPORTED {
        names.push(u.key);
        names.extend(u.aliases.iter());
    }
    names
}

/// Top-level keys of an ecosystem file.
pub(crate) const TOP_LEVEL: &[&str] = &["apps"];
