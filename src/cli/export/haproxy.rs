//! The HAProxy text: defaults (the guide's timeouts, retries that move a refused request
//! to another server), a frontend, and a backend of the app's servers (leastconn, active
//! health checks, keep-alive to the servers).

use std::fmt::Write;

use super::{Bind, Front, HaproxyArgs, Server, duration_text, servers_phrase};

/// A server's address as HAProxy's `server` line takes it.
fn address(server: &Server) -> String {
    match server {
        Server::Tcp { host, port } => format!("{host}:{port}"),
        Server::Unix(path) => format!("unix@{}", path.display()),
    }
}

/// A server's name: its address (HAProxy's names take letters, digits, `-_.:`), so the
/// stats and `show servers state` say which machine and port it is.
fn name(server: &Server, app: &str) -> String {
    match server {
        Server::Tcp { host, port } => {
            let host = host.to_string();
            format!(
                "{}:{port}",
                host.trim_start_matches('[').trim_end_matches(']')
            )
        }
        Server::Unix(_) => format!("{app}.sock"),
    }
}

fn bind(bind: &Bind) -> String {
    match bind {
        Bind::Port(port) => format!(":{port}"),
        Bind::Tcp(addr) => addr.to_string(),
        Bind::Unix(path) => format!("unix@{}", path.display()),
    }
}

pub(super) fn render(front: &Front, args: &HaproxyArgs) -> String {
    let app = &front.app;
    let inter = duration_text(args.inter);
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HAProxy in front of drover app {app}: {} (drover export haproxy).",
        servers_phrase(front.servers.len())
    );
    let check = if args.tcp_check {
        "its port must accept a connection".to_owned()
    } else {
        format!("GET {} must answer 200", args.common.health_path)
    };
    let _ = writeln!(
        w,
        "# Each server is checked every {inter} ({check}): {} failures in a row take it out,",
        args.fall
    );
    let _ = writeln!(
        w,
        "# {} successes bring it back; a request a stopped server refuses is retried on another.",
        args.rise
    );
    let _ = writeln!(w, "defaults");
    let _ = writeln!(w, "    mode http");
    let _ = writeln!(w, "    timeout connect 5s");
    let _ = writeln!(w, "    timeout client 50s");
    let _ = writeln!(w, "    timeout server 50s");
    let _ = writeln!(w, "    retries 3");
    let _ = writeln!(w, "    option redispatch");
    let _ = writeln!(w);
    let _ = writeln!(w, "frontend {app}");
    let _ = writeln!(w, "    bind {}", bind(&front.bind));
    let _ = writeln!(w, "    default_backend {app}");
    let _ = writeln!(w);
    let _ = writeln!(w, "backend {app}");
    let _ = writeln!(w, "    balance leastconn");
    if !args.tcp_check {
        let _ = writeln!(w, "    option httpchk GET {}", args.common.health_path);
        let _ = writeln!(w, "    http-check expect status 200");
    }
    let _ = writeln!(
        w,
        "    # Keep-alive to the servers, connections reused between requests."
    );
    let _ = writeln!(w, "    option http-keep-alive");
    let _ = writeln!(w, "    http-reuse safe");
    let _ = writeln!(
        w,
        "    default-server check inter {inter} fall {} rise {}",
        args.fall, args.rise
    );
    for server in &front.servers {
        let _ = writeln!(w, "    server {} {}", name(server, app), address(server));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Common, Host};
    use super::*;

    fn args(extra: impl FnOnce(&mut HaproxyArgs)) -> HaproxyArgs {
        let mut args = HaproxyArgs {
            common: Common {
                app: None,
                servers: vec![],
                listen: "80".parse().unwrap(),
                health_path: "/health".into(),
            },
            tcp_check: false,
            inter: Duration::from_secs(2),
            fall: 3,
            rise: 2,
        };
        extra(&mut args);
        args
    }

    fn tcp(host: &str, port: u16) -> Server {
        Server::Tcp {
            host: Host::Ip(host.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn the_backend_follows_the_guide_leastconn_httpchk_fall_rise() {
        let front = Front {
            app: "api".into(),
            servers: vec![tcp("10.0.0.5", 3000), tcp("10.0.0.6", 3000)],
            bind: Bind::Port(80),
        };
        let text = render(&front, &args(|_| {}));
        let backend = "backend api
    balance leastconn
    option httpchk GET /health
    http-check expect status 200
    # Keep-alive to the servers, connections reused between requests.
    option http-keep-alive
    http-reuse safe
    default-server check inter 2s fall 3 rise 2
    server 10.0.0.5:3000 10.0.0.5:3000
    server 10.0.0.6:3000 10.0.0.6:3000
";
        assert!(text.ends_with(backend), "{text}");
        assert!(
            text.contains("frontend api\n    bind :80\n    default_backend api\n"),
            "{text}"
        );
        assert!(
            text.contains("    retries 3\n    option redispatch\n"),
            "{text}"
        );
    }

    #[test]
    fn every_flag_shows_in_the_text() {
        let front = Front {
            app: "api".into(),
            servers: vec![tcp("::1", 3000), Server::Unix("/run/api.sock".into())],
            bind: Bind::Tcp("[::1]:8443".parse().unwrap()),
        };
        let text = render(
            &front,
            &args(|a| {
                a.inter = Duration::from_millis(250);
                a.fall = 1;
                a.rise = 5;
                a.common.health_path = "/ready".into();
            }),
        );
        for line in [
            "    bind [::1]:8443\n",
            "    option httpchk GET /ready\n",
            "    default-server check inter 250ms fall 1 rise 5\n",
            "    server ::1:3000 [::1]:3000\n",
            "    server api.sock unix@/run/api.sock\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let text = render(
            &Front {
                bind: Bind::Unix("/run/lb.sock".into()),
                ..front
            },
            &args(|a| a.tcp_check = true),
        );
        assert!(text.contains("    bind unix@/run/lb.sock\n"), "{text}");
        assert!(
            !text.contains("httpchk") && !text.contains("http-check"),
            "{text}"
        );
        assert!(
            text.contains("(its port must accept a connection)"),
            "{text}"
        );
        assert!(
            text.contains("    default-server check inter 2s fall 3 rise 2\n"),
            "{text}"
        );
    }
}
