//! `drover list` (ls, ps, status): every worker in one table, PM2's `pm2 ls`. Starts the
//! supervisor when none runs, as PM2 does; `--names` (for shell completion) never does.

use std::path::Path;
use std::time::Duration;

use super::render;
use crate::error::Error;
use crate::ipc::client::{Client, ClientError};
use crate::protocol::{Request, Response, WorkerInfo};

/// List every worker: id, name, mode, pid, uptime, restarts (↺), status, cpu, memory.
/// Starts the supervisor if none is running.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Print a JSON array of workers instead of the table (fields: id, name, instance, mode,
    /// pid (null when not running), status, restarts, uptime_ms, cpu, memory, listen).
    #[arg(long)]
    pub json: bool,
    /// Print the app names, one per line, for shell completion: never starts the
    /// supervisor (none running: nothing printed) and gives up after a second.
    #[arg(long, conflicts_with = "json")]
    pub names: bool,
}

/// How long `list --names` waits for the supervisor: a completing shell waits with it.
const NAMES_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) fn run(args: ListArgs, home: &Path) -> Result<(), Error> {
    if args.names {
        return names(home);
    }
    let workers = workers(home)?;
    let text = if args.json {
        json(&workers)
    } else {
        human(&workers, render::stdout_is_tty())
    };
    render::print(&text)
}

/// PM2's `jlist` and `prettylist`: `list --json`, indented for `prettylist`. The fields
/// are drover's (README's "Coming from PM2" maps PM2's to them).
pub(crate) fn jlist(home: &Path, pretty: bool) -> Result<(), Error> {
    let workers = workers(home)?;
    let text = match pretty {
        true => pretty_json(&workers),
        false => json(&workers),
    };
    render::print(&text)
}

/// Every worker, from the supervisor (started when none runs, as PM2's `ls`).
fn workers(home: &Path) -> Result<Vec<WorkerInfo>, Error> {
    let mut client = Client::connect_or_spawn(home)?;
    match client.call(&Request::List)? {
        Response::Workers { workers } => Ok(workers),
        other => Err(render::unexpected("workers", &other)),
    }
}

/// The app names of the running supervisor, each once, in the order of their first worker.
fn names(home: &Path) -> Result<(), Error> {
    let mut client = match Client::connect(home) {
        Err(ClientError::NotRunning(_)) => return Ok(()),
        connected => connected?,
    };
    client
        .set_timeout(Some(NAMES_TIMEOUT))
        .map_err(ClientError::Io)?;
    let workers = match client.call(&Request::List)? {
        Response::Workers { workers } => workers,
        other => return Err(render::unexpected("workers", &other)),
    };
    render::print(&app_names(&workers))
}

/// One line per app, in the order of their first worker's id.
pub(crate) fn app_names(workers: &[WorkerInfo]) -> String {
    let mut by_id: Vec<&WorkerInfo> = workers.iter().collect();
    by_id.sort_by_key(|w| w.id);
    let mut names: Vec<&str> = Vec::new();
    for w in by_id {
        if !names.contains(&w.name.as_str()) {
            names.push(&w.name);
        }
    }
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// The workers as a JSON array, exactly as the protocol serializes them, on one line.
pub(crate) fn json(workers: &[WorkerInfo]) -> String {
    let mut text = serde_json::to_string(workers).expect("protocol types serialize");
    text.push('\n');
    text
}

/// [`json`], indented (`prettylist`).
pub(crate) fn pretty_json(workers: &[WorkerInfo]) -> String {
    let mut text = serde_json::to_string_pretty(workers).expect("protocol types serialize");
    text.push('\n');
    text
}

/// The table, or its header and a hint when nothing runs.
pub(crate) fn human(workers: &[WorkerInfo], color: bool) -> String {
    let mut text = render::workers_table(workers, color);
    text.push_str(&render::worker_problems(workers, color));
    if workers.is_empty() {
        text.push_str(&render::paint(
            "no apps yet: `drover start <script | ecosystem.yaml>` starts some\n",
            render::style::DIM,
            color,
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::tests::worker;

    #[test]
    fn json_is_an_array_of_workers_with_the_protocol_field_names() {
        let mut stopped = worker(1, "api");
        stopped.pid = None;
        stopped.listen = None;
        let text = json(&[worker(0, "api"), stopped]);
        assert!(text.ends_with("]\n") && !text.trim_end().contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let array = value.as_array().unwrap();
        assert_eq!(array.len(), 2);
        for item in array {
            let mut keys: Vec<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "cpu",
                    "errored_why",
                    "health",
                    "id",
                    "instance",
                    "last_exit",
                    "listen",
                    "memory",
                    "mode",
                    "name",
                    "pid",
                    "ready",
                    "restarts",
                    "restarts_by_cause",
                    "status",
                    "uptime_ms"
                ]
            );
        }
        assert_eq!(array[0]["pid"], 4242);
        assert_eq!(array[0]["memory"], 48 << 20);
        assert_eq!(array[0]["uptime_ms"], 12_000);
        assert!(array[1]["pid"].is_null());
        assert!(array[1]["listen"].is_null());
        assert_eq!(json(&[]), "[]\n");
    }

    #[test]
    fn prettylist_is_the_same_json_indented() {
        let workers = [worker(0, "api"), worker(1, "api")];
        let pretty = pretty_json(&workers);
        assert!(pretty.lines().count() > 20 && pretty.contains("\n    \"id\": 1,"));
        let a: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        let b: serde_json::Value = serde_json::from_str(&json(&workers)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn names_are_each_app_once_in_the_order_of_their_first_worker() {
        let workers = [
            worker(4, "web"),
            worker(1, "api"),
            worker(2, "api"),
            worker(3, "queue"),
        ];
        assert_eq!(app_names(&workers), "api\nqueue\nweb\n");
        assert_eq!(app_names(&[]), "");
    }

    #[test]
    fn an_empty_list_prints_the_header_and_a_hint() {
        let text = human(&[], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("id  name"), "{text}");
        assert!(lines[1].contains("drover start"), "{text}");
    }

    #[test]
    fn workers_are_listed_by_id() {
        let text = human(&[worker(3, "web"), worker(0, "api")], false);
        let ids: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(ids, ["0", "3"]);
    }
}
