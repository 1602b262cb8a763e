//! `drover export nginx|haproxy`: the configurations pass the real `nginx -t` and
//! `haproxy -c` (Debian packages, installed by .ci/run), and a real HAProxy in front of
//! two drover supervisors routes around the one whose app is stopped.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// The absolute path of a program the tests need, or a failure saying who installs it.
fn program(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("{name} is not installed (.ci/run installs it with apt-get)"))
}

/// `haproxy -c` on `files`: valid, and not one warning.
fn haproxy_accepts(files: &[&Path]) {
    let mut cmd = Command::new(program("haproxy"));
    cmd.arg("-c");
    for f in files {
        cmd.arg("-f").arg(f);
    }
    let out = cmd.output().expect("run haproxy -c");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let config: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        out.status.success() && !text.contains("[WARNING]") && !text.contains("[ALERT]"),
        "haproxy -c: {text}\n{config}"
    );
}

/// `nginx -t` on an exported file included in an http block, as conf.d files are, with
/// every path nginx writes in a temp dir (nginx -t as root opens them).
fn nginx_accepts(home: &Home, name: &str, exported: &str) {
    let dir = home.path().join(format!("nginx-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let site = dir.join("site.conf");
    std::fs::write(&site, exported).unwrap();
    let d = dir.display();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    include {};\n}}\n",
        site.display()
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let out = Command::new(program("nginx"))
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("run nginx -t");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("test is successful") && !text.contains("[warn]"),
        "nginx -t: {text}\n{exported}"
    );
}

/// Every kind of address an app can have, in one supervisor: a shared TCP listener, one
/// port per instance (increment_var: PORT; its workers are `sleep`s, nothing binds the
/// ports), a unix socket, and an app with no address at all.
fn four_apps(d: &Daemon) -> String {
    let worker = fixture("http_worker.js");
    let sock = d.home.path().join("api.sock");
    let eco = d.home.write(
        "eco.yaml",
        &format!(
            "apps:
  - name: api
    script: {worker}
    instances: 2
    listen: 127.0.0.1:0
  - name: shards
    script: sleep
    args: ['600']
    exec_mode: fork
    instances: 3
    increment_var: PORT
    env: {{PORT: 4100}}
  - name: sock
    script: {worker}
    listen: unix:{sock}
  - name: queue
    script: sleep
    args: ['600']
",
            worker = worker.display(),
            sock = sock.display()
        ),
    );
    d.ok(&["start", eco.to_str().unwrap()]);
    d.wait_online("api", 2);
    d.wait_online("shards", 3);
    d.wait_online("sock", 1);
    d.wait_online("queue", 1);
    let api = d.list().into_iter().find(|w| w["name"] == "api").unwrap();
    listen_of(&api).to_string()
}

#[test]
fn exported_configurations_pass_haproxy_and_nginx_own_checks() {
    let d = Daemon::new();
    let api = four_apps(&d);

    let variants: &[&[&str]] = &[
        &[],
        &["--listen", "127.0.0.1:8080", "--health-path", "/ready"],
        &[
            "--server",
            "10.0.0.5",
            "--server",
            "10.0.0.6",
            "--listen",
            "[::1]:8443",
        ],
        &["--listen", "unix:lb.sock"],
    ];
    let mut checked = 0;
    for app in ["api", "shards", "sock"] {
        for flags in variants {
            // Other machines cannot reach a unix socket or a loopback address: refused
            // (below), so there is nothing to check.
            if flags.contains(&"--server") && app != "shards" {
                continue;
            }
            let mut args = vec!["export", "haproxy", app];
            args.extend_from_slice(flags);
            let text = d.ok(&args);
            let file = d.home.write(&format!("haproxy-{checked}.cfg"), &text);
            haproxy_accepts(&[&file]);

            let mut args = vec!["export", "nginx", app];
            args.extend_from_slice(flags);
            let text = d.ok(&args);
            nginx_accepts(&d.home, &checked.to_string(), &text);
            checked += 1;
        }
    }
    assert_eq!(checked, 10);

    // Every flag of each, at once.
    let text = d.ok(&[
        "export",
        "haproxy",
        "shards",
        "--tcp-check",
        "--inter",
        "250ms",
        "--fall",
        "1",
        "--rise",
        "4",
        "--server",
        "127.0.0.1",
        "--server",
        "::1",
    ]);
    assert!(
        text.contains("default-server check inter 250ms fall 1 rise 4"),
        "{text}"
    );
    assert!(!text.contains("httpchk"), "{text}");
    assert!(text.contains("    server ::1:4102 [::1]:4102\n"), "{text}");
    haproxy_accepts(&[&d.home.write("haproxy-flags.cfg", &text)]);
    let text = d.ok(&[
        "export",
        "nginx",
        "shards",
        "--max-fails",
        "0",
        "--fail-timeout",
        "2m",
        "--keepalive",
        "0",
    ]);
    assert!(
        text.contains("    server 127.0.0.1:4101 max_fails=0 fail_timeout=120s;\n"),
        "{text}"
    );
    assert!(!text.contains("keepalive "), "{text}");
    nginx_accepts(&d.home, "flags", &text);

    // What each app's servers are.
    let haproxy = d.ok(&["export", "haproxy", "api"]);
    assert!(
        haproxy.contains(&format!("    server {api} {api}\n")),
        "{haproxy}"
    );
    let shards = d.ok(&[
        "export", "nginx", "shards", "--server", "10.0.0.5", "--server", "10.0.0.6",
    ]);
    let servers: Vec<&str> = shards
        .lines()
        .filter_map(|l| l.strip_prefix("    server "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        servers,
        [
            "10.0.0.5:4100",
            "10.0.0.5:4101",
            "10.0.0.5:4102",
            "10.0.0.6:4100",
            "10.0.0.6:4101",
            "10.0.0.6:4102"
        ]
    );
    let sock = d.ok(&["export", "nginx", "sock"]);
    let path = d.home.path().join("api.sock");
    assert!(
        sock.contains(&format!("    server unix:{} ", path.display())),
        "{sock}"
    );
    // A worker id names its app; scaling changes the servers.
    let id = d
        .list()
        .into_iter()
        .find(|w| w["name"] == "shards")
        .unwrap()["id"]
        .to_string();
    assert_eq!(
        d.ok(&["export", "nginx", &id]),
        d.ok(&["export", "nginx", "shards"])
    );
    d.ok(&["scale", "shards", "2"]);
    let after = d.ok(&["export", "haproxy", "shards"]);
    assert!(
        after.contains("127.0.0.1:4101") && !after.contains("127.0.0.1:4102"),
        "{after}"
    );
}

#[test]
fn export_refuses_what_a_balancer_cannot_reach_in_one_line() {
    let d = Daemon::new();
    // No supervisor: an error, and none is started for it.
    let out = d.home.output(&["export", "haproxy", "api"]);
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    assert!(daemons_for(d.home.path()).is_empty());
    assert!(!d.home.path().join("drover.sock").exists());

    four_apps(&d);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["export", "haproxy", "queue"],
            2,
            "app queue has no address",
        ),
        (&["export", "nginx", "nope"], 4, "no app named nope"),
        (
            &["export", "haproxy"],
            2,
            "several apps have an address (api, shards, sock): name the one to export",
        ),
        (
            &["export", "nginx", "sock", "--server", "10.0.0.5"],
            2,
            "which other machines cannot reach: --server 10.0.0.5 needs a TCP address",
        ),
        (
            &["export", "haproxy", "api", "--server", "10.0.0.5"],
            2,
            "which other machines cannot reach: to use --server 10.0.0.5, listen on every interface",
        ),
        (
            &["export", "nginx", "api", "--listen", "0"],
            2,
            "--listen: the load balancer needs a port of its own",
        ),
        (
            &[
                "export", "haproxy", "shards", "--server", "10.0.0.5", "--server", "10.0.0.5",
            ],
            2,
            "--server 10.0.0.5 is given twice",
        ),
    ];
    for (args, code, message) in cases {
        let out = d.home.output(args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", out.stdout);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
    }
    // Flags clap checks: usage errors (2) naming the flag, nothing printed on stdout.
    let flags: &[(&[&str], &str)] = &[
        (
            &["export", "nginx", "api", "--fail-timeout", "1500ms"],
            "whole seconds",
        ),
        (&["export", "haproxy", "api", "--inter", "0"], "more than 0"),
        (&["export", "haproxy", "api", "--fall", "0"], "--fall"),
        (
            &[
                "export",
                "haproxy",
                "api",
                "--tcp-check",
                "--health-path",
                "/x",
            ],
            "--health-path",
        ),
        (&["export", "nginx", "api", "--tcp-check"], "--tcp-check"),
        (
            &["export", "nginx", "api", "--server", "web:3000"],
            "the ports are the app's",
        ),
        (
            &["export", "haproxy", "api", "--health-path", "health check"],
            "--health-path",
        ),
        (&["export", "haproxy", "all"], "export takes one app"),
        (&["export", "apache", "api"], "apache"),
    ];
    for (args, message) in flags {
        let out = d.home.output(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", out.stdout);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
    }
    // Nothing running was touched.
    for name in ["api", "shards", "sock", "queue"] {
        assert!(d.statuses(name).iter().all(|s| s == "online"), "{name}");
    }
}

/// HAProxy's runtime API: the operational state of each server of `backend`
/// (`show servers state`: 0 stopped, 2 running), by server name.
fn server_states(socket: &Path, backend: &str) -> Option<Vec<(String, u32)>> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .write_all(format!("show servers state {backend}\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    // A version line, a header line starting with #, then one line per server.
    let states: Vec<(String, u32)> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some((fields.get(3)?.to_string(), fields.get(5)?.parse().ok()?))
        })
        .collect();
    (!states.is_empty()).then_some(states)
}

/// The fleet case on one machine: two supervisors (two "machines") run the same app on
/// the same port, one on 127.0.0.1 and one on 127.0.0.2 (both loopback), and a real
/// HAProxy fronts them with the backend `drover export haproxy --server 127.0.0.1
/// --server 127.0.0.2` prints.
///
/// Ports, race-free: the first app binds 127.0.0.1:0 and the kernel picks P; the second
/// binds 127.0.0.2:P, which only a socket on 127.0.0.2 (none but this test's) or one on
/// every address (impossible while 127.0.0.1:P is bound) could hold. HAProxy cannot bind
/// port 0 and say which port it got, so it runs as a drover app itself: drover binds
/// 127.0.0.1:0 and hands it the socket as fd 3, the way it hands any worker its
/// listener, and the exported frontend's `bind` line becomes `bind fd@3`. Dropping the
/// supervisors stops HAProxy with everything else.
#[test]
fn haproxy_routes_around_a_machine_whose_app_is_stopped() {
    let first = Daemon::new();
    let second = Daemon::new();
    let front = Daemon::new();

    let addr = first.start_http("api", 2, &[]);
    let port = addr.port();
    let worker = fixture("http_worker.js");
    let second_addr = format!("127.0.0.2:{port}");
    second.ok(&[
        "start",
        worker.to_str().unwrap(),
        "-i",
        "2",
        "--listen",
        &second_addr,
        "--name",
        "api",
    ]);
    second.wait_online("api", 2);
    let pids = |d: &Daemon| -> Vec<i32> {
        d.list()
            .iter()
            .filter_map(|w| w["pid"].as_i64().map(|p| p as i32))
            .collect()
    };
    let (first_pids, second_pids) = (pids(&first), pids(&second));

    let exported = first.ok(&[
        "export",
        "haproxy",
        "api",
        "--server",
        "127.0.0.1",
        "--server",
        "127.0.0.2",
        "--inter",
        "100ms",
    ]);
    assert_eq!(
        exported.matches("\n    bind :80\n").count(),
        1,
        "{exported}"
    );
    let config = front.home.write(
        "lb.cfg",
        &exported.replace("\n    bind :80\n", "\n    bind fd@3\n"),
    );
    let stats = front.home.path().join("haproxy.sock");
    let global = front.home.write(
        "stats.cfg",
        &format!(
            "global\n    stats socket {} mode 600 level admin\n",
            stats.display()
        ),
    );
    let haproxy = program("haproxy");
    front.ok(&[
        "start",
        haproxy.to_str().unwrap(),
        "--name",
        "lb",
        "--listen",
        "127.0.0.1:0",
        "--",
        "-db",
        "-f",
        config.to_str().unwrap(),
        "-f",
        global.to_str().unwrap(),
    ]);
    let lb: SocketAddr = listen_of(&front.wait_online("lb", 1)[0]);
    let names = [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}")];
    wait_for("HAProxy to see both servers up", DEADLINE, || {
        let states = server_states(&stats, "api")?;
        (states.len() == 2 && states.iter().all(|(_, s)| *s == 2)).then_some(())
    });

    // Both machines answer (leastconn takes turns between idle servers).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(pid_of(&get_json(lb, "/")));
    }
    assert!(
        seen.iter().any(|p| first_pids.contains(p)) && seen.iter().any(|p| second_pids.contains(p)),
        "answers from {seen:?}; first {first_pids:?}, second {second_pids:?}"
    );

    second.ok(&["stop", "api"]);
    wait_for("HAProxy to take the stopped machine out", DEADLINE, || {
        let states = server_states(&stats, "api")?;
        let state = |name: &str| states.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        (state(&names[0]) == Some(2) && state(&names[1]) == Some(0)).then_some(())
    });

    // A bounded batch, new connections and kept-alive ones: every request answered, by
    // the first machine.
    let batch: Vec<std::thread::JoinHandle<Tally>> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                let mut kept = KeepAlive::new(lb);
                for _ in 0..50 {
                    let reply = if i % 2 == 0 {
                        get(lb, "/")
                    } else {
                        kept.get("/")
                    };
                    match reply {
                        Reply::Ok(body) => {
                            tally.ok += 1;
                            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                            tally.pids.insert(pid_of(&v));
                        }
                        Reply::Refused => tally.refused += 1,
                        Reply::Failed(e) => tally.failed.push(e),
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for t in batch {
        let t = t.join().unwrap();
        all.ok += t.ok;
        all.refused += t.refused;
        all.failed.extend(t.failed);
        all.pids.extend(t.pids);
    }
    assert!(all.clean() && all.ok == 200, "{all:?}");
    assert!(all.pids.iter().all(|p| first_pids.contains(p)), "{all:?}");

    let lb_pid = front.list()[0]["pid"].as_i64().unwrap() as i32;
    front.ok(&["kill"]);
    wait_for("HAProxy to be gone", DEADLINE, || {
        is_gone(lb_pid).then_some(())
    });
}
