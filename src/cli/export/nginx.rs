//! The nginx text: an upstream of the app's servers (least_conn, passive checks,
//! keep-alive), the map that lets WebSocket upgrades through kept-alive connections,
//! and a server block proxying to the upstream. All of it goes in nginx's `http` block.

use std::fmt::Write;

use super::{Bind, Front, NginxArgs, Server, duration_text, servers_phrase};

/// A server as nginx's `server` directive names it.
fn address(server: &Server) -> String {
    match server {
        Server::Tcp { host, port } => format!("{host}:{port}"),
        Server::Unix(path) => format!("unix:{}", path.display()),
    }
}

fn listen(bind: &Bind) -> String {
    match bind {
        Bind::Port(port) => port.to_string(),
        Bind::Tcp(addr) => addr.to_string(),
        Bind::Unix(path) => format!("unix:{}", path.display()),
    }
}

pub(super) fn render(front: &Front, args: &NginxArgs) -> String {
    let app = &front.app;
    let health = &args.common.health_path;
    let fail_timeout = duration_text(args.fail_timeout);
    // nginx variable names take letters, digits and underscores; app names also `.` and `-`.
    let connection = format!(
        "$drover_{}_connection",
        app.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# nginx in front of drover app {app}: {} (drover export nginx).",
        servers_phrase(front.servers.len())
    );
    let _ = writeln!(
        w,
        "# Goes in nginx's http block, e.g. as /etc/nginx/conf.d/{app}.conf."
    );
    if args.max_fails == 0 {
        let _ = writeln!(
            w,
            "# --max-fails 0: a failing server is never taken out (a refused request still goes to the next)."
        );
    } else {
        let _ = writeln!(
            w,
            "# nginx open source checks passively: {} failed requests within {fail_timeout} take a",
            args.max_fails
        );
        let _ = writeln!(
            w,
            "# server out for {fail_timeout}; a request it refuses goes to the next server."
        );
    }
    let _ = writeln!(w, "upstream {app} {{");
    let _ = writeln!(w, "    least_conn;");
    for server in &front.servers {
        let _ = writeln!(
            w,
            "    server {} max_fails={} fail_timeout={fail_timeout};",
            address(server),
            args.max_fails
        );
    }
    if args.keepalive > 0 {
        let _ = writeln!(w, "    keepalive {};", args.keepalive);
    }
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# Keep-alive to the servers needs Connection: \"\"; a WebSocket upgrade needs \"upgrade\"."
    );
    let _ = writeln!(w, "map $http_upgrade {connection} {{");
    let _ = writeln!(w, "    default upgrade;");
    let _ = writeln!(w, "    ''      '';");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "server {{");
    let _ = writeln!(w, "    listen {};", listen(&front.bind));
    let _ = writeln!(w);
    let _ = writeln!(w, "    location / {{");
    let _ = writeln!(w, "        proxy_pass http://{app};");
    let _ = writeln!(w, "        proxy_http_version 1.1;");
    let _ = writeln!(w, "        proxy_set_header Connection {connection};");
    let _ = writeln!(w, "        proxy_set_header Upgrade $http_upgrade;");
    let _ = writeln!(w, "        proxy_set_header Host $host;");
    let _ = writeln!(w, "        proxy_set_header X-Real-IP $remote_addr;");
    let _ = writeln!(
        w,
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    );
    let _ = writeln!(w, "        proxy_set_header X-Forwarded-Proto $scheme;");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "    # The app's health endpoint, for a monitor to poll, without an access log line each time."
    );
    let _ = writeln!(w, "    location = {health} {{");
    let _ = writeln!(w, "        proxy_pass http://{app};");
    let _ = writeln!(w, "        proxy_http_version 1.1;");
    let _ = writeln!(w, "        proxy_set_header Connection \"\";");
    let _ = writeln!(w, "        access_log off;");
    let _ = writeln!(w, "    }}");
    let _ = writeln!(w, "}}");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Common, Host};
    use super::*;

    fn args(extra: impl FnOnce(&mut NginxArgs)) -> NginxArgs {
        let mut args = NginxArgs {
            common: Common {
                app: None,
                servers: vec![],
                listen: "80".parse().unwrap(),
                health_path: "/health".into(),
            },
            max_fails: 3,
            fail_timeout: Duration::from_secs(30),
            keepalive: 32,
        };
        extra(&mut args);
        args
    }

    fn front(servers: Vec<Server>, bind: Bind) -> Front {
        Front {
            app: "api".into(),
            servers,
            bind,
        }
    }

    fn tcp(host: &str, port: u16) -> Server {
        Server::Tcp {
            host: Host::Ip(host.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn the_upstream_follows_the_guide_least_conn_passive_checks_keepalive() {
        let text = render(
            &front(
                vec![tcp("127.0.0.1", 3000), tcp("127.0.0.1", 3001)],
                Bind::Port(80),
            ),
            &args(|_| {}),
        );
        let upstream = "upstream api {\n    least_conn;\n    server 127.0.0.1:3000 max_fails=3 fail_timeout=30s;\n    server 127.0.0.1:3001 max_fails=3 fail_timeout=30s;\n    keepalive 32;\n}\n";
        assert!(text.contains(upstream), "{text}");
        for line in [
            "    listen 80;\n",
            "        proxy_pass http://api;\n        proxy_http_version 1.1;\n        proxy_set_header Connection $drover_api_connection;\n",
            "map $http_upgrade $drover_api_connection {\n    default upgrade;\n    ''      '';\n}\n",
            "    location = /health {\n        proxy_pass http://api;\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        access_log off;\n",
            "# nginx in front of drover app api: 2 servers",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn every_flag_shows_in_the_text() {
        let text = render(
            &front(
                vec![
                    tcp("::1", 3000),
                    Server::Tcp {
                        host: Host::Name("web-2.internal".into()),
                        port: 3000,
                    },
                ],
                Bind::Tcp("127.0.0.1:8080".parse().unwrap()),
            ),
            &args(|a| {
                a.max_fails = 5;
                a.fail_timeout = Duration::from_secs(120);
                a.keepalive = 0;
                a.common.health_path = "/ready".into();
            }),
        );
        for line in [
            "    server [::1]:3000 max_fails=5 fail_timeout=120s;\n",
            "    server web-2.internal:3000 max_fails=5 fail_timeout=120s;\n",
            "    listen 127.0.0.1:8080;\n",
            "    location = /ready {\n",
            "5 failed requests within 120s",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("keepalive "), "--keepalive 0: {text}");
        assert!(!text.contains("/health"), "{text}");

        let text = render(
            &front(
                vec![Server::Unix("/run/api.sock".into())],
                Bind::Unix("/run/lb.sock".into()),
            ),
            &args(|a| a.max_fails = 0),
        );
        assert!(text.contains("    server unix:/run/api.sock max_fails=0 fail_timeout=30s;\n"));
        assert!(text.contains("    listen unix:/run/lb.sock;\n"));
        assert!(text.contains("--max-fails 0: a failing server is never taken out"));
    }

    #[test]
    fn app_names_become_valid_variable_names() {
        let mut f = front(vec![tcp("127.0.0.1", 3000)], Bind::Port(80));
        f.app = "my-api.v2".into();
        let text = render(&f, &args(|_| {}));
        assert!(text.contains("$drover_my_api_v2_connection"), "{text}");
        assert!(text.contains("upstream my-api.v2 {"), "{text}");
    }
}
