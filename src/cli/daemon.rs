//! `drover daemon` (the supervisor in the foreground with no apps of its own: what
//! `start` launches in the background, and what a systemd unit runs), `ping`, `kill`,
//! and the lock that allows one supervisor per DROVER_HOME.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{SignalKind, signal};

use crate::error::Error;
use crate::ipc::client::{Client, socket_path};
use crate::protocol::{Request, Response};
use crate::supervisor::{self, NewApp, RunOptions, RunOutcome, dump};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Start the apps saved by `drover save` (for the systemd unit).
    #[arg(long)]
    pub resurrect: bool,
}

/// Exit status of a daemon that found another supervisor already holding the lock: not a
/// failure (two racing `start`s both launch one; one of them wins).
const ALREADY_RUNNING: u8 = 0;

/// Takes `$DROVER_HOME/drover.lock` for the life of the supervisor. A lock, not a pid
/// file: the kernel releases it when the process dies, however it dies.
pub fn lock(home: &Path) -> Result<Flock<File>, Error> {
    let path = home.join("drover.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        Error::Usage(format!(
            "a supervisor is already running for DROVER_HOME={} (see `drover list`, or `drover kill`)",
            home.display()
        ))
    })
}

pub fn run(args: DaemonArgs, home: PathBuf) -> Result<(), Error> {
    let _lock = match lock(&home) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("drover daemon: {e}");
            std::process::exit(i32::from(ALREADY_RUNNING));
        }
    };
    super::run::init_tracing(true);
    let apps = if args.resurrect && dump::path(&home).exists() {
        dump::load(&home)?
            .into_iter()
            .map(|a| NewApp {
                spec: a.spec,
                env: a.env,
            })
            .collect()
    } else {
        Vec::new()
    };
    supervise(&home, apps, false)?;
    tracing::info!("supervisor stopped");
    Ok(())
}

/// Runs the supervisor on this thread until it ends, with SIGINT/SIGTERM as its shutdown
/// and the control socket bound. `foreground` is `drover run` (workers' output on the
/// console, exit once every worker is done, SIGHUP reloads); else the daemon.
pub(crate) fn supervise(
    home: &Path,
    apps: Vec<NewApp>,
    foreground: bool,
) -> Result<RunOutcome, Error> {
    // Current-thread runtime on the main thread: workers' PR_SET_PDEATHSIG is tied to the
    // spawning thread, which must live as long as the supervisor. One thread is plenty:
    // the supervisor is never in the data path.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let socket = socket_path(home);
    let outcome = runtime.block_on(async {
        let control =
            crate::ipc::server::bind(&socket).context("cannot create the control socket")?;
        tracing::info!(
            "supervisor {} listening on {}",
            std::process::id(),
            socket.display()
        );
        let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = sigint.recv() => tracing::info!("SIGINT received"),
                _ = sigterm.recv() => tracing::info!("SIGTERM received"),
            }
        };
        let opts = RunOptions {
            home: home.to_path_buf(),
            console: foreground,
            exit_when_idle: foreground,
            control: Some(control),
            reload_on_sighup: foreground,
        };
        let outcome = supervisor::run(apps, opts, shutdown).await;
        let _ = std::fs::remove_file(&socket);
        outcome
    })?;
    Ok(outcome)
}

pub fn ping(home: &Path) -> Result<(), Error> {
    let mut client = Client::connect_or_spawn(home)?;
    if let Response::Pong { pid, version } = client.call(&Request::Ping)? {
        println!("pong: supervisor pid {pid}, drover {version}");
    }
    Ok(())
}

pub fn kill(home: &Path) -> Result<(), Error> {
    let mut client = Client::connect(home)?;
    client.call(&Request::Kill)?;
    // The supervisor answers first, then stops its apps: wait until it is gone, so that
    // `drover kill && drover start …` never races the old supervisor.
    let timeout = std::time::Duration::from_secs(60);
    let deadline = std::time::Instant::now() + timeout;
    while lock(home).is_err() {
        if std::time::Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "the supervisor of {} was asked to stop but still runs after {} s",
                home.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    println!("supervisor stopped");
    Ok(())
}
