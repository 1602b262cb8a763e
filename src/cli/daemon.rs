//! `drover daemon` (the supervisor in the foreground with no apps of its own: what
//! `start` launches in the background, and what a systemd unit runs), `ping`, `kill`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::host::{self, Beginning};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::logs::own::OwnLogGuard;
use crate::protocol::{Request, Response};
use crate::supervisor::{NewApp, dump};
use crate::upgrade::state::{HostKind, State};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Start the apps saved by `drover save` (for the systemd unit).
    #[arg(long)]
    pub resurrect: bool,
    #[command(flatten)]
    pub metrics: host::MetricsArgs,
}

/// Exit status of a daemon that found another supervisor already holding the lock: not a
/// failure (two racing `start`s both launch one; one of them wins).
const ALREADY_RUNNING: u8 = 0;

pub fn run(args: DaemonArgs, home: PathBuf) -> Result<(), Error> {
    let metrics = args.metrics.spec()?;
    let Some(lock) = host::try_lock(&home)? else {
        eprintln!("drover daemon: {}", host::already_running(&home));
        std::process::exit(i32::from(ALREADY_RUNNING));
    };
    let mut own_log = own_log(&home);
    // symlink_metadata: a link planted at the dump is reported by `load`, not skipped.
    let saved = |name: String| std::fs::symlink_metadata(home.join(name)).is_ok();
    let apps =
        if args.resurrect && (saved(dump::FILE.into()) || saved(format!("{}.bak", dump::FILE))) {
            let loaded = dump::load(&home)?;
            if let Some(note) = &loaded.from_backup {
                tracing::warn!("{note}");
            }
            loaded
                .apps
                .into_iter()
                .map(|a| NewApp {
                    spec: a.spec,
                    env: a.env,
                    stopped: a.stopped,
                })
                .collect()
        } else {
            Vec::new()
        };
    host::supervise(
        &home,
        HostKind::Daemon,
        &lock,
        Beginning::Fresh { apps, metrics },
        own_log.as_mut(),
    )?;
    tracing::info!("supervisor stopped");
    Ok(())
}

/// The daemon again, in the image an in-place update executed.
pub fn resumed(state: State) -> Result<(), Error> {
    let home = state.supervisor.home.clone();
    let mut own_log = own_log(&home);
    let lock = host::adopt_lock(state.host.lock_fd)?;
    let begin = Beginning::Resumed {
        state: Box::new(state),
        failure: None,
    };
    host::supervise(&home, HostKind::Daemon, &lock, begin, own_log.as_mut())?;
    tracing::info!("supervisor stopped");
    Ok(())
}

/// drover.log, when the CLI started us with it as stderr: rotated from here on. The
/// guard writes what is queued when dropped.
fn own_log(home: &Path) -> Option<OwnLogGuard> {
    let own_log = crate::logs::own::writer(&home.join(crate::ipc::client::LOG_NAME));
    let (writer, guard) = own_log.unzip();
    host::init_tracing(true, writer);
    guard
}

pub fn ping(home: &Path) -> Result<(), Error> {
    let mut client = Client::connect_or_spawn(home)?;
    if let Response::Pong {
        pid,
        version,
        binary,
        started_at_ms,
        last_update,
        metrics,
    } = client.call(&Request::Ping)?
    {
        let mut line = format!("pong: supervisor pid {pid}, drover {version}");
        if let Some(binary) = binary {
            line.push_str(&format!(" ({binary})"));
        }
        if let Some(started) = started_at_ms {
            line.push_str(&format!(", started {}", local_time(started)));
        }
        if let Some(url) = metrics {
            line.push_str(&format!(", metrics on {url}"));
        }
        println!("{line}");
        if let Some(u) = last_update {
            match &u.failure {
                None => println!(
                    "updated in place {}: drover {} ({}) → drover {} ({}), {} ms without answering",
                    local_time(u.at_ms),
                    u.from_version,
                    u.from_binary,
                    u.running_version,
                    u.to_binary,
                    u.took_ms
                ),
                Some(why) => println!(
                    "update to {} failed {}: {why}; drover {} went on",
                    u.to_binary,
                    local_time(u.at_ms),
                    u.running_version
                ),
            }
        }
    }
    Ok(())
}

/// `ms` since the Unix epoch as local time, to the second.
fn local_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || format!("{ms} ms after the epoch"),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}

pub fn kill(home: &Path) -> Result<(), Error> {
    let mut client = Client::connect(home)?;
    client.call(&Request::Kill)?;
    // The supervisor answers first, then stops its apps: wait until it is gone, so that
    // `drover kill && drover start …` never races the old supervisor.
    let timeout = std::time::Duration::from_secs(60);
    let deadline = std::time::Instant::now() + timeout;
    while host::try_lock(home)?.is_none() {
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
