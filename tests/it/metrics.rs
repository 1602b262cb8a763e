//! The metrics endpoint (issue 13 item 3): `/metrics` read by the Python
//! prometheus_client parsers (Prometheus text and OpenMetrics), its series and their
//! labels, values that move (a restart, a crash, log lines, a busy worker's CPU), the
//! supervisor's own figures, `/healthz`; slow clients that neither slow `list` nor stay
//! past the timeout; and bad addresses refused with file, line and key.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover::protocol::Request;
use serde_json::Value;

use crate::harness::*;

/// The Python of the environment `.ci/run` builds from tests/frameworks/requirements.txt
/// (it has prometheus_client).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("DROVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/venv"));
    let python = venv.join("bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run `bash .ci/run` (it builds the test venv from tests/frameworks/requirements.txt)",
        python.display()
    );
    python
}

/// One sample as the parser read it.
#[derive(Debug, Clone)]
struct Sample {
    /// The family's name and type (`drover_worker_restarts`, `counter`).
    family: String,
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses a scrape with prometheus_client's own parser: the Prometheus text one, or with
/// `openmetrics` the OpenMetrics one (which also insists on `# EOF`). A text it cannot
/// read fails the test with the parser's error.
fn parse(text: &str, openmetrics: bool) -> Vec<Sample> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let program = format!(
        "import sys, json\nfrom {module} import text_string_to_metric_families as parse\nout = []\nfor f in parse(sys.stdin.read()):\n    for s in f.samples:\n        out.append([f.name, f.type, s.name, s.labels, s.value])\nprint(json.dumps(out))\n"
    );
    let mut child = Command::new(venv_python())
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {module} parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|row| Sample {
            family: row[0].as_str().unwrap().to_owned(),
            kind: row[1].as_str().unwrap().to_owned(),
            name: row[2].as_str().unwrap().to_owned(),
            labels: serde_json::from_value(row[3].clone()).unwrap(),
            value: row[4].as_f64().unwrap(),
        })
        .collect()
}

/// A raw HTTP exchange: the status line, the headers (lowercase names) and the body.
struct Http {
    status: String,
    headers: BTreeMap<String, String>,
    body: String,
}

fn http(addr: SocketAddr, request: &str) -> Http {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {response:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Http {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: drover\r\n{accept}Connection: close\r\n\r\n"),
    )
}

/// Scrapes `/metrics` (Prometheus text) and parses it.
fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let reply = get(addr, "/metrics", None);
    assert_eq!(reply.status, "HTTP/1.1 200 OK", "{}", reply.body);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&reply.body, false)
}

/// The value of sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Where the supervisor of `d` serves its metrics, from `drover ping`.
fn metrics_addr(d: &Daemon) -> SocketAddr {
    let out = d.ok(&["ping"]);
    let url = out
        .trim()
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("ping names no metrics endpoint: {out:?}"));
    url.trim_end_matches("/metrics").parse().unwrap()
}

/// A worker's labels as `list --json` describes it.
fn labels_of(worker: &Value) -> [(&'static str, String); 3] {
    [
        ("app", worker["name"].as_str().unwrap().to_owned()),
        ("app_instance", worker["instance"].to_string()),
        ("id", worker["id"].to_string()),
    ]
}

fn with<'a>(
    labels: &'a [(&'static str, String)],
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(more.iter().copied())
        .collect()
}

/// An ecosystem file with `metrics:` as given, and `web`: two http_worker.js on a port
/// the OS picks, each logging its connections.
fn web_file(home: &Home, metrics: &str) -> PathBuf {
    let script = fixture("http_worker.js");
    home.write(
        "eco.yaml",
        &format!(
            "metrics: {metrics}\napps:\n  - name: web\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n    env:\n      LOG_CONNECTIONS: 1\n",
            script.display()
        ),
    )
}

#[test]
fn metrics_parse_as_prometheus_text_and_openmetrics_and_their_values_move() {
    let d = Daemon::new();
    let file = web_file(&d.home, "127.0.0.1:0");
    d.ok(&["start", file.to_str().unwrap()]);
    let workers = d.wait_online("web", 2);
    wait_serving(listen_of(&workers[0]));
    let metrics = metrics_addr(&d);

    // Every series of every worker, with its labels, in both formats.
    let samples = wait_for("both workers' memory sampled", DEADLINE, || {
        let samples = scrape(metrics);
        workers
            .iter()
            .all(|w| {
                value(
                    &samples,
                    "drover_worker_resident_memory_bytes",
                    &with(&labels_of(w), &[]),
                )
                .is_some_and(|m| m > 0.0)
            })
            .then_some(samples)
    });
    for w in &workers {
        let labels = labels_of(w);
        for (name, want) in [
            ("drover_worker_up", Some(1.0)),
            ("drover_worker_ready", Some(1.0)),
            ("drover_worker_healthy", Some(1.0)),
            ("drover_worker_cpu_seconds_total", None),
            ("drover_worker_resident_memory_bytes", None),
            ("drover_worker_open_fds", None),
        ] {
            let got = value(&samples, name, &with(&labels, &[]))
                .unwrap_or_else(|| panic!("no {name} for {labels:?}"));
            if let Some(want) = want {
                assert_eq!(got, want, "{name} {labels:?}");
            }
        }
        // A Node worker holds its listener, pipes, an IPC channel and more.
        let fds = value(&samples, "drover_worker_open_fds", &with(&labels, &[])).unwrap();
        let pid = w["pid"].as_i64().unwrap() as i32;
        assert!(fds >= 5.0 && fds <= 2.0 * fd_count(pid) as f64, "fds {fds}");
        for cause in ["crash", "memory", "health", "reload", "restart"] {
            assert_eq!(
                value(
                    &samples,
                    "drover_worker_restarts_total",
                    &with(&labels, &[("cause", cause)])
                ),
                Some(0.0),
                "{cause} {labels:?}"
            );
        }
    }
    let kinds: BTreeMap<&str, &str> = samples
        .iter()
        .map(|s| (s.family.as_str(), s.kind.as_str()))
        .collect();
    for (family, kind) in [
        ("drover_worker_up", "gauge"),
        ("drover_worker_cpu_seconds", "counter"),
        ("drover_worker_restarts", "counter"),
        ("drover_app_log_lines", "counter"),
        ("drover_app_log_lines_dropped", "counter"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(kinds.get(family), Some(&kind), "{family}: {kinds:?}");
    }
    let supervisor = d.supervisor_pid().unwrap();
    let own = value(&samples, "process_resident_memory_bytes", &[]).unwrap();
    let rss = vm_rss_kb(supervisor) as f64 * 1024.0;
    assert!(own > rss / 2.0 && own < rss * 2.0, "{own} vs VmRSS {rss}");
    assert!(value(&samples, "process_cpu_seconds_total", &[]).is_some());
    assert_eq!(
        value(
            &samples,
            "drover_app_log_lines_dropped_total",
            &[("app", "web")]
        ),
        Some(0.0)
    );

    // OpenMetrics when the scraper prefers it, as Prometheus does.
    let open = get(
        metrics,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(
        open.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let parsed = parse(&open.body, true);
    for w in &workers {
        assert_eq!(
            value(&parsed, "drover_worker_up", &with(&labels_of(w), &[])),
            Some(1.0)
        );
    }

    // Log lines: each request the workers take is a line they print.
    let lines = |s: &[Sample]| {
        value(
            s,
            "drover_app_log_lines_total",
            &[("app", "web"), ("stream", "out")],
        )
        .unwrap()
    };
    let before = lines(&samples);
    assert!(before >= 2.0, "each worker printed its start: {before}");
    for _ in 0..10 {
        get_json(listen_of(&workers[0]), "/");
    }
    wait_for("10 more log lines", DEADLINE, || {
        (lines(&scrape(metrics)) >= before + 10.0).then_some(())
    });

    // A restart of one worker counts under restart, a crash under crash; the other
    // worker's counts stay 0.
    let (first, second) = (labels_of(&workers[0]), labels_of(&workers[1]));
    d.ok(&["restart", &workers[0]["id"].to_string()]);
    let restarts = |s: &[Sample], w: &[(&'static str, String)], cause: &str| {
        value(
            s,
            "drover_worker_restarts_total",
            &with(w, &[("cause", cause)]),
        )
        .unwrap()
    };
    wait_for("restarts_total{cause=restart} 1", DEADLINE, || {
        let s = scrape(metrics);
        (restarts(&s, &first, "restart") == 1.0).then_some(())
    });
    d.wait_online("web", 2);
    let _ = get(listen_of(&workers[1]), "/exit?code=1", None);
    let s = wait_for("a crash counted", DEADLINE, || {
        let s = scrape(metrics);
        // The request may reach either worker: one of them crashed.
        let crashes = restarts(&s, &first, "crash") + restarts(&s, &second, "crash");
        (crashes == 1.0).then_some(s)
    });
    assert_eq!(restarts(&s, &second, "restart"), 0.0);
    assert_eq!(restarts(&s, &first, "reload"), 0.0);

    // The supervisor answers for itself.
    let health = get(metrics, "/healthz", None);
    assert_eq!(health.status, "HTTP/1.1 200 OK", "{}", health.body);
    assert!(health.body.starts_with("ok"), "{}", health.body);
}

/// A Node worker that keeps a core about half busy.
const BUSY_JS: &str =
    "setInterval(() => { const t = Date.now(); while (Date.now() - t < 50) {} }, 100);\n";

#[test]
fn a_busy_workers_cpu_seconds_grow_and_an_idle_ones_hardly() {
    let home = Home::new();
    let busy = home.write("busy.js", BUSY_JS);
    let idle = home.write("idle.js", "setInterval(() => {}, 1000);\n");
    // `drover run` with --metrics; max_memory_restart makes the sampler read every second.
    let mut run = home.run(&[
        busy.to_str().unwrap(),
        idle.to_str().unwrap(),
        "--max-memory-restart",
        "1G",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let line = run.wait_stderr("metrics on http://");
    let addr: SocketAddr = line
        .split("metrics on http://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // None until the app's workers are in the table (the endpoint serves from before
    // the first worker starts).
    let cpu = |app: &str| {
        value(
            &scrape(addr),
            "drover_worker_cpu_seconds_total",
            &[("app", app)],
        )
    };
    // Both sampled: from then on the idle worker's start-up CPU is behind it.
    let (first, idle_first) = wait_for("both workers sampled", DEADLINE, || {
        match (cpu("busy")?, cpu("idle")?) {
            (busy, idle) if busy > 0.0 && idle > 0.0 => Some((busy, idle)),
            _ => None,
        }
    });
    wait_for("a second of CPU more", DEADLINE, || {
        (cpu("busy")? >= first + 1.0).then_some(())
    });
    let idle_gained = cpu("idle").unwrap() - idle_first;
    assert!(idle_gained < 0.5, "the idle worker gained {idle_gained} s");
    run.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(run.wait_exit(DEADLINE).success());
    // The port is closed with the supervisor.
    assert!(TcpStream::connect(addr).is_err(), "{addr} still answers");
}

/// A client that sends part of a request and then nothing.
fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
        .unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset), waiting at most `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn slow_clients_neither_slow_list_nor_lock_out_a_scrape_and_are_dropped_after_the_timeout() {
    let d = Daemon::new();
    let file = web_file(&d.home, "127.0.0.1:0");
    d.ok(&["start", file.to_str().unwrap()]);
    d.wait_online("web", 2);
    let metrics = metrics_addr(&d);
    let list_median = || {
        let mut times: Vec<Duration> = (0..9)
            .map(|_| {
                let (answer, took) = d.call(&Request::List);
                assert!(answer.is_ok(), "{answer:?}");
                took
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };

    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..200).map(|_| slow_client(metrics)).collect();
    let median = list_median();
    assert!(
        median < Duration::from_millis(100),
        "list with 200 slow metrics clients: median {median:?}"
    );
    // A scraper still gets its answer: the oldest slow clients make room.
    let samples = scrape(metrics);
    assert!(value(&samples, "drover_worker_up", &[("app", "web")]).is_some());
    assert_eq!(get(metrics, "/healthz", None).status, "HTTP/1.1 200 OK");
    // Every one of them is closed by the server: evicted, or at the 5 s limit on a
    // request, however it dribbles.
    for (i, s) in slow.iter_mut().enumerate() {
        let left =
            (opened + Duration::from_secs(5) + DEADLINE).saturating_duration_since(Instant::now());
        assert!(
            closed_within(s, left.max(Duration::from_millis(1))),
            "slow client #{i} still open after {:?}",
            opened.elapsed()
        );
    }
    assert!(list_median() < Duration::from_millis(100));
}

#[test]
fn a_dribbling_client_is_dropped_at_the_request_timeout_not_kept_by_its_bytes() {
    let d = Daemon::new();
    let file = web_file(&d.home, "127.0.0.1:0");
    d.ok(&["start", file.to_str().unwrap()]);
    let metrics = metrics_addr(&d);
    let started = Instant::now();
    let mut s = slow_client(metrics);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // One header byte every 200 ms, the request never ending.
    let mut buf = [0u8; 64];
    let closed_at = loop {
        if s.write_all(b"X").is_err() {
            break started.elapsed();
        }
        match s.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(_) => panic!("answered a request that never ended"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break started.elapsed(),
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still open after {DEADLINE:?}"
        );
    };
    assert!(
        closed_at >= Duration::from_millis(4500),
        "closed after {closed_at:?}, before the 5 s limit"
    );
}

#[test]
fn bad_requests_get_their_status() {
    let d = Daemon::new();
    let file = web_file(&d.home, "127.0.0.1:0");
    d.ok(&["start", file.to_str().unwrap()]);
    let metrics = metrics_addr(&d);
    let head = http(metrics, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, "HTTP/1.1 200 OK");
    assert!(head.body.is_empty() && head.headers["content-length"] != "0");
    assert_eq!(get(metrics, "/nope", None).status, "HTTP/1.1 404 Not Found");
    let post = http(
        metrics,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(post.headers["allow"], "GET, HEAD");
    assert_eq!(
        http(metrics, "\x16\x03\x01garbage\r\n\r\n").status,
        "HTTP/1.1 400 Bad Request"
    );
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 << 10)
    );
    assert_eq!(
        http(metrics, &huge).status,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A query string is the same page.
    assert_eq!(get(metrics, "/metrics?x=1", None).status, "HTTP/1.1 200 OK");
}

#[test]
fn an_address_in_use_refuses_the_start_and_starts_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = Daemon::new();
    let file = web_file(&d.home, &format!("127.0.0.1:{port}"));
    let out = d.home.output(&["start", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:1: metrics: cannot listen on 127.0.0.1:{port}: the address is in use",
            file.display()
        )),
        "{}",
        out.stderr
    );
    assert!(d.list().is_empty(), "nothing started: {:?}", d.list());

    // The same in the foreground: `drover run` exits before any worker starts.
    let home = Home::new();
    let file = web_file(&home, &format!("127.0.0.1:{port}"));
    let (out, timed_out) = output_within(&home, &["run", file.to_str().unwrap()], DEADLINE);
    assert!(!timed_out && out.status.code() == Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the address is in use"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("started pid="), "{}", out.stdout);
    let (out, _) = output_within(&home, &["daemon", "--metrics", &port.to_string()], DEADLINE);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("--metrics: cannot listen on 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn addresses_that_are_not_local_or_not_addresses_are_refused_with_file_line_and_key() {
    let home = Home::new();
    let script = fixture("http_worker.js");
    let app = format!("apps:\n  - script: {}\n", script.display());
    let cases: &[(&str, &str)] = &[
        (
            "metrics: 0.0.0.0:9615\n",
            "eco.yaml:1: metrics: 0.0.0.0:9615 is not a loopback address",
        ),
        (
            "metrics:\n  listen: 10.1.2.3:9615\n",
            "eco.yaml:2: metrics: 10.1.2.3:9615 is not a loopback address",
        ),
        ("metrics: lots\n", "eco.yaml:1: metrics: expected a port"),
        ("metrics: 70000\n", "eco.yaml:1: metrics: expected a port"),
        (
            "metrics:\n  listen: 9615\n  pubic: true\n",
            "eco.yaml:3: unknown key \"pubic\" in metrics (did you mean \"public\"?)",
        ),
        (
            "metrics:\n  public: true\n",
            "eco.yaml:1: metrics: the map needs listen:",
        ),
        (
            "metrix: 9615\n",
            "eco.yaml:1: unknown top-level key \"metrix\" (did you mean \"metrics\"?)",
        ),
    ];
    for (top, want) in cases {
        let file = home.write("eco.yaml", &format!("{top}{app}"));
        let (out, timed_out) = output_within(&home, &["run", file.to_str().unwrap()], DEADLINE);
        assert!(!timed_out, "{top}: started");
        assert_eq!(out.status.code(), Some(2), "{top}: {}", out.stderr);
        let want = want.replace("eco.yaml", &file.display().to_string());
        assert!(out.stderr.contains(&want), "{top}: {}", out.stderr);
    }
    let not_local = home.write("eco.yaml", &format!("metrics: \"[::]:9615\"\n{app}"));
    let out = home.output(&["run", not_local.to_str().unwrap()]);
    assert!(
        out.stderr.contains("public: true"),
        "the error says how to mean it: {}",
        out.stderr
    );
    for (args, want) in [
        (
            vec!["daemon", "--metrics", "0.0.0.0:9615"],
            "--metrics: 0.0.0.0:9615 is not a loopback address: every app's names and figures would be open to the network; add --metrics-public to mean it",
        ),
        (
            vec!["daemon", "--metrics", "nine"],
            "--metrics: expected a port",
        ),
        (
            vec!["run", script.to_str().unwrap(), "--metrics", "host:1"],
            "--metrics: expected a port",
        ),
    ] {
        let (out, timed_out) = output_within(&home, &args, DEADLINE);
        assert!(
            !timed_out && out.status.code() == Some(2),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_public_address_serves_when_the_file_says_so() {
    let d = Daemon::new();
    let file = web_file(&d.home, "{listen: \"0.0.0.0:0\", public: true}");
    d.ok(&["start", file.to_str().unwrap()]);
    let bound = metrics_addr(&d);
    assert!(bound.ip().is_unspecified(), "{bound}");
    let local = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    assert_eq!(get(local, "/healthz", None).status, "HTTP/1.1 200 OK");
}

#[test]
fn one_supervisor_serves_one_endpoint() {
    let d = Daemon::new();
    let script = fixture("http_worker.js");
    let eco = |name: &str, metrics: &str| {
        d.home.write(
            &format!("{name}.yaml"),
            &format!(
                "apps:\n  - name: {name}\n    script: {}\n    listen: 127.0.0.1:0\nmetrics: {metrics}\n",
                script.display()
            ),
        )
    };
    let a = eco("a", "127.0.0.1:0");
    d.ok(&["start", a.to_str().unwrap()]);
    let serving = metrics_addr(&d);
    // Another address: refused, and its app not started.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    drop(other);
    let b = eco("b", &format!("127.0.0.1:{other_port}"));
    let out = d.home.output(&["start", b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:5: metrics: 127.0.0.1:{other_port}: this supervisor serves its metrics on {serving} already (asked by {}:5)",
            b.display(),
            a.display()
        )),
        "{}",
        out.stderr
    );
    assert!(d.list().iter().all(|w| w["name"] == "a"), "b did not start");
    // The address it serves (as bound, or as asked) is no conflict: the file starts.
    let c = eco("c", &serving.to_string());
    d.ok(&["start", c.to_str().unwrap()]);
    d.wait_online("c", 1);
    assert_eq!(metrics_addr(&d), serving);
    // reload FILE applies the file's settings: the same address stands.
    d.ok(&["reload", c.to_str().unwrap()]);
    let samples = scrape(serving);
    assert!(value(&samples, "drover_worker_up", &[("app", "c")]).is_some());

    // Two files that disagree are refused before anything reaches a supervisor.
    let home = Home::new();
    let x = home.write(
        "x.yaml",
        &format!(
            "metrics: 9000\napps:\n  - name: x\n    script: {}\n",
            script.display()
        ),
    );
    let y = home.write(
        "y.yaml",
        &format!(
            "apps:\n  - name: y\n    script: {}\nmetrics: 9001\n",
            script.display()
        ),
    );
    let (out, _) = output_within(
        &home,
        &["run", x.to_str().unwrap(), y.to_str().unwrap()],
        DEADLINE,
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}:1: metrics: 127.0.0.1:9000 and {}:4: metrics: 127.0.0.1:9001: one supervisor serves one metrics endpoint",
            x.display(),
            y.display()
        )),
        "{}",
        out.stderr
    );
}

/// `drover update` hands the endpoint over with the rest: the same port, scrapes made
/// during the hand-over wait in its backlog and are answered, and the counters go on
/// from where they were (log lines are counted by the supervisor, not read back).
#[test]
fn the_endpoint_keeps_its_port_and_its_counts_across_an_in_place_update() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let d = Daemon::new();
    let file = web_file(&d.home, "127.0.0.1:0");
    d.ok(&["start", file.to_str().unwrap()]);
    let workers = d.wait_online("web", 2);
    let addr = listen_of(&workers[0]);
    wait_serving(addr);
    let metrics = metrics_addr(&d);
    let lines = |s: &[Sample]| {
        value(
            s,
            "drover_app_log_lines_total",
            &[("app", "web"), ("stream", "out")],
        )
        .unwrap_or(0.0)
    };
    for _ in 0..20 {
        get_json(addr, "/");
    }
    let before = wait_for("the requests' log lines counted", DEADLINE, || {
        let n = lines(&scrape(metrics));
        (n >= 22.0).then_some(n)
    });

    // Scrapes all through the update, each on a new connection: every one answered.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answered = 0u32;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let reply = get(metrics, "/metrics", None);
                assert_eq!(reply.status, "HTTP/1.1 200 OK", "{}", reply.body);
                answered += 1;
            }
            answered
        })
    };
    let new_binary = d.home.path().join("drover-new");
    std::fs::copy(DROVER, &new_binary).unwrap();
    std::fs::set_permissions(&new_binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = d.ok(&["update", "--binary", new_binary.to_str().unwrap()]);
    assert!(out.contains("updated in place"), "{out}");
    stop.store(true, Ordering::Relaxed);
    let answered = scraper
        .join()
        .expect("every scrape during the update answered");
    assert!(answered > 0);

    assert_eq!(metrics_addr(&d), metrics, "the same endpoint");
    let samples = scrape(metrics);
    let after = lines(&samples);
    assert!(after >= before, "log lines counted on: {before} → {after}");
    for w in &workers {
        assert_eq!(
            value(&samples, "drover_worker_up", &with(&labels_of(w), &[])),
            Some(1.0),
            "{w}"
        );
    }
    get_json(addr, "/");
    wait_for("a new line counted by the new image", DEADLINE, || {
        (lines(&scrape(metrics)) > after).then_some(())
    });
}
