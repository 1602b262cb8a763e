//! `drover update` (PM2's name): the running supervisor re-executes a drover binary in
//! its own process (`crate::upgrade`, docs/upgrade.md). Unlike `pm2 update`, which kills
//! every app and starts them again, every worker goes on: same pid, same listener,
//! same counters.
//!
//! The supervisor answers "updating" once nothing is under way, then stops answering
//! while it hands over; this command then asks `ping` until the supervisor (the new
//! binary, or the old one after a failure) reports that very update.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::render::unexpected;
use crate::error::Error;
use crate::ipc::client::{Client, ClientError};
use crate::protocol::{Request, Response, UpdateInfo};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The drover binary the supervisor runs from now on [default: this one, the drover
    /// you ran, which a package upgrade has just replaced].
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

/// How long after "updating" the supervisor may take to answer again: the new binary's
/// check (`upgrade::CHECK_TIMEOUT`) and the exec, with room for a loaded machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one `ping` waits for its answer (a connection made while the supervisor
/// hands over waits in the backlog for the new image).
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Between two pings that found nobody answering.
const PING_RETRY: Duration = Duration::from_millis(5);

pub fn run(args: UpdateArgs, home: &Path) -> Result<(), Error> {
    let binary = match args.binary {
        Some(path) => std::path::absolute(&path)
            .map_err(|e| Error::Usage(format!("--binary {}: {e}", path.display())))?,
        None => std::env::current_exe()
            .map_err(|e| Error::Failed(format!("cannot find drover's own executable: {e}")))?,
    };
    crate::upgrade::runnable(&binary).map_err(Error::Usage)?;
    let mut client = match Client::connect(home) {
        Err(ClientError::NotRunning(_)) => {
            println!(
                "no supervisor runs for DROVER_HOME={}: nothing to update (the next `drover start` runs {})",
                home.display(),
                binary.display()
            );
            return Ok(());
        }
        other => other?,
    };
    let (id, pid) = match client.call(&Request::Update {
        binary: binary.clone(),
    })? {
        Response::Updating { id, pid, .. } => (id, pid),
        other => return Err(unexpected("updating", &other)),
    };
    let update = wait_for_update(home, id, pid)?;
    match &update.failure {
        None => {
            println!(
                "updated in place: drover {} ({}) → drover {} ({}), supervisor pid {pid} kept with every worker; it did not answer for {} ms",
                update.from_version,
                update.from_binary,
                update.running_version,
                update.to_binary,
                update.took_ms
            );
            Ok(())
        }
        Some(why) => Err(Error::Failed(format!(
            "update failed: {why}; the supervisor (pid {pid}) goes on with drover {} ({}) and every worker",
            update.running_version, update.from_binary
        ))),
    }
}

/// Pings until the supervisor reports update `id`.
fn wait_for_update(home: &Path, id: u64, pid: u32) -> Result<UpdateInfo, Error> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let answer = Client::connect(home).and_then(|mut client| {
            client.set_timeout(Some(PING_TIMEOUT))?;
            client.call(&Request::Ping)
        });
        if let Ok(Response::Pong {
            pid: answered,
            last_update: Some(update),
            ..
        }) = answer
            && update.id == id
        {
            if answered != pid {
                return Err(Error::Failed(format!(
                    "the supervisor answering is pid {answered}, not the updated pid {pid}"
                )));
            }
            return Ok(*update);
        }
        if !crate::os::process_exists(nix::unistd::Pid::from_raw(pid as i32)) {
            return Err(Error::Failed(format!(
                "the supervisor (pid {pid}) died during the update; its workers run on unsupervised (see drover.log)"
            )));
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "the supervisor (pid {pid}) has not answered for {} s since it began the update (see drover.log)",
                ANSWER_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(PING_RETRY);
    }
}
