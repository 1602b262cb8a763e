//! The command line: clap definitions here, one file per command (`lifecycle` holds the
//! one-request commands). Shared by several commands, and using none of them:
//! - `host`: hosting the supervisor in this process (`run`, `daemon`): the lock on
//!   DROVER_HOME, the runtime, the control socket, the signals, its diagnostics;
//! - `apps`: what `run`, `start` and a lifecycle command given a file hand to a
//!   supervisor: the apps their arguments name, and the caller's environment;
//! - `render`: what the commands that print share;
//! - `targets`: what the targets of `stop`/`restart`/`reload`/`delete` name (apps,
//!   scripts, ecosystem files);
//! - `update`: flags on `restart`/`reload`/`start` of known apps change their settings;
//! - `pm2_flags`: PM2's flags drover refuses, with the reason the CLI gives.
//!
//! The per-app flags of `run`, `start`, `restart` and `reload` are `config::AppFlags`,
//! flattened.

mod apps;
mod changed_settings;
mod completions;
mod convert;
mod daemon;
mod describe;
mod env;
mod export;
mod host;
mod lifecycle;
mod list;
mod logs;
mod monit;
mod pm2_flags;
mod render;
mod run;
mod send_signal;
mod start;
mod startup;
mod targets;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "drover",
    version,
    disable_version_flag = true,
    about = "PM2's cluster mode for any language: N workers sharing one port, kept alive, with merged logs",
    after_long_help = after_long_help()
)]
pub struct Cli {
    /// Print version (-v too, as PM2)
    #[arg(short = 'V', long, short_alias = 'v', action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run apps in the foreground (like pm2-runtime): workers' output on our stdout/stderr,
    /// SIGINT or SIGTERM stops every worker gracefully.
    Run(run::RunCommandArgs),
    /// Start apps in the background supervisor (started on first use).
    ///
    /// An app that runs already is reported (exit 5) when given as a script; from an
    /// ecosystem file it takes the file's settings and is reloaded, as PM2's
    /// startOrReload: `drover start ecosystem.yaml` deploys.
    Start(start::StartArgs),
    /// Start the apps of a file; those that run already take its settings and are
    /// reloaded without dropping a request (PM2's startOrReload).
    #[command(
        name = "start-or-reload",
        visible_aliases = ["startOrReload", "startOrGracefulReload"]
    )]
    StartOrReload(start::StartArgs),
    /// Start the apps of a file; those that run already take its settings and are
    /// restarted (PM2's startOrRestart).
    #[command(name = "start-or-restart", visible_alias = "startOrRestart")]
    StartOrRestart(start::StartArgs),
    /// Stop workers, keeping them in the list; an app whose workers all stop releases its port.
    ///
    /// Each worker gets its kill_signal, then SIGKILL after kill_timeout; `stop` returns
    /// once every one is gone (meanwhile `list` shows them `stopping`). A restart or reload
    /// of the app before that wins: the stop then exits 1, saying it was superseded.
    Stop(lifecycle::TargetArgs),
    /// Stop then start workers again, on the same address.
    ///
    /// Returns once every new worker is started, never while an old one is still
    /// `stopping`, so back-to-back restarts each replace the worker. An ecosystem file's
    /// apps take its settings first (with --env, its env_<NAME>), and those not running
    /// start: PM2's startOrRestart.
    Restart(lifecycle::RestartArgs),
    /// Stop workers and remove them from the list.
    ///
    /// Returns once they are gone; until then the app is busy (exit 7 for other changes).
    #[command(visible_alias = "del")]
    Delete(lifecycle::TargetArgs),
    /// Replace workers one by one without dropping a request: each new worker must be
    /// ready before the old one stops.
    ///
    /// Exits 1, naming the slot and the reason, when a new worker exits or is not ready
    /// within listen_timeout; that slot keeps its old worker and the rest are untouched.
    /// An ecosystem file's apps take its settings first (with --env, its env_<NAME>),
    /// and those not running start: PM2's startOrReload, `pm2 reload ecosystem.config.js
    /// --env production`.
    Reload(lifecycle::ReloadArgs),
    /// Add or remove workers of an app without disturbing the others.
    ///
    /// Removing steers new connections to the remaining workers, lets the leaving ones
    /// answer what is queued, then stops them; the app is busy until then (exit 7).
    Scale(lifecycle::ScaleArgs),
    /// Set the restart counters of workers back to 0 (PM2's reset).
    ///
    /// The restarts `list` shows, and the count of unstable restarts in a row that leads
    /// to `errored`, so an app in a crash loop has its whole max_restarts again. Nothing
    /// is restarted.
    Reset(lifecycle::TargetArgs),
    /// Send a signal to the process of each worker (PM2's sendSignal).
    ///
    /// To the process `list` shows, not its process group: a gunicorn master gets SIGHUP
    /// and replaces its own workers gracefully (SIGHUP would kill them). Prints each
    /// worker and the pid signalled; exits 1 when no worker had a process.
    #[command(name = "send-signal", visible_alias = "sendSignal")]
    SendSignal(send_signal::SendSignalArgs),
    /// List every worker.
    #[command(visible_aliases = ["ls", "l", "ps", "status"])]
    List(list::ListArgs),
    /// List every worker as JSON, on one line (`list --json`, PM2's jlist).
    Jlist,
    /// List every worker as indented JSON (`list --json`, pretty; PM2's prettylist).
    Prettylist,
    /// Show an app's resolved settings and its workers.
    #[command(visible_aliases = ["show", "info", "desc"])]
    Describe(describe::DescribeArgs),
    /// Print the environment of a worker, as drover gave it to the process (PM2's env).
    ///
    /// The caller's environment at start (or at the last --update-env), the app's env
    /// over it, and what drover adds: instance_var, PORT or increment_var, LISTEN_FDS,
    /// LISTEN_PID, NODE_OPTIONS, PYTHONPATH and the rest. Nothing is masked (the control
    /// socket answers only your user and root).
    Env(env::EnvArgs),
    /// Print the last lines of the logs, then follow new ones.
    Logs(logs::LogsArgs),
    /// A live view of every worker (status, cpu, memory, restarts, health) and the
    /// selected app's logs, refreshed every second; q quits.
    Monit(monit::MonitArgs),
    /// Empty log files and delete their rotated ones.
    Flush(lifecycle::FlushArgs),
    /// Reopen every log file (after logrotate moved them); SIGUSR1 to the supervisor
    /// does the same.
    #[command(visible_alias = "reloadLogs")]
    ReloadLogs,
    /// Save the running apps to $DROVER_HOME/dump.yaml, for `resurrect`.
    #[command(visible_alias = "dump")]
    Save(lifecycle::SaveArgs),
    /// Start the apps saved by `save` (those saved stopped are listed, stopped).
    ///
    /// When $DROVER_HOME/dump.yaml is missing or cannot be read, the previous dump
    /// (dump.yaml.bak) is read instead, and says so; a damaged dump is kept as
    /// dump.yaml.damaged. A dump of a newer format, or a symlink, is refused and left as
    /// it is. With nothing saved, no supervisor is started.
    Resurrect,
    /// Check that the supervisor answers.
    ///
    /// Starts the background supervisor when none runs, as `pm2 ping` does.
    Ping,
    /// Stop every app, then the supervisor.
    ///
    /// Returns once the supervisor is gone; exits 1 if it still runs after 60 s.
    Kill,
    /// Re-execute the supervisor from a new drover binary, every worker kept running.
    ///
    /// The supervisor waits until no operation is under way, checks that the binary
    /// reads its state (`drover __upgrade-check`, within 5 s), then executes it in its
    /// own process: same pid, so the workers stay its children, with the same listeners,
    /// log pipes, ids, restart counts and uptimes. A binary that is missing or not
    /// executable is refused (exit 2); if it cannot take over (another state format, a
    /// crash, a hang), the running one goes on and this exits 1 with the reason. `drover ping` shows the
    /// last update. SIGUSR2 to the supervisor does the same with the binary it was
    /// started from. Unlike `pm2 update`, no app is stopped.
    Update(update::UpdateArgs),
    /// Run the supervisor in the foreground with no apps of its own (for systemd).
    Daemon(daemon::DaemonArgs),
    /// Print an ecosystem file (ecosystem.config.js, JSON) as the YAML drover reads.
    Convert(convert::ConvertArgs),
    /// Print an nginx or HAProxy configuration that balances an app's workers, on this
    /// machine or on a fleet of machines running the same ecosystem (--server).
    Export(export::ExportArgs),
    /// Print a completion script for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Start drover at boot: write and enable a systemd unit (PM2's startup).
    ///
    /// The unit runs `drover daemon --resurrect` (the apps of `drover save`), or with
    /// --ecosystem FILE `drover run FILE`, as Type=notify with a watchdog, reload = `drover
    /// reload all`, stop = SIGTERM to drover alone (KillMode=mixed), which stops every
    /// worker gracefully. Installed and enabled when systemd runs and you may write its
    /// directory; else the command to run as root is printed.
    Startup(startup::StartupArgs),
    /// Remove the unit `drover startup` wrote (disabled and stopped first).
    Unstartup(startup::UnstartupArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A script (app.js, server.py, ./bin), a command ("python3 -m http.server", run
    /// without a shell), an ecosystem file (.yaml, .yml, .json, *.config.js), or `-`
    /// for an ecosystem file on stdin (YAML or JSON); several at once, as PM2 (the
    /// flags then describe each script).
    #[arg(required = true, num_args = 1..)]
    pub targets: Vec<PathBuf>,
    #[command(flatten)]
    pub app: crate::config::AppFlags,
    /// Use the ecosystem file's env_<NAME> on top of env.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Only these apps of the ecosystem file (a,b).
    #[arg(long, value_name = "NAMES")]
    pub only: Option<String>,
    /// Arguments passed to the script (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// The environment variables drover reads, for `drover --help` and drover(1).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "DROVER_HOME",
        "where drover keeps its state (default ~/.drover, created 0700; it must be yours and writable by nobody else): logs, the control socket, the dump, the preloads",
    ),
    (
        "DROVER_LOG",
        "the supervisor's own log filter: info (default), debug, warn, error",
    ),
    (
        "NOTIFY_SOCKET",
        "set by systemd for a Type=notify unit: the supervisor says READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 and STATUS= there (never passed on to workers)",
    ),
];

/// The files drover keeps under $DROVER_HOME, for `drover --help` and drover(1).
pub const FILES: &[(&str, &str)] = &[
    (
        "drover.sock",
        "the control socket (0600, peer uid checked) the commands talk to the supervisor on",
    ),
    ("drover.lock", "held by the one supervisor of this home"),
    (
        "drover.log",
        "the background supervisor's own log, rotated at 10 MiB (drover__<time>.log, 5 kept)",
    ),
    (
        "logs/",
        "the apps' log files, unless an app names its own (<name>-out.log, <name>-error.log, -<i> per instance), and their rotated ones (<name>-out__<time>.log)",
    ),
    (
        "dump.yaml",
        "what `drover save` wrote and `drover resurrect` starts (0600: it holds the apps' environments); dump.yaml.bak is the previous one, dump.yaml.damaged one that could not be read",
    ),
    (
        "notify.sock",
        "the workers' sd_notify socket (READY=1 with wait_ready)",
    ),
    (
        "shim/, gunicorn/",
        "the Node and Python preloads drover gives workers, gunicorn's per-worker control sockets",
    ),
];

/// `drover --help` ends with where drover looks and writes, and its exit statuses.
fn after_long_help() -> String {
    let table = |title: &str, rows: &[(&str, &str)]| {
        let mut text = format!("{title}:\n");
        for (name, what) in rows {
            text.push_str(&format!("  {name}\n      {what}\n"));
        }
        text
    };
    format!(
        "{}\n{}\n{}",
        table("Environment", ENVIRONMENT),
        table("Files (in $DROVER_HOME)", FILES),
        crate::error::EXIT_STATUS
    )
}

/// The new image of an in-place update (`drover update`, SIGUSR2): the state is on
/// descriptor `fd` (`upgrade::STATE_FD_VAR`), and the supervisor goes on from it as the
/// daemon or `drover run` it was.
pub fn resume(fd: std::ffi::OsString) -> ExitCode {
    let state = fd
        .to_str()
        .and_then(|fd| fd.parse().ok())
        .ok_or_else(|| {
            format!(
                "{}={fd:?} is not a descriptor",
                crate::upgrade::STATE_FD_VAR
            )
        })
        .and_then(crate::upgrade::read_state);
    let state = match state {
        Ok(state) => state,
        Err(why) => {
            // The workers keep serving, but nobody supervises them any more.
            return finish(Err(Error::Failed(format!(
                "cannot take over after an update: {why}"
            ))));
        }
    };
    finish(match state.host.kind {
        crate::upgrade::state::HostKind::Run => run::resumed(state),
        crate::upgrade::state::HostKind::Daemon => daemon::resumed(state),
    })
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A PM2 flag drover refuses: say why, in one line.
        Err(e) => match pm2_flags::explain(&e) {
            Some(why) => return finish(Err(Error::Usage(why))),
            None => e.exit(),
        },
    };
    // These need no DROVER_HOME: packagers generate completions where HOME is unset,
    // and a unit may be for another user (-u).
    let command = match cli.command {
        Command::Completions(args) => return finish(completions::run(&args)),
        Command::Startup(args) => return finish(startup::startup(args)),
        Command::Unstartup(args) => return finish(startup::unstartup(args)),
        command => command,
    };
    let result = home().and_then(|home| match command {
        Command::Run(args) => run::run(args, home),
        Command::Start(args) => start::run(args, &home, None),
        Command::StartOrReload(args) => {
            start::run(args, &home, Some(crate::protocol::OnRunning::Reload))
        }
        Command::StartOrRestart(args) => {
            start::run(args, &home, Some(crate::protocol::OnRunning::Restart))
        }
        Command::Stop(args) => lifecycle::stop(args, &home),
        Command::Restart(args) => lifecycle::restart(args, &home),
        Command::Delete(args) => lifecycle::delete(args, &home),
        Command::Reload(args) => lifecycle::reload(args, &home),
        Command::Scale(args) => lifecycle::scale(args, &home),
        Command::Reset(args) => lifecycle::reset(args, &home),
        Command::SendSignal(args) => send_signal::run(args, &home),
        Command::List(args) => list::run(args, &home),
        Command::Jlist => list::jlist(&home, false),
        Command::Prettylist => list::jlist(&home, true),
        Command::Describe(args) => describe::run(args, &home),
        Command::Env(args) => env::run(args, &home),
        Command::Logs(args) => logs::run(args, &home),
        Command::Monit(args) => monit::run(args, &home),
        Command::Flush(args) => lifecycle::flush(args, &home),
        Command::ReloadLogs => lifecycle::simple(&home, crate::protocol::Request::ReloadLogs),
        Command::Save(args) => lifecycle::save(args, &home),
        Command::Resurrect => start::resurrect(&home),
        Command::Ping => daemon::ping(&home),
        Command::Kill => daemon::kill(&home),
        Command::Update(args) => update::run(args, &home),
        Command::Daemon(args) => daemon::run(args, home),
        Command::Convert(args) => convert::run(args),
        Command::Export(args) => export::run(args, &home),
        Command::Completions(_) | Command::Startup(_) | Command::Unstartup(_) => {
            unreachable!("handled before DROVER_HOME")
        }
    });
    finish(result)
}

fn finish(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drover: {e}");
            e.exit_code()
        }
    }
}

/// DROVER_HOME, defaulting to ~/.drover, created 0700. An existing one must belong to
/// us and be writable by nobody else: whoever can write there can plant a socket, a
/// lock or a dump and steer the supervisor (or read the environments it keeps).
pub fn home() -> Result<PathBuf, Error> {
    let home = match std::env::var_os("DROVER_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => {
            let user_home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| Error::Usage("neither DROVER_HOME nor HOME is set".into()))?;
            PathBuf::from(user_home).join(".drover")
        }
    };
    create_private_dir(&home)
        .map_err(|e| Error::Runtime(anyhow::anyhow!("cannot create {}: {e}", home.display())))?;
    check_private_dir(&home, nix::unistd::geteuid().as_raw())?;
    Ok(home)
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // An existing directory keeps the mode its owner gave it (DROVER_HOME=/srv/x), as
    // long as check_private_dir accepts it.
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `dir` is ours (owned by `uid`) and neither group- nor world-writable.
fn check_private_dir(dir: &std::path::Path, uid: u32) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::Runtime(anyhow::anyhow!("cannot inspect {}: {e}", dir.display())))?;
    if meta.uid() != uid {
        return Err(Error::Usage(format!(
            "DROVER_HOME {} belongs to uid {}, not to you (uid {uid}): use a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::Usage(format!(
            "DROVER_HOME {} is writable by others (mode {:o}): run `chmod go-w {}` or use another directory",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        )));
    }
    Ok(())
}
