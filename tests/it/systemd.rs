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

/// `drover run` under systemd re-executes itself on SIGUSR2 (gunicorn's signal): the
/// same pid, so systemd sees no restart, and it says RELOADING=1 then READY=1 around
/// it; the workers and their console lines go on.
#[test]
fn run_updates_itself_in_place_on_sigusr2_and_tells_systemd() {
    let home = Home::new();
    let notify = NotifySocket::bind();
    let eco = home.write(
        "eco.yaml",
        &format!(
            "apps:\n  - name: web\n    script: {}\n    instances: 2\n    listen: 127.0.0.1:0\n",
            fixture("http_worker.js").display()
        ),
    );
    let wrapper = notify.env_wrapper(&[]);
    let mut running = home.spawn_wrapped(&refs(&wrapper), &["run", eco.to_str().unwrap()]);
    let addr = running.listen_addr("web");
    let ready = notify.wait_line("READY=1", 0);
    wait_serving(addr);
    let pids: Vec<i32> = (0..20).map(|_| pid_of(&get_json(addr, "/"))).collect();

    running.signal(Signal::SIGUSR2);
    let reloading = notify.wait_line("RELOADING=1", ready + 1);
    notify.wait_line("READY=1", reloading + 1);
    running.wait_stderr("took over from drover");
    // Same process, same workers, still serving, still mirrored on the console.
    assert!(!is_gone(running.pid().as_raw()));
    let out = home.output(&["ping"]);
    assert!(
        out.stdout.contains(&format!("pid {},", running.pid()))
            && out.stdout.contains("updated in place"),
        "{}",
        out.stdout
    );
    for _ in 0..20 {
        let pid = pid_of(&get_json(addr, "/"));
        assert!(
            pids.contains(&pid),
            "pid {pid} is not one of the workers before: {pids:?}"
        );
    }
    let lines_before = running.stdout().matches("web#").count();
    let _ = get_json(addr, "/exit?code=3");
    wait_for(
        "the crashed worker's line and its successor's",
        DEADLINE,
        || (running.stdout().matches("web#").count() > lines_before).then_some(()),
    );
    running.signal(Signal::SIGTERM);
    notify.wait_line("STOPPING=1", reloading + 1);
    assert_eq!(
        running.wait_exit(DEADLINE).code(),
        Some(0),
        "{}",
        running.stderr()
    );
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

/// `systemd-analyze verify` of a unit file: passes with nothing to say (an unknown key
/// is only a warning, with status 0). A user unit is verified against a user manager,
/// which needs a runtime directory.
fn verify(unit: &std::path::Path, user: bool) {
    let runtime = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new("systemd-analyze");
    if user {
        cmd.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let out = cmd
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {}: {:?}\n{said}\n{}",
        unit.display(),
        out.status,
        std::fs::read_to_string(unit).unwrap_or_default()
    );
}

/// `drover startup <args> --unit-dir DIR` in `home`: the unit written, which must be
/// what `--print` shows.
fn install(home: &Home, dir: &std::path::Path, args: &[&str]) -> (PathBuf, String) {
    let mut full = vec!["startup"];
    full.extend_from_slice(args);
    let printed = home.output(&[full.as_slice(), &["--print"]].concat());
    assert!(printed.status.success(), "{}", printed.stderr);
    let dir_arg = dir.to_str().unwrap();
    let out = home.output(&[full.as_slice(), &["--unit-dir", dir_arg]].concat());
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let path: PathBuf = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .into();
    assert_eq!(path.parent(), Some(dir));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, printed.stdout, "--print shows what is written");
    // --print says on stderr what the unit is called and where it would go without
    // --unit-dir: systemd's own directory for its scope.
    let name = path.file_name().unwrap().to_str().unwrap();
    let systemd_dir = match args.contains(&"--user") {
        true => std::env::var_os("XDG_CONFIG_HOME")
            .filter(|c| !c.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".config"))
            .join("systemd/user"),
        false => PathBuf::from("/etc/systemd/system"),
    };
    assert!(
        printed.stderr.contains(&format!(
            "drover: this is {name}; `drover startup` without --print installs it as {}\n",
            systemd_dir.join(name).display()
        )),
        "{}",
        printed.stderr
    );
    // The home is a temp dir under /tmp: both say it may not outlive a reboot.
    let volatile = format!("drover: warning: DROVER_HOME {}", home.path().display());
    for said in [&printed.stderr, &out.stderr] {
        let warning = said.lines().find(|l| l.starts_with(&volatile));
        assert!(
            warning.is_some_and(|l| l.contains(" is under /tmp, which may not survive a reboot")),
            "{said}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    (path, out.stdout)
}

fn eco_file(home: &Home, name: &str) -> PathBuf {
    home.write(
        name,
        &format!(
            "apps:\n  - name: web\n    script: {}\n    listen: 127.0.0.1:0\n    env_production:\n      MODE: production\n",
            fixture("http_worker.js").display()
        ),
    )
}

#[test]
fn every_unit_startup_writes_passes_systemd_analyze_verify() {
    let home = Home::new();
    let units = tempfile::tempdir().unwrap();
    let eco = eco_file(&home, "shop.yaml");
    let eco = eco.to_str().unwrap();
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let drover = std::fs::canonicalize(DROVER).unwrap();
    let cases: Vec<(Vec<&str>, bool, String)> = vec![
        (vec![], false, format!("drover-{me}.service")),
        (
            vec!["systemd", "-u", "daemon"],
            false,
            "drover-daemon.service".into(),
        ),
        (vec!["--user"], true, "drover.service".into()),
        (
            vec!["--ecosystem", eco],
            false,
            format!("drover-{me}-shop.service"),
        ),
        (
            vec!["--ecosystem", eco, "--env", "production", "--user"],
            true,
            "drover-shop.service".into(),
        ),
    ];
    for (args, user, name) in cases {
        let (path, said) = install(&home, units.path(), &args);
        assert_eq!(
            path.file_name().unwrap().to_str(),
            Some(name.as_str()),
            "{args:?}"
        );
        verify(&path, user);
        let text = std::fs::read_to_string(&path).unwrap();
        let exec_start = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        assert!(
            exec_start.starts_with(&format!("{} ", drover.display())),
            "the absolute, canonical binary: {exec_start}"
        );
        assert!(
            text.contains("\nType=notify\n") && text.contains("\nWatchdogSec="),
            "{text}"
        );
        assert!(text.contains("\nKillMode=mixed\n"), "{text}");
        assert!(text.contains(" reload all\n"), "{text}");
        assert_eq!(text.contains("\nUser="), !user, "{text}");
        // A user manager has no network.target to order after.
        assert_eq!(text.contains("\nAfter=network.target\n"), !user, "{text}");
        if args.contains(&"--ecosystem") {
            assert!(exec_start.contains(&format!(" run {eco}")), "{exec_start}");
            // A stack has a home of its own: two stacks never share a supervisor.
            assert!(
                text.contains(&format!(
                    "DROVER_HOME={}/stacks/shop\"",
                    home.path().display()
                )),
                "{text}"
            );
            assert!(said.contains("start it now:"), "{said}");
        } else {
            assert!(exec_start.ends_with(" daemon --resurrect"), "{exec_start}");
            assert!(
                text.contains(&format!("DROVER_HOME={}\"", home.path().display())),
                "{text}"
            );
        }
        if args.contains(&"daemon") {
            assert!(text.contains("\nUser=daemon\nGroup=daemon\n"), "{text}");
        }
        assert!(
            said.contains(&format!(
                "daemon-reload && systemctl{} enable {name}",
                if user { " --user" } else { "" }
            )),
            "the commands that enable it: {said}"
        );
    }
    // Nothing but the units: no temp file left behind.
    let mut left: Vec<String> = std::fs::read_dir(units.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "drover-daemon.service".to_owned(),
            format!("drover-{me}-shop.service"),
            format!("drover-{me}.service"),
            "drover-shop.service".into(),
            "drover.service".into(),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
}

/// The unit's PATH is the caller's with each directory once, in its first place (a
/// shell profile that adds a directory twice writes it once).
#[test]
fn the_units_path_has_each_directory_once() {
    let home = Home::new();
    let out = home
        .command(&["startup", "--print"])
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/usr/local/bin:/bin:/usr/bin",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\nEnvironment=\"PATH=/usr/local/bin:/usr/bin:/bin\"\n"),
        "{stdout}"
    );
}

#[test]
fn startup_replaces_only_its_own_unit_and_unstartup_removes_it() {
    let home = Home::new();
    let units = tempfile::tempdir().unwrap();
    let dir = units.path().to_str().unwrap();
    let (unit, _) = install(&home, units.path(), &[]);
    // A re-run (drover moved, PATH changed) replaces it.
    install(&home, units.path(), &[]);

    // Two stacks whose files have one name: the second needs a name of its own.
    let a = home.path().join("a");
    let b = home.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let shop_a = eco_file(&home, "a/ecosystem.yaml");
    let shop_b = eco_file(&home, "b/ecosystem.yaml");
    let (first, _) = install(
        &home,
        units.path(),
        &["--ecosystem", shop_a.to_str().unwrap(), "-u", "daemon"],
    );
    assert_eq!(
        first.file_name().unwrap(),
        "drover-daemon-a.service",
        "named after its directory"
    );
    let out = home.output(&[
        "startup",
        "--ecosystem",
        shop_b.to_str().unwrap(),
        "-u",
        "daemon",
        "--service-name",
        "drover-daemon-a",
        "--unit-dir",
        dir,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "already runs ecosystem {}: give this one --service-name",
            shop_a.display()
        )),
        "{}",
        out.stderr
    );
    let (second, _) = install(
        &home,
        units.path(),
        &[
            "--ecosystem",
            shop_b.to_str().unwrap(),
            "-u",
            "daemon",
            "--service-name",
            "shop-b",
        ],
    );
    assert_eq!(second.file_name().unwrap(), "shop-b.service");

    // A unit drover did not write is neither replaced nor removed.
    let theirs = units.path().join("drover-daemon.service");
    std::fs::write(&theirs, "[Service]\nExecStart=/bin/true\n").unwrap();
    let out = home.output(&["startup", "-u", "daemon", "--unit-dir", dir]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("was not written by drover startup"),
        "{}",
        out.stderr
    );
    let out = home.output(&["unstartup", "-u", "daemon", "--unit-dir", dir]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&theirs).unwrap(),
        "[Service]\nExecStart=/bin/true\n"
    );

    let out = home.output(&["unstartup", "--unit-dir", dir]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("disable --now"), "{}", out.stdout);
    assert!(!unit.exists());
    let out = home.output(&["unstartup", "--unit-dir", dir]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("nothing to undo"), "{}", out.stderr);
    let out = home.output(&[
        "unstartup",
        "--ecosystem",
        shop_b.to_str().unwrap(),
        "-u",
        "daemon",
        "--service-name",
        "shop-b",
        "--unit-dir",
        dir,
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!second.exists() && first.exists());
}

/// Each bad input: one line naming the cause, a non-zero status, nothing written.
#[test]
fn bad_startup_input_is_one_line_and_writes_nothing() {
    let home = Home::new();
    let units = tempfile::tempdir().unwrap();
    let dir = units.path().to_str().unwrap();
    let missing = home.path().join("missing.yaml");
    let broken = home.write("broken.yaml", "apps:\n  - name: x\n    scrip: a.js\n");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["-u", "no-such-user-here"],
            2,
            "-u no-such-user-here: no such user on this system".into(),
        ),
        (vec!["upstart"], 2, "invalid value 'upstart'".into()),
        (
            vec!["--ecosystem", missing.to_str().unwrap()],
            2,
            format!("--ecosystem {}: No such file", missing.display()),
        ),
        (
            vec!["--ecosystem", broken.to_str().unwrap()],
            2,
            format!("{}:3", broken.display()),
        ),
        (
            vec!["--service-name", "a/b"],
            2,
            "--service-name a/b: a unit name is".into(),
        ),
        (
            vec!["--user", "-u", "daemon"],
            2,
            "cannot be used with".into(),
        ),
        // A unit directory nobody may write (root included).
        (vec![], 1, "cannot write the unit into /proc/1/units".into()),
    ];
    for (args, code, says) in cases {
        let mut full = vec!["startup"];
        full.extend_from_slice(&args);
        let unit_dir = if says.contains("/proc/1/units") {
            "/proc/1/units"
        } else {
            dir
        };
        full.extend_from_slice(&["--unit-dir", unit_dir]);
        let out = home.output(&full);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(&says), "{args:?}: {}", out.stderr);
        if !says.contains("invalid value") && !says.contains("cannot be used with") {
            assert_eq!(
                out.stderr.trim().lines().count(),
                1,
                "{args:?}: one line: {}",
                out.stderr
            );
        }
    }
    assert_eq!(
        std::fs::read_dir(units.path()).unwrap().count(),
        0,
        "nothing written"
    );

    // No systemd on this machine (a container): nothing is installed in its directory.
    if !std::path::Path::new("/run/systemd/system").exists() {
        let before = std::fs::read_dir("/etc/systemd/system")
            .map(|d| d.count())
            .unwrap_or(0);
        let out = home.output(&["startup"]);
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains("systemd is not running here"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
        let after = std::fs::read_dir("/etc/systemd/system")
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(before, after);
    }
}

/// A full disk while a unit is rewritten: the old unit stays whole, no temp file is left.
#[test]
fn a_unit_is_written_whole_or_not_at_all() {
    let home = Home::new();
    let dir = home.path().join("units");
    std::fs::create_dir(&dir).unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=4k tmpfs "$DIR"
printf '%s\n' '# Written by `drover startup`; `drover unstartup` removes it.' '# drover-startup: daemon' '[Service]' > "$DIR/old.service"
head -c 8192 /dev/zero > "$DIR/filler" 2>/dev/null || true
set +e
"$DROVER" startup --service-name old --unit-dir "$DIR"
echo "status $?"
ls -A "$DIR"
cat "$DIR/old.service""#;
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c", script])
        .env("DIR", &dir)
        .env("DROVER", DROVER)
        .env("DROVER_HOME", home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("status 1"), "{stdout}{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let listed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("status"))
        .skip(1)
        .take(2)
        .collect();
    assert_eq!(listed, ["filler", "old.service"], "{stdout}");
    assert!(
        stdout.ends_with("# drover-startup: daemon\n[Service]\n"),
        "{stdout}"
    );
}
