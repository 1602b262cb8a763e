//! `drover describe` (show, info): an app's resolved settings and its workers, PM2's
//! `pm2 describe`. The human view names the app's environment variables but never shows
//! their values (they may be secrets); `--json` shows everything.

use std::path::Path;
use std::time::Duration;

use super::render::{self, style};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppConfig, AppInfo, Request, Response, Target, WorkerStatus};

/// Show an app's resolved settings (script, interpreter, listen address, restart policy,
/// log files, the names of its environment variables) and its workers.
#[derive(Debug, Clone, clap::Args)]
pub struct DescribeArgs {
    /// App name or worker id (`all`: every app).
    #[arg(value_name = "NAME|ID")]
    pub target: Target,
    /// Print a JSON array of apps (spec with env values, bound listen address, workers,
    /// dropped_log_lines) instead of the text.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: DescribeArgs, home: &Path) -> Result<(), Error> {
    let mut client = Client::connect(home)?;
    let apps = match client.call(&Request::Describe {
        target: args.target,
    })? {
        Response::Apps { apps } => apps,
        other => return Err(render::unexpected("apps", &other)),
    };
    let text = if args.json {
        json(&apps)
    } else {
        human(&apps, render::stdout_is_tty())
    };
    render::print(&text)
}

/// The apps as a JSON array on one line, exactly as the protocol serializes them.
pub(crate) fn json(apps: &[AppInfo]) -> String {
    let mut text = serde_json::to_string(apps).expect("protocol types serialize");
    text.push('\n');
    text
}

/// Every app's block, a blank line between them.
pub(crate) fn human(apps: &[AppInfo], color: bool) -> String {
    apps.iter()
        .map(|app| app_block(app, color))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Log paths listed in full up to this many instances; beyond, the first and the last.
const MAX_LISTED_LOGS: u32 = 4;

fn app_block(app: &AppInfo, color: bool) -> String {
    let spec = &app.spec;
    let mut text = format!(
        "{}  {}\n",
        render::paint(&spec.name, style::BOLD, color),
        summary(app)
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    let interpreter = match &spec.interpreter {
        Some(interp) => std::iter::once(interp.as_str())
            .chain(spec.interpreter_args.iter().map(String::as_str))
            .map(render::shell_quote)
            .collect::<Vec<_>>()
            .join(" "),
        None => "none (the script is executed)".into(),
    };
    let listen = match (&app.listen, &spec.listen) {
        (Some(bound), Some(asked)) if bound != asked => {
            format!("{bound} (asked {asked})")
        }
        (Some(bound), _) => bound.clone(),
        (None, Some(asked)) => format!("{asked} (not bound)"),
        (None, None) => "none".into(),
    };
    let ms = Duration::from_millis;
    let exit_codes = spec
        .stop_exit_codes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>();
    let env_keys: Vec<&str> = spec.env.keys().map(String::as_str).collect();
    let env = if env_keys.is_empty() {
        "none".into()
    } else {
        format!(
            "{}\n(values hidden: --json shows them)",
            // Past the indent, the longest key ("dropped log lines") and the gap.
            render::wrap_list(&env_keys, render::WIDTH - 21)
        )
    };
    let dropped = if app.dropped_log_lines > 0 {
        render::paint(
            &format!("{} (could not be written)", app.dropped_log_lines),
            style::YELLOW,
            color,
        )
    } else {
        "0".into()
    };

    let pairs: Vec<(&str, String)> = vec![
        ("script", spec.script.display().to_string()),
        (
            "args",
            if spec.args.is_empty() {
                "none".into()
            } else {
                spec.args
                    .iter()
                    .map(|a| render::shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        ),
        ("interpreter", interpreter),
        ("cwd", spec.cwd.display().to_string()),
        ("exec mode", spec.exec_mode.to_string()),
        ("instances", spec.instances.to_string()),
        ("listen", listen),
        ("socket", spec.socket.to_string()),
        ("autorestart", yes_no(spec.autorestart)),
        ("min uptime", render::duration(ms(spec.min_uptime_ms))),
        ("max restarts", spec.max_restarts.to_string()),
        ("restart delay", render::duration(ms(spec.restart_delay_ms))),
        (
            "exp backoff",
            spec.exp_backoff_restart_delay_ms
                .map_or_else(|| "off".into(), |d| render::duration(ms(d))),
        ),
        (
            "stop exit codes",
            or_none((!exit_codes.is_empty()).then(|| exit_codes.join(", "))),
        ),
        (
            "stop with",
            match spec.shutdown_with_message {
                true => "process.send('shutdown')".into(),
                false => spec.kill_signal.clone(),
            },
        ),
        ("kill timeout", render::duration(ms(spec.kill_timeout_ms))),
        (
            "max memory",
            or_none(spec.max_memory_restart.map(render::size)),
        ),
        (
            "watchdog",
            or_none(spec.watchdog_ms.map(|d| render::duration(ms(d)))),
        ),
        (
            "health check",
            or_none(spec.health.as_ref().map(health_check)),
        ),
        (
            "watch",
            or_none(spec.watch.as_ref().map(|w| {
                let paths: Vec<String> = w.paths.iter().map(|p| p.display().to_string()).collect();
                format!(
                    "{} (ignoring {}; quiet for {})",
                    paths.join(", "),
                    w.ignore.join(" "),
                    render::duration(Duration::from_millis(w.delay_ms))
                )
            })),
        ),
        (
            "cron restart",
            or_none(spec.cron_restart.as_ref().map(|expr| match &app.cron_next {
                Some(next) => format!("{expr} (next {next})"),
                None => expr.clone(),
            })),
        ),
        ("out log", log_paths(spec, &spec.out_file)),
        ("error log", log_paths(spec, &spec.error_file)),
        (
            "combined log",
            or_none(spec.log_file.as_deref().map(|p| log_paths(spec, p))),
        ),
        ("merge logs", yes_no(spec.merge_logs)),
        ("log date format", or_none(spec.log_date_format.clone())),
        ("log rotation", rotation(spec)),
        ("instance var", spec.instance_var.clone()),
        ("increment var", or_none(spec.increment_var.clone())),
        ("env", env),
        ("dropped log lines", dropped),
    ];
    text.push_str(&render::key_values(&pairs, 2));
    text.push('\n');
    text.push_str(&render::workers_table(&app.workers, color));
    text.push_str(&render::worker_problems(&app.workers, color));
    text
}

/// `GET /health every 5s (timeout 2s, 3 failures)`.
fn health_check(h: &crate::protocol::HealthConfig) -> String {
    let what = match (&h.http, &h.exec) {
        (Some(path), _) => format!("GET {path}"),
        (None, Some(words)) => words
            .iter()
            .map(|w| render::shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
        (None, None) => "none".into(),
    };
    format!(
        "{what} every {} (timeout {}, {} failure{} in a row)",
        render::duration(Duration::from_millis(h.interval_ms)),
        render::duration(Duration::from_millis(h.timeout_ms)),
        h.failures,
        if h.failures == 1 { "" } else { "s" }
    )
}

/// `at 10.0mb, keep 30, daily, gzip`, or `off`.
fn rotation(spec: &AppConfig) -> String {
    let (Some(size), Some(retain)) = (spec.log_max_size, spec.log_retain) else {
        return "off".into();
    };
    let mut text = format!("at {}, keep {retain}", render::size(size));
    if spec.log_rotate_daily {
        text.push_str(", daily");
    }
    if spec.log_compress {
        text.push_str(", gzip");
    }
    text
}

/// `4 workers: 3 online, 1 errored`.
fn summary(app: &AppInfo) -> String {
    let mut counts: Vec<(WorkerStatus, usize)> = Vec::new();
    for w in &app.workers {
        match counts.iter_mut().find(|(s, _)| *s == w.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((w.status, 1)),
        }
    }
    let n = app.workers.len();
    let mut text = format!("{n} worker{}", if n == 1 { "" } else { "s" });
    if !counts.is_empty() {
        text.push_str(": ");
        text.push_str(
            &counts
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    text
}

/// The files the instances write (one per instance unless merged), one per line.
fn log_paths(spec: &AppConfig, base: &Path) -> String {
    let path = |i| {
        crate::logs::instance_log_path(base, i, spec.merge_logs)
            .display()
            .to_string()
    };
    let n = spec.instances.max(1);
    let mut lines: Vec<String> = if path(0) == path(n - 1) {
        vec![path(0)]
    } else if n <= MAX_LISTED_LOGS {
        (0..n).map(path).collect()
    } else {
        vec![path(0), format!("… ({} more)", n - 2), path(n - 1)]
    };
    lines.dedup();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::cli::render::tests::{strip_ansi, worker};
    use crate::config::{
        AppSpec, Command, ExecMode, ListenAddr, LogSpec, RestartSpec, SocketMode, StopSpec,
    };

    fn app(instances: u32) -> AppInfo {
        let spec = AppSpec {
            name: "api".into(),
            command: Command {
                interpreter: Some("node".into()),
                interpreter_args: vec!["--max-old-space-size=512".into()],
                script: "/srv/api/server.js".into(),
                args: vec!["--port".into(), "3000".into(), "two words".into()],
            },
            cwd: "/srv/api".into(),
            instances,
            exec_mode: ExecMode::Cluster,
            env: BTreeMap::from([
                ("NODE_ENV".into(), "production".into()),
                (
                    "DATABASE_URL".into(),
                    "postgres://user:hunter2@db/app".into(),
                ),
            ]),
            listen: Some(ListenAddr::Tcp("127.0.0.1:0".parse().unwrap())),
            socket: SocketMode::Reuseport,
            logs: LogSpec {
                out_file: "/home/u/.drover/logs/api-out.log".into(),
                error_file: "/home/u/.drover/logs/api-error.log".into(),
                log_file: None,
                merge: false,
                date_format: None,
                rotation: Some(crate::config::LogRotation {
                    max_size: 10 << 20,
                    retain: 30,
                    daily: true,
                    compress: false,
                }),
            },
            restart: RestartSpec {
                autorestart: true,
                min_uptime: Duration::from_millis(1000),
                max_restarts: 16,
                restart_delay: Duration::ZERO,
                exp_backoff_restart_delay: Some(Duration::from_millis(100)),
                stop_exit_codes: vec![0, 2],
                wait_ready: false,
                listen_timeout: Duration::from_millis(3000),
            },
            stop: StopSpec {
                kill_signal: nix::sys::signal::Signal::SIGINT,
                kill_timeout: Duration::from_millis(1600),
                shutdown_with_message: false,
            },
            instance_var: "NODE_APP_INSTANCE".into(),
            increment_var: None,
            max_memory_restart: Some(512 << 20),
            watchdog: None,
            health: None,
            watch: None,
            cron_restart: None,
        };
        AppInfo {
            spec: AppConfig::from(&spec),
            listen: Some("127.0.0.1:40123".into()),
            workers: (0..instances).map(|i| worker(i, "api")).collect(),
            dropped_log_lines: 0,
            cron_next: None,
        }
    }

    #[test]
    fn the_human_view_names_env_keys_but_never_shows_values() {
        let text = human(&[app(2)], false);
        assert!(text.contains("DATABASE_URL, NODE_ENV"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("production"), "{text}");
        let json = json(&[app(2)]);
        assert!(json.contains("hunter2"), "--json shows everything");
    }

    #[test]
    fn the_human_view_shows_the_resolved_spec() {
        let text = human(&[app(2)], false);
        for want in [
            "api  2 workers: 2 online\n",
            "  script             /srv/api/server.js\n",
            "  args               --port 3000 'two words'\n",
            "  interpreter        node --max-old-space-size=512\n",
            "  listen             127.0.0.1:40123 (asked 127.0.0.1:0)\n",
            "  socket             reuseport\n",
            "  exp backoff        100ms\n",
            "  stop exit codes    0, 2\n",
            "  stop with          SIGINT\n",
            "  kill timeout       1.6s\n",
            "  max memory         512.0mb\n",
            "  out log            /home/u/.drover/logs/api-out-0.log\n                     /home/u/.drover/logs/api-out-1.log\n",
            "  log rotation       at 10.0mb, keep 30, daily\n",
            "  dropped log lines  0\n",
            "\nid  name  mode",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        for line in text.lines() {
            assert!(!line.ends_with(' '), "trailing space: {line:?}");
        }
    }

    #[test]
    fn many_instances_list_the_first_and_last_log() {
        let text = human(&[app(8)], false);
        assert!(
            text.contains("api-error-0.log\n                     … (6 more)\n                     /home/u/.drover/logs/api-error-7.log\n"),
            "{text}"
        );
        let mut merged = app(8);
        merged.spec.merge_logs = true;
        merged.spec.log_max_size = None;
        merged.spec.log_retain = None;
        let text = human(&[merged], false);
        assert!(text.contains("  out log            /home/u/.drover/logs/api-out.log\n"));
        assert!(text.contains("  log rotation       off\n"), "{text}");
    }

    #[test]
    fn several_apps_are_separated_and_colour_only_adds_escapes() {
        let mut web = app(1);
        web.spec.name = "web".into();
        web.dropped_log_lines = 3;
        web.spec.env.clear();
        web.listen = None;
        web.spec.listen = None;
        web.spec.args.clear();
        let plain = human(&[app(1), web.clone()], false);
        assert!(plain.contains("\n\nweb  1 worker: 1 online\n"), "{plain}");
        assert!(plain.contains("  env                none\n"), "{plain}");
        assert!(plain.contains("  args               none\n"), "{plain}");
        assert!(plain.contains("  listen             none\n"), "{plain}");
        assert!(plain.contains("  dropped log lines  3 (could not be written)\n"));
        let coloured = human(&[app(1), web], true);
        assert_eq!(strip_ansi(&coloured), plain);
    }

    #[test]
    fn a_long_env_wraps_within_80_columns() {
        let mut many = app(1);
        for i in 0..40 {
            many.spec
                .env
                .insert(format!("SOME_FAIRLY_LONG_VARIABLE_{i}"), "v".into());
        }
        let text = human(&[many], false);
        let env_lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("  env "))
            .take_while(|l| !l.starts_with("  dropped"))
            .collect();
        assert!(env_lines.len() > 10, "{text}");
        for line in env_lines {
            assert!(line.chars().count() <= render::WIDTH, "{line}");
        }
    }
}
