//! Hosting the supervisor in this process, for `drover run` (foreground, with its apps)
//! and `drover daemon` (background, or under systemd): the lock that allows one
//! supervisor per DROVER_HOME, its own diagnostics, and the runtime with the control
//! socket and the shutdown signals.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use clap::Args;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::MetricsSpec;
use crate::error::Error;
use crate::ipc::client::socket_path;
use crate::supervisor::{self, NewApp, RunOptions, RunOutcome};

pub const LOCK_FILE: &str = "drover.lock";

/// `--metrics ADDR` of `run` and `daemon`: the supervisor hosted here serves its metrics.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics and the supervisor's health at
    /// /healthz: a port (9615, on 127.0.0.1), 127.0.0.1:9615, [::1]:9615; 0 picks a free
    /// port (`drover ping` shows it). Over an ecosystem file's `metrics:`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Let --metrics listen on an address other machines reach (0.0.0.0:9615): every
    /// app's names and figures are then open to the network.
    #[arg(long, requires = "metrics")]
    pub metrics_public: bool,
}

impl MetricsArgs {
    /// The endpoint the flags ask for (None: no --metrics).
    pub fn spec(&self) -> Result<Option<MetricsSpec>, Error> {
        self.metrics
            .as_deref()
            .map(|addr| MetricsSpec::from_flag(addr, self.metrics_public))
            .transpose()
            .map_err(Error::Usage)
    }
}

/// Takes `$DROVER_HOME/drover.lock` for the life of the supervisor; `Ok(None)` when
/// another process holds it. A lock, not a pid file: the kernel releases it when the
/// process dies, however it dies.
///
/// The file is opened with O_NOFOLLOW (mode 0600 when created): a symlink planted there
/// would otherwise make us create or lock a file elsewhere.
pub fn try_lock(home: &Path) -> Result<Option<Flock<File>>, Error> {
    let path = home.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "{} is a symbolic link; refusing to follow it (remove it: the supervisor creates its own)",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot open {}", path.display()))
            }
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(anyhow::Error::new(errno)
            .context(format!("cannot lock {}", path.display()))
            .into()),
    }
}

/// [`try_lock`], with another supervisor holding the lock as the error.
pub fn lock(home: &Path) -> Result<Flock<File>, Error> {
    try_lock(home)?.ok_or_else(|| already_running(home))
}

/// The lock is held: what `run` and `daemon` say.
pub fn already_running(home: &Path) -> Error {
    Error::Usage(format!(
        "a supervisor is already running for DROVER_HOME={} (see `drover list`, or `drover kill`)",
        home.display()
    ))
}

/// The supervisor's own diagnostics on stderr, or through `own_log` (drover.log,
/// rotated: `logs::own::writer`); `timestamps` for the daemon's log file (a terminal or
/// journald adds its own).
pub fn init_tracing(
    timestamps: bool,
    own_log: Option<tracing_appender::non_blocking::NonBlocking>,
) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = EnvFilter::try_from_env("DROVER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = own_log.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let writer = own_log.map_or_else(|| BoxMakeWriter::new(std::io::stderr), BoxMakeWriter::new);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    let _ = if timestamps {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

/// Runs the supervisor on this thread until it ends, with SIGINT/SIGTERM as its shutdown
/// and the control socket bound. `foreground` is `drover run` (workers' output on the
/// console, exit once every worker is done, SIGHUP reloads); else the daemon. `metrics`:
/// where to serve the metrics endpoint.
pub fn supervise(
    home: &Path,
    apps: Vec<NewApp>,
    foreground: bool,
    metrics: Option<MetricsSpec>,
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
            reopen_logs_on_sigusr1: true,
            notify_service_manager: true,
            metrics,
        };
        let outcome = supervisor::run(apps, opts, shutdown).await;
        let _ = std::fs::remove_file(&socket);
        outcome
    })?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_lock_is_private_exclusive_and_released_on_drop() {
        let home = tempfile::tempdir().unwrap();
        let held = lock(home.path()).unwrap();
        let mode = std::fs::metadata(home.path().join(LOCK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(try_lock(home.path()).unwrap().is_none());
        let e = lock(home.path()).unwrap_err().to_string();
        assert!(e.contains("already running"), "{e}");
        drop(held);
        assert!(try_lock(home.path()).unwrap().is_some());
    }

    #[test]
    fn a_symlink_at_the_lock_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = home.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, home.path().join(LOCK_FILE)).unwrap();
        let e = try_lock(home.path()).unwrap_err().to_string();
        assert!(e.contains("drover.lock is a symbolic link"), "{e}");
        assert!(!elsewhere.exists(), "nothing is created through the link");
    }
}
