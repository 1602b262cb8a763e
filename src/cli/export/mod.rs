//! `drover export nginx|haproxy [APP] [--server HOST]…`: a load balancer's configuration
//! for an app's workers as the running supervisor has them, for when one machine is not
//! enough (the nginx/HAProxy front of the RamAPI scaling guide). The supervisor is asked
//! (`Describe`), never started. This module decides which addresses the balancer
//! reaches ([`reach`], [`servers`]); `nginx` and `haproxy` write the text.

mod haproxy;
mod nginx;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use super::render;
use crate::config::{ListenAddr, ListenSpec, Millis};
use crate::error::Error;
use crate::ipc::client::Client;
use crate::protocol::{AppInfo, Request, Response, Target};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub to: Balancer,
}

#[derive(Debug, Subcommand)]
pub enum Balancer {
    /// Print an nginx upstream for the app's workers (least_conn, passive health checks,
    /// keep-alive) and a server block that proxies to it.
    ///
    /// The output goes in nginx's http block (/etc/nginx/conf.d/APP.conf). nginx open
    /// source only checks passively: a server that fails --max-fails requests within
    /// --fail-timeout is left out for --fail-timeout, and a request it refuses is passed
    /// to the next server.
    Nginx(NginxArgs),
    /// Print an HAProxy backend for the app's workers (leastconn, active HTTP health
    /// checks, keep-alive) and a frontend that uses it.
    ///
    /// Each server is checked every --inter: GET --health-path must answer 200 (or, with
    /// --tcp-check, the port must accept a connection); --fall failures in a row take it
    /// out, --rise successes bring it back. A request a stopped server refuses is retried
    /// on another.
    Haproxy(HaproxyArgs),
}

/// What both balancers take.
#[derive(Debug, Args)]
pub struct Common {
    /// The app, by name or worker id (default: the only app that has an address).
    ///
    /// Its servers: the address its workers share (listen:), or with increment_var: PORT
    /// one port per instance (PORT + instance), or the env PORT a fork app binds itself.
    /// Every instance the app has is listed, also one that is down at the moment: the
    /// health checks leave it out while it is.
    #[arg(value_name = "NAME|ID", value_parser = parse_app)]
    pub app: Option<Target>,
    /// A machine that runs the same ecosystem: one server for each HOST and each port of
    /// the app. Repeat it for a fleet (default: this machine).
    #[arg(long = "server", value_name = "HOST", value_parser = parse_host)]
    pub servers: Vec<Host>,
    /// Where the load balancer listens: a port (all IPv4 interfaces), host:port,
    /// [v6]:port or unix:/path.
    #[arg(long, value_name = "ADDR", default_value = "80")]
    pub listen: ListenSpec,
    /// The app's health endpoint (haproxy: what each check asks for; nginx: proxied to
    /// the app without an access log line, for a monitor to poll).
    #[arg(long, value_name = "PATH", default_value = "/health", value_parser = parse_path)]
    pub health_path: String,
}

#[derive(Debug, Args)]
pub struct NginxArgs {
    #[command(flatten)]
    pub common: Common,
    /// Failed requests within --fail-timeout that take a server out (0: never).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_fails: u32,
    /// The window for --max-fails, and how long a failed server stays out (whole
    /// seconds: 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_whole_seconds)]
    pub fail_timeout: Duration,
    /// Idle keep-alive connections to the servers each nginx worker keeps (0: none).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub keepalive: u32,
}

#[derive(Debug, Args)]
pub struct HaproxyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Check that each server's port accepts a connection instead of asking
    /// --health-path (for an app without a health endpoint).
    #[arg(long, conflicts_with = "health_path")]
    pub tcp_check: bool,
    /// Time between two health checks of a server (2s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_positive_duration)]
    pub inter: Duration,
    /// Failed checks in a row that take a server out.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub fall: u32,
    /// Good checks in a row that bring a server back.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rise: u32,
}

pub fn run(args: ExportArgs, home: &Path) -> Result<(), Error> {
    let text = match &args.to {
        Balancer::Nginx(nginx) => nginx::render(&Front::ask(&nginx.common, home)?, nginx),
        Balancer::Haproxy(haproxy) => haproxy::render(&Front::ask(&haproxy.common, home)?, haproxy),
    };
    render::print(&text)
}

/// What a balancer's text is made of: the app, where its workers are reached, where the
/// balancer listens.
#[derive(Debug)]
pub(super) struct Front {
    pub app: String,
    pub servers: Vec<Server>,
    pub bind: Bind,
}

impl Front {
    /// Checks the flags, then asks the supervisor of `home` for the app (never starting
    /// one).
    fn ask(common: &Common, home: &Path) -> Result<Front, Error> {
        let bind = Bind::from_flag(&common.listen)?;
        if let Some(host) = duplicate(&common.servers) {
            return Err(Error::Usage(format!("--server {host} is given twice")));
        }
        let target = common.app.clone().unwrap_or(Target::All);
        let apps = match Client::connect(home)?.call(&Request::Describe { target })? {
            Response::Apps { apps } => apps,
            other => return Err(render::unexpected("apps", &other)),
        };
        let (app, reach) = pick(&apps, common.app.is_some()).map_err(Error::Usage)?;
        let servers = servers(&app.spec.name, &reach, &common.servers).map_err(Error::Usage)?;
        Ok(Front {
            app: app.spec.name.clone(),
            servers,
            bind,
        })
    }
}

/// The app to export and where it is reached. `named`: the user named it (a name or a
/// worker id), so an app without an address is an error about that app; else the only
/// app with an address is taken.
fn pick(apps: &[AppInfo], named: bool) -> Result<(&AppInfo, Reach), String> {
    if named {
        let [app] = apps else {
            let names: Vec<&str> = apps.iter().map(|a| a.spec.name.as_str()).collect();
            return Err(format!(
                "that names {} apps ({}): export takes one",
                apps.len(),
                names.join(", ")
            ));
        };
        return Ok((app, reach(app)?));
    }
    let reachable: Vec<(&AppInfo, Reach)> = apps
        .iter()
        .filter_map(|a| reach(a).ok().map(|r| (a, r)))
        .collect();
    match reachable.len() {
        1 => Ok(reachable.into_iter().next().expect("one")),
        0 => {
            let names: Vec<&str> = apps.iter().map(|a| a.spec.name.as_str()).collect();
            Err(format!(
                "no app has an address a load balancer could reach ({}: none has listen:, port: or env PORT)",
                names.join(", ")
            ))
        }
        _ => {
            let names: Vec<&str> = reachable
                .iter()
                .map(|(a, _)| a.spec.name.as_str())
                .collect();
            Err(format!(
                "several apps have an address ({}): name the one to export",
                names.join(", ")
            ))
        }
    }
}

/// Where an app's workers are reached on the machine that runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reach {
    /// The listener the supervisor binds and every worker shares (also while the app is
    /// stopped: a restart binds the same address again).
    Listener(ListenAddr),
    /// Ports the workers bind themselves: env PORT, counted up per instance with
    /// `increment_var: PORT`.
    OwnPorts(Vec<u16>),
}

/// Where `app`'s workers are reached, or why a balancer cannot reach them.
pub(super) fn reach(app: &AppInfo) -> Result<Reach, String> {
    let name = &app.spec.name;
    if let Some(bound) = &app.listen {
        return parse_listen(bound)
            .map(Reach::Listener)
            .map_err(|e| format!("app {name}: the supervisor reports listen {e}"));
    }
    if let Some(asked) = &app.spec.listen {
        let addr = parse_listen(asked).map_err(|e| format!("app {name}: listen {e}"))?;
        return match addr {
            ListenAddr::Tcp(tcp) if tcp.port() == 0 => Err(format!(
                "app {name} has not bound {asked} yet (the port is picked when it starts): start it first"
            )),
            addr => Ok(Reach::Listener(addr)),
        };
    }
    let port = app
        .spec
        .env
        .get("PORT")
        .and_then(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            format!(
                "app {name} has no address a load balancer could reach: no listen: (or port:), and no env PORT it binds itself"
            )
        })?;
    if app.spec.increment_var.as_deref() != Some("PORT") {
        return Ok(Reach::OwnPorts(vec![port]));
    }
    let mut instances: Vec<u32> = app.workers.iter().map(|w| w.instance).collect();
    instances.sort_unstable();
    instances.dedup();
    let ports = instances
        .iter()
        .map(|i| {
            u16::try_from(u32::from(port) + i)
                .map_err(|_| format!("app {name}: PORT {port} + instance {i} is not a port"))
        })
        .collect::<Result<Vec<u16>, String>>()?;
    if ports.is_empty() {
        return Err(format!("app {name} has no workers"));
    }
    Ok(Reach::OwnPorts(ports))
}

/// `127.0.0.1:3000`, `[::]:3000`, `unix:/run/app.sock`: the protocol's text form.
fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    match text.strip_prefix("unix:") {
        Some(path) if !path.is_empty() => Ok(ListenAddr::Unix(PathBuf::from(path))),
        _ => text
            .parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| format!("{text:?} is not an address")),
    }
}

/// One server of the backend: a host and port, or a unix socket on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Server {
    Tcp { host: Host, port: u16 },
    Unix(PathBuf),
}

/// The servers that reach `app` at `reach` on each of `hosts` (none: this machine).
pub(super) fn servers(app: &str, reach: &Reach, hosts: &[Host]) -> Result<Vec<Server>, String> {
    let local = Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let ports = match reach {
        Reach::Listener(ListenAddr::Unix(path)) => {
            if let Some(host) = hosts.first() {
                return Err(format!(
                    "app {app} listens on unix:{}, which other machines cannot reach: --server {host} needs a TCP address",
                    path.display()
                ));
            }
            check_word(&path.to_string_lossy())
                .map_err(|e| format!("app {app}: its socket path {e}"))?;
            return Ok(vec![Server::Unix(path.clone())]);
        }
        Reach::Listener(ListenAddr::Tcp(addr)) => {
            if hosts.is_empty() {
                // The workers share an address of every interface: this machine reaches
                // it on loopback. A specific address is reached there.
                let host = if addr.ip().is_unspecified() {
                    local
                } else {
                    Host::Ip(addr.ip())
                };
                return Ok(vec![Server::Tcp {
                    host,
                    port: addr.port(),
                }]);
            }
            if addr.ip().is_loopback()
                && let Some(host) = hosts.iter().find(|h| !h.is_loopback())
            {
                return Err(format!(
                    "app {app} listens on {addr}, which other machines cannot reach: to use --server {host}, listen on every interface (listen: {})",
                    addr.port()
                ));
            }
            vec![addr.port()]
        }
        Reach::OwnPorts(ports) => ports.clone(),
    };
    let hosts = if hosts.is_empty() {
        std::slice::from_ref(&local)
    } else {
        hosts
    };
    Ok(hosts
        .iter()
        .flat_map(|host| {
            ports.iter().map(|&port| Server::Tcp {
                host: host.clone(),
                port,
            })
        })
        .collect())
}

/// A machine named with `--server`: an IP address or a host name, no port (the ports
/// are the app's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name.eq_ignore_ascii_case("localhost"),
        }
    }
}

/// As it goes before `:port`: an IPv6 address in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

fn parse_host(s: &str) -> Result<Host, String> {
    let bracketed = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    if let Some(ip) = bracketed {
        return ip
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| format!("{s:?} is not an IPv6 address"));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if s.rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        return Err(format!(
            "{s:?}: give the host only; the ports are the app's (every machine runs the same ecosystem)"
        ));
    }
    // RFC 1123: dot-separated labels of letters, digits and inner hyphens.
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() <= 253 && s.trim_end_matches('.').split('.').all(label_ok) {
        return Ok(Host::Name(s.trim_end_matches('.').to_owned()));
    }
    Err(format!("{s:?} is not a host name or an IP address"))
}

/// The first host given twice (two servers of one name break either balancer).
fn duplicate(hosts: &[Host]) -> Option<&Host> {
    hosts
        .iter()
        .enumerate()
        .find(|(i, h)| hosts[..*i].contains(h))
        .map(|(_, h)| h)
}

/// One name or id: `all` and /regex/ may name several apps, and a balancer serves one.
fn parse_app(s: &str) -> Result<Target, String> {
    match s.parse::<Target>()? {
        Target::All | Target::Pattern(_) => {
            Err(format!("{s}: export takes one app (a name or a worker id)"))
        }
        target => Ok(target),
    }
}

/// An absolute URL path of plain characters: both configurations take it as one word.
fn parse_path(s: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~/%:@!+,=".contains(c);
    if s.starts_with('/') && s.chars().all(plain) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?}: expected a path starting with / of letters, digits and - . _ ~ / % : @ ! + , ="
        ))
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let Millis(d) = s.parse()?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// nginx reads `fail_timeout` in whole seconds.
fn parse_whole_seconds(s: &str) -> Result<Duration, String> {
    let d = parse_positive_duration(s)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{s}: nginx takes whole seconds here (1s, 30s, 2m)"));
    }
    Ok(d)
}

/// A duration as both nginx and HAProxy write it: `30s`, `1500ms`.
pub(super) fn duration_text(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// "1 server", "4 servers".
pub(super) fn servers_phrase(n: usize) -> String {
    match n {
        1 => "1 server".into(),
        n => format!("{n} servers"),
    }
}

/// Where the load balancer listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bind {
    /// A port on every IPv4 interface.
    Port(u16),
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Bind {
    fn from_flag(listen: &ListenSpec) -> Result<Bind, Error> {
        let fixed = |port: u16| match port {
            0 => Err(Error::Usage(
                "--listen: the load balancer needs a port of its own (not 0)".into(),
            )),
            _ => Ok(()),
        };
        match listen {
            ListenSpec::Port(port) => fixed(*port).map(|()| Bind::Port(*port)),
            ListenSpec::Tcp(addr) => fixed(addr.port()).map(|()| Bind::Tcp(*addr)),
            ListenSpec::Unix(path) => {
                let path = std::path::absolute(path)
                    .map_err(|e| Error::Usage(format!("--listen unix:{}: {e}", path.display())))?;
                check_word(&path.to_string_lossy())
                    .map_err(|e| Error::Usage(format!("--listen unix:{e}")))?;
                Ok(Bind::Unix(path))
            }
        }
    }
}

/// A word both configurations read as one token: nothing that ends or quotes it.
fn check_word(text: &str) -> Result<(), String> {
    match text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'#;{}\\".contains(*c))
    {
        Some(c) => Err(format!(
            "{text} has {c:?}, which cannot be written in a load balancer's configuration"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cli::render::tests::worker;
    use crate::protocol::{AppConfig, ExecMode, SocketMode};

    /// An app as `describe` returns it: `bound` is its listener, `instances` workers.
    pub(crate) fn app(name: &str, bound: Option<&str>, instances: u32) -> AppInfo {
        let spec = AppConfig {
            name: name.into(),
            script: "/srv/app/server.js".into(),
            interpreter: Some("node".into()),
            interpreter_args: vec![],
            args: vec![],
            cwd: "/srv/app".into(),
            instances,
            exec_mode: ExecMode::Cluster,
            env: BTreeMap::new(),
            listen: bound.map(str::to_owned),
            socket: SocketMode::Reuseport,
            out_file: "/tmp/out.log".into(),
            error_file: "/tmp/err.log".into(),
            log_file: None,
            merge_logs: false,
            log_date_format: None,
            log_max_size: None,
            log_retain: None,
            log_rotate_daily: false,
            log_compress: false,
            autorestart: true,
            min_uptime_ms: 1000,
            max_restarts: 16,
            restart_delay_ms: 0,
            exp_backoff_restart_delay_ms: None,
            stop_exit_codes: vec![],
            wait_ready: false,
            listen_timeout_ms: 3000,
            kill_signal: "SIGINT".into(),
            kill_timeout_ms: 1600,
            shutdown_with_message: false,
            instance_var: "NODE_APP_INSTANCE".into(),
            increment_var: None,
            max_memory_restart: None,
            watchdog_ms: None,
            health: None,
            watch: None,
            cron_restart: None,
        };
        AppInfo {
            spec,
            listen: bound.map(str::to_owned),
            workers: (0..instances)
                .map(|i| {
                    let mut w = worker(i, name);
                    w.instance = i;
                    w
                })
                .collect(),
            dropped_log_lines: 0,
            cron_next: None,
        }
    }

    /// A fork app whose instances bind PORT themselves, counted up from `base`.
    pub(crate) fn own_ports(name: &str, base: u16, instances: u32) -> AppInfo {
        let mut app = app(name, None, instances);
        app.spec.exec_mode = ExecMode::Fork;
        app.spec.env.insert("PORT".into(), base.to_string());
        app.spec.increment_var = Some("PORT".into());
        app
    }

    fn ip(s: &str) -> Host {
        parse_host(s).unwrap()
    }

    fn tcp(host: &str, port: u16) -> Server {
        Server::Tcp {
            host: ip(host),
            port,
        }
    }

    #[test]
    fn a_shared_listener_is_one_server_reached_on_loopback_when_it_takes_every_interface() {
        for (bound, want) in [
            ("[::]:3000", tcp("127.0.0.1", 3000)),
            ("0.0.0.0:3000", tcp("127.0.0.1", 3000)),
            ("127.0.0.1:41234", tcp("127.0.0.1", 41234)),
            ("[::1]:3000", tcp("::1", 3000)),
            ("10.1.2.3:3000", tcp("10.1.2.3", 3000)),
        ] {
            let a = app("api", Some(bound), 4);
            let reach = reach(&a).unwrap();
            assert_eq!(servers("api", &reach, &[]).unwrap(), [want], "{bound}");
        }
        let a = app("api", Some("unix:/run/api.sock"), 2);
        assert_eq!(
            servers("api", &reach(&a).unwrap(), &[]).unwrap(),
            [Server::Unix("/run/api.sock".into())]
        );
    }

    #[test]
    fn increment_var_port_gives_one_server_per_instance_the_app_has() {
        let mut a = own_ports("api", 3000, 3);
        // A scaled app: instances 0, 1 and 3 (2 was removed), as `describe` shows them.
        a.workers[2].instance = 3;
        let reach = reach(&a).unwrap();
        assert_eq!(reach, Reach::OwnPorts(vec![3000, 3001, 3003]));
        assert_eq!(
            servers("api", &reach, &[]).unwrap(),
            [
                tcp("127.0.0.1", 3000),
                tcp("127.0.0.1", 3001),
                tcp("127.0.0.1", 3003)
            ]
        );
        // Without increment_var the workers all bind env PORT: one server.
        a.spec.increment_var = None;
        assert_eq!(super::reach(&a).unwrap(), Reach::OwnPorts(vec![3000]));
        // Another variable counts up, PORT does not.
        a.spec.increment_var = Some("SHARD".into());
        assert_eq!(super::reach(&a).unwrap(), Reach::OwnPorts(vec![3000]));
    }

    #[test]
    fn a_fleet_is_every_host_times_every_port() {
        let hosts = [ip("10.0.0.5"), ip("10.0.0.6"), ip("[2001:db8::7]")];
        let reach = reach(&own_ports("api", 3000, 2)).unwrap();
        assert_eq!(
            servers("api", &reach, &hosts).unwrap(),
            [
                tcp("10.0.0.5", 3000),
                tcp("10.0.0.5", 3001),
                tcp("10.0.0.6", 3000),
                tcp("10.0.0.6", 3001),
                tcp("2001:db8::7", 3000),
                tcp("2001:db8::7", 3001),
            ]
        );
        let reach = super::reach(&app("api", Some("[::]:8080"), 4)).unwrap();
        assert_eq!(
            servers("api", &reach, &hosts[..2]).unwrap(),
            [tcp("10.0.0.5", 8080), tcp("10.0.0.6", 8080)]
        );
        assert_eq!(hosts[2].to_string(), "[2001:db8::7]");
    }

    #[test]
    fn what_other_machines_cannot_reach_is_refused_with_the_cause() {
        let remote = [ip("10.0.0.5")];
        let loopback = super::reach(&app("api", Some("127.0.0.1:3000"), 2)).unwrap();
        let err = servers("api", &loopback, &remote).unwrap_err();
        assert!(
            err.contains("api listens on 127.0.0.1:3000, which other machines cannot reach")
                && err.contains("listen: 3000"),
            "{err}"
        );
        // Loopback hosts (a test fleet on one machine) reach a loopback listener.
        let local_fleet = [
            ip("127.0.0.1"),
            ip("127.0.0.2"),
            Host::Name("localhost".into()),
        ];
        assert_eq!(servers("api", &loopback, &local_fleet).unwrap().len(), 3);

        let unix = super::reach(&app("api", Some("unix:/run/api.sock"), 2)).unwrap();
        let err = servers("api", &unix, &remote).unwrap_err();
        assert!(
            err.contains("unix:/run/api.sock") && err.contains("--server 10.0.0.5"),
            "{err}"
        );

        let odd = super::reach(&app("api", Some("unix:/run/my api.sock"), 1)).unwrap();
        assert!(servers("api", &odd, &[]).unwrap_err().contains("' '"));
    }

    #[test]
    fn an_app_without_an_address_is_an_error_naming_it() {
        let err = reach(&app("worker", None, 2)).unwrap_err();
        assert!(err.starts_with("app worker has no address"), "{err}");
        let mut unbound = app("api", None, 1);
        unbound.spec.listen = Some("127.0.0.1:0".into());
        assert!(reach(&unbound).unwrap_err().contains("start it first"));
        // Stopped, with a fixed address: the address it binds again on restart.
        let mut stopped = app("api", None, 1);
        stopped.spec.listen = Some("[::]:3000".into());
        assert_eq!(
            reach(&stopped).unwrap(),
            Reach::Listener(ListenAddr::Tcp("[::]:3000".parse().unwrap()))
        );
    }

    #[test]
    fn without_a_name_the_only_app_with_an_address_is_exported() {
        let apps = [app("queue", None, 2), app("api", Some("[::]:3000"), 2)];
        assert_eq!(pick(&apps, false).unwrap().0.spec.name, "api");
        let apps = [
            app("web", Some("[::]:3001"), 1),
            app("api", Some("[::]:3000"), 2),
        ];
        let err = pick(&apps, false).unwrap_err();
        assert!(
            err.contains("several apps have an address (web, api)"),
            "{err}"
        );
        let err = pick(&[app("queue", None, 1)], false).unwrap_err();
        assert!(err.starts_with("no app has an address"), "{err}");
        // A named app without one is an error about it, not a search.
        let err = pick(&[app("queue", None, 1)], true).unwrap_err();
        assert!(err.starts_with("app queue has no address"), "{err}");
    }

    #[test]
    fn flags_are_checked_before_anything_is_asked() {
        assert_eq!(
            parse_host("10.0.0.5").unwrap(),
            Host::Ip("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            parse_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(parse_host("::1").unwrap(), Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            parse_host("web-1.example.com").unwrap(),
            Host::Name("web-1.example.com".into())
        );
        for bad in [
            "web:3000",
            "10.0.0.5:3000",
            "-web",
            "a b",
            "we;b",
            "",
            "[10.0.0.5]",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_host("web:3000")
                .unwrap_err()
                .contains("the ports are the app's")
        );
        assert_eq!(duplicate(&[ip("10.0.0.5"), ip("10.0.0.6")]), None);
        assert_eq!(
            duplicate(&[ip("10.0.0.5"), ip("10.0.0.5")]),
            Some(&ip("10.0.0.5"))
        );

        assert!(parse_app("all").is_err() && parse_app("/ap/").is_err());
        assert_eq!(parse_app("api").unwrap(), Target::Name("api".into()));
        assert_eq!(parse_app("3").unwrap(), Target::Id(3));

        assert_eq!(parse_path("/health").unwrap(), "/health");
        assert_eq!(parse_path("/api/v1/ready").unwrap(), "/api/v1/ready");
        for bad in ["health", "/he alth", "/a;b", "/a{", "/\"x", "/a?b", ""] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }

        assert_eq!(parse_whole_seconds("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_whole_seconds("2m").unwrap(), Duration::from_secs(120));
        assert!(
            parse_whole_seconds("1500ms")
                .unwrap_err()
                .contains("whole seconds")
        );
        assert!(parse_whole_seconds("0").is_err());
        assert_eq!(
            parse_positive_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::from_millis(2000)), "2s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");

        let bind = |s: &str| Bind::from_flag(&s.parse().unwrap());
        assert_eq!(bind("80").unwrap(), Bind::Port(80));
        assert_eq!(
            bind("127.0.0.1:8080").unwrap(),
            Bind::Tcp("127.0.0.1:8080".parse().unwrap())
        );
        assert!(bind("0").is_err() && bind("127.0.0.1:0").is_err());
        assert!(
            matches!(bind("unix:/run/lb.sock").unwrap(), Bind::Unix(p) if p == Path::new("/run/lb.sock"))
        );
        assert!(matches!(bind("unix:lb.sock").unwrap(), Bind::Unix(p) if p.is_absolute()));
    }

    /// The README shows what `export` prints: these are those examples, rendered.
    #[test]
    fn the_readme_examples_are_what_export_prints() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let parse = |args: &[&str]| match <crate::cli::Cli as clap::Parser>::parse_from(
            [&["drover", "export"], args].concat(),
        )
        .command
        {
            crate::cli::Command::Export(export) => export.to,
            other => panic!("{other:?}"),
        };

        let Balancer::Haproxy(args) = parse(&[
            "haproxy", "api", "--server", "10.0.0.5", "--server", "10.0.0.6",
        ]) else {
            panic!("haproxy")
        };
        let api = app("api", Some("[::]:3000"), 2);
        let front = Front {
            app: "api".into(),
            servers: servers("api", &reach(&api).unwrap(), &args.common.servers).unwrap(),
            bind: Bind::from_flag(&args.common.listen).unwrap(),
        };
        let text = haproxy::render(&front, &args);
        assert!(readme.contains(&format!("```text\n{text}```")), "{text}");

        let Balancer::Nginx(args) = parse(&["nginx", "web"]) else {
            panic!("nginx")
        };
        let web = own_ports("web", 4000, 2);
        let front = Front {
            app: "web".into(),
            servers: servers("web", &reach(&web).unwrap(), &[]).unwrap(),
            bind: Bind::from_flag(&args.common.listen).unwrap(),
        };
        let text = nginx::render(&front, &args);
        assert!(readme.contains(&format!("```text\n{text}```")), "{text}");
    }
}
