//! Writes the protocol seed corpus: real request and response lines made by
//! `protocol::encode` (without their '\n', as the server hands a line to `decode`).
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds
//!
//! Run from the repository root; it overwrites fuzz/corpus/protocol/*.json.

use std::collections::BTreeMap;
use std::path::Path;

use drover::config::{ResolveContext, load_str};
use drover::protocol::{
    AppConfig, ErrorKind, ExecMode, LogFile, LogLine, Request, Response, SignalName, Target,
    WorkerInfo, WorkerStatus, encode,
};

fn main() {
    let out = Path::new("fuzz/corpus/protocol");
    std::fs::create_dir_all(out).unwrap();
    let write = |name: &str, line: Vec<u8>| {
        std::fs::write(out.join(format!("{name}.json")), &line[..line.len() - 1]).unwrap();
    };

    // A real spec for Start / Apps, from the example file with its script in place.
    let dir = std::env::temp_dir().join("drover-seeds");
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    std::fs::write(dir.join("examples/hello.js"), "").unwrap();
    let ctx = ResolveContext {
        home: dir.join("home"),
        cwd: dir.clone(),
        cpus: 2,
        env_name: Some("production".into()),
    };
    let text = std::fs::read_to_string("ecosystem.example.yaml").unwrap();
    let specs = load_str(&text, Path::new("ecosystem.yaml"), &ctx).unwrap().apps;
    std::fs::remove_dir_all(&dir).unwrap();

    let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
    let requests = [
        ("req_ping", Request::Ping),
        (
            "req_start",
            Request::Start {
                apps: specs.iter().map(AppConfig::from).collect(),
                env: env.clone(),
                update_env: false,
                running: Default::default(),
                parallel: 1,
                metrics: None,
            },
        ),
        (
            "req_stop",
            Request::Stop {
                target: Target::All,
            },
        ),
        (
            "req_restart",
            Request::Restart {
                target: Target::Id(3),
                env: Some(env),
            },
        ),
        (
            "req_delete",
            Request::Delete {
                target: Target::Name("api".into()),
            },
        ),
        (
            "req_reload",
            Request::Reload {
                target: Target::Name("hello".into()),
                parallel: 1,
                env: None,
            },
        ),
        (
            "req_scale",
            Request::Scale {
                name: "hello".into(),
                instances: 4,
            },
        ),
        ("req_list", Request::List),
        (
            "req_describe",
            Request::Describe {
                target: Target::Id(0),
            },
        ),
        (
            "req_logs",
            Request::Logs {
                target: Target::All,
                more: vec![Target::Name("hello".into())],
                follow: true,
            },
        ),
        (
            "req_reset",
            Request::Reset {
                target: Target::Pattern("^hel".into()),
            },
        ),
        (
            "req_send_signal",
            Request::SendSignal {
                target: Target::Name("hello".into()),
                signal: SignalName::try_from("SIGUSR2".to_owned()).unwrap(),
            },
        ),
        ("req_env", Request::Env { target: Target::Id(0) }),
        (
            "req_flush",
            Request::Flush {
                target: Target::All,
            },
        ),
        ("req_reload_logs", Request::ReloadLogs),
        ("req_save", Request::Save { force: false }),
        ("req_resurrect", Request::Resurrect),
        ("req_kill", Request::Kill),
    ];
    for (name, req) in &requests {
        write(name, encode(req));
    }

    let worker = WorkerInfo {
        id: 0,
        name: "hello".into(),
        instance: 0,
        mode: ExecMode::Cluster,
        pid: Some(4242),
        status: WorkerStatus::Online,
        restarts: 1,
        uptime_ms: 1500,
        cpu: 12.5,
        memory: 30 << 20,
        listen: Some("0.0.0.0:3000".into()),
    };
    let responses = [
        (
            "resp_pong",
            Response::Pong {
                pid: 1,
                version: "0.1.0".into(),
                metrics: None,
            },
        ),
        (
            "resp_done",
            Response::Done {
                message: "started hello".into(),
            },
        ),
        (
            "resp_workers",
            Response::Workers {
                workers: vec![worker.clone()],
            },
        ),
        (
            "resp_apps",
            Response::Apps {
                apps: vec![drover::protocol::AppInfo {
                    spec: AppConfig::from(&specs[0]),
                    listen: Some("0.0.0.0:3000".into()),
                    workers: vec![worker],
                    dropped_log_lines: 0,
                }],
            },
        ),
        (
            "resp_log_files",
            Response::LogFiles {
                files: vec![LogFile {
                    id: 0,
                    app: "hello".into(),
                    instance: 0,
                    stream: "out".into(),
                    path: "/tmp/hello-out.log".into(),
                    merged: true,
                }],
            },
        ),
        (
            "resp_log_line",
            Response::LogLine(LogLine {
                id: 0,
                app: "hello".into(),
                instance: 0,
                stream: "err".into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                message: "listening \u{1F600} \"quoted\"".into(),
            }),
        ),
        (
            "resp_env",
            Response::Env {
                id: 0,
                app: "hello".into(),
                instance: 0,
                pid: Some(4242),
                vars: [("PORT".to_owned(), "3000".to_owned())].into(),
            },
        ),
        (
            "resp_error",
            Response::Error {
                kind: ErrorKind::NotFound,
                message: "no app named x".into(),
            },
        ),
    ];
    for (name, resp) in &responses {
        write(name, encode(resp));
    }
    // Lines the server must refuse cleanly: another version, and a bare non-object.
    std::fs::write(out.join("other_version.json"), br#"{"v":3,"cmd":"ping"}"#).unwrap();
    std::fs::write(
        out.join("unknown_cmd.json"),
        br#"{"v":2,"cmd":"nope","target":"all"}"#,
    )
    .unwrap();
}
