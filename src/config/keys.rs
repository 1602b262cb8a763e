//! The keys an app entry may have: the ones drover implements (with PM2's aliases),
//! the PM2 keys drover does not implement, each with what drover does about it (skip it
//! with a warning, or refuse the file), and `env_<name>`. README's "Coming from PM2"
//! keys table is generated from these tables (`tests` here fails when they differ), and
//! a test checks every key of PM2's schema is in one of them.

/// A key drover implements: canonical name, PM2's aliases (lib/API/schema.json), and
/// its documentation. README's "Coming from PM2" table and drover-ecosystem(5) are
/// generated from these (the tests fail when they differ), and the tests load every
/// `example` and check every [`Unset::Same`] default against leaving the key out.
pub(crate) struct Known {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    /// The value's type, for drover-ecosystem(5).
    #[cfg_attr(not(test), allow(dead_code))]
    pub ty: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub unset: Unset,
    /// A value, as YAML.
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
    /// Other keys the example needs (`key: value` lines), shown with it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub example_with: &'static str,
    /// What the key does, for drover-ecosystem(5).
    #[cfg_attr(not(test), allow(dead_code))]
    pub about: &'static str,
    /// What a PM2 user should know about it (empty: it does what PM2's does).
    #[cfg_attr(not(test), allow(dead_code))]
    pub note: &'static str,
    /// drover's own key, not PM2's.
    #[cfg_attr(not(test), allow(dead_code))]
    pub own: bool,
}

/// What an app without the key gets.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Unset {
    /// This value, as YAML: writing it is the same as leaving the key out.
    Same(&'static str),
    /// What no value means, in words (it depends on other keys, or no value says it).
    Means(&'static str),
}

const BLANK: Known = Known {
    key: "",
    aliases: &[],
    ty: "",
    unset: Unset::Means(""),
    example: "",
    example_with: "",
    about: "",
    note: "",
    own: false,
};

/// Keys drover implements.
pub(crate) const KNOWN: &[Known] = &[
    Known {
        key: "name",
        ty: "string: letters, digits, `.`, `_`, `-`; at most 64",
        unset: Unset::Means("the script's file name without its extension"),
        example: "api",
        about: "The app's name, unique in the supervisor: commands take it as a target, log files are named after it.",
        ..BLANK
    },
    Known {
        key: "script",
        aliases: &["exec"],
        ty: "path, program on PATH, or command string",
        unset: Unset::Means("required"),
        example: "dist/index.js",
        about: "What each worker runs: a file relative to `cwd`, a program found on PATH, or a command string whose first word is the program and the rest its arguments (split as a shell would, but run without one: shell syntax is refused).",
        note: "a command string (`python3 -m http.server`) runs that program with those arguments, without a shell; a file without extension, not executable and without `#!`, runs with node",
        ..BLANK
    },
    Known {
        key: "args",
        ty: "list of strings, or one string split at spaces (quotes group)",
        unset: Unset::Means("no arguments"),
        example: "[--port-from-env, --verbose]",
        about: "Arguments after the script.",
        ..BLANK
    },
    Known {
        key: "interpreter",
        aliases: &["exec_interpreter"],
        ty: "program name or path, or `none`",
        unset: Unset::Means(
            "by the script's extension: node for .js, .cjs, .mjs (and a file with no extension that is not executable and has no `#!` line), python3 for .py, bash for .sh; otherwise the script runs itself",
        ),
        example: "python3",
        about: "The program that runs the script; `none` runs the script itself (it must be executable).",
        ..BLANK
    },
    Known {
        key: "interpreter_args",
        aliases: &["node_args", "interpreterArgs"],
        ty: "list of strings, or one string split at spaces",
        unset: Unset::Means("none"),
        example: "--max-old-space-size=4096",
        about: "Arguments to the interpreter, before the script.",
        ..BLANK
    },
    Known {
        key: "cwd",
        ty: "path",
        unset: Unset::Means(
            "the ecosystem file's directory (the shell's current directory for `drover start SCRIPT`)",
        ),
        example: "api",
        about: "The workers' working directory; relative paths of the app (script, log files, a unix socket) are resolved against it. Relative to the file's directory.",
        ..BLANK
    },
    Known {
        key: "instances",
        ty: "integer, `max`, or a negative integer",
        unset: Unset::Means("1 (and exec_mode fork)"),
        example: "max",
        about: "How many workers: a count; `max` or 0 one per CPU the process may use; `-N` that many fewer (at least 1). At most 4096. Giving it makes exec_mode default to cluster.",
        ..BLANK
    },
    Known {
        key: "exec_mode",
        ty: "`fork` or `cluster` (`fork_mode`, `cluster_mode`)",
        unset: Unset::Means("cluster when `instances` is given, else fork"),
        example: "cluster",
        about: "cluster: the workers share one listening socket (`listen`, `port`, env PORT, or for Node the first port the app listens on). fork: each worker is on its own.",
        note: "cluster: the workers share one listener the supervisor binds (any language)",
        ..BLANK
    },
    Known {
        key: "env",
        ty: "map of names to values",
        unset: Unset::Means("no variables beyond the caller's environment"),
        example: "{NODE_ENV: production, PORT: 3000}",
        about: "Environment variables of the workers, over the environment of the command that started the app. Numbers and booleans become text.",
        note: "an object or list value becomes its JSON text, as PM2",
        ..BLANK
    },
    Known {
        key: "out_file",
        aliases: &["out", "output", "out_log"],
        ty: "path, or `/dev/null` (`NULL`)",
        unset: Unset::Means(
            "`$DROVER_HOME/logs/<name>-out.log`, `<name>-out-<i>.log` per instance unless merge_logs",
        ),
        example: "logs/api.out.log",
        about: "Where the workers' stdout goes.",
        ..BLANK
    },
    Known {
        key: "error_file",
        aliases: &["error", "err", "err_file", "err_log"],
        ty: "path, or `/dev/null` (`NULL`)",
        unset: Unset::Means(
            "`$DROVER_HOME/logs/<name>-error.log`, `<name>-error-<i>.log` per instance unless merge_logs",
        ),
        example: "logs/api.err.log",
        about: "Where the workers' stderr goes.",
        ..BLANK
    },
    Known {
        key: "log_file",
        aliases: &["log"],
        ty: "boolean or path",
        unset: Unset::Same("false"),
        example: "logs/api.log",
        about: "One more file with every line of stdout and stderr, in order; `true` for `$DROVER_HOME/logs/<name>.log`.",
        note: "`true`: `$DROVER_HOME/logs/<name>.log`; `-<i>` per instance unless `merge_logs`, as PM2",
        ..BLANK
    },
    Known {
        key: "disable_logs",
        ty: "boolean",
        unset: Unset::Same("false"),
        example: "true",
        about: "Write no log file at all.",
        note: "every stream to `/dev/null`; `drover logs --follow` still shows the lines",
        ..BLANK
    },
    Known {
        key: "merge_logs",
        aliases: &["combine_logs"],
        ty: "boolean",
        unset: Unset::Means("true for a fork app of one instance, else false"),
        example: "true",
        about: "All instances write the same files, instead of one file per instance (`-<i>`).",
        ..BLANK
    },
    Known {
        key: "log_date_format",
        ty: "string of moment.js tokens (`YYYY-MM-DD HH:mm:ss Z`)",
        unset: Unset::Means("no timestamp"),
        example: "YYYY-MM-DD HH:mm:ss Z",
        about: "Prefix each log line with the time it was read, in this format.",
        ..BLANK
    },
    Known {
        key: "time",
        ty: "boolean",
        unset: Unset::Same("false"),
        example: "true",
        about: "Prefix each log line with the time (`YYYY-MM-DDTHH:mm:ss`), unless log_date_format says how.",
        ..BLANK
    },
    Known {
        key: "autorestart",
        ty: "boolean",
        unset: Unset::Same("true"),
        example: "false",
        about: "Start a worker again when it exits.",
        ..BLANK
    },
    Known {
        key: "min_uptime",
        ty: "duration: milliseconds, or `500ms`, `1s`, `2m`, `1h`",
        unset: Unset::Same("1000"),
        example: "5s",
        about: "A worker that exits sooner after its start was unstable: it counts toward max_restarts.",
        ..BLANK
    },
    Known {
        key: "max_restarts",
        ty: "integer",
        unset: Unset::Same("16"),
        example: "10",
        about: "After this many restarts in a row, each after an unstable run, the next unstable run leaves the worker errored (16: 17 runs, as PM2).",
        note: "counts consecutive unstable restarts, at any age of the app (PM2 only near its start)",
        ..BLANK
    },
    Known {
        key: "restart_delay",
        ty: "duration",
        unset: Unset::Same("0"),
        example: "500ms",
        about: "Wait this long before starting an exited worker again.",
        ..BLANK
    },
    Known {
        key: "exp_backoff_restart_delay",
        ty: "duration",
        unset: Unset::Means("no backoff"),
        example: "100",
        about: "Wait this long before the first restart, 1.5 times longer after each crash, at most 15 s; back to the start after a run of 30 s.",
        ..BLANK
    },
    Known {
        key: "stop_exit_codes",
        ty: "exit code 0-255, or a list (`[0, 3]`, `\"0,3\"`)",
        unset: Unset::Same("[]"),
        example: "[0]",
        about: "A worker that exits with one of these codes is not restarted.",
        ..BLANK
    },
    Known {
        key: "kill_timeout",
        ty: "duration",
        unset: Unset::Same("1600"),
        example: "5s",
        about: "How long a stopping worker may take after its stop signal (or shutdown message) before it gets SIGKILL.",
        ..BLANK
    },
    Known {
        key: "instance_var",
        ty: "environment variable name",
        unset: Unset::Same("NODE_APP_INSTANCE"),
        example: "INSTANCE_ID",
        about: "The variable that holds each worker's instance number (0, 1, 2, ...).",
        ..BLANK
    },
    Known {
        key: "increment_var",
        ty: "environment variable name",
        unset: Unset::Means("none"),
        example: "PORT",
        example_with: "port: 3000",
        about: "A numeric variable of env that each instance gets increased by its instance number; `PORT` gives each worker a port of its own instead of a shared listener.",
        ..BLANK
    },
    Known {
        key: "max_memory_restart",
        ty: "size: bytes, or `300K`, `512M`, `1G` (K = 1024)",
        unset: Unset::Means("no limit"),
        example: "512M",
        about: "A worker whose resident memory (its whole process tree) stays above this is replaced, through the same zero-downtime path as a reload. Checked every second.",
        note: "the RSS of the worker's whole process tree",
        ..BLANK
    },
    Known {
        key: "port",
        ty: "port 0-65535",
        unset: Unset::Means("none"),
        example: "3000",
        about: "Sets env PORT; in cluster mode also the port the workers share (on `[::]` and 0.0.0.0).",
        note: "sets env `PORT`; in cluster mode also the address the workers share",
        ..BLANK
    },
    Known {
        key: "wait_ready",
        ty: "boolean",
        unset: Unset::Same("false"),
        example: "true",
        about: "A worker is online only once it says so: `process.send('ready')` in Node, `READY=1` on `$NOTIFY_SOCKET` in any language; until then a reload keeps the old worker serving.",
        note: "`process.send('ready')` in Node, `READY=1` on `$NOTIFY_SOCKET` in any language",
        ..BLANK
    },
    Known {
        key: "listen_timeout",
        ty: "duration",
        unset: Unset::Same("3000"),
        example: "10s",
        about: "How long a new worker may take to get ready (to signal it, or to stay up min_uptime): a first start not ready by then counts as online, as in PM2; the new worker of a reload is killed instead, the old one serving on.",
        ..BLANK
    },
    Known {
        key: "shutdown_with_message",
        ty: "boolean",
        unset: Unset::Same("false"),
        example: "true",
        about: "Stop a Node worker with `process.send('shutdown')` on its IPC channel instead of a signal (SIGKILL after kill_timeout). Node apps only.",
        ..BLANK
    },
    // drover's own keys
    Known {
        key: "listen",
        ty: "port, `host:port`, `[v6]:port`, or `unix:/path`",
        unset: Unset::Means("none (in cluster mode: `port`, or env PORT)"),
        example: "127.0.0.1:3000",
        about: "The address the workers share: the supervisor binds it, so it stays open while workers restart. A port alone binds `[::]` and 0.0.0.0. Each worker gets it as fd 3 (`LISTEN_FDS=1`, systemd's protocol); Node apps need no change.",
        note: "the address the workers share: a port, `host:port`, `[v6]:port`, `unix:/path`",
        own: true,
        ..BLANK
    },
    Known {
        key: "socket",
        ty: "`reuseport` or `shared`",
        unset: Unset::Same("reuseport"),
        example: "shared",
        example_with: "listen: 3000",
        about: "How the workers share the address: `reuseport`, a listening socket each, the kernel spreading connections and a stopping worker's queue never lost; `shared`, one socket all workers accept from.",
        note: "how the workers share it: `reuseport` (a listener each) or `shared`",
        own: true,
        ..BLANK
    },
    Known {
        key: "watch",
        ty: "boolean, or a path or list of paths (relative to `cwd`)",
        unset: Unset::Same("false"),
        example: "[src, config]",
        about: "Reload the app (without dropping a request, as `drover reload`) when a file changes under these paths (`true`: `cwd`); a burst of changes (a `git checkout`) is one reload, once the files are quiet for `watch_delay`. Watched with inotify, directory by directory, the ignored ones left out; a change while the app is stopped does nothing. Each path must exist.",
        ..BLANK
    },
    Known {
        key: "ignore_watch",
        ty: "a name or glob, or a list of them",
        unset: Unset::Means("node_modules, .git and logs; the app's own log files always"),
        example: "[node_modules, \"*.log\", tmp/**]",
        example_with: "watch: true",
        about: "Paths not watched: a plain name matches any file or directory of that name, a glob (`*`, `**`, `?`, `[abc]`) matches the path relative to the watched one, or any file name.",
        note: "replaces the default list, as PM2's; globs, not regular expressions",
        ..BLANK
    },
    Known {
        key: "watch_delay",
        ty: "duration",
        unset: Unset::Same("1s"),
        example: "500ms",
        example_with: "watch: true",
        about: "How long the files must be quiet after a change before the reload, so a burst of changes is one reload.",
        note: "PM2 waits this long after a change; drover waits until this long after the last change",
        ..BLANK
    },
    Known {
        key: "cron_restart",
        aliases: &["cron"],
        ty: "cron expression: 5 fields, or 6 with seconds first; `@daily` and the like",
        unset: Unset::Means("none"),
        example: "\"0 3 * * *\"",
        about: "Reload the app (without dropping a request) at these times, local time (`describe` shows the next). A stopped app is not started.",
        note: "PM2 restarts; drover reloads, with no gap",
        ..BLANK
    },
    Known {
        key: "watchdog",
        ty: "duration (at least 100ms)",
        unset: Unset::Means("none"),
        example: "10s",
        about: "Once ready, each worker must say `WATCHDOG=1` on `$NOTIFY_SOCKET` (sd_notify, as under systemd; `WATCHDOG_USEC` and `WATCHDOG_PID` are set) at least this often, or it is unhealthy: it takes no new connection and is replaced without a gap. A Node worker says it from its event loop by itself, so a blocked event loop is caught.",
        note: "PM2 has no health checks; the watchdog of systemd's units, per worker",
        own: true,
        ..BLANK
    },
    Known {
        key: "health",
        ty: "map: `http: PATH` or `exec: COMMAND`, and `interval` (5s), `timeout` (2s, or the interval if shorter), `failures` (3)",
        unset: Unset::Means("no check"),
        example: "{http: /health, interval: 5s, timeout: 2s, failures: 3}",
        example_with: "listen: 3000",
        about: "A check each ready worker must pass every `interval`: `http` GETs the path on that worker itself (through the shared port, steered to it; or its own port with `increment_var: PORT`), a 2xx or 3xx status passing; `exec` runs a command (no shell) with the worker's environment and `DROVER_WORKER_PID`, exit 0 passing. After `failures` failures in a row the worker takes no new connection and is replaced without a gap; `describe` and `list --json` show why.",
        note: "PM2 has no health checks (PM2 #2197)",
        own: true,
        ..BLANK
    },
    Known {
        key: "kill_signal",
        ty: "signal name: SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL",
        unset: Unset::Same("SIGINT"),
        example: "SIGTERM",
        about: "The signal that asks a worker to stop; SIGTERM for gunicorn (its graceful stop) unless set.",
        note: "the stop signal of this app (PM2 has one for all, `PM2_KILL_SIGNAL`); SIGINT, SIGTERM for gunicorn",
        own: true,
        ..BLANK
    },
    Known {
        key: "log_max_size",
        ty: "size: bytes, or `300K`, `10M`, `1G` (K = 1024)",
        unset: Unset::Same("10M"),
        example: "50M",
        about: "Each log file is rotated before a line would take it past this size: renamed `<stem>__<YYYY-MM-DD_HH-mm-ss>.<ext>` between two lines, so no line is split or lost, and a new file started. A line longer than this goes alone into a file.",
        note: "built-in rotation by size, on by default (pm2-logrotate's `max_size`, 10M)",
        own: true,
        ..BLANK
    },
    Known {
        key: "log_retain",
        ty: "integer, 1 or more",
        unset: Unset::Same("30"),
        example: "10",
        about: "How many rotated files of each log file are kept; the oldest beyond this are deleted.",
        note: "rotated files kept per log file (pm2-logrotate's `retain`, 30)",
        own: true,
        ..BLANK
    },
    Known {
        key: "log_rotate",
        ty: "`true`, `daily` or `false`",
        unset: Unset::Same("true"),
        example: "daily",
        about: "When log files rotate: `true`, when they reach log_max_size; `daily`, also at local midnight; `false`, never (leave them to logrotate(8), which then runs `drover reload-logs`).",
        note: "`daily`: also at local midnight; `false`: never (logrotate(8) and `drover reload-logs`)",
        own: true,
        ..BLANK
    },
    Known {
        key: "log_compress",
        ty: "boolean",
        unset: Unset::Same("false"),
        example: "true",
        about: "gzip each rotated file (`.gz` added to its name), in the background: writing the logs never waits for it.",
        note: "gzip rotated files (pm2-logrotate's `compress`)",
        own: true,
        ..BLANK
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
    skip(
        "watch_options",
        Noop::Never,
        "chokidar's options (PM2 watches with chokidar); drover watches with inotify, and `ignore_watch` and `watch_delay` say what they would",
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
        "start drover from an environment without them (env -u NAME drover start ...)",
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

/// Why drover refuses PM2 key `key` (or skips it), with what to do instead: for the
/// CLI's refusal of the PM2 flag that sets it (`cli::pm2_flags`).
pub(crate) fn why_unsupported(key: &str) -> Option<String> {
    let u = UNSUPPORTED.iter().find(|u| u.key == key)?;
    Some(match u.hint {
        Some(hint) => format!("{}; instead: {hint}", u.why),
        None => u.why.to_owned(),
    })
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

/// Top-level keys of an ecosystem file (`pm2` is PM2's other name for `apps`), for
/// "did you mean"; each is documented in [`TOP_KEYS`].
pub(crate) const TOP_LEVEL: &[&str] = &["apps", "pm2", METRICS];

/// A key at the top of an ecosystem file, beside the apps: drover-ecosystem(5) and
/// README's table of them are generated from these.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct TopKey {
    pub key: &'static str,
    pub aliases: &'static [&'static str],
    /// A value, as YAML (after `key: `).
    pub example: &'static str,
    pub about: &'static str,
}

/// The top-level keys, documented.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TOP_KEYS: &[TopKey] = &[
    TopKey {
        key: "apps",
        aliases: &["pm2"],
        example: "[{script: app.js, instances: max}]",
        about: "the list of apps, each a map of the keys below (PM2's); a file may instead be the list itself, or one app",
    },
    TopKey {
        key: METRICS,
        aliases: &[],
        example: "127.0.0.1:9615",
        about: "where the supervisor serves Prometheus metrics (`/metrics`) and its own health (`/healthz`): a port (on 127.0.0.1), `host:port` or `[v6]:port`, 0 for a free port; loopback only unless written `{listen: 0.0.0.0:9615, public: true}`. One supervisor has one endpoint: the first file (or `--metrics`) that asks sets it, and a file naming another address is refused",
    },
    TopKey {
        key: DEPLOY,
        aliases: &[],
        example: "{production: {user: deploy, host: [web1]}}",
        about: "PM2's `pm2 deploy` section: skipped, with a warning",
    },
];

/// drover's top-level key: where the supervisor serves its metrics (`config::metrics`).
pub(crate) const METRICS: &str = "metrics";

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

    /// README's table of top-level keys, from [`TOP_KEYS`].
    fn readme_top_table() -> String {
        let mut rows = vec!["| top-level key | |".to_owned(), "|---|---|".to_owned()];
        for k in TOP_KEYS {
            rows.push(format!(
                "| {} | {}; e.g. `{}: {}` |",
                names(k.key, k.aliases),
                k.about,
                k.key,
                k.example
            ));
        }
        let table = rows.join("\n") + "\n";
        assert!(
            !table.lines().any(|l| l.matches('|').count() != 3),
            "a cell holds a `|`:\n{table}"
        );
        table
    }

    #[test]
    fn every_top_level_key_is_documented() {
        for key in TOP_LEVEL {
            assert!(
                TOP_KEYS
                    .iter()
                    .any(|k| k.key == *key || k.aliases.contains(key)),
                "{key}"
            );
        }
    }

    /// Replaces what is between `begin` and `end` in README with `want` (with
    /// UPDATE_README), or checks it is that.
    fn generated_in_readme(readme: &mut String, begin: &str, end: &str, want: &str) -> bool {
        let start = readme.find(begin).expect("README has the begin marker") + begin.len();
        let stop = start
            + readme[start..]
                .find(end)
                .expect("README has the end marker");
        if readme[start..stop] == *want {
            return true;
        }
        readme.replace_range(start..stop, want);
        false
    }

    /// README's tables are these: `UPDATE_README=1 cargo test readme_keys` rewrites them
    /// (one test, so two never write the file at once).
    #[test]
    fn readme_keys_tables_are_generated_from_these_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let mut readme = std::fs::read_to_string(path).unwrap();
        let keys = generated_in_readme(
            &mut readme,
            "<!-- pm2-keys: generated from src/config/keys.rs, do not edit -->\n",
            "<!-- pm2-keys: end -->\n",
            &readme_table(),
        );
        let top = generated_in_readme(
            &mut readme,
            "<!-- top-keys: generated from src/config/keys.rs, do not edit -->\n",
            "<!-- top-keys: end -->\n",
            &readme_top_table(),
        );
        if std::env::var_os("UPDATE_README").is_some() {
            std::fs::write(path, readme).unwrap();
        } else {
            assert!(
                keys,
                "README's PM2 keys table is out of date: run UPDATE_README=1 cargo test readme_keys"
            );
            assert!(
                top,
                "README's top-level keys table is out of date: run UPDATE_README=1 cargo test readme_keys"
            );
        }
    }
}
