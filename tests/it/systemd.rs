//! drover under systemd: the test plays the service manager's NOTIFY_SOCKET (a Unix
//! datagram socket in a short temp dir) and checks what the supervisor tells it at
//! start, reload, stop and for the watchdog; and every unit `drover startup` writes
//! passes `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

/// The service manager's end: every datagram received, with when.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::Builder::new()
            .prefix("n")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (received, stop) = (received.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        received.lock().unwrap().push((Instant::now(), text));
                    }
                }
            })
        };
        NotifySocket {
            _dir: dir,
            path,
            received,
            stop,
            reader: Some(reader),
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.received.lock().unwrap().clone()
    }

    /// Waits for a message with the line `line`; returns its index.
    fn wait_line(&self, line: &str, after: usize) -> usize {
        wait_for(&format!("{line} on NOTIFY_SOCKET"), DEADLINE, || {
            self.messages()
                .iter()
                .enumerate()
                .skip(after)
                .find(|(_, (_, m))| m.lines().any(|l| l == line))
                .map(|(i, _)| i)
        })
    }

    /// `env NOTIFY_SOCKET=… <vars…>`: the wrapper that starts drover as systemd would.
    fn env_wrapper<'a>(&'a self, vars: &'a [&'a str]) -> Vec<String> {
        let mut w = vec![
            "env".to_owned(),
            format!("NOTIFY_SOCKET={}", self.path.display()),
        ];
        w.extend(vars.iter().map(|v| (*v).to_owned()));
        w
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn lines_of(message: &str) -> Vec<&str> {
    message.lines().collect()
}

fn value_of<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn monotonic_usec() -> i128 {
    match sd_notify::NotifyState::monotonic_usec_now().unwrap() {
        sd_notify::NotifyState::MonotonicUsec(usec) => usec,
        other => panic!("{other:?}"),
    }
}

/// Two apps, one of which crash-loops: READY=1 comes once the good one is online and
/// the bad one has errored; then `drover reload all` (ExecReload=) is RELOADING=1 with
/// the monotonic clock, then READY=1; SIGTERM is STOPPING=1. Workers never see the
/// service manager's variables.
#[test]
fn run_tells_the_service_manager_ready_reloading_and_stopping() {
    let home = Home::new();
    let notify = NotifySocket::bind();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n  - name: crashy\n    script: {}\n    max_restarts: 2\n    env:\n      CRASH_COUNT_FILE: /dev/null\n",
            fixture("http_worker.js").display(),
            fixture("crasher.sh").display()
        ),
    );
    let wrapper = notify.env_wrapper(&["WATCHDOG_USEC=60000000"]);
    let mut running = home.spawn_wrapped(&refs(&wrapper), &["run", eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");

    let ready = notify.wait_line("READY=1", 0);
    let messages = notify.messages();
    let (_, first) = &messages[0];
    assert!(
        first.contains("STATUS=0/3 workers online, 0 errored"),
        "the first word is the status before any worker is up: {first:?}"
    );
    for (_, m) in &messages[..ready] {
        assert!(!m.contains("READY=1"), "{messages:?}");
    }
    let (_, at_ready) = &messages[ready];
    assert_eq!(
        value_of(at_ready, "STATUS"),
        Some("2/3 workers online, 1 errored"),
        "READY=1 once every worker is online or has failed: {messages:?}"
    );
    // The workers have the supervisor's environment without systemd's variables.
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        let reply = get_json(addr, &format!("/env?name={var}"));
        assert!(reply["value"].is_null(), "a worker sees {var}: {reply}");
    }

    // ExecReload=drover reload all.
    let before = monotonic_usec();
    let out = home.output(&["reload", "all"]);
    let after = monotonic_usec();
    // It fails (crashy's new worker exits): the old workers serve, and systemd still
    // hears READY=1.
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    let reloading = notify.wait_line("RELOADING=1", ready + 1);
    let reloaded = notify.wait_line("READY=1", reloading + 1);
    let messages = notify.messages();
    let (_, m) = &messages[reloading];
    let usec: i128 = value_of(m, "MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {m:?}"))
        .parse()
        .unwrap();
    assert!(
        before <= usec && usec <= after,
        "{before} <= {usec} <= {after}"
    );
    assert!(
        value_of(m, "STATUS").is_some_and(|s| s.starts_with("reloading: ")),
        "{m:?}"
    );
    assert!(
        value_of(&messages[reloaded].1, "STATUS").is_some_and(|s| !s.starts_with("reloading")),
        "{messages:?}"
    );

    running.signal(Signal::SIGTERM);
    let stopping = notify.wait_line("STOPPING=1", reloaded + 1);
    let status = running.wait_exit(DEADLINE);
    // The reload gave crashy another run: whether it is errored again when SIGTERM comes
    // (status 3) or still restarting (0) depends on timing.
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{status:?}: {}",
        running.stderr()
    );
    let messages = notify.messages();
    assert!(
        value_of(&messages[stopping].1, "STATUS").is_some_and(|s| s.starts_with("stopping: ")),
        "{messages:?}"
    );
    assert!(
        !messages[stopping..]
            .iter()
            .any(|(_, m)| lines_of(m).contains(&"READY=1")),
        "{messages:?}"
    );
}

/// `drover daemon --resurrect` (the unit's ExecStart): READY=1 once the saved apps'
/// workers are online; `drover kill` is STOPPING=1.
#[test]
fn daemon_resurrect_is_ready_once_the_saved_apps_are_online() {
    let d = Daemon::new();
    d.start_http("api", 2, &[]);
    d.ok(&["save"]);
    d.ok(&["kill"]);

    let notify = NotifySocket::bind();
    let wrapper = notify.env_wrapper(&[]);
    let mut daemon = d
        .home
        .spawn_wrapped(&refs(&wrapper), &["daemon", "--resurrect"]);
    let ready = notify.wait_line("READY=1", 0);
    let messages = notify.messages();
    assert_eq!(
        value_of(&messages[ready].1, "STATUS"),
        Some("2/2 workers online, 0 errored"),
        "{messages:?}"
    );
    assert_eq!(d.statuses("api"), ["online", "online"]);
    d.ok(&["kill"]);
    notify.wait_line("STOPPING=1", ready + 1);
    assert_eq!(daemon.wait_exit(DEADLINE).code(), Some(0));
}

/// Counts WATCHDOG=1 between `from` and `from + window`.
fn pings_within(notify: &NotifySocket, from: Instant, window: Duration) -> Vec<Instant> {
    wait_for("the window to pass", window + DEADLINE, || {
        (Instant::now() >= from + window).then_some(())
    });
    notify
        .messages()
        .into_iter()
        .filter(|(at, m)| *at >= from && *at < from + window && lines_of(m).contains(&"WATCHDOG=1"))
        .map(|(at, _)| at)
        .collect()
}

/// WATCHDOG_USEC=1 s: a ping about every 500 ms, counted over 3 s; none when
/// WATCHDOG_PID names another process.
#[test]
fn the_watchdog_is_pinged_at_half_of_watchdog_usec_and_only_for_our_pid() {
    let home = Home::new();
    let notify = NotifySocket::bind();
    let wrapper = notify.env_wrapper(&["WATCHDOG_USEC=1000000"]);
    let _daemon = home.spawn_wrapped(&refs(&wrapper), &["daemon"]);
    let first = notify.wait_line("WATCHDOG=1", 0);
    let from = notify.messages()[first].0;
    let window = Duration::from_secs(3);
    let pings = pings_within(&notify, from, window);
    // 3 s / 500 ms = 6 pings from the first one on (a late one on a loaded machine may
    // drop one or two; more would mean a shorter period).
    assert!(
        (4..=7).contains(&pings.len()),
        "{} pings in {window:?}: {pings:?}",
        pings.len()
    );
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(400)),
        "pings closer than half of WATCHDOG_USEC: {gaps:?}"
    );

    // WATCHDOG_PID of another process: the watchdog is not ours to ping.
    let home = Home::new();
    let notify = NotifySocket::bind();
    let wrapper = notify.env_wrapper(&["WATCHDOG_USEC=200000", "WATCHDOG_PID=1"]);
    let _daemon = home.spawn_wrapped(&refs(&wrapper), &["daemon"]);
    let ready = notify.wait_line("READY=1", 0);
    let from = notify.messages()[ready].0;
    let pings = pings_within(&notify, from, Duration::from_secs(1));
    assert!(pings.is_empty(), "{pings:?}");
}
