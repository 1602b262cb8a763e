//! `drover start` and `drover resurrect`: hand apps to the background supervisor,
//! starting it first if needed.

use clap::Args;

use super::{RunArgs, apps};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppConfig, Request, Response};

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Give a stopped app this shell's environment instead of the one it was started with.
    #[arg(long)]
    pub update_env: bool,
}

pub fn run(args: StartArgs, home: &std::path::Path) -> Result<(), Error> {
    // Validated here: a bad file is reported by the CLI and nothing reaches the supervisor.
    let apps = apps::load(&args.run, home)?;
    let request = Request::Start {
        apps: apps.iter().map(AppConfig::from).collect(),
        env: apps::caller_env(),
        update_env: args.update_env,
    };
    let mut client = Client::connect_or_spawn(home)?;
    print_done(client.call(&request)?);
    Ok(())
}

pub fn resurrect(home: &std::path::Path) -> Result<(), Error> {
    let mut client = Client::connect_or_spawn(home)?;
    print_done(client.call(&Request::Resurrect)?);
    Ok(())
}

pub(crate) fn print_done(response: Response) {
    if let Response::Done { message } = response {
        println!("{message}");
    }
}
