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
use std::os::fd::AsRawFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::MetricsSpec;
use crate::error::Error;
use crate::ipc::client::socket_path;
use crate::logs::own::OwnLogGuard;
use crate::os;
use crate::supervisor::{self, Ended, Handover, NewApp, RunOptions, RunOutcome};
use crate::upgrade::{self, state::HostKind, state::State};

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
pub fn init_tracing(timestamps: bool, own_log: Option<crate::logs::own::OwnWriter>) {
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

/// Where a supervisor begins.
pub enum Beginning {
    /// With these apps (`drover run`), or none (`drover daemon`), serving metrics where
    /// asked.
    Fresh {
        apps: Vec<NewApp>,
        metrics: Option<MetricsSpec>,
    },
    /// From the state an in-place update handed over: in the new image, or in this one
    /// (`failure`) when the new binary could not take over.
    Resumed {
        state: Box<State>,
        failure: Option<String>,
    },
}

/// Runs the supervisor on this thread until it ends, with SIGINT/SIGTERM as its shutdown
/// and the control socket bound. `kind`: `drover run` (workers' output on the console,
/// exit once every worker is done, SIGHUP reloads) or the daemon. `lock` is the
/// `drover.lock` held for it; `own_log` the daemon's drover.log, flushed before an
/// upgrade's exec.
///
/// An in-place update ends the supervisor's run with its state: the new binary is
/// checked against it and executed in this process, on this (the main) thread, and
/// never returns here; if it cannot take over, this image resumes from the same state.
pub fn supervise(
    home: &Path,
    kind: HostKind,
    lock: &Flock<File>,
    mut begin: Beginning,
    mut own_log: Option<&mut OwnLogGuard>,
) -> Result<RunOutcome, Error> {
    loop {
        match run_once(home, kind, lock.as_raw_fd(), begin)? {
            Ended::Done(outcome) => return Ok(outcome),
            Ended::HandOver(handover) => {
                // Said by the resumed supervisor, with the update's number.
                let failure = exec_new_binary(&handover, own_log.as_deref_mut());
                begin = Beginning::Resumed {
                    state: Box::new(handover.state),
                    failure: Some(failure),
                };
            }
        }
    }
}

/// One run of the supervisor, in a runtime of its own that is gone when this returns.
fn run_once(
    home: &Path,
    kind: HostKind,
    lock_fd: std::os::fd::RawFd,
    begin: Beginning,
) -> Result<Ended, Error> {
    // Current-thread runtime on the main thread: workers' PR_SET_PDEATHSIG is tied to the
    // spawning thread, which must live as long as the supervisor. One thread is plenty:
    // the supervisor is never in the data path.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let socket = socket_path(home);
    let ended = runtime.block_on(async {
        let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = sigint.recv() => tracing::info!("SIGINT received"),
                _ = sigterm.recv() => tracing::info!("SIGTERM received"),
            }
        };
        match begin {
            Beginning::Fresh { apps, metrics } => {
                let control = crate::ipc::server::bind(&socket)
                    .context("cannot create the control socket")?;
                tracing::info!(
                    "supervisor {} listening on {}",
                    std::process::id(),
                    socket.display()
                );
                let foreground = kind == HostKind::Run;
                let opts = RunOptions {
                    home: home.to_path_buf(),
                    console: foreground,
                    exit_when_idle: foreground,
                    control: Some(control),
                    reload_on_sighup: foreground,
                    reopen_logs_on_sigusr1: true,
                    notify_service_manager: true,
                    host: kind,
                    lock_fd: Some(lock_fd),
                    metrics,
                };
                supervisor::run(apps, opts, shutdown).await
            }
            Beginning::Resumed { state, failure } => {
                supervisor::resume(*state, failure, shutdown).await
            }
        }
    });
    // Tasks still running (a blocking read of a health check) are left behind, not
    // waited for: the supervisor is done with them.
    runtime.shutdown_background();
    let ended = ended?;
    if matches!(ended, Ended::Done(_)) {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(ended)
}

/// Checks the update's binary against its state, then executes it in this process with
/// every descriptor the state names. Returns only if the binary cannot take over, with
/// why; the descriptors are then as before.
fn exec_new_binary(handover: &Handover, own_log: Option<&mut OwnLogGuard>) -> String {
    let binary = &handover.binary;
    let memfd = match upgrade::seal(&handover.state) {
        Ok(memfd) => memfd,
        Err(e) => return format!("cannot write the hand-over state: {e}"),
    };
    let answer = match upgrade::check(binary, &memfd) {
        Ok(answer) => answer,
        Err(why) => return why,
    };
    tracing::info!(
        "{} (drover {}) reads the state of {} app{} and {} worker slot{}: executing it",
        binary.display(),
        answer.version,
        answer.apps,
        if answer.apps == 1 { "" } else { "s" },
        answer.workers,
        if answer.workers == 1 { "" } else { "s" }
    );
    let fds = handover.state.fds();
    let failed = fds
        .iter()
        .find_map(|&fd| os::set_cloexec_raw(fd, false).err().map(|e| (fd, e)));
    let why = match failed {
        Some((fd, e)) => format!("cannot pass descriptor {fd} on: {e}"),
        None => {
            if let Some(log) = own_log {
                log.flush();
            }
            let err = upgrade::exec(binary, &memfd);
            format!("cannot execute {}: {err}", binary.display())
        }
    };
    for fd in fds {
        let _ = os::set_cloexec_raw(fd, true);
    }
    why
}

/// `drover.lock`, held across the exec on descriptor `fd`: taken again (a lock this
/// open file already holds is granted at once).
pub fn adopt_lock(fd: Option<std::os::fd::RawFd>) -> Result<Flock<File>, Error> {
    let fd = fd.ok_or_else(|| Error::Failed("the hand-over state names no lock".into()))?;
    let file = File::from(os::adopt_fd(fd).context("drover.lock")?);
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| Error::Failed(format!("cannot hold drover.lock again: {errno}")))
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
