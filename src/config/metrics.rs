//! The supervisor's metrics endpoint, as an ecosystem file's top-level `metrics:` or the
//! `--metrics ADDR` flag asks for it: an address, loopback unless the file says
//! `public: true` (or the flag `--metrics-public`), since the figures name every app.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use yaml_serde::Value;

use super::error::{Seg, did_you_mean};
use super::raw::{describe_value, key_text};

/// Where the supervisor serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSpec {
    pub listen: SocketAddr,
    /// May listen on an address other machines reach.
    pub public: bool,
    /// Who asked, for messages.
    pub origin: MetricsOrigin,
}

/// Who asked for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsOrigin {
    /// `--metrics` of `run` or `daemon`.
    Flag,
    /// A file's `metrics:`: `ecosystem.yaml:3` (its name and the key's line, when known).
    File(String),
}

impl MetricsOrigin {
    /// The key as a message starts with it: `ecosystem.yaml:3: metrics`, `--metrics`.
    pub fn key(&self) -> String {
        match self {
            MetricsOrigin::Flag => "--metrics".into(),
            MetricsOrigin::File(at) => format!("{at}: metrics"),
        }
    }
}

impl fmt::Display for MetricsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsOrigin::Flag => f.write_str("--metrics"),
            MetricsOrigin::File(at) => f.write_str(at),
        }
    }
}

impl MetricsSpec {
    /// An endpoint at `listen`, refused (naming `origin`) if it is not loopback and not
    /// `public`.
    pub fn new(
        listen: SocketAddr,
        public: bool,
        origin: MetricsOrigin,
    ) -> Result<MetricsSpec, String> {
        let spec = MetricsSpec {
            listen,
            public,
            origin,
        };
        match spec.refused() {
            Some(why) => Err(format!("{}: {why}", spec.origin.key())),
            None => Ok(spec),
        }
    }

    /// `--metrics ADDR` (and `--metrics-public`).
    pub fn from_flag(text: &str, public: bool) -> Result<MetricsSpec, String> {
        let listen: MetricsAddr = text.parse().map_err(|e| format!("--metrics: {e}"))?;
        let spec = MetricsSpec {
            listen: listen.0,
            public,
            origin: MetricsOrigin::Flag,
        };
        if let Some(why) = spec.refused() {
            return Err(format!("--metrics: {why}; add --metrics-public to mean it"));
        }
        Ok(spec)
    }

    /// Why this address needs `public`, when it does and lacks it.
    fn refused(&self) -> Option<String> {
        (!self.public && !is_loopback(self.listen.ip())).then(|| {
            format!(
                "{} is not a loopback address: every app's names and figures would be open to the network",
                self.listen
            )
        })
    }
}

/// A loopback address: 127.0.0.0/8, ::1, or 127.x as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// An address as `metrics:` and `--metrics` take it: a port alone (on 127.0.0.1),
/// `localhost:PORT`, `IPv4:PORT` or `[IPv6]:PORT`; port 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub SocketAddr);

impl FromStr for MetricsAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected a port (9615), 127.0.0.1:9615 or [::1]:9615, got {text:?} (a host name other than localhost is not looked up)"
            )
        };
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let port = text.parse::<u16>().map_err(|_| bad())?;
            return Ok(MetricsAddr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
        if let Some(port) = text.strip_prefix("localhost:") {
            let port = port.parse::<u16>().map_err(|_| bad())?;
            return Ok(MetricsAddr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
        text.parse::<SocketAddr>()
            .map(MetricsAddr)
            .map_err(|_| bad())
    }
}

impl fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The keys `metrics:` may have as a map.
const KEYS: &[&str] = &["listen", "public"];

/// A problem with the file's `metrics:`: the message, and where in the file (`metrics`,
/// or `metrics.listen`) to place it.
#[derive(Debug)]
pub(crate) struct MetricsError {
    pub path: Vec<Seg>,
    pub message: String,
    pub hint: Option<String>,
}

/// Reads a file's top-level `metrics:` value (`None` for a null one: as if absent).
/// `origin` is how the spec names where it came from (`ecosystem.yaml:3`).
pub(crate) fn from_value(
    v: &Value,
    origin: MetricsOrigin,
) -> Result<Option<MetricsSpec>, MetricsError> {
    let top = |message: String| MetricsError {
        path: vec![Seg::Key("metrics".into())],
        message,
        hint: None,
    };
    let sub = |key: &str, message: String| MetricsError {
        path: vec![Seg::Key("metrics".into()), Seg::Key(key.into())],
        message,
        hint: None,
    };
    let address = |v: &Value| -> Result<SocketAddr, String> {
        let text = match v {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => {
                return Err(format!(
                    "expected an address (9615, 127.0.0.1:9615), got {}",
                    describe_value(other)
                ));
            }
        };
        text.parse::<MetricsAddr>().map(|a| a.0)
    };
    let spec = match v {
        Value::Null => return Ok(None),
        Value::Number(_) | Value::String(_) => MetricsSpec {
            listen: address(v).map_err(|m| top(format!("metrics: {m}")))?,
            public: false,
            origin,
        },
        Value::Mapping(map) => {
            let mut listen = None;
            let mut public = false;
            for (k, val) in map {
                let Some(name) = key_text(k) else {
                    return Err(top(format!(
                        "metrics: keys must be names, found {}",
                        describe_value(k)
                    )));
                };
                match name.as_str() {
                    "listen" => {
                        listen = Some(
                            address(val)
                                .map_err(|m| sub("listen", format!("metrics.listen: {m}")))?,
                        );
                    }
                    "public" => match val {
                        Value::Bool(b) => public = *b,
                        other => {
                            return Err(sub(
                                "public",
                                format!(
                                    "metrics.public: expected true or false, got {}",
                                    describe_value(other)
                                ),
                            ));
                        }
                    },
                    other => {
                        let msg = match did_you_mean(other, KEYS) {
                            Some(near) => {
                                format!("unknown key {other:?} in metrics (did you mean {near:?}?)")
                            }
                            None => format!(
                                "unknown key {other:?} in metrics (it has {})",
                                KEYS.join(", ")
                            ),
                        };
                        return Err(sub(other, msg));
                    }
                }
            }
            let Some(listen) = listen else {
                return Err(top(
                    "metrics: the map needs listen: (metrics: {listen: 127.0.0.1:9615})".into(),
                ));
            };
            MetricsSpec {
                listen,
                public,
                origin,
            }
        }
        other => {
            return Err(top(format!(
                "metrics: expected an address (9615, 127.0.0.1:9615) or {{listen: ADDR, public: true}}, got {}",
                describe_value(other)
            )));
        }
    };
    if let Some(why) = spec.refused() {
        let listen = spec.listen;
        return Err(MetricsError {
            path: match v {
                Value::Mapping(_) => vec![Seg::Key("metrics".into()), Seg::Key("listen".into())],
                _ => vec![Seg::Key("metrics".into())],
            },
            message: format!("metrics: {why}"),
            hint: Some(format!(
                "to serve them there, say so: metrics: {{listen: \"{listen}\", public: true}}"
            )),
        });
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_written() {
        let ok: &[(&str, &str)] = &[
            ("9615", "127.0.0.1:9615"),
            ("0", "127.0.0.1:0"),
            ("localhost:9615", "127.0.0.1:9615"),
            ("127.0.0.1:9615", "127.0.0.1:9615"),
            ("127.0.0.2:9615", "127.0.0.2:9615"),
            ("[::1]:9615", "[::1]:9615"),
            ("0.0.0.0:9615", "0.0.0.0:9615"),
            (" 9615 ", "127.0.0.1:9615"),
        ];
        for (text, want) in ok {
            assert_eq!(
                text.parse::<MetricsAddr>().unwrap().0,
                want.parse::<SocketAddr>().unwrap(),
                "{text}"
            );
        }
        for bad in [
            "",
            "65536",
            "host:9615",
            "127.0.0.1",
            "::1:9615",
            "9615x",
            "-1",
            "localhost",
        ] {
            let e = bad.parse::<MetricsAddr>().unwrap_err();
            assert!(e.contains("expected a port"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_loopback_unless_public() {
        for local in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(
                is_loopback(local.parse::<SocketAddr>().unwrap().ip()),
                "{local}"
            );
        }
        for open in ["0.0.0.0:1", "10.0.0.5:1", "[::]:1", "[::ffff:10.0.0.1]:1"] {
            assert!(
                !is_loopback(open.parse::<SocketAddr>().unwrap().ip()),
                "{open}"
            );
        }
        let e = MetricsSpec::from_flag("0.0.0.0:9615", false).unwrap_err();
        assert!(
            e.contains("--metrics: 0.0.0.0:9615 is not a loopback address")
                && e.contains("--metrics-public"),
            "{e}"
        );
        let spec = MetricsSpec::from_flag("0.0.0.0:9615", true).unwrap();
        assert!(spec.public && spec.origin == MetricsOrigin::Flag);
        let e = MetricsSpec::from_flag("nine", false).unwrap_err();
        assert!(e.starts_with("--metrics: expected a port"), "{e}");
    }
}
