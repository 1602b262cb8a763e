//! `drover send-signal SIGNAL <targets…>` (PM2's `sendSignal`): the signal to the process
//! of each worker the targets name, the one `list` shows, not its process group (a
//! gunicorn master turns SIGHUP into a graceful reload of its own workers; SIGHUP to
//! them would kill them). Prints, worker by worker, the pid signalled.

use std::path::Path;

use clap::Args;
use nix::sys::signal::Signal;

use super::targets::{self, TargetWords};
use crate::error::Error;
use crate::protocol::{Request, SignalName};

#[derive(Debug, Args)]
pub struct SendSignalArgs {
    /// The signal, by name: SIGUSR2, usr2, HUP, SIGWINCH, SIGKILL, ... (any case, SIG
    /// optional; `kill -l` lists them).
    #[arg(value_name = "SIGNAL", value_parser = crate::config::any_signal)]
    pub signal: Signal,
    #[command(flatten)]
    pub words: TargetWords,
}

pub fn run(args: SendSignalArgs, home: &Path) -> Result<(), Error> {
    let picked = targets::pick(&args.words, None, home)?;
    let names = targets::with_known_file_apps(&picked, home)?;
    let signal = SignalName(args.signal);
    super::lifecycle::each(
        home,
        names
            .into_iter()
            .map(|target| Request::SendSignal { target, signal }),
    )
}
