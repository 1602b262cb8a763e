//! The command line: clap definitions here, one file per command.

mod daemon;
mod describe;
mod lifecycle;
mod list;
mod logs;
mod render;
mod run;
mod start;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "drover",
    version,
    about = "PM2's cluster mode for any language: N workers sharing one port, kept alive, with merged logs",
    after_long_help = crate::error::EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run apps in the foreground (like pm2-runtime): workers' output on our stdout/stderr,
    /// SIGINT or SIGTERM stops every worker gracefully.
    Run(RunArgs),
    /// Start apps in the background supervisor (started on first use).
    Start(start::StartArgs),
    /// Stop workers, keeping them in the list; an app whose workers all stop releases its port.
    Stop(lifecycle::TargetArgs),
    /// Stop then start workers again, on the same address.
    Restart(lifecycle::RestartArgs),
    /// Stop workers and remove them from the list.
    #[command(visible_alias = "del")]
    Delete(lifecycle::TargetArgs),
    /// Replace workers one by one without dropping a request: each new worker must be
    /// ready before the old one stops.
    Reload(lifecycle::ReloadArgs),
    /// Add or remove workers of an app without disturbing the others.
    Scale(lifecycle::ScaleArgs),
    /// List every worker.
    #[command(visible_aliases = ["ls", "ps", "status"])]
    List(list::ListArgs),
    /// Show an app's resolved settings and its workers.
    #[command(visible_aliases = ["show", "info"])]
    Describe(describe::DescribeArgs),
    /// Print the last lines of the logs, then follow new ones.
    Logs(logs::LogsArgs),
    /// Empty log files.
    Flush(lifecycle::FlushArgs),
    /// Reopen every log file (after logrotate moved them).
    ReloadLogs,
    /// Save the running apps to $DROVER_HOME/dump.yaml, for `resurrect`.
    Save,
    /// Start the apps saved by `save`.
    Resurrect,
    /// Check that the supervisor answers.
    Ping,
    /// Stop every app, then the supervisor.
    Kill,
    /// Run the supervisor in the foreground with no apps of its own (for systemd).
    Daemon(daemon::DaemonArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A script (app.js, server.py, ./bin) or an ecosystem file (.yaml, .yml, .json).
    pub target: PathBuf,
    #[command(flatten)]
    pub app: AppFlags,
    /// Arguments passed to the script (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// The options of one app, with PM2's spellings. With an ecosystem file only `--env`
/// applies; the others describe a script given on the command line.
#[derive(Debug, Default, Args)]
pub struct AppFlags {
    /// App name (default: the script's file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Number of workers: a number, `max` (all CPUs), or -1 (CPUs − 1).
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// Address the workers share: a port, host:port, [v6]:port or unix:/path.
    #[arg(long)]
    pub listen: Option<String>,
    /// How the listener is shared: reuseport (a listener per worker) or shared.
    #[arg(long)]
    pub socket: Option<String>,
    /// Use the ecosystem file's env_<NAME> on top of env.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Interpreter (default from the extension: node, python3, bash; `none` to exec).
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Working directory of the workers.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// stdout log file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub out_file: Option<PathBuf>,
    /// stderr log file.
    #[arg(short = 'e', long = "error", value_name = "FILE")]
    pub error_file: Option<PathBuf>,
    /// One log file for all instances instead of one per instance.
    #[arg(long)]
    pub merge_logs: bool,
    /// Prefix each log line with a timestamp in this (moment.js) format.
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// Prefix each log line with a timestamp (YYYY-MM-DDTHH:mm:ss).
    #[arg(long)]
    pub time: bool,
    /// Do not restart workers that exit.
    #[arg(long)]
    pub no_autorestart: bool,
    /// Restart a worker whose process tree uses more memory than this (300K, 512M, 1G).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub max_memory_restart: Option<String>,
    /// Time between the kill signal and SIGKILL (ms, or 1s, 500ms).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub kill_timeout: Option<String>,
    /// Signal that asks a worker to stop (default SIGINT).
    #[arg(long, value_name = "SIGNAL")]
    pub kill_signal: Option<String>,
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
    /// Delay before restarting a crashed worker.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub restart_delay: Option<String>,
    /// Exponential backoff: first delay, ×1.5 per crash up to 15 s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub exp_backoff_restart_delay: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = home().and_then(|home| match cli.command {
        Command::Run(args) => run::run(args, home),
        Command::Start(args) => start::run(args, &home),
        Command::Stop(args) => lifecycle::stop(args, &home),
        Command::Restart(args) => lifecycle::restart(args, &home),
        Command::Delete(args) => lifecycle::delete(args, &home),
        Command::Reload(args) => lifecycle::reload(args, &home),
        Command::Scale(args) => lifecycle::scale(args, &home),
        Command::List(args) => list::run(args, &home),
        Command::Describe(args) => describe::run(args, &home),
        Command::Logs(args) => logs::run(args, &home),
        Command::Flush(args) => lifecycle::flush(args, &home),
        Command::ReloadLogs => lifecycle::simple(&home, crate::protocol::Request::ReloadLogs),
        Command::Save => lifecycle::simple(&home, crate::protocol::Request::Save),
        Command::Resurrect => start::resurrect(&home),
        Command::Ping => daemon::ping(&home),
        Command::Kill => daemon::kill(&home),
        Command::Daemon(args) => daemon::run(args, home),
    });
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
            meta.mode() & 0o777,
            dir.display()
        )));
    }
    Ok(())
}
