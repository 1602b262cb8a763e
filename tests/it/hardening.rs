//! The control socket and DROVER_HOME cannot be abused: silent and oversized clients
//! neither stall others nor grow the supervisor's memory past its caps; a home that
//! another user owns or may write, a symlink planted at drover.log, and a socket served
//! by another user are all refused before anything is written or sent.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use drover::protocol::Request;

use crate::harness::*;

/// A line from `/proc/<pid>/status`, in kB.
fn status_kb(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

fn list_median(d: &Daemon) -> Duration {
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let (answer, took) = d.call(&Request::List);
            assert!(answer.is_ok(), "{answer:?}");
            took
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn silent_and_huge_unterminated_clients_neither_stall_list_nor_grow_memory() {
    let d = Daemon::new();
    d.start_http("api", 1, &[]);
    let supervisor = d.supervisor_pid().unwrap();
    let socket = d.home.path().join("drover.sock");
    let rss_before = status_kb(supervisor, "VmRSS:");

    // 500 clients that connect and say nothing, all at once.
    let silent: Vec<UnixStream> = (0..500)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let median = list_median(&d);
    assert!(
        median < Duration::from_millis(100),
        "500 silent clients: {median:?}"
    );

    // 100 clients each sending 4 MiB without a newline, holding their connection open.
    let huge: Vec<_> = (0..100)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                // Refused once the pool is spent: the write then fails, which is fine.
                let _ = s.write_all(&vec![b'x'; 4 << 20]);
                s
            })
        })
        .collect();
    // While they write, this process's 100 writer threads compete for the same 2 cores
    // as the supervisor: served (a stalled loop would not answer at all), if not fast.
    let median = list_median(&d);
    assert!(
        median < Duration::from_secs(1),
        "100 huge clients writing: {median:?}"
    );
    // Once they hold their 4 MiB, unterminated, list is as fast as ever.
    let huge: Vec<UnixStream> = huge.into_iter().map(|t| t.join().unwrap()).collect();
    let median = list_median(&d);
    assert!(
        median < Duration::from_millis(100),
        "100 huge clients holding: {median:?}"
    );

    // The peak: the 16 MiB pool, 16 KiB per connection and a little slack; without the
    // caps it was 100 × 4 MiB.
    let peak = status_kb(supervisor, "VmHWM:");
    assert!(
        peak < rss_before + 48 * 1024,
        "peak RSS {peak} kB, {rss_before} kB before"
    );
    drop(huge);
    drop(silent);
    assert_eq!(d.list().len(), 1, "the app is untouched");
}

#[test]
fn a_home_of_another_user_or_writable_by_others_is_refused() {
    let base = Home::new();
    let foreign = base.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (dir, needle) in [
        (&foreign, "belongs to uid 65534"),
        (&open, "writable by others"),
    ] {
        let out = Command::new(DROVER)
            .arg("ping")
            .env("DROVER_HOME", dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            std::fs::read_dir(dir).unwrap().next().is_none(),
            "nothing written in {dir:?}"
        );
        assert!(daemons_for(dir).is_empty());
    }
}

#[test]
fn a_symlink_planted_at_drover_log_is_refused() {
    let home = Home::new();
    let target = home.path().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&target, home.path().join("drover.log")).unwrap();
    let out = home.output(&["ping"]);
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    assert!(out.stderr.contains("is a symlink"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert!(daemons_for(home.path()).is_empty());
}

#[test]
fn a_socket_served_by_another_user_gets_no_request() {
    // A listener run by nobody, in a directory nobody may write; its socket is then
    // linked into our home as drover.sock.
    let outside = Home::new();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = outside.path().join("s.sock");
    let script = "import socket, sys\n\
s = socket.socket(socket.AF_UNIX)\n\
s.bind(sys.argv[1]); s.listen()\n\
print('ready', flush=True)\n\
c, _ = s.accept(); c.settimeout(10)\n\
data = b''\n\
while True:\n    chunk = c.recv(65536)\n    if not chunk: break\n    data += chunk\n\
print('received', len(data), flush=True)\n";
    let mut listener = {
        use std::os::unix::process::CommandExt;
        Command::new("python3")
            .args(["-c", script, theirs.to_str().unwrap()])
            .current_dir("/")
            .uid(65534)
            .gid(65534)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let home = Home::new();
    std::fs::hard_link(&theirs, home.path().join("drover.sock")).unwrap();
    let out = home.output(&["stop", "api"]);
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    assert!(out.stderr.contains("served by uid 65534"), "{}", out.stderr);
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "received 0",
        "nothing was sent"
    );
    let _ = listener.kill();
    let _ = listener.wait();
}
