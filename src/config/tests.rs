//! Tests of the whole module: files in, specs or messages out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;

/// A temp dir with real scripts: app.js, worker.py, run.sh, server (+x), data.txt (not
/// executable), srv/main.js.
struct Fx {
    dir: tempfile::TempDir,
    ctx: ResolveContext,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for f in ["app.js", "worker.py", "run.sh", "data.txt", "missing-perm"] {
        fs::write(root.join(f), "").unwrap();
    }
    for f in ["server", "run.sh"] {
        fs::write(root.join(f), "#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir(root.join("srv")).unwrap();
    fs::write(root.join("srv/main.js"), "").unwrap();
    let ctx = ResolveContext {
        home: root.join("home"),
        cwd: root.to_path_buf(),
        cpus: 8,
        env_name: None,
    };
    Fx { dir, ctx }
}

impl Fx {
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn load_as(&self, origin: &str, text: &str) -> Result<Vec<AppSpec>, ConfigError> {
        load_str(text, Path::new(origin), &self.ctx).map(|l| l.apps)
    }
    fn load(&self, text: &str) -> Result<Vec<AppSpec>, ConfigError> {
        self.load_as("ecosystem.yaml", text)
    }
    fn load_full(&self, text: &str) -> crate::config::Loaded {
        load_str(text, Path::new("ecosystem.yaml"), &self.ctx).unwrap()
    }
    fn one(&self, text: &str) -> AppSpec {
        match self.load(text) {
            Ok(mut apps) => {
                assert_eq!(apps.len(), 1);
                apps.remove(0)
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    fn err(&self, text: &str) -> String {
        match self.load(text) {
            Ok(apps) => panic!("accepted: {text}\n→ {apps:?}"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn pm2_shape_with_defaults() {
    let f = fx();
    let app = f.one("apps:\n  - name: api\n    script: app.js\n");
    assert_eq!(app.name, "api");
    assert_eq!(app.cwd, f.root());
    assert_eq!(app.command.interpreter.as_deref(), Some("node"));
    assert_eq!(app.command.script, f.root().join("app.js"));
    assert!(app.command.args.is_empty());
    assert_eq!(app.instances, 1);
    assert_eq!(app.exec_mode, ExecMode::Fork);
    assert!(app.env.is_empty());
    assert_eq!(app.listen, None);
    assert_eq!(app.socket, SocketMode::Reuseport);
    // PM2's defaults
    assert_eq!(app.stop.kill_timeout, Duration::from_millis(1600));
    assert_eq!(app.stop.kill_signal, Signal::SIGINT);
    assert_eq!(app.restart.min_uptime, Duration::from_millis(1000));
    assert_eq!(app.restart.max_restarts, 16);
    assert!(app.restart.autorestart);
    assert_eq!(app.restart.restart_delay, Duration::ZERO);
    assert_eq!(app.restart.exp_backoff_restart_delay, None);
    assert!(app.restart.stop_exit_codes.is_empty());
    assert_eq!(app.instance_var, "NODE_APP_INSTANCE");
    assert_eq!(app.increment_var, None);
    assert_eq!(app.max_memory_restart, None);
    assert_eq!(app.logs.out_file, f.root().join("home/logs/api-out.log"));
    assert_eq!(
        app.logs.error_file,
        f.root().join("home/logs/api-error.log")
    );
    // A fork app of one instance writes PM2's <name>-out.log, with no instance suffix.
    assert!(app.logs.merge);
    assert_eq!(app.logs.date_format, None);
    let cluster = f.one("apps:\n  - name: api\n    script: app.js\n    instances: 2\n");
    assert!(!cluster.logs.merge);
}

#[test]
fn bare_list_and_default_name() {
    let f = fx();
    let apps = f
        .load("- script: app.js\n- script: worker.py\n  args: --queue high\n")
        .unwrap();
    assert_eq!(apps[0].name, "app");
    assert_eq!(apps[1].name, "worker");
    assert_eq!(apps[1].command.interpreter.as_deref(), Some("python3"));
    assert_eq!(apps[1].command.args, vec!["--queue", "high"]);
}

#[test]
fn json_form_with_tabs() {
    let f = fx();
    let text = "{\n\t\"apps\": [{\n\t\t\"name\": \"api\",\n\t\t\"script\": \"app.js\",\n\t\t\"instances\": \"max\",\n\t\t\"exec_mode\": \"cluster_mode\",\n\t\t\"env\": {\"NODE_ENV\": \"production\", \"PORT\": 3000}\n\t}]\n}\n";
    let apps = f.load_as("ecosystem.json", text).unwrap();
    assert_eq!(apps[0].instances, 8);
    assert_eq!(apps[0].exec_mode, ExecMode::Cluster);
    assert_eq!(apps[0].env["PORT"], "3000");
    assert_eq!(
        apps[0].listen,
        Some(ListenAddr::Tcp("[::]:3000".parse().unwrap()))
    );
    let e = f
        .load_as(
            "ecosystem.json",
            "{\n\t\"apps\": [{\n\t\t\"script\": \"app.js\",\n\t\t\"instances\": \"lots\"\n\t}]\n}\n",
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ecosystem.json:4: app \"app\": instances: expected a number"),
        "{e}"
    );
}

#[test]
fn env_production_merge() {
    let mut f = fx();
    let text = "apps:\n  - script: app.js\n    env:\n      NODE_ENV: development\n      DEBUG: 1\n    env_production:\n      NODE_ENV: production\n      FAST: true\n  - script: worker.py\n";
    let dev = f.load(text).unwrap();
    assert_eq!(dev[0].env["NODE_ENV"], "development");
    assert_eq!(dev[0].env["DEBUG"], "1");
    assert!(!dev[0].env.contains_key("FAST"));
    f.ctx.env_name = Some("production".into());
    let prod = f.load(text).unwrap();
    assert_eq!(prod[0].env["NODE_ENV"], "production");
    assert_eq!(prod[0].env["DEBUG"], "1");
    assert_eq!(prod[0].env["FAST"], "true");
    // the worker lacks env_production: not an error (PM2)
    assert!(prod[1].env.is_empty());
    assert_eq!(f.load_full(text).env_unknown, None);
    // No app has env_staging: PM2 warns and runs the apps with their env.
    f.ctx.env_name = Some("staging".into());
    let loaded = f.load_full(text);
    assert_eq!(loaded.apps[0].env["NODE_ENV"], "development");
    assert_eq!(
        loaded.env_unknown.as_deref(),
        Some(
            "ecosystem.yaml: --env staging: no app has env_staging (found: env_production); the apps run with their env alone"
        )
    );
}

#[test]
fn instances_forms() {
    let f = fx();
    for (value, want, mode) in [
        ("max", 8, ExecMode::Cluster),
        ("0", 8, ExecMode::Cluster),
        ("-1", 7, ExecMode::Cluster),
        ("-3", 5, ExecMode::Cluster),
        ("-20", 1, ExecMode::Cluster),
        ("\"4\"", 4, ExecMode::Cluster),
        ("2", 2, ExecMode::Cluster),
    ] {
        let app = f.one(&format!("- script: app.js\n  instances: {value}\n"));
        assert_eq!(app.instances, want, "{value}");
        assert_eq!(app.exec_mode, mode, "{value}");
    }
    let app = f.one("- script: app.js\n  instances: 3\n  exec_mode: fork\n");
    assert_eq!((app.instances, app.exec_mode), (3, ExecMode::Fork));
}

#[test]
fn durations_and_sizes() {
    let f = fx();
    let app = f.one(
        "- script: app.js\n  min_uptime: 5s\n  kill_timeout: 3000\n  restart_delay: \"250\"\n  exp_backoff_restart_delay: 100ms\n  max_memory_restart: 512M\n  max_restarts: 3\n  stop_exit_codes: [0, 3]\n  kill_signal: term\n  autorestart: false\n",
    );
    assert_eq!(app.restart.min_uptime, Duration::from_secs(5));
    assert_eq!(app.stop.kill_timeout, Duration::from_millis(3000));
    assert_eq!(app.restart.restart_delay, Duration::from_millis(250));
    assert_eq!(
        app.restart.exp_backoff_restart_delay,
        Some(Duration::from_millis(100))
    );
    assert_eq!(app.max_memory_restart, Some(512 * 1024 * 1024));
    assert_eq!(app.restart.max_restarts, 3);
    assert_eq!(app.restart.stop_exit_codes, vec![0, 3]);
    assert_eq!(app.stop.kill_signal, Signal::SIGTERM);
    assert!(!app.restart.autorestart);
    for (v, bytes) in [
        ("300K", 300 * 1024),
        ("1G", 1 << 30),
        ("1024", 1024),
        ("512MB", 512 << 20),
    ] {
        let app = f.one(&format!("- script: app.js\n  max_memory_restart: {v}\n"));
        assert_eq!(app.max_memory_restart, Some(bytes), "{v}");
    }
}

#[test]
fn interpreter_inference() {
    let f = fx();
    let interp = |script: &str, extra: &str| {
        f.one(&format!("- script: {script}\n{extra}"))
            .command
            .interpreter
    };
    assert_eq!(interp("app.js", "").as_deref(), Some("node"));
    assert_eq!(interp("worker.py", "").as_deref(), Some("python3"));
    assert_eq!(interp("run.sh", "").as_deref(), Some("bash"));
    assert_eq!(interp("server", ""), None);
    assert_eq!(interp("run.sh", "  interpreter: none\n"), None);
    assert_eq!(
        interp("worker.py", "  interpreter: python3.12\n").as_deref(),
        Some("python3.12")
    );
    let app = f.one("- script: app.js\n  node_args: --max-old-space-size=512 --inspect\n");
    assert_eq!(
        app.command.interpreter_args,
        vec!["--max-old-space-size=512", "--inspect"]
    );
    assert_eq!(app.command.runtime(), Runtime::Node);
}

#[test]
fn interpreter_none_needs_executable() {
    let f = fx();
    let e = f.err("- script: app.js\n  interpreter: none\n");
    assert!(e.contains("is not executable"), "{e}");
}

#[test]
fn script_on_path() {
    let f = fx();
    let app = f.one("- script: sh\n  args: [-c, 'exit 0']\n");
    assert_eq!(app.name, "sh");
    assert_eq!(app.command.interpreter, None);
    assert!(app.command.script.is_absolute());
    assert!(app.command.script.ends_with("sh"));
    assert_eq!(app.command.args, vec!["-c", "exit 0"]);
}

#[test]
fn cwd_key_and_relative_paths() {
    let f = fx();
    let app = f.one(
        "- script: main.js\n  cwd: srv\n  out_file: logs/out.log\n  error: /tmp/err.log\n  merge_logs: true\n  time: true\n",
    );
    assert_eq!(app.cwd, f.root().join("srv"));
    assert_eq!(app.command.script, f.root().join("srv/main.js"));
    assert_eq!(app.logs.out_file, f.root().join("srv/logs/out.log"));
    assert_eq!(app.logs.error_file, PathBuf::from("/tmp/err.log"));
    assert!(app.logs.merge);
    assert_eq!(app.logs.date_format.as_deref(), Some(defaults::TIME_FORMAT));
    let app = f.one("- script: app.js\n  time: true\n  log_date_format: YYYY-MM-DD HH:mm Z\n");
    assert_eq!(app.logs.date_format.as_deref(), Some("YYYY-MM-DD HH:mm Z"));
    // a file in a subdirectory: paths are relative to it
    fs::create_dir(f.root().join("deploy")).unwrap();
    fs::write(f.root().join("deploy/x.js"), "").unwrap();
    let apps = f
        .load_as("deploy/ecosystem.yml", "- script: x.js\n")
        .unwrap();
    assert_eq!(apps[0].command.script, f.root().join("deploy/x.js"));
}

#[test]
fn cluster_listen_defaults() {
    let f = fx();
    // from `port` (which also sets PORT, as PM2)
    let app = f.one("- script: app.js\n  instances: 4\n  port: 8080\n");
    assert_eq!(
        app.listen,
        Some(ListenAddr::Tcp("[::]:8080".parse().unwrap()))
    );
    assert_eq!(app.env["PORT"], "8080");
    assert_eq!(app.socket, SocketMode::Reuseport);
    // from env PORT
    let app = f.one("- script: app.js\n  exec_mode: cluster\n  env: {PORT: 3000}\n");
    assert_eq!(
        app.listen,
        Some(ListenAddr::Tcp("[::]:3000".parse().unwrap()))
    );
    // env_production's PORT
    let mut g = fx();
    g.ctx.env_name = Some("production".into());
    let apps = g
        .load("- script: app.js\n  instances: 2\n  env_production: {PORT: 4000}\n")
        .unwrap();
    assert_eq!(
        apps[0].listen,
        Some(ListenAddr::Tcp("[::]:4000".parse().unwrap()))
    );
    // fork mode: port only sets PORT
    let app = f.one("- script: app.js\n  port: 8080\n");
    assert_eq!(app.listen, None);
    assert_eq!(app.env["PORT"], "8080");
    // explicit listen wins and adds no PORT
    let app = f.one("- script: app.js\n  instances: 2\n  listen: 127.0.0.1:0\n  socket: shared\n");
    assert_eq!(
        app.listen,
        Some(ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
    );
    assert_eq!(app.socket, SocketMode::Shared);
    assert!(app.env.is_empty());
    let app = f.one("- script: app.js\n  listen: '[::1]:9000'\n");
    assert_eq!(
        app.listen,
        Some(ListenAddr::Tcp("[::1]:9000".parse().unwrap()))
    );
}

#[test]
fn unix_listen() {
    let f = fx();
    let app = f.one("- script: app.js\n  instances: 2\n  listen: unix:run/app.sock\n");
    assert_eq!(
        app.listen,
        Some(ListenAddr::Unix(f.root().join("run/app.sock")))
    );
    assert_eq!(app.socket, SocketMode::Shared);
}

#[test]
fn increment_var_base() {
    let f = fx();
    let app = f.one("- script: app.js\n  instances: 3\n  exec_mode: fork\n  increment_var: PORT\n  env: {PORT: 3000}\n");
    assert_eq!(app.increment_var.as_deref(), Some("PORT"));
    assert_eq!(app.env["PORT"], "3000");
    assert_eq!(app.listen, None);
    // base from `port`
    let app = f.one("- script: app.js\n  instances: 3\n  exec_mode: fork\n  increment_var: PORT\n  port: 5000\n");
    assert_eq!(app.env["PORT"], "5000");
    // base from a fork-mode listen
    let app = f.one("- script: app.js\n  increment_var: PORT\n  listen: 7000\n");
    assert_eq!(app.env["PORT"], "7000");
    // cluster + port + increment_var PORT: one port per instance, nothing shared (as PM2)
    let app = f.one("- script: app.js\n  instances: 2\n  increment_var: PORT\n  port: 5000\n");
    assert_eq!(app.listen, None);
    // another variable
    let app =
        f.one("- script: app.js\n  instances: 2\n  increment_var: SHARD\n  env: {SHARD: 10}\n");
    assert_eq!(app.env["SHARD"], "10");
}

#[test]
fn merge_keys_and_aliases() {
    let f = fx();
    let apps = f
        .load("defaults: &d\n  script: app.js\n  instances: 2\napps:\n  - <<: *d\n    name: a\n  - <<: *d\n    name: b\n")
        .unwrap_err()
        .to_string();
    // `defaults` is not a top-level key drover knows
    assert!(
        apps.contains("unknown top-level key \"defaults\""),
        "{apps}"
    );
    let apps = f
        .load("apps:\n  - &d\n    name: a\n    script: app.js\n    instances: 2\n  - <<: *d\n    name: b\n")
        .unwrap();
    assert_eq!(apps[1].name, "b");
    assert_eq!(apps[1].instances, 2);
    let app = f.one("- exec: app.js\n  exec_interpreter: node\n  output: o.log\n  err: e.log\n  combine_logs: true\n  watch: false\n  treekill: true\n  vizion: false\n  namespace: default\n  windowsHide: true\n");
    assert_eq!(app.logs.out_file, f.root().join("o.log"));
    assert_eq!(app.logs.error_file, f.root().join("e.log"));
    assert!(app.logs.merge);
}

#[test]
fn raw_app_deserializes_and_cli() {
    let f = fx();
    let raw: RawApp =
        yaml_serde::from_str("script: app.js\ninstances: max\nenv: {A: 1}\n").unwrap();
    assert_eq!(raw.instances, Some(Instances(0)));
    assert_eq!(raw.env.as_ref().unwrap()["A"], "1");
    let app = resolve_cli(raw, &f.ctx).unwrap();
    assert_eq!(app.instances, 8);
    assert_eq!(app.exec_mode, ExecMode::Cluster);
    let e = yaml_serde::from_str::<RawApp>("script: app.js\ninstances: lots\n").unwrap_err();
    assert!(
        e.to_string().contains("instances: expected a number"),
        "{e}"
    );

    let raw = RawApp {
        script: Some("app.js".into()),
        socket: Some(SocketMode::Shared),
        ..RawApp::default()
    };
    let e = resolve_cli(raw, &f.ctx).unwrap_err().to_string();
    assert!(e.starts_with("--socket: shared has no effect"), "{e}");
    let raw = RawApp {
        script: Some("nope.js".into()),
        ..RawApp::default()
    };
    let e = resolve_cli(raw, &f.ctx).unwrap_err();
    assert!(
        e.to_string().contains("script \"nope.js\" not found"),
        "{e}"
    );
    assert_eq!(e.file, None);
    let raw = RawApp {
        script: Some("app.js".into()),
        instance_var: Some("1X".into()),
        ..RawApp::default()
    };
    let e = resolve_cli(raw, &f.ctx).unwrap_err().to_string();
    assert!(
        e.starts_with("--instance-var: \"1X\" is not a valid environment variable name"),
        "{e}"
    );
    assert_eq!(
        "lots".parse::<Instances>().unwrap_err(),
        "expected a number, \"max\" or -1, got \"lots\""
    );
}

#[test]
fn is_ecosystem() {
    assert!(is_ecosystem_path(Path::new("ecosystem.yaml")));
    assert!(is_ecosystem_path(Path::new("a/b.YML")));
    assert!(is_ecosystem_path(Path::new("pm2.json")));
    assert!(is_ecosystem_path(Path::new("ecosystem.config.js")));
    assert!(!is_ecosystem_path(Path::new("app.js")));
    assert!(!is_ecosystem_path(Path::new("app")));
}

#[test]
fn load_file_reads_and_reports() {
    let f = fx();
    let path = f.root().join("eco.yaml");
    fs::write(&path, "apps:\n  - script: app.js\n").unwrap();
    assert_eq!(load_file(&path, &f.ctx).unwrap().apps[0].name, "app");
    let e = load_file(&f.root().join("none.yaml"), &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.yaml: cannot read the file"), "{e}");
    let e = f
        .load_as("ecosystem.config.js", "module.exports = {}")
        .unwrap_err()
        .to_string();
    // Read as text it is refused: the CLI evaluates it with node (js_ecosystem) first.
    assert!(e.contains("evaluated by node, not read as text"), "{e}");
}

/// Each bad input: the message must contain every listed piece (file, line, app, key
/// and the phrase a user acts on).
#[test]
fn malformed_inputs() {
    let f = fx();
    let long = "x".repeat(120);
    let long_listen = format!("- script: app.js\n  listen: unix:/tmp/{long}.sock\n");
    let long_name = format!("- script: app.js\n  name: {}\n", "n".repeat(65));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "apps:\n  - name: api\n    script: app.js\n    args: a: b\n",
            vec![
                "ecosystem.yaml:4:",
                "syntax error: mapping values are not allowed",
            ],
        ),
        (
            "apps:\n  - name: api\n    script: app.js\n    instances: lots\n",
            vec![
                "ecosystem.yaml:4: app \"api\": instances: expected a number, \"max\" or -1, got \"lots\"",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  instances: 1.5\n",
            vec![
                "ecosystem.yaml:3: app \"api\": instances: expected a number",
                "got 1.5",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  instances: true\n",
            vec!["ecosystem.yaml:3:", "instances:", "got true"],
        ),
        (
            "apps:\n  - name: api\n    script: app.js\n    intances: 4\n",
            vec![
                "ecosystem.yaml:4: app \"api\": unknown key \"intances\" (did you mean \"instances\"?)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  banana: 4\n",
            vec!["ecosystem.yaml:3: app \"api\": unknown key \"banana\""],
        ),
        (
            "- name: api\n  script: app.js\n\n  max_memory_restart: 12X\n",
            vec![
                "ecosystem.yaml:4: app \"api\": max_memory_restart: \"12X\" is not a size (use bytes or 300K, 512M, 1G)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  max_memory_restart: 0\n",
            vec!["ecosystem.yaml:3:", "max_memory_restart:", "more than 0"],
        ),
        (
            "- name: worker\n  script: ./missing.js\n",
            vec![
                "ecosystem.yaml:2: app \"worker\": script \"./missing.js\" not found (resolved to /",
                "/missing.js)",
            ],
        ),
        (
            "- name: api\n  instances: 2\n",
            vec!["ecosystem.yaml:1: app \"api\": script is missing", "hint:"],
        ),
        (
            "- name: a/b\n  script: app.js\n",
            vec!["ecosystem.yaml:1:", "name: \"a/b\" contains a slash"],
        ),
        (
            "- name: api\n  script: app.js\n- name: api\n  script: worker.py\n",
            vec!["ecosystem.yaml:3: app \"api\": the name \"api\" is already used by app #1"],
        ),
        (
            "- name: api\n  script: app.js\n  kill_timeout: -5\n",
            vec![
                "ecosystem.yaml:3:",
                "kill_timeout: expected milliseconds",
                "got -5",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  min_uptime: soon\n",
            vec!["ecosystem.yaml:3:", "min_uptime:", "1.5s", "got \"soon\""],
        ),
        (
            "- name: api\n  script: app.js\n  kill_signal: SIGFOO\n",
            vec![
                "ecosystem.yaml:3:",
                "kill_signal: expected a signal name",
                "SIGFOO",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  exec_mode: both\n",
            vec![
                "ecosystem.yaml:3:",
                "exec_mode: expected cluster or fork, got \"both\"",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  watch: 42\n",
            vec![
                "ecosystem.yaml:3: app \"api\": watch: expected true, false, a path or a list of paths",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  watch: [nowhere]\n",
            vec!["ecosystem.yaml:3:", "watch: \"nowhere\" does not exist"],
        ),
        (
            "- name: api\n  script: app.js\n  watch_delay: 1s\n",
            vec![
                "ecosystem.yaml:3:",
                "watch_delay: has no effect without watch",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  watch: true\n  ignore_watch: '[bad'\n",
            vec!["ecosystem.yaml:4:", "ignore_watch: \"[bad\""],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"60 * * * * *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"60 * * * * *\": the seconds field \"60\" is out of range (0-59)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"61 * * * *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"61 * * * *\": the minute field \"61\" is out of range (0-59)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 24 * * *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 24 * * *\": the hour field \"24\" is out of range (0-23)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 0 32 * *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 0 32 * *\": the day of month field \"32\" is out of range (1-31)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 * * 13 *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 * * 13 *\": the month field \"13\" is out of range (1-12 or JAN-DEC)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 0 * * 8\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 0 * * 8\": the day of week field \"8\" is out of range (0-7 or SUN-SAT)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 0 * JUNE *\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 0 * JUNE *\": the month field \"JUNE\" is not a month (1-12 or JAN-DEC)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: \"0 0 * * MON-FRY\"\n",
            vec![
                "ecosystem.yaml:3:",
                "cron_restart: \"0 0 * * MON-FRY\": the day of week field \"MON-FRY\" holds \"FRY\", which is not a day of week (0-7 or SUN-SAT)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cron_restart: 'every day'\n",
            vec!["ecosystem.yaml:3:", "has 2 fields"],
        ),
        (
            "- name: api\n  script: app.js\n  listen: unix:/tmp/a.sock\n  socket: reuseport\n",
            vec![
                "ecosystem.yaml:4:",
                "socket: reuseport needs a TCP listen address",
            ],
        ),
        (
            &long_listen,
            vec!["ecosystem.yaml:2:", "listen:", "the limit is 107"],
        ),
        (
            "- name: api\n  script: app.js\n  instances: 2\n  listen: 3000\n  increment_var: PORT\n",
            vec![
                "ecosystem.yaml:5:",
                "increment_var: PORT gives each instance its own port",
                "exec_mode: fork",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  increment_var: SHARD\n",
            vec![
                "ecosystem.yaml:3:",
                "increment_var: SHARD has no base value",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  exec_mode: fork\n  increment_var: PORT\n  env:\n    PORT: abc\n",
            vec![
                "ecosystem.yaml:4:",
                "increment_var: PORT must hold a whole number",
                "\"abc\"",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  env:\n    EMPTY:\n",
            vec![
                "ecosystem.yaml:4:",
                "env.EMPTY:",
                "write \"\" for an empty value",
            ],
        ),
        (
            "app:\n  - script: app.js\n",
            vec!["ecosystem.yaml:1: unknown top-level key \"app\" (did you mean \"apps\"?)"],
        ),
        // An app key at the top level next to apps: (one app object is a valid file).
        (
            "instances: 2\napps:\n  - script: app.js\n",
            vec![
                "ecosystem.yaml:1: instances is an app key, but it is at the top level",
                "apps:",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  max_restarts: -1\n",
            vec!["ecosystem.yaml:3:", "max_restarts: -1 is negative"],
        ),
        (
            "- name: api\n  script: app.js\n  listen: example.com:80\n",
            vec![
                "ecosystem.yaml:3:",
                "listen:",
                "host names are not resolved",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  cwd: nowhere\n",
            vec![
                "ecosystem.yaml:3:",
                "cwd: \"nowhere\" does not exist (resolved to /",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  stop_exit_codes: [0, 300]\n",
            vec![
                "ecosystem.yaml:3:",
                "stop_exit_codes: 300 is not an exit code",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  out_file: a.log\n  output: b.log\n",
            vec![
                "ecosystem.yaml:4:",
                "output and out_file are the same setting",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  name: web\n",
            vec!["ecosystem.yaml:3:", "the key \"name\" appears twice"],
        ),
        (
            "- app.js\n",
            vec![
                "ecosystem.yaml:1: app #1: expected a map of keys",
                "got \"app.js\"",
            ],
        ),
        (
            "apps:\n  name: api\n  script: app.js\n",
            vec![
                "ecosystem.yaml:1: apps: expected a list of apps, got a map",
                "hint: start each app with `- `",
            ],
        ),
        ("", vec!["ecosystem.yaml: the file is empty"]),
        (
            "# just a comment\n",
            vec!["ecosystem.yaml: the file is empty"],
        ),
        (
            "apps: []\n",
            vec!["ecosystem.yaml:1: the list of apps is empty"],
        ),
        (
            "- name: data\n  script: data.txt\n",
            vec![
                "ecosystem.yaml:2:",
                "script \"data.txt\" is not executable",
                "hint: chmod +x",
            ],
        ),
        (
            "- name: srv\n  script: server\n  node_args: --inspect\n",
            vec!["ecosystem.yaml:3:", "node_args: has no effect"],
        ),
        (
            "- name: api\n  script: app.js\n  instance_var: 1BAD\n",
            vec![
                "ecosystem.yaml:3:",
                "instance_var: \"1BAD\" is not a valid environment variable name",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  log_date_format: ''\n",
            vec!["ecosystem.yaml:3:", "log_date_format: is empty"],
        ),
        (
            "- name: api\n  script: app.js\n  port: 70000\n",
            vec!["ecosystem.yaml:3:", "port: 70000 is not a port"],
        ),
        (&long_name, vec!["ecosystem.yaml:2:", "name:", "too long"]),
        (
            "- name: api\n  script: app.js\n  autorestart: yes\n",
            vec![
                "ecosystem.yaml:3:",
                "autorestart: expected true or false, got \"yes\"",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  env_: {A: 1}\n",
            vec!["ecosystem.yaml:3:", "env_ needs a name"],
        ),
        (
            "- name: -x\n  script: app.js\n",
            vec![
                "ecosystem.yaml:1:",
                "name: \"-x\" must not start with '.' or '-'",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  args: \"--title 'open\"\n",
            vec!["ecosystem.yaml:3:", "args: unterminated ' quote"],
        ),
        (
            "- name: api\n  script: app.js\n  uid: 1000\n",
            vec![
                "ecosystem.yaml:3:",
                "uid is not supported: the app would run as the wrong user",
                "hint: run drover itself as that user",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  execMode: cluster\n",
            vec![
                "ecosystem.yaml:3:",
                "unknown key \"execMode\" (did you mean \"exec_mode\"?)",
            ],
        ),
        (
            "- name: api\n  script: app.js\n  instances: 10000\n",
            vec!["ecosystem.yaml:3:", "instances: 10000 is too many"],
        ),
        (
            "- name: api\n  script: app.js\n  socket: shared\n",
            vec![
                "ecosystem.yaml:3:",
                "socket: shared has no effect without a listen address",
            ],
        ),
        (
            "apps:\n  - name: api\n    script: app.js\n---\napps: []\n",
            vec!["ecosystem.yaml", "more than one document"],
        ),
        (
            "- name: api\n  script: app.js\n  env: !secret foo\n",
            vec!["ecosystem.yaml:3:", "env: expected a map of variables"],
        ),
        (
            "- name: api\n  script: app.js\n  instances: !!int lots\n",
            vec!["ecosystem.yaml"],
        ),
    ];
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (text, wants) in &cases {
        let e = match f.load(text) {
            Ok(apps) => {
                failures.push(format!("input:\n{text}\naccepted: {apps:?}"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        for want in wants {
            if !e.contains(want) || e.contains("drover-locate-probe") {
                failures.push(format!("input:\n{text}\nmessage: {e}\nmissing: {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn error_fields_for_callers() {
    let f = fx();
    let e = f
        .load("apps:\n  - name: api\n    script: app.js\n    node_args: 5\n    interpreter: none\n")
        .unwrap_err();
    // the script is not executable without an interpreter; app and file are named
    assert_eq!(e.file.as_deref(), Some(Path::new("ecosystem.yaml")));
    assert_eq!(e.app.as_deref(), Some("app \"api\""));
    let e = f
        .load("apps:\n  - name: api\n    script: server\n    node_args: --inspect\n")
        .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("node_args"));
    assert_eq!(e.line, Some(4));
    let e = f.load("apps:\n  - name: api\n   script: x\n").unwrap_err();
    assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
}

/// Nothing panics, whatever the bytes.
#[test]
fn garbage_never_panics() {
    let f = fx();
    let inputs = [
        "{",
        "}",
        "[",
        "- - - -",
        ":",
        "apps: {{{}",
        "apps: [1, [2], {a: b}]",
        "\u{0}",
        "!!binary aGVsbG8=",
        "apps:\n  - script: app.js\n    args: [[1]]\n",
        "a: &a [*a]",
        "apps: &x\n  - *x\n",
        "- {script: app.js, env: {? [1]: 2}}",
        "- script: app.js\n  instances: 99999999999999999999999\n",
        "- script: app.js\n  kill_timeout: 99999999999999999999h\n",
        "- script: \"\\0\"\n",
        "- script: app.js\n  listen: 'unix:\\0'\n",
        "- {script: app.js, 1: 2}",
        "- {script: app.js, null: 2}",
        "- script: app.js\n  env: {\"A=B\": 1}\n",
        "- script: app.js\n  args: \"\\\\\"\n",
        "- script: ../../../../../../../../..\n",
        "- script: /\n",
        "- script: app.js\n  cwd: /dev/null\n",
        "- script: app.js\n  max_memory_restart: 1.5.5G\n",
        "- script: app.js\n  instances: -9223372036854775808\n",
        "- script: app.js\n  increment_var: PORT\n  env: {PORT: 65535}\n  instances: 2\n  exec_mode: fork\n",
        "- script: app.js\n  increment_var: N\n  env: {N: 9223372036854775807}\n  instances: 2\n",
        "lol: &lol [a, a, a, a]\nlol2: &lol2 [*lol, *lol, *lol, *lol]\nlol3: [*lol2, *lol2, *lol2]\n",
    ];
    for text in inputs {
        for origin in ["e.yaml", "e.json"] {
            let _ = f.load_as(origin, text);
        }
    }
}

/// The CLI path: flags as strings, parsed with the file's rules, errors naming the flag.
#[test]
fn cli_flags() {
    let f = fx();
    let args = ["--port".to_owned(), "80".to_owned()];
    let raw = |flags: AppFlags, script: &str| RawApp::from_flags(&flags, Path::new(script), &args);
    let app = resolve_cli(
        raw(
            AppFlags {
                instances: Some("-1".into()),
                listen: Some("3000".into()),
                max_memory_restart: Some("1G".into()),
                kill_timeout: Some("2s".into()),
                kill_signal: Some("sigterm".into()),
                max_restarts: Some("5".into()),
                out_file: Some("o.log".into()),
                time: true,
                ..AppFlags::default()
            },
            "app.js",
        ),
        &f.ctx,
    )
    .unwrap();
    assert_eq!(app.name, "app");
    assert_eq!((app.instances, app.exec_mode), (7, ExecMode::Cluster));
    assert_eq!(
        app.listen,
        Some(ListenAddr::Tcp("[::]:3000".parse().unwrap()))
    );
    assert_eq!(app.max_memory_restart, Some(1 << 30));
    assert_eq!(app.stop.kill_timeout, Duration::from_secs(2));
    assert_eq!(app.stop.kill_signal, Signal::SIGTERM);
    assert_eq!(app.restart.max_restarts, 5);
    assert_eq!(app.command.args, vec!["--port", "80"]);
    assert_eq!(app.logs.out_file, f.root().join("o.log"));
    assert_eq!(app.logs.date_format.as_deref(), Some(defaults::TIME_FORMAT));
    assert!(app.restart.autorestart);

    for (bad, want) in [
        (
            (
                AppFlags {
                    instances: Some("lots".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--instances: expected a number, \"max\" or -1, got \"lots\"",
        ),
        (
            (
                AppFlags {
                    max_memory_restart: Some("big".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--max-memory-restart: \"big\" is not a size",
        ),
        (
            (
                AppFlags {
                    kill_timeout: Some("-5".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--kill-timeout: expected milliseconds",
        ),
        (
            (
                AppFlags {
                    listen: Some("nowhere:port".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--listen: expected a port",
        ),
        (
            (
                AppFlags {
                    max_restarts: Some("-1".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--max-restarts: -1 is negative",
        ),
        (
            (
                AppFlags {
                    socket: Some("reuseport".into()),
                    listen: Some("unix:/tmp/a.sock".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--socket: reuseport needs a TCP listen address",
        ),
        (
            (
                AppFlags {
                    name: Some("a b".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--name: \"a b\" contains ' '",
        ),
        (
            (
                AppFlags {
                    cwd: Some("nowhere".into()),
                    ..AppFlags::default()
                },
                "app.js",
            ),
            "--cwd: \"nowhere\" does not exist",
        ),
        (
            (AppFlags::default(), "nope.js"),
            "script \"nope.js\" not found (not in /",
        ),
    ] {
        let e = resolve_cli(raw(bad.0, bad.1), &f.ctx)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
        assert!(!e.contains("ecosystem"), "{e}");
    }
}

/// The shapes the integration tests (tests/it/bad_input.rs) rely on.
#[test]
fn integration_shapes() {
    let f = fx();
    let script = f.root().join("run.sh");
    let s = script.to_str().unwrap();
    let e = f.err(&format!("apps:\n  - name: a\n    script: {s}\n   bad: [\n"));
    assert!(e.starts_with("ecosystem.yaml:4:"), "{e}");
    let e = f.err(&format!(
        "apps:\n  - name: good\n    script: {s}\n  - name: bad\n    script: {s}\n    kill_timeout: soon\n"
    ));
    assert!(
        e.starts_with("ecosystem.yaml:6: app \"bad\": kill_timeout:"),
        "{e}"
    );
    let e = f.err("apps:\n  - name: a/b\n    script: app.js\n");
    assert!(e.starts_with("ecosystem.yaml:2:"), "{e}");
}

/// The repository's example file is valid (production env too).
#[test]
fn example_file_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("ecosystem.example.yaml");
    let ctx = ResolveContext {
        home: PathBuf::from("/tmp/drover-home"),
        cwd: root.to_path_buf(),
        cpus: 4,
        env_name: Some("production".into()),
    };
    let apps = load_file(&path, &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
        .apps;
    assert!(!apps.is_empty());
}

#[test]
fn gunicorn_is_stopped_with_its_graceful_signal_unless_kill_signal_says_otherwise() {
    let command = |script: &str, interpreter_args: &[&str]| Command {
        interpreter: None,
        interpreter_args: interpreter_args.iter().map(|a| a.to_string()).collect(),
        script: script.into(),
        args: Vec::new(),
    };
    let graceful = super::resolve::graceful_signal;
    assert_eq!(
        graceful(&command("/usr/local/bin/gunicorn", &[])),
        Signal::SIGTERM
    );
    assert_eq!(
        graceful(&command("app.py", &["-m", "gunicorn"])),
        Signal::SIGTERM
    );
    assert_eq!(graceful(&command("uvicorn", &[])), Signal::SIGINT);
    assert_eq!(graceful(&command("server.js", &[])), Signal::SIGINT);
}

#[test]
fn pm2_shapes_one_app_object_a_pm2_list_and_null_logs() {
    let f = fx();
    // One app object, as a JSON file may hold; its errors still have lines.
    let apps = f
        .load_as(
            "app.json",
            "{\n  \"name\": \"solo\",\n  \"script\": \"app.js\"\n}\n",
        )
        .unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, "solo");
    let e = f
        .load_as(
            "app.json",
            "{\n  \"script\": \"app.js\",\n  \"instances\": \"lots\"\n}\n",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("app.json:3") && e.contains("instances"), "{e}");
    // `pm2:` is PM2's other name for the list; both at once is refused.
    let apps = f.load("pm2:\n  - script: app.js\n").unwrap();
    assert_eq!(apps[0].name, "app");
    let e = f
        .load("apps:\n  - script: app.js\npm2:\n  - script: app.js\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("keep one"), "{e}");
    // "NULL" discards the stream, as PM2's -e NULL (unquoted, YAML reads NULL as null).
    let app = f.one("apps:\n  - script: app.js\n    error_file: 'NULL'\n");
    assert_eq!(app.logs.error_file, Path::new("/dev/null"));
}

#[test]
fn env_objects_and_lists_become_json_strings_as_pm2_stringifies_them() {
    let f = fx();
    let app = f.one(
        "apps:\n  - script: app.js\n    env:\n      A: ok\n      B: [1, 2]\n      C: { db: { host: x, port: 5432 } }\n",
    );
    assert_eq!(app.env["A"], "ok");
    assert_eq!(app.env["B"], "[1,2]");
    assert_eq!(app.env["C"], r#"{"db":{"host":"x","port":5432}}"#);
}

/// PM2 keys that only feed PM2's own machinery, and `deploy:`, are skipped: the apps
/// load, and one warning names every skipped key with its line.
#[test]
fn pm2_only_keys_and_deploy_are_skipped_with_one_warning() {
    let f = fx();
    let text = "apps:\n  - name: api\n    script: app.js\n    max: 1\n    vizion: true\n  - name: b\n    script: app.js\n    vizion: true\n    pmx: true\n    namespace: web\ndeploy:\n  production:\n    user: x\n";
    let loaded = load_str(text, Path::new("ecosystem.yaml"), &f.ctx).unwrap();
    assert_eq!(loaded.apps.len(), 2);
    assert_eq!(
        loaded.skipped.warning().unwrap(),
        "ecosystem.yaml: skipped PM2 keys drover does not use: max (line 4), vizion (lines 5, 8), pmx (line 9), namespace (line 10); deploy: (line 11) is for pm2 deploy"
    );
    // deploy: alone, and one key alone.
    let loaded = load_str(
        "apps:\n  - script: app.js\ndeploy: {}\n",
        Path::new("e.yaml"),
        &f.ctx,
    )
    .unwrap();
    assert_eq!(
        loaded.skipped.warning().unwrap(),
        "e.yaml: skipped deploy: (line 3), which is for pm2 deploy"
    );
    let loaded = load_str("- script: app.js\n  io: {}\n", Path::new("e.yaml"), &f.ctx).unwrap();
    assert_eq!(
        loaded.skipped.warning().unwrap(),
        "e.yaml: skipped PM2 key drover does not use: io (line 2)"
    );
    // A value that asks for what drover does anyway is no news.
    let loaded = load_str(
        "- script: app.js\n  vizion: false\n  namespace: default\n  watch: false\n  treekill: true\n  windowsHide: true\n",
        Path::new("e.yaml"),
        &f.ctx,
    )
    .unwrap();
    assert_eq!(loaded.skipped.warning(), None);
    // node's JSON has no lines of the file: keys are named without them.
    let loaded = load_js_exports(
        r#"{"apps": [{"script": "app.js", "automation": true}], "deploy": {}}"#,
        Path::new("ecosystem.config.js"),
        &f.ctx,
    )
    .unwrap();
    assert_eq!(
        loaded.skipped.warning().unwrap(),
        "ecosystem.config.js: skipped PM2 key drover does not use: automation; deploy: is for pm2 deploy"
    );
}

/// What stays an error next to skipped keys: a typo, a key whose absence changes what
/// the app does, a bad value of a key drover implements.
#[test]
fn behaviour_keys_typos_and_bad_values_are_still_refused_next_to_skipped_keys() {
    let f = fx();
    for (text, want) in [
        (
            "- script: app.js\n  vizion: true\n  intances: 2\n",
            "e.yaml:3: app \"app\": unknown key \"intances\" (did you mean \"instances\"?)",
        ),
        (
            "- script: app.js\n  vizion: true\n  user: www\n",
            "e.yaml:3: app \"app\": user is not supported: the app would run as the wrong user",
        ),
        (
            "- script: app.js\n  gid: 33\n",
            "e.yaml:2: app \"app\": gid is not supported: the app would run with the wrong group",
        ),
        (
            "- script: app.js\n  autostart: false\n",
            "e.yaml:2: app \"app\": autostart is not supported (only autostart: true is accepted): an app meant to stay stopped would start",
        ),
        (
            "- script: app.js\n  cron: '0 * * *'\n",
            "e.yaml:2: app \"app\": cron: \"0 * * *\" has 4 fields",
        ),
        (
            "- script: app.js\n  pmx: true\n  instances: lots\n",
            "e.yaml:3: app \"app\": instances: expected",
        ),
        (
            "apps:\n  - script: app.js\ndeploy: {}\ndeplyo: {}\n",
            "e.yaml:4: unknown top-level key \"deplyo\"",
        ),
    ] {
        let e = load_str(text, Path::new("e.yaml"), &f.ctx)
            .map(|l| l.apps)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

/// PM2's `log_file` / `log`: a combined file of both streams, `true` for the default
/// path, `false` or NULL for none; never the out or error file itself.
#[test]
fn log_file_is_the_combined_file_of_both_streams() {
    let f = fx();
    let logs = |extra: &str| {
        f.one(&format!("- name: api\n  script: app.js\n{extra}"))
            .logs
    };
    assert_eq!(logs("").log_file, None);
    assert_eq!(
        logs("  log_file: true\n").log_file,
        Some(f.root().join("home/logs/api.log"))
    );
    assert_eq!(logs("  log: false\n").log_file, None);
    assert_eq!(
        logs("  log: logs/all.log\n").log_file,
        Some(f.root().join("logs/all.log"))
    );
    assert_eq!(logs("  log_file: 'NULL'\n").log_file, None);
    assert_eq!(logs("  log_file: /dev/null\n").log_file, None);
    assert_eq!(logs("  log_file: NULL\n").log_file, None);
    for (extra, want) in [
        (
            "  out_file: same.log\n  log_file: same.log\n",
            "ecosystem.yaml:4: app \"api\": log_file: ",
        ),
        (
            "  log_file: 3\n",
            "ecosystem.yaml:3: app \"api\": log_file: expected a path, true or false, got 3",
        ),
        (
            "  log_file: ''\n",
            "ecosystem.yaml:3: app \"api\": log_file: expected a path",
        ),
        (
            "  log: a.log\n  log_file: b.log\n",
            "log_file and log are the same setting",
        ),
    ] {
        let e = f.err(&format!("- name: api\n  script: app.js\n{extra}"));
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let e = f.err("- name: api\n  script: app.js\n  error_file: same.log\n  log_file: same.log\n");
    assert!(
        e.contains("is also the error_file: each of its lines would be written twice"),
        "{e}"
    );
    assert!(e.contains("hint: for one file of both streams"), "{e}");

    // `-l/--log [PATH]` on the command line.
    let cli = |log: Option<Option<&str>>| {
        let flags = AppFlags {
            log_file: log.map(|p| p.map(PathBuf::from)),
            ..AppFlags::default()
        };
        resolve_cli(RawApp::from_flags(&flags, Path::new("app.js"), &[]), &f.ctx)
            .map(|a| a.logs.log_file)
    };
    assert_eq!(cli(None).unwrap(), None);
    assert_eq!(
        cli(Some(None)).unwrap(),
        Some(f.root().join("home/logs/app.log"))
    );
    assert_eq!(
        cli(Some(Some("x.log"))).unwrap(),
        Some(f.root().join("x.log"))
    );
    assert_eq!(cli(Some(Some("NULL"))).unwrap(), None);
    let e = cli(Some(Some(""))).unwrap_err().to_string();
    assert_eq!(e, "--log: is empty");
}

/// PM2's `disable_logs` / `--disable-logs`: every stream to /dev/null; naming a file
/// as well is a contradiction, refused.
#[test]
fn disable_logs_discards_every_stream() {
    let f = fx();
    let logs = f
        .one("- name: api\n  script: app.js\n  disable_logs: true\n")
        .logs;
    assert_eq!(logs.out_file, Path::new("/dev/null"));
    assert_eq!(logs.error_file, Path::new("/dev/null"));
    assert_eq!(logs.log_file, None);
    let logs = f
        .one("- name: api\n  script: app.js\n  disable_logs: false\n")
        .logs;
    assert_eq!(logs.out_file, f.root().join("home/logs/api-out.log"));
    let logs = f
        .one("- name: api\n  script: app.js\n  disable_logs: true\n  log_file: false\n")
        .logs;
    assert_eq!(logs.out_file, Path::new("/dev/null"));
    let e = f.err("- name: api\n  script: app.js\n  disable_logs: true\n  out_file: o.log\n");
    assert!(
        e.starts_with("ecosystem.yaml:3: app \"api\": disable_logs: discards every stream, but out_file names a file"),
        "{e}"
    );
    let flags = AppFlags {
        disable_logs: true,
        log_file: Some(None),
        ..AppFlags::default()
    };
    let e = resolve_cli(RawApp::from_flags(&flags, Path::new("app.js"), &[]), &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--disable-logs: discards every stream, but log_file names a file"),
        "{e}"
    );
}

/// PM2 runs a script string with spaces that is no file as a command: drover splits it
/// as a shell would (quotes kept together), finds the first word as a script, and puts
/// the rest before `args`; the name is the program's.
#[test]
fn a_command_string_runs_its_program_with_its_words() {
    let f = fx();
    let app = f.one("- script: \"sh -c 'echo \\\"a b\\\"; exit 0'\"\n  args: [x]\n");
    assert_eq!(app.name, "sh");
    assert!(app.command.script.is_absolute() && app.command.script.ends_with("sh"));
    assert_eq!(app.command.interpreter, None);
    assert_eq!(app.command.args, vec!["-c", "echo \"a b\"; exit 0", "x"]);
    // The program is found like a script: relative to cwd, with its interpreter.
    let app = f.one("- script: app.js --port 3\n");
    assert_eq!(app.name, "app");
    assert_eq!(app.command.script, f.root().join("app.js"));
    assert_eq!(app.command.interpreter.as_deref(), Some("node"));
    assert_eq!(app.command.args, vec!["--port", "3"]);
    // A file whose name has spaces is that file.
    fs::write(f.root().join("my app.js"), "").unwrap();
    let app = f.one("- script: my app.js\n  name: mine\n");
    assert_eq!(app.command.script, f.root().join("my app.js"));
    assert!(app.command.args.is_empty());
    // From the command line too, with the args after `--` last.
    let raw = RawApp::from_flags(
        &AppFlags::default(),
        Path::new("sh -c 'exit 0'"),
        &["after".into()],
    );
    let app = resolve_cli(raw, &f.ctx).unwrap();
    assert_eq!(app.command.args, vec!["-c", "exit 0", "after"]);

    for (script, want) in [
        (
            "node app.js > out.log",
            "script: \"node app.js > out.log\" runs as a command without a shell, and '>' is shell syntax",
        ),
        ("sh -c \"echo $HOME\"", "'$' is shell syntax"),
        ("node app.js | tee x", "'|' is shell syntax"),
        ("sh -c 'exit 0", "script: unterminated ' quote"),
        ("nosuchprogram --flag", "script \"nosuchprogram\" not found"),
    ] {
        let e = f.err(&format!("- name: x\n  script: {script:?}\n"));
        assert!(e.contains(want), "{script}: {e}");
    }
    let e = f.err("- name: x\n  script: 'node a.js && b'\n");
    assert!(
        e.contains("hint: to run it in a shell: script: bash"),
        "{e}"
    );
}

/// PM2 runs a file of no known type with node: drover does for an extension-less file
/// that is neither executable nor starts with `#!`; those are their own program.
#[test]
fn an_extension_less_script_runs_with_node_unless_it_is_a_program() {
    let f = fx();
    fs::write(f.root().join("server"), "#!/bin/sh\n").unwrap();
    fs::write(f.root().join("node-app"), "console.log(1)\n").unwrap();
    fs::write(f.root().join("not-exec-sh"), "#!/bin/sh\necho\n").unwrap();
    let app = f.one("- script: node-app\n");
    assert_eq!(app.command.interpreter.as_deref(), Some("node"));
    assert_eq!(app.command.script, f.root().join("node-app"));
    // Executable (with its #!): exec'd directly.
    let app = f.one("- script: ./server\n");
    assert_eq!(app.command.interpreter, None);
    // `#!` but not executable: it is a program that cannot run, as before.
    let e = f.err("- script: ./not-exec-sh\n");
    assert!(
        e.contains("is not executable and has no interpreter"),
        "{e}"
    );
    assert!(e.contains("chmod +x"), "{e}");
    // A file of another type than node's stays an error: only no extension means node.
    let e = f.err("- script: data.txt\n");
    assert!(e.contains("is not executable"), "{e}");
    // An explicit interpreter wins.
    let app = f.one("- script: node-app\n  interpreter: python3\n");
    assert_eq!(app.command.interpreter.as_deref(), Some("python3"));
}

/// drover-ecosystem(5) tells the truth: every key's example loads, and every default it
/// states as a value is what leaving the key out gives.
#[test]
fn every_documented_example_loads_and_every_stated_default_is_the_default() {
    let f = fx();
    fs::create_dir_all(f.root().join("dist")).unwrap();
    fs::write(f.root().join("dist/index.js"), "").unwrap();
    fs::create_dir_all(f.root().join("api")).unwrap();
    fs::write(f.root().join("api/app.js"), "").unwrap();
    for dir in ["src", "config"] {
        fs::create_dir_all(f.root().join(dir)).unwrap();
    }
    let app = |line: &str| {
        let mut text = String::from("-");
        for (key, base) in [("name", " name: t\n"), ("script", " script: app.js\n")] {
            if !line.starts_with(&format!("{key}:")) {
                text.push_str(base);
                text.push(' ');
            }
        }
        format!("{text} {line}\n")
    };
    for k in keys::KNOWN {
        let with = |line: String| {
            k.example_with
                .lines()
                .fold(line, |text, with| format!("{text}\n  {with}"))
        };
        let with_example = app(&with(format!("{}: {}", k.key, k.example)));
        if let Err(e) = f.load(&with_example) {
            panic!(
                "the example of {} does not load: {e}\n{with_example}",
                k.key
            );
        }
        if let keys::Unset::Same(value) = k.unset {
            let bare = f.one(&app(&with("args: []".into())));
            let with_default = f.one(&app(&with(format!("{}: {value}", k.key))));
            assert_eq!(
                with_default, bare,
                "{}: {value} is documented as the default, and is not",
                k.key
            );
        }
    }
}

/// A known app written back as keys resolves to itself, whatever kind of app it is: what
/// `restart api --node-args …` relies on to change one setting and keep the others.
#[test]
fn an_app_written_back_resolves_to_itself() {
    let f = fx();
    let files = [
        "- script: app.js\n",
        "- script: app.js\n  instances: 3\n  merge_logs: true\n  time: true\n",
        "- script: worker.py\n  exec_mode: cluster\n  instances: max\n  port: 3000\n",
        "- script: app.js\n  exec_mode: fork\n  instances: 2\n  increment_var: PORT\n  env: {PORT: 4000}\n",
        "- script: app.js\n  listen: unix:srv/s.sock\n  kill_signal: SIGTERM\n  kill_timeout: 5s\n",
        "- script: app.js\n  listen: 127.0.0.1:0\n  socket: shared\n  shutdown_with_message: true\n  wait_ready: true\n  listen_timeout: 9s\n",
        "- script: server\n  args: [-v, --x=1]\n  out_file: NULL\n  error_file: err.log\n  log_file: true\n",
        "- script: run.sh\n  interpreter: none\n  disable_logs: true\n  autorestart: false\n  stop_exit_codes: [0, 3]\n",
        "- script: python3 -m http.server 0\n  max_memory_restart: 300M\n  exp_backoff_restart_delay: 100\n  restart_delay: 50\n",
        "- script: app.js\n  interpreter_args: --max-old-space-size=64\n  log_date_format: YYYY Z\n  instance_var: INST\n  max_restarts: 3\n  min_uptime: 2s\n",
        "- script: main.js\n  cwd: srv\n  instances: 2\n",
        "- script: app.js\n  log_max_size: 1M\n  log_retain: 3\n  log_rotate: daily\n  log_compress: true\n",
        "- script: app.js\n  log_rotate: false\n",
        "- script: app.js\n  disable_logs: true\n  log_rotate: false\n",
        "- script: app.js\n  watch: [srv]\n  ignore_watch: ['*.tmp', cache]\n  watch_delay: 2s\n  cron_restart: '*/5 * * * *'\n",
        "- script: app.js\n  watch: true\n",
    ];
    for text in files {
        let spec = f.one(text);
        let again = crate::config::update(&spec, &AppFlags::default(), &[], &f.ctx).unwrap();
        assert_eq!(again, spec, "{text}");
    }
}

/// Flags change what they say, and the rules of a new app hold for the changed one.
#[test]
fn flags_change_a_known_app() {
    let f = fx();
    let flags = |argv: &[&str]| {
        use clap::{Args, FromArgMatches};
        let cmd = AppFlags::augment_args(clap::Command::new("t").no_binary_name(true));
        AppFlags::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
    };
    let spec = f.one("- script: app.js\n  instances: 2\n  kill_timeout: 5s\n");
    let changed = crate::config::update(
        &spec,
        &flags(&["--node-args=--harmony", "-i", "3"]),
        &[],
        &f.ctx,
    )
    .unwrap();
    assert_eq!(changed.command.interpreter_args, ["--harmony"]);
    assert_eq!(changed.instances, 3);
    assert_eq!(changed.stop, spec.stop);
    assert_eq!(changed.logs, spec.logs);

    let silent =
        crate::config::update(&spec, &flags(&["--disable-logs"]), &["x".into()], &f.ctx).unwrap();
    assert_eq!(silent.logs.out_file, Path::new("/dev/null"));
    assert_eq!(silent.command.args, ["x"]);

    let py = f.one("- script: worker.py\n");
    let e = crate::config::update(&py, &flags(&["--shutdown-with-message"]), &[], &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--shutdown-with-message: needs a Node app"),
        "{e}"
    );
    let e = crate::config::update(&spec, &flags(&["-k", "soon"]), &[], &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--kill-timeout: "), "{e}");
    let e = crate::config::update(&spec, &flags(&["--name", "other"]), &[], &f.ctx)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("to rename it, delete it and start it again as other"),
        "{e}"
    );
}

/// A YAML file indented with tabs says so.
#[test]
fn tabs_in_yaml_are_named() {
    let e = fx().err("apps:\n\t- script: app.js\n");
    assert!(e.contains("ecosystem.yaml:2"), "{e}");
    assert!(e.contains("YAML indents with spaces, not tabs"), "{e}");
}

/// `health:` and `watchdog:` resolve, and each wrong one says where and why.
#[test]
fn health_checks_and_their_mistakes() {
    let f = fx();
    let app = f.one("- script: app.js\n  listen: 3000\n  watchdog: 10s\n  health:\n    http: /health\n    interval: 2s\n");
    assert_eq!(app.watchdog, Some(Duration::from_secs(10)));
    let health = app.health.unwrap();
    assert_eq!(
        health.check,
        HealthCheck::Http {
            path: "/health".into()
        }
    );
    assert_eq!(
        (health.interval, health.timeout, health.failures),
        (Duration::from_secs(2), Duration::from_secs(2), 3)
    );
    // `interval` alone, shorter than the default timeout: the timeout shrinks to it.
    let app = f.one("- script: app.js\n  health:\n    exec: run.sh\n    interval: 1s\n");
    let health = app.health.unwrap();
    assert_eq!(
        (health.interval, health.timeout),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
    let app = f.one("- script: app.js\n  health:\n    exec: run.sh --quick\n");
    assert_eq!(
        app.health.unwrap().check,
        HealthCheck::Exec {
            program: f.root().join("run.sh"),
            args: vec!["--quick".into()]
        }
    );
    // A Node cluster app without listen shares the port it listens on: checks reach each worker.
    f.one("- script: app.js\n  instances: 2\n  health: {http: /}\n");
    for (text, needle) in [
        (
            "- script: app.js\n  listen: 3000\n  health:\n    http: /h\n    intervall: 1s\n",
            "ecosystem.yaml:5: app \"app\": unknown key \"intervall\" in health (did you mean \"interval\"?)",
        ),
        (
            "- script: app.js\n  health:\n    http: /h\n    exec: run.sh\n",
            "ecosystem.yaml:2: app \"app\": health has both http: and exec:",
        ),
        (
            "- script: app.js\n  health:\n    interval: 1s\n",
            "health needs http:",
        ),
        (
            "- script: app.js\n  listen: 3000\n  socket: shared\n  health:\n    http: /h\n",
            "ecosystem.yaml:5: app \"app\": health.http: a check through a shared socket",
        ),
        (
            "- script: worker.py\n  health:\n    http: /h\n",
            "health.http: a check through a shared socket",
        ),
        (
            "- script: app.js\n  health:\n    exec: no-such-checker\n",
            "ecosystem.yaml:3: app \"app\": health.exec: program \"no-such-checker\" not found",
        ),
        (
            "- script: app.js\n  health:\n    exec: run.sh\n    interval: 1s\n    timeout: 2s\n",
            "ecosystem.yaml:5: app \"app\": health.timeout: 2000 ms: it must be more than 0 and at most the interval (1000 ms)",
        ),
        (
            "- script: app.js\n  health:\n    exec: run.sh\n    interval: 1s\n    timeout: 0s\n",
            "ecosystem.yaml:5: app \"app\": health.timeout: 0 ms: it must be more than 0",
        ),
        (
            "- script: app.js\n  health:\n    exec: run.sh\n    failures: 0\n",
            "health.failures: at least 1",
        ),
        (
            "- script: app.js\n  health:\n    exec: run.sh\n    failures: lots\n",
            "health.failures: expected",
        ),
        (
            "- script: app.js\n  health: /health\n",
            "health: expected a map",
        ),
        (
            "- script: app.js\n  watchdog: 10ms\n",
            "ecosystem.yaml:2: app \"app\": watchdog: 10 ms is shorter than",
        ),
    ] {
        let e = f.err(text);
        assert!(e.contains(needle), "{text}\n→ {e}");
    }
}

/// Log rotation is on by default with pm2-logrotate's settings; each key and flag sets
/// its part; each bad value is one error naming file, line and key, or the flag.
#[test]
fn log_rotation_keys_flags_and_bad_values() {
    use crate::config::LogRotation;
    let f = fx();
    let rotation = |max_size, retain, daily, compress| {
        Some(LogRotation {
            max_size,
            retain,
            daily,
            compress,
        })
    };
    assert_eq!(
        f.one("- script: app.js\n").logs.rotation,
        rotation(10 << 20, 30, false, false)
    );
    let app = f.one(
        "- script: app.js\n  log_max_size: 1.5M\n  log_retain: 3\n  log_rotate: daily\n  log_compress: true\n",
    );
    assert_eq!(app.logs.rotation, rotation(3 << 19, 3, true, true));
    let off = f.one("- script: app.js\n  log_rotate: false\n");
    assert_eq!(off.logs.rotation, None);

    for (text, want) in [
        (
            "log_max_size: 0",
            "ecosystem.yaml:3: app \"api\": log_max_size: 0 is not a size: it must be more than 0",
        ),
        (
            "log_max_size: -1M",
            "ecosystem.yaml:3: app \"api\": log_max_size: \"-1M\" is not a size (use bytes or 300K, 512M, 1G)",
        ),
        (
            "log_max_size: 10Q",
            "ecosystem.yaml:3: app \"api\": log_max_size: \"10Q\" is not a size",
        ),
        (
            "log_retain: lots",
            "ecosystem.yaml:3: app \"api\": log_retain: expected a number of rotated files to keep (1 or more), got \"lots\"",
        ),
        (
            "log_retain: 0",
            "ecosystem.yaml:3: app \"api\": log_retain: 0 would delete each file as it rotates",
        ),
        (
            "log_rotate: hourly",
            "ecosystem.yaml:3: app \"api\": log_rotate: expected daily (also at local midnight), true (by size only) or false (never), got \"hourly\"",
        ),
        (
            "log_compress: gzip",
            "ecosystem.yaml:3: app \"api\": log_compress: expected true or false, got \"gzip\"",
        ),
        (
            "log_rotate: false\n  log_max_size: 5M",
            "ecosystem.yaml:4: app \"api\": log_max_size: has no effect while rotation is off (log_rotate: false)",
        ),
        (
            "log_rotate: false\n  log_compress: true",
            "ecosystem.yaml:4: app \"api\": log_compress: has no effect while rotation is off",
        ),
        (
            "disable_logs: true\n  log_retain: 5",
            "ecosystem.yaml:4: app \"api\": log_retain: has nothing to rotate: disable_logs writes no log file",
        ),
    ] {
        let e = f.err(&format!("- name: api\n  script: app.js\n  {text}\n"));
        assert!(e.starts_with(want), "{text}: {e}");
        assert_eq!(
            e.lines().count(),
            1 + usize::from(e.contains("\n  hint: ")),
            "{e}"
        );
    }

    let flags = |argv: &[&str]| {
        use clap::{Args, FromArgMatches};
        let cmd = AppFlags::augment_args(clap::Command::new("t").no_binary_name(true));
        AppFlags::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
    };
    let cli = |argv: &[&str]| {
        resolve_cli(
            RawApp::from_flags(&flags(argv), Path::new("app.js"), &[]),
            &f.ctx,
        )
    };
    assert_eq!(
        cli(&[
            "--log-max-size",
            "2M",
            "--log-retain",
            "4",
            "--log-rotate",
            "daily",
            "--log-compress"
        ])
        .unwrap()
        .logs
        .rotation,
        rotation(2 << 20, 4, true, true)
    );
    for (argv, want) in [
        (
            &["--log-max-size", "0"][..],
            "--log-max-size: \"0\" is not a size: it must be more than 0",
        ),
        (
            &["--log-max-size", "-1M"],
            "--log-max-size: \"-1M\" is not a size",
        ),
        (
            &["--log-max-size", "10Q"],
            "--log-max-size: \"10Q\" is not a size",
        ),
        (
            &["--log-retain", "lots"],
            "--log-retain: expected a number of rotated files to keep",
        ),
        (&["--log-rotate", "hourly"], "--log-rotate: expected daily"),
        (
            &["--log-rotate", "false", "--log-retain", "3"],
            "--log-retain: has no effect while rotation is off",
        ),
    ] {
        let e = cli(argv).unwrap_err().to_string();
        assert!(e.starts_with(want), "{argv:?}: {e}");
    }

    // On a known app: off, then a size turns it back on; null is the default again.
    let spec = f.one("- script: app.js\n  log_retain: 7\n  log_compress: true\n");
    let update = |spec: &AppSpec, argv: &[&str]| {
        crate::config::update(spec, &flags(argv), &[], &f.ctx).unwrap()
    };
    let off = update(&spec, &["--log-rotate", "false"]);
    assert_eq!(off.logs.rotation, None);
    assert_eq!(update(&off, &[]).logs.rotation, None);
    let on = update(&off, &["--log-max-size", "5M"]);
    assert_eq!(on.logs.rotation, rotation(5 << 20, 30, false, false));
    let daily = update(&spec, &["--log-rotate", "daily", "--log-retain", "null"]);
    assert_eq!(daily.logs.rotation, rotation(10 << 20, 30, true, true));
    let silent = update(&spec, &["--disable-logs"]);
    assert_eq!(silent.logs.out_file, Path::new("/dev/null"));
    let e = crate::config::update(
        &off,
        &flags(&["--log-rotate", "false", "--log-compress"]),
        &[],
        &f.ctx,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("--log-compress: has no effect"), "{e}");
}

#[test]
fn metrics_at_the_top_of_the_file() {
    let f = fx();
    let apps = "apps:\n  - script: app.js\n";
    let at = |text: &str| f.load_full(text).metrics;
    assert_eq!(at(apps), None);
    assert_eq!(at(&format!("metrics:\n{apps}")), None, "null: as if absent");
    let spec = at(&format!("{apps}metrics: 9615\n")).unwrap();
    assert_eq!(spec.listen, "127.0.0.1:9615".parse().unwrap());
    assert!(!spec.public);
    assert_eq!(spec.origin, MetricsOrigin::File("ecosystem.yaml:3".into()));
    assert_eq!(spec.origin.key(), "ecosystem.yaml:3: metrics");
    let spec = at(&format!(
        "metrics: {{listen: \"[::]:0\", public: true}}\n{apps}"
    ))
    .unwrap();
    assert!(spec.public && spec.listen.ip().is_unspecified());
    // JSON, as PM2 users write it; and an app object alone has no top level.
    let json = r#"{"apps": [{"script": "app.js"}], "metrics": "localhost:9615"}"#;
    let loaded = load_str(json, Path::new("eco.json"), &f.ctx).unwrap();
    assert_eq!(
        loaded.metrics.unwrap().listen,
        "127.0.0.1:9615".parse().unwrap()
    );
    let e = f.err("script: app.js\nmetrics: 9615\n");
    assert!(e.contains("unknown key \"metrics\""), "{e}");
    // A JavaScript file's exports name the file, not a line of node's JSON.
    let loaded = load_js_exports(json, Path::new("ecosystem.config.js"), &f.ctx).unwrap();
    assert_eq!(
        loaded.metrics.unwrap().origin,
        MetricsOrigin::File("ecosystem.config.js".into())
    );
    let e = load_js_exports(
        r#"{"apps": [{"script": "app.js"}], "metrics": "0.0.0.0:9615"}"#,
        Path::new("ecosystem.config.js"),
        &f.ctx,
    )
    .unwrap_err();
    assert_eq!(e.line, None);
    assert!(
        e.to_string()
            .starts_with("ecosystem.config.js: metrics: 0.0.0.0:9615 is not a loopback address"),
        "{e}"
    );
    assert_eq!(e.key.as_deref(), Some("metrics"));
}

#[test]
fn bad_metrics_name_the_line_and_key() {
    let f = fx();
    let apps = "apps:\n  - script: app.js\n";
    for (top, want, key) in [
        (
            "metrics: [9615]\n",
            "ecosystem.yaml:1: metrics: expected an address (9615, 127.0.0.1:9615) or {listen: ADDR, public: true}, got a list",
            "metrics",
        ),
        (
            "metrics: true\n",
            "ecosystem.yaml:1: metrics: expected an address",
            "metrics",
        ),
        (
            "metrics:\n  listen: [1]\n",
            "ecosystem.yaml:2: metrics.listen: expected an address (9615, 127.0.0.1:9615), got a list",
            "metrics.listen",
        ),
        (
            "metrics:\n  listen: 1\n  public: yes please\n",
            "ecosystem.yaml:3: metrics.public: expected true or false",
            "metrics.public",
        ),
        (
            "metrics:\n  listen: 192.168.1.1:1\n",
            "ecosystem.yaml:2: metrics: 192.168.1.1:1 is not a loopback address",
            "metrics.listen",
        ),
        (
            "metrics:\n  listen: 1\n  port: 2\n",
            "ecosystem.yaml:3: unknown key \"port\" in metrics (it has listen, public)",
            "metrics.port",
        ),
    ] {
        let e = f.load(&format!("{top}{apps}")).unwrap_err();
        assert!(e.to_string().starts_with(want), "{top}: {e}");
        assert_eq!(e.key.as_deref(), Some(key), "{top}");
    }
}

#[test]
fn every_top_level_example_loads() {
    let f = fx();
    for k in super::keys::TOP_KEYS {
        let text = if k.key == "apps" {
            format!("{}: {}\n", k.key, k.example)
        } else {
            format!("apps: [{{script: app.js}}]\n{}: {}\n", k.key, k.example)
        };
        if let Err(e) = f.load(&text) {
            panic!("{}: {e}", k.key);
        }
    }
}
