//! [`AppFlags`]: the per-app flags of `drover run` / `drover start`, with PM2's
//! spellings, and what becomes of them: a [`RawApp`] parsed with the file's rules, or a
//! refusal when they are given next to an ecosystem file. A new per-app flag is a field
//! here, its entry in [`AppFlags::given`] and in [`RawApp::from_flags`].

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::raw::RawApp;
use super::values::{ArgList, CombinedLog, FromLoose, Loose, Watch};

/// The options of one app, with PM2's spellings: they describe a script given on the
/// command line (`start`, `run`), or change a known app's settings (`restart`,
/// `reload`, `start <name>`: [`super::update`]). An ecosystem file says all of this
/// itself, so they are refused next to one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AppFlags {
    /// App name (default: the script's file name without extension).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Number of workers: a number, `max` or 0 (one per CPU this process may use: its
    /// affinity and cgroup quota), or -1 (that minus 1).
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// Address the workers share: a port, host:port, [v6]:port or unix:/path.
    #[arg(long)]
    pub listen: Option<String>,
    /// How the listener is shared: reuseport (a listener per worker) or shared.
    #[arg(long)]
    pub socket: Option<String>,
    /// Interpreter (default from the extension: node, python3, bash; `none` to exec).
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Arguments for the interpreter, before the script (PM2's --node-args too).
    #[arg(
        long,
        visible_alias = "node-args",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub interpreter_args: Option<String>,
    /// Working directory of the workers.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// stdout log file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub out_file: Option<PathBuf>,
    /// stderr log file.
    #[arg(short = 'e', long = "error", value_name = "FILE")]
    pub error_file: Option<PathBuf>,
    /// One file with the lines of both stdout and stderr (PM2's combined log), besides
    /// the out and error files; without PATH, $DROVER_HOME/logs/<name>.log.
    #[arg(short = 'l', long = "log", value_name = "PATH", num_args = 0..=1)]
    pub log_file: Option<Option<PathBuf>>,
    /// Write no log file at all (every stream to /dev/null).
    #[arg(long)]
    pub disable_logs: bool,
    /// One log file for all instances instead of one per instance.
    #[arg(long)]
    pub merge_logs: bool,
    /// Prefix each log line with a timestamp in this (moment.js) format.
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// Prefix each log line with a timestamp (YYYY-MM-DDTHH:mm:ss).
    #[arg(long)]
    pub time: bool,
    /// Rotate each log file before it grows past this size (default 10M; 300K, 1G).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub log_max_size: Option<String>,
    /// Rotated files kept per log file (default 30).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub log_retain: Option<String>,
    /// When log files rotate: true (by size, the default), daily (also at local
    /// midnight), false (never: leave them to logrotate(8)).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub log_rotate: Option<String>,
    /// gzip rotated log files.
    #[arg(long)]
    pub log_compress: bool,
    /// Do not restart workers that exit.
    #[arg(long)]
    pub no_autorestart: bool,
    /// Restart a worker whose process tree uses more memory than this (300K, 512M, 1G).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub max_memory_restart: Option<String>,
    /// Time between the kill signal and SIGKILL (ms, or 1s, 500ms).
    #[arg(short = 'k', long, value_name = "DURATION", allow_hyphen_values = true)]
    pub kill_timeout: Option<String>,
    /// Signal that asks a worker to stop (default SIGINT).
    #[arg(long, value_name = "SIGNAL")]
    pub kill_signal: Option<String>,
    /// Ask Node workers to stop with process.send('shutdown') instead of the kill signal
    /// (SIGKILL still follows after the kill timeout).
    #[arg(long)]
    pub shutdown_with_message: bool,
    /// Unstable restarts (runs shorter than min_uptime) before a worker is errored.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_restarts: Option<String>,
    /// A run shorter than this is an unstable restart (default 1000 ms).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub min_uptime: Option<String>,
    /// A worker is ready when it says so: READY=1 on $NOTIFY_SOCKET, or
    /// process.send('ready') in Node.
    #[arg(long)]
    pub wait_ready: bool,
    /// How long a new worker may take to become ready (default 3000 ms).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub listen_timeout: Option<String>,
    /// Exit codes that mean "done": a worker exiting with one is not restarted (0,3 or
    /// one code).
    #[arg(long, value_name = "CODES", allow_hyphen_values = true)]
    pub stop_exit_codes: Option<String>,
    /// Delay before restarting a crashed worker.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub restart_delay: Option<String>,
    /// Exponential backoff: first delay, ×1.5 per crash up to 15 s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub exp_backoff_restart_delay: Option<String>,
    /// Reload the app when files change: under its cwd, or under PATH (repeat it for
    /// several paths).
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "", action = clap::ArgAction::Append)]
    pub watch: Option<Vec<String>>,
    /// What the watch leaves out: names and globs (default: node_modules .git logs).
    #[arg(long, value_name = "PATTERNS")]
    pub ignore_watch: Option<String>,
    /// How long the files must be quiet after a change before the reload (default 1s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub watch_delay: Option<String>,
    /// Reload the app at these times: a cron expression (5 fields, or 6 with seconds).
    #[arg(
        short = 'c',
        long = "cron",
        visible_alias = "cron-restart",
        value_name = "EXPR"
    )]
    pub cron: Option<String>,
}

impl AppFlags {
    /// The flags given, as spelled on the command line. The destructuring names every field, so a new field that is not
    /// listed here does not compile (unused binding) rather than being silently ignored.
    pub fn given(&self) -> Vec<&'static str> {
        let AppFlags {
            name,
            instances,
            listen,
            socket,
            interpreter,
            interpreter_args,
            cwd,
            out_file,
            error_file,
            log_file,
            disable_logs,
            merge_logs,
            log_date_format,
            time,
            log_max_size,
            log_retain,
            log_rotate,
            log_compress,
            no_autorestart,
            max_memory_restart,
            kill_timeout,
            kill_signal,
            shutdown_with_message,
            max_restarts,
            min_uptime,
            wait_ready,
            listen_timeout,
            stop_exit_codes,
            restart_delay,
            exp_backoff_restart_delay,
            watch,
            ignore_watch,
            watch_delay,
            cron,
        } = self;
        [
            ("--name", name.is_some()),
            ("--instances", instances.is_some()),
            ("--listen", listen.is_some()),
            ("--socket", socket.is_some()),
            ("--interpreter", interpreter.is_some()),
            ("--interpreter-args", interpreter_args.is_some()),
            ("--cwd", cwd.is_some()),
            ("--output", out_file.is_some()),
            ("--error", error_file.is_some()),
            ("--log", log_file.is_some()),
            ("--disable-logs", *disable_logs),
            ("--merge-logs", *merge_logs),
            ("--log-date-format", log_date_format.is_some()),
            ("--time", *time),
            ("--log-max-size", log_max_size.is_some()),
            ("--log-retain", log_retain.is_some()),
            ("--log-rotate", log_rotate.is_some()),
            ("--log-compress", *log_compress),
            ("--no-autorestart", *no_autorestart),
            ("--max-memory-restart", max_memory_restart.is_some()),
            ("--kill-timeout", kill_timeout.is_some()),
            ("--kill-signal", kill_signal.is_some()),
            ("--shutdown-with-message", *shutdown_with_message),
            ("--max-restarts", max_restarts.is_some()),
            ("--min-uptime", min_uptime.is_some()),
            ("--wait-ready", *wait_ready),
            ("--listen-timeout", listen_timeout.is_some()),
            ("--stop-exit-codes", stop_exit_codes.is_some()),
            ("--restart-delay", restart_delay.is_some()),
            (
                "--exp-backoff-restart-delay",
                exp_backoff_restart_delay.is_some(),
            ),
            ("--watch", watch.is_some()),
            ("--ignore-watch", ignore_watch.is_some()),
            ("--watch-delay", watch_delay.is_some()),
            ("--cron", cron.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect()
    }

    /// With an ecosystem file only `--env` and `--only` apply: the flags that describe a
    /// script, and script arguments (`has_args`), are refused, since accepting and
    /// ignoring them would surprise.
    pub fn check_with_ecosystem_file(&self, has_args: bool) -> Result<(), ConfigError> {
        let mut given = self.given();
        if has_args {
            given.push("-- <args>");
        }
        if given.is_empty() {
            return Ok(());
        }
        let one = given.len() == 1;
        Err(ConfigError::usage(format!(
            "{} describe{} a script; with an ecosystem file, set {} in the file (only --env and --only apply)",
            given.join(", "),
            if one { "s" } else { "" },
            if one { "it" } else { "them" },
        )))
    }
}

impl RawApp {
    /// The app `drover run <script> [flags] -- [args]` describes, its flag values parsed
    /// with the same rules as a file's. Never fails: the first bad value is kept and
    /// [`super::resolve_cli`] reports it, naming the flag.
    pub fn from_flags(flags: &AppFlags, script: &Path, args: &[String]) -> RawApp {
        RawApp {
            script: Some(script.to_path_buf()),
            args: (!args.is_empty()).then(|| ArgList(args.to_vec())),
            ..RawApp::default()
        }
        .with_flags(flags)
    }

    /// This app with every flag given in `flags` over its keys; a key no flag gives
    /// stays as it is, and PM2's `null` (`--node-args=null`) takes a key out, so its
    /// default applies. A switch (`--merge-logs`) given sets its key; one not given
    /// leaves it. Never fails, as [`RawApp::from_flags`].
    pub(crate) fn with_flags(self, flags: &AppFlags) -> RawApp {
        let mut invalid = None;
        let inv = &mut invalid;
        let mut raw = RawApp {
            name: flags.name.clone().or(self.name),
            interpreter: text_over(&flags.interpreter, self.interpreter),
            cwd: flags.cwd.clone().or(self.cwd),
            out_file: flags.out_file.clone().or(self.out_file),
            error_file: flags.error_file.clone().or(self.error_file),
            log_file: flags
                .log_file
                .as_ref()
                .map(|path| match path {
                    None => CombinedLog::Default,
                    Some(path) => CombinedLog::Path(path.clone()),
                })
                .or(self.log_file),
            disable_logs: flags.disable_logs.then_some(true).or(self.disable_logs),
            merge_logs: flags.merge_logs.then_some(true).or(self.merge_logs),
            log_date_format: text_over(&flags.log_date_format, self.log_date_format),
            time: flags.time.then_some(true).or(self.time),
            log_compress: flags.log_compress.then_some(true).or(self.log_compress),
            log_max_size: over(inv, "log_max_size", &flags.log_max_size, self.log_max_size),
            log_retain: over(inv, "log_retain", &flags.log_retain, self.log_retain),
            log_rotate: over(inv, "log_rotate", &flags.log_rotate, self.log_rotate),
            autorestart: flags.no_autorestart.then_some(false).or(self.autorestart),
            wait_ready: flags.wait_ready.then_some(true).or(self.wait_ready),
            shutdown_with_message: flags
                .shutdown_with_message
                .then_some(true)
                .or(self.shutdown_with_message),
            instances: over(inv, "instances", &flags.instances, self.instances),
            interpreter_args: over(
                inv,
                "interpreter_args",
                &flags.interpreter_args,
                self.interpreter_args,
            ),
            stop_exit_codes: over(
                inv,
                "stop_exit_codes",
                &flags.stop_exit_codes,
                self.stop_exit_codes,
            ),
            listen: over(inv, "listen", &flags.listen, self.listen),
            socket: over(inv, "socket", &flags.socket, self.socket),
            max_memory_restart: over(
                inv,
                "max_memory_restart",
                &flags.max_memory_restart,
                self.max_memory_restart,
            ),
            kill_timeout: over(inv, "kill_timeout", &flags.kill_timeout, self.kill_timeout),
            kill_signal: over(inv, "kill_signal", &flags.kill_signal, self.kill_signal),
            max_restarts: over(inv, "max_restarts", &flags.max_restarts, self.max_restarts),
            min_uptime: over(inv, "min_uptime", &flags.min_uptime, self.min_uptime),
            listen_timeout: over(
                inv,
                "listen_timeout",
                &flags.listen_timeout,
                self.listen_timeout,
            ),
            restart_delay: over(
                inv,
                "restart_delay",
                &flags.restart_delay,
                self.restart_delay,
            ),
            exp_backoff_restart_delay: over(
                inv,
                "exp_backoff_restart_delay",
                &flags.exp_backoff_restart_delay,
                self.exp_backoff_restart_delay,
            ),
            watch: match &flags.watch {
                None => self.watch,
                Some(paths) if paths.iter().all(|p| p.is_empty()) => Some(Watch::Cwd),
                Some(paths) if paths.iter().any(|p| p == UNSET) => None,
                Some(paths) => Some(Watch::Paths(
                    paths
                        .iter()
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect(),
                )),
            },
            ignore_watch: over(inv, "ignore_watch", &flags.ignore_watch, self.ignore_watch),
            watch_delay: over(inv, "watch_delay", &flags.watch_delay, self.watch_delay),
            cron_restart: text_over(&flags.cron, self.cron_restart),
            ..self
        };
        raw.invalid = raw.invalid.or(invalid);
        raw
    }
}

/// PM2's word for "back to the default" in a flag's value (its `extendMix`). The paths
/// of `-o`/`-e`/`-l` are not read this way: there `NULL` discards the stream.
const UNSET: &str = "null";

/// A flag with a value over a key: not given keeps the key, [`UNSET`] takes it out, a
/// value replaces it (parsed as [`parsed`] does).
fn over<T: FromLoose>(
    invalid: &mut Option<(String, String)>,
    key: &str,
    flag: &Option<String>,
    current: Option<T>,
) -> Option<T> {
    match flag.as_deref() {
        None => current,
        Some(UNSET) => None,
        Some(_) => parsed(invalid, key, flag),
    }
}

/// [`over`] for a flag whose value is text as given.
fn text_over(flag: &Option<String>, current: Option<String>) -> Option<String> {
    match flag.as_deref() {
        None => current,
        Some(UNSET) => None,
        Some(value) => Some(value.to_owned()),
    }
}

/// A flag's value parsed as the file's `key` would be; the first failure is kept in
/// `invalid` as (key, message).
fn parsed<T: FromLoose>(
    invalid: &mut Option<(String, String)>,
    key: &str,
    value: &Option<String>,
) -> Option<T> {
    match T::from_loose(&Loose::Str(value.clone()?)) {
        Ok(v) => Some(v),
        Err(msg) => {
            invalid.get_or_insert_with(|| (key.to_owned(), msg));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, FromArgMatches};

    use super::*;

    /// The command line of `AppFlags` alone, as clap builds it.
    fn command() -> clap::Command {
        AppFlags::augment_args(clap::Command::new("t").no_binary_name(true))
    }

    fn parse(argv: &[String]) -> AppFlags {
        let matches = command().try_get_matches_from(argv).unwrap();
        AppFlags::from_arg_matches(&matches).unwrap()
    }

    /// `--flag` (and a value if it takes one) for every flag clap knows.
    fn every_flag() -> Vec<(String, Vec<String>)> {
        command()
            .get_arguments()
            .map(|arg| {
                let flag = format!(
                    "--{}",
                    arg.get_long().expect("every app flag has a long name")
                );
                let mut argv = vec![flag.clone()];
                if arg.get_action().takes_values() {
                    argv.push("x".into());
                }
                (flag, argv)
            })
            .collect()
    }

    /// Each flag, alone, is reported under its own spelling: the list in `given`
    /// matches the flags clap parses.
    #[test]
    fn every_flag_is_reported_under_its_own_name() {
        let flags = every_flag();
        assert!(flags.len() >= 22, "{flags:?}");
        for (flag, argv) in &flags {
            assert_eq!(parse(argv).given(), vec![flag.as_str()], "{argv:?}");
        }
    }

    /// README's "Coming from PM2" names every app flag, so its flags table is complete.
    #[test]
    fn readme_coming_from_pm2_names_every_app_flag() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("## Coming from PM2").expect("the section");
        let end = start + 3 + readme[start + 3..].find("\n## ").unwrap();
        let section = &readme[start..end];
        for (flag, _) in every_flag() {
            assert!(
                section.contains(&format!("`{flag}`")) || section.contains(&format!("/{flag}`")),
                "{flag} is not in README's Coming from PM2"
            );
        }
    }

    #[test]
    fn all_flags_at_once_are_all_reported() {
        let flags = every_flag();
        let argv: Vec<String> = flags.iter().flat_map(|(_, a)| a.clone()).collect();
        let all = parse(&argv);
        let mut want: Vec<&str> = flags.iter().map(|(f, _)| f.as_str()).collect();
        let mut got = all.given();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        let e = all.check_with_ecosystem_file(true).unwrap_err().to_string();
        assert!(e.contains("--name, --instances,"), "{e}");
        assert!(e.ends_with(", -- <args> describe a script; with an ecosystem file, set them in the file (only --env and --only apply)"), "{e}");
    }

    #[test]
    fn no_flag_goes_with_an_ecosystem_file() {
        let none = AppFlags::default();
        assert!(none.given().is_empty());
        assert!(none.check_with_ecosystem_file(false).is_ok());
        assert_eq!(
            none.check_with_ecosystem_file(true)
                .unwrap_err()
                .to_string(),
            "-- <args> describes a script; with an ecosystem file, set it in the file (only --env and --only apply)"
        );
        assert_eq!(
            parse(&["-i".into(), "4".into()])
                .check_with_ecosystem_file(false)
                .unwrap_err()
                .to_string(),
            "--instances describes a script; with an ecosystem file, set it in the file (only --env and --only apply)"
        );
    }

    /// Flags over an app change what they give and nothing else.
    #[test]
    fn flags_over_an_app_replace_only_what_they_give() {
        let base = RawApp::from_flags(
            &parse(&["--kill-timeout".into(), "5s".into(), "--merge-logs".into()]),
            Path::new("app.js"),
            &["a".into()],
        );
        let over = base.clone().with_flags(&parse(&[
            "--node-args".into(),
            "--harmony".into(),
            "--no-autorestart".into(),
        ]));
        assert_eq!(
            over.interpreter_args,
            Some(ArgList(vec!["--harmony".into()]))
        );
        assert_eq!(over.autorestart, Some(false));
        assert_eq!(over.kill_timeout, base.kill_timeout);
        assert_eq!(over.merge_logs, Some(true));
        assert_eq!(over.args, Some(ArgList(vec!["a".into()])));
        assert_eq!(base.clone().with_flags(&AppFlags::default()), base);
        // PM2's null: back to the default.
        let reset = over.with_flags(&parse(&[
            "--node-args=null".into(),
            "-k".into(),
            "null".into(),
        ]));
        assert_eq!(reset.interpreter_args, None);
        assert_eq!(reset.kill_timeout, None);
        assert_eq!(reset.merge_logs, Some(true));
        let bad = base.with_flags(&parse(&["--min-uptime".into(), "soon".into()]));
        assert_eq!(
            bad.invalid.map(|(key, _)| key).as_deref(),
            Some("min_uptime")
        );
    }
}
