//! `drover env <id>` (PM2's `pm2 env`): the environment of one worker, as drover built it
//! for the process: the caller's environment at start, the app's env over it, and what
//! drover adds (instance_var, PORT, LISTEN_FDS…). `NAME=value` lines, sorted, as env(1)
//! prints them; `--json` for scripts.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::render;
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{Request, Response, Target};

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// A worker id (`drover list` shows them), or the name of an app of one worker.
    #[arg(value_name = "ID")]
    pub target: Target,
    /// One JSON object: {"id", "app", "instance", "pid", "env": {NAME: value}}; pid is
    /// null when the worker is not running (env is then what its next start gets).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct JsonEnv<'a> {
    id: u32,
    app: &'a str,
    instance: u32,
    pid: Option<u32>,
    env: &'a std::collections::BTreeMap<String, String>,
}

pub fn run(args: EnvArgs, home: &Path) -> Result<(), Error> {
    let answer = Client::connect(home)?.call(&Request::Env {
        target: args.target,
    })?;
    let Response::Env {
        id,
        app,
        instance,
        pid,
        vars,
    } = answer
    else {
        return Err(render::unexpected("env", &answer));
    };
    if args.json {
        let mut text = serde_json::to_string(&JsonEnv {
            id,
            app: &app,
            instance,
            pid,
            env: &vars,
        })
        .expect("strings serialize");
        text.push('\n');
        return render::print(&text);
    }
    if pid.is_none() {
        eprintln!(
            "drover: {app}#{instance} (id {id}) is not running: this is the environment its next start gets"
        );
    }
    render::print(&lines(&vars))
}

/// `NAME=value`, one per line, sorted by name.
fn lines(vars: &std::collections::BTreeMap<String, String>) -> String {
    vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn variables_print_as_env_does() {
        let vars = [("PORT", "3000"), ("A", "x=y z")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(super::lines(&vars), "A=x=y z\nPORT=3000\n");
    }
}
