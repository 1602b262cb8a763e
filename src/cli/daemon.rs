//! `drover daemon` (the supervisor in the foreground with no apps of its own: what
//! `start` launches in the background, and what a systemd unit runs), `ping`, `kill`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::host;
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{Request, Response};
use crate::supervisor::{NewApp, dump};

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
    let Some(_lock) = host::try_lock(&home)? else {
        eprintln!("drover daemon: {}", host::already_running(&home));
        std::process::exit(i32::from(ALREADY_RUNNING));
    };
    // drover.log, when the CLI started us with it as stderr: rotated from here on.
    let own_log = crate::logs::own::writer(&home.join(crate::ipc::client::LOG_NAME));
    let (own_log, _flush_on_exit) = own_log.unzip();
    host::init_tracing(true, own_log);
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
    host::supervise(&home, apps, false, metrics)?;
    tracing::info!("supervisor stopped");
    Ok(())
}

pub fn ping(home: &Path) -> Result<(), Error> {
    let mut client = Client::connect_or_spawn(home)?;
    if let Response::Pong {
        pid,
        version,
        metrics,
    } = client.call(&Request::Ping)?
    {
        match metrics {
            Some(url) => println!("pong: supervisor pid {pid}, drover {version}, metrics on {url}"),
            None => println!("pong: supervisor pid {pid}, drover {version}"),
        }
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
