//! Value types of the ecosystem file and the CLI flags. Each parses the same way from
//! a YAML/JSON value (serde `Deserialize`) and from a flag string (`FromStr`), and
//! its error is one clear sentence without the key (the caller adds file, line, key).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::spec::{ExecMode, SocketMode};

/// Any value as written, before its key's rules apply. Numbers keep their kind so
/// `1.5` can be told from `"1.5"`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loose {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Loose>),
    Map,
}

impl Loose {
    /// How the value is shown after "got".
    pub fn describe(&self) -> String {
        match self {
            Loose::Null => "nothing (null)".into(),
            Loose::Bool(b) => b.to_string(),
            Loose::Int(i) => i.to_string(),
            Loose::Float(x) => format!("{x:?}"),
            Loose::Str(s) => format!("{s:?}"),
            Loose::List(_) => "a list".into(),
            Loose::Map => "a map".into(),
        }
    }

    /// A scalar as text (numbers and booleans converted), for env values and args.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Loose::Bool(b) => Some(b.to_string()),
            Loose::Int(i) => Some(i.to_string()),
            Loose::Float(x) => Some(x.to_string()),
            Loose::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// An integer, or a string holding one (`"4"`).
    fn int(&self) -> Option<i128> {
        match self {
            Loose::Int(i) => Some(*i),
            Loose::Str(s) => {
                let t = s.trim();
                if t.is_empty()
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
                {
                    return None;
                }
                t.parse().ok()
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Loose, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Loose, E> {
        Ok(i128::try_from(v).map_or(Loose::Float(v as f64), Loose::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Loose>()? {
            items.push(item);
        }
        Ok(Loose::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Map)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Loose, A::Error> {
        Err(de::Error::custom(
            "tagged values (like `!tag value`) are not supported",
        ))
    }
}

/// Parsing from a [`Loose`] value: the one rule shared by serde and `FromStr`.
pub(crate) trait FromLoose: Sized {
    fn from_loose(v: &Loose) -> Result<Self, String>;
}

/// `Deserialize` and `FromStr` for types implementing [`FromLoose`].
macro_rules! loose_value {
    ($($t:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Loose::deserialize(d)?;
                <$t as FromLoose>::from_loose(&v).map_err(de::Error::custom)
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t as FromLoose>::from_loose(&Loose::Str(s.to_owned()))
            }
        }
    )*};
}

loose_value!(
    Instances,
    MemorySize,
    Millis,
    ListenSpec,
    KillSignal,
    ArgList,
    ExitCodes,
    CombinedLog,
    LogRotate,
    LogRetain
);

impl FromStr for ExecMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_loose(&Loose::Str(s.to_owned()))
    }
}

impl FromStr for SocketMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_loose(&Loose::Str(s.to_owned()))
    }
}

/// Most instances one app may ask for: a typo like `40000` must not fork-bomb the host.
pub const MAX_INSTANCES: i64 = 4096;

/// `instances`: a count; `"max"` or 0 = one per CPU; `-n` = CPUs − n (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances(pub i64);

impl Instances {
    /// The number of workers on a host with `cpus` CPUs (never 0).
    pub fn resolve(self, cpus: u32) -> u32 {
        let cpus = i64::from(cpus.max(1));
        let n = match self.0 {
            0 => cpus,
            n if n > 0 => n,
            n => cpus.saturating_add(n).max(1),
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl FromLoose for Instances {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        if let Loose::Str(s) = v
            && s.trim().eq_ignore_ascii_case("max")
        {
            return Ok(Instances(0));
        }
        let n = v
            .int()
            .ok_or_else(|| format!("expected a number, \"max\" or -1, got {}", v.describe()))?;
        if n > i128::from(MAX_INSTANCES) {
            return Err(format!("{n} is too many (at most {MAX_INSTANCES})"));
        }
        // Any negative beyond the CPU count means 1; clamp so it fits.
        Ok(Instances(i64::try_from(n).unwrap_or(i64::MIN + 1)))
    }
}

/// A size in bytes: `1073741824`, `300K`, `512M`, `512MB`, `1G` (K = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySize(pub u64);

impl FromLoose for MemorySize {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let bad = || {
            format!(
                "{} is not a size (use bytes or 300K, 512M, 1G)",
                v.describe()
            )
        };
        let bytes = match v {
            Loose::Int(n) => u64::try_from(*n).map_err(|_| bad())?,
            Loose::Str(s) => {
                let (num, unit) = split_number(s.trim()).ok_or_else(bad)?;
                let mult: u64 = match unit.to_ascii_lowercase().as_str() {
                    "" | "b" => 1,
                    "k" | "kb" | "kib" => 1 << 10,
                    "m" | "mb" | "mib" => 1 << 20,
                    "g" | "gb" | "gib" => 1 << 30,
                    "t" | "tb" | "tib" => 1 << 40,
                    _ => return Err(bad()),
                };
                scale(num, mult).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        };
        if bytes == 0 {
            return Err(format!(
                "{} is not a size: it must be more than 0",
                v.describe()
            ));
        }
        Ok(MemorySize(bytes))
    }
}

/// `log_rotate`: when an app's log files rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRotate {
    /// Never: the files are left to logrotate(8) (and `drover reload-logs`).
    Off,
    /// When a file reaches `log_max_size` (the default).
    Size,
    /// At local midnight too.
    Daily,
}

impl FromLoose for LogRotate {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected daily (also at local midnight), true (by size only) or false (never), got {}",
                v.describe()
            )
        };
        match v {
            Loose::Bool(true) => Ok(LogRotate::Size),
            Loose::Bool(false) => Ok(LogRotate::Off),
            Loose::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "daily" => Ok(LogRotate::Daily),
                "true" => Ok(LogRotate::Size),
                "false" => Ok(LogRotate::Off),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// `log_retain`: how many rotated files of each log file are kept (1 or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetain(pub u32);

impl FromLoose for LogRetain {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v.int() {
            Some(n) if n >= 1 => u32::try_from(n)
                .map(LogRetain)
                .map_err(|_| format!("{n} is too many")),
            Some(n) => Err(format!(
                "{n} would delete each file as it rotates; keep 1 or more (log_rotate: false never rotates)"
            )),
            None => Err(format!(
                "expected a number of rotated files to keep (1 or more), got {}",
                v.describe()
            )),
        }
    }
}

/// A duration: PM2's integer milliseconds, or `500ms`, `1s`, `1.5s`, `2m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Duration);

impl FromLoose for Millis {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected milliseconds or a duration like 500ms, 1.5s, 2m, 1h, got {}",
                v.describe()
            )
        };
        let ms = match v {
            Loose::Int(n) => u64::try_from(*n).map_err(|_| bad())?,
            Loose::Str(s) => {
                let (num, unit) = split_number(s.trim()).ok_or_else(bad)?;
                let mult: u64 = match unit {
                    "" | "ms" => 1,
                    "s" => 1_000,
                    "m" | "min" => 60_000,
                    "h" => 3_600_000,
                    _ => return Err(bad()),
                };
                scale(num, mult).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        };
        // About 31 years: anything longer is a typo, and it keeps Instant math safe.
        if ms > 1_000_000_000_000 {
            return Err(format!("{} is too long", v.describe()));
        }
        Ok(Millis(Duration::from_millis(ms)))
    }
}

/// `"1.5G"` → (`"1.5"`, `"G"`); the number part must be digits with at most one dot.
fn split_number(s: &str) -> Option<(&str, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let mut parts = num.split('.');
    let int_part = parts.next()?;
    let frac = parts.next();
    if int_part.is_empty() || parts.next().is_some() || frac.is_some_and(str::is_empty) {
        return None;
    }
    Some((num, unit.trim_start()))
}

/// `num` (digits, maybe with a fraction) × `mult`, floored; None on overflow.
fn scale(num: &str, mult: u64) -> Option<u64> {
    if !num.contains('.') {
        return num.parse::<u64>().ok()?.checked_mul(mult);
    }
    let x = num.parse::<f64>().ok()? * mult as f64;
    (x.is_finite() && x < 1.8e19).then_some(x.floor() as u64)
}

/// The `listen` key: a port (all IPv4 interfaces), `host:port`, `[v6]:port` or
/// `unix:/path` (relative paths are resolved against the app's cwd later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenSpec {
    Port(u16),
    Tcp(SocketAddr),
    Unix(PathBuf),
}

const LISTEN_FORMS: &str = "a port (3000), an address (127.0.0.1:3000, [::]:3000) or unix:/path";

impl FromLoose for ListenSpec {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let bad = || format!("expected {LISTEN_FORMS}, got {}", v.describe());
        match v {
            Loose::Int(_) => parse_port(v).map(ListenSpec::Port),
            Loose::Str(s) => {
                let t = s.trim();
                if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
                    return parse_port(v).map(ListenSpec::Port);
                }
                if let Some(path) = t.strip_prefix("unix:") {
                    if path.is_empty() {
                        return Err("unix: needs a path, like unix:/run/app.sock".into());
                    }
                    if path.contains('\0') {
                        return Err("the socket path contains a NUL byte".into());
                    }
                    return Ok(ListenSpec::Unix(PathBuf::from(path)));
                }
                if let Ok(addr) = t.parse::<SocketAddr>() {
                    return Ok(ListenSpec::Tcp(addr));
                }
                if let Some(port) = t.strip_prefix("localhost:")
                    && let Ok(port) = port.parse::<u16>()
                {
                    return Ok(ListenSpec::Tcp(SocketAddr::from((
                        Ipv4Addr::LOCALHOST,
                        port,
                    ))));
                }
                if t.starts_with('/') || t.starts_with("./") {
                    return Err(format!("{} — for a unix socket write \"unix:{t}\"", bad()));
                }
                if let Some((host, port)) = t.rsplit_once(':')
                    && port.parse::<u16>().is_ok()
                    && !host.contains(':')
                {
                    return Err(format!(
                        "{} — host names are not resolved; use an IP address",
                        bad()
                    ));
                }
                Err(bad())
            }
            _ => Err(bad()),
        }
    }
}

/// A port number 0–65535 (an integer or a string holding one).
pub(crate) fn parse_port(v: &Loose) -> Result<u16, String> {
    match v.int() {
        Some(n) => u16::try_from(n).map_err(|_| format!("{n} is not a port (0-65535)")),
        None => Err(format!("expected a port number, got {}", v.describe())),
    }
}

/// The signals a worker may be stopped with.
const SIGNALS: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGKILL,
];

/// `kill_signal`: SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL (any
/// case, `SIG` optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillSignal(pub Signal);

impl FromLoose for KillSignal {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected a signal name (SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL), got {}",
                v.describe()
            )
        };
        let Loose::Str(s) = v else { return Err(bad()) };
        signal_named(s, SIGNALS.iter().copied())
            .map(KillSignal)
            .ok_or_else(bad)
    }
}

/// The signal `name` names among `among`: any case, `SIG` optional (`usr2`, `SIGUSR2`).
fn signal_named(name: &str, among: impl IntoIterator<Item = Signal>) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    among
        .into_iter()
        .find(|sig| sig.as_str().strip_prefix("SIG") == Some(bare))
}

/// Any signal by name, as `kill_signal` spells them (any case, `SIG` optional): what
/// `drover send-signal` sends (SIGUSR2, SIGHUP, SIGWINCH, SIGKILL…, every one Linux
/// names but the real-time ones).
pub fn any_signal(name: &str) -> Result<Signal, String> {
    signal_named(name, Signal::iterator()).ok_or_else(|| {
        format!("{name:?}: not a signal name (SIGUSR2, SIGHUP, SIGTERM, …; `kill -l` lists them)")
    })
}

/// Arguments: a list, or one string split like a shell would (whitespace, with
/// `'single'` and `"double"` quotes and backslash escapes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArgList(pub Vec<String>);

impl FromLoose for ArgList {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let args = match v {
            Loose::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.scalar_text().ok_or_else(|| {
                        format!(
                            "expected a string or a list of strings, item {} is {}",
                            i + 1,
                            item.describe()
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Loose::Str(s) => split_args(s)?,
            other => match other.scalar_text() {
                Some(text) => vec![text],
                None => {
                    return Err(format!(
                        "expected a string or a list of strings, got {}",
                        other.describe()
                    ));
                }
            },
        };
        if args.iter().any(|a| a.contains('\0')) {
            return Err("an argument contains a NUL byte".into());
        }
        Ok(ArgList(args))
    }
}

/// Shell-like word splitting: whitespace separates, quotes group, `\` escapes.
pub(crate) fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated \" quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().unwrap_or('\\'));
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The first character of `s` a shell would treat as syntax rather than as text: an
/// operator (`| & ; < > ( )`), a glob (`*`), or an expansion (`$`, `` ` ``, also inside
/// double quotes). None when [`split_args`] gives the words a shell would.
pub(crate) fn shell_syntax(s: &str) -> Option<char> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            chars.next();
                        }
                        '$' | '`' => return Some(c),
                        _ => {}
                    }
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '$' | '`' => return Some(c),
            _ => {}
        }
    }
    None
}

/// `stop_exit_codes`: one code or a list (`0`, `[0, 3]`, `"0,3"`), each 0–255.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitCodes(pub Vec<i32>);

impl FromLoose for ExitCodes {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let one = |item: &Loose| -> Result<i32, String> {
            match item.int() {
                Some(n) if (0..=255).contains(&n) => Ok(n as i32),
                Some(n) => Err(format!("{n} is not an exit code (0-255)")),
                None => Err(format!(
                    "expected an exit code or a list of them, got {}",
                    item.describe()
                )),
            }
        };
        let codes = match v {
            Loose::List(items) => items.iter().map(one).collect::<Result<_, _>>()?,
            Loose::Str(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty())
                .map(|p| one(&Loose::Str(p.to_owned())))
                .collect::<Result<_, _>>()?,
            other => vec![one(other)?],
        };
        Ok(ExitCodes(codes))
    }
}

impl FromLoose for ExecMode {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "cluster" | "cluster_mode" => Ok(ExecMode::Cluster),
                "fork" | "fork_mode" => Ok(ExecMode::Fork),
                _ => Err(format!("expected cluster or fork, got {}", v.describe())),
            },
            _ => Err(format!("expected cluster or fork, got {}", v.describe())),
        }
    }
}

impl FromLoose for SocketMode {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "reuseport" => Ok(SocketMode::Reuseport),
                "shared" => Ok(SocketMode::Shared),
                _ => Err(format!(
                    "expected reuseport or shared, got {}",
                    v.describe()
                )),
            },
            _ => Err(format!(
                "expected reuseport or shared, got {}",
                v.describe()
            )),
        }
    }
}

impl FromLoose for bool {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Bool(b) => Ok(*b),
            Loose::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            Loose::Str(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(format!("expected true or false, got {}", v.describe())),
        }
    }
}

impl FromLoose for u32 {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v.int() {
            Some(n) => u32::try_from(n).map_err(|_| {
                if n < 0 {
                    format!("{n} is negative; expected a whole number (0 or more)")
                } else {
                    format!("{n} is too large")
                }
            }),
            None => Err(format!(
                "expected a whole number (0 or more), got {}",
                v.describe()
            )),
        }
    }
}

impl FromLoose for String {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        let s = match v {
            Loose::Str(s) => s.clone(),
            Loose::Int(i) => i.to_string(),
            _ => return Err(format!("expected a string, got {}", v.describe())),
        };
        if s.contains('\0') {
            return Err("contains a NUL byte".into());
        }
        Ok(s)
    }
}

impl FromLoose for PathBuf {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Str(s) if s.is_empty() => Err("expected a path, got an empty string".into()),
            Loose::Str(_) => String::from_loose(v).map(PathBuf::from),
            _ => Err(format!("expected a path, got {}", v.describe())),
        }
    }
}

/// `log_file` (PM2's combined file of stdout and stderr): `true` for the default path,
/// `false` for none, or a path. Only real booleans are switches, as in PM2: the string
/// `"true"` is a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CombinedLog {
    Default,
    Off,
    Path(PathBuf),
}

impl FromLoose for CombinedLog {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Bool(true) => Ok(CombinedLog::Default),
            Loose::Bool(false) => Ok(CombinedLog::Off),
            Loose::Str(_) => PathBuf::from_loose(v).map(CombinedLog::Path),
            _ => Err(format!(
                "expected a path, true or false, got {}",
                v.describe()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<u64, String> {
        s.parse::<Millis>().map(|m| m.0.as_millis() as u64)
    }

    #[test]
    fn durations() {
        assert_eq!(ms("1500"), Ok(1500));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1s"), Ok(1000));
        assert_eq!(ms("1.5s"), Ok(1500));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms(" 3 s "), Ok(3000));
        for bad in [
            "-5",
            "soon",
            "1.5.2s",
            "1x",
            "",
            ".5s",
            "5.s",
            "99999999999999999999h",
        ] {
            assert!(ms(bad).is_err(), "{bad} accepted");
        }
        assert!(Millis::from_loose(&Loose::Int(-1)).is_err());
        assert!(Millis::from_loose(&Loose::Float(1.5)).is_err());
    }

    #[test]
    fn memory() {
        let mb = |s: &str| s.parse::<MemorySize>().map(|m| m.0);
        assert_eq!(mb("300K"), Ok(300 * 1024));
        assert_eq!(mb("512M"), Ok(512 << 20));
        assert_eq!(mb("512mb"), Ok(512 << 20));
        assert_eq!(mb("1G"), Ok(1 << 30));
        assert_eq!(mb("1.5G"), Ok(3 << 29));
        assert_eq!(mb("1024"), Ok(1024));
        for bad in ["0", "lots", "12X", "-1M", "", "M", "99999999999T"] {
            assert!(mb(bad).is_err(), "{bad} accepted");
        }
        assert!(MemorySize::from_loose(&Loose::Int(0)).is_err());
        assert!(MemorySize::from_loose(&Loose::Int(-3)).is_err());
    }

    #[test]
    fn log_rotation_values() {
        assert_eq!("daily".parse(), Ok(LogRotate::Daily));
        assert_eq!(" Daily ".parse(), Ok(LogRotate::Daily));
        assert_eq!("false".parse(), Ok(LogRotate::Off));
        assert_eq!(
            LogRotate::from_loose(&Loose::Bool(true)),
            Ok(LogRotate::Size)
        );
        let e = "hourly".parse::<LogRotate>().unwrap_err();
        assert!(
            e.contains("expected daily") && e.contains("\"hourly\""),
            "{e}"
        );
        assert!(LogRotate::from_loose(&Loose::Int(1)).is_err());
        assert_eq!("30".parse(), Ok(LogRetain(30)));
        assert_eq!(LogRetain::from_loose(&Loose::Int(1)), Ok(LogRetain(1)));
        for bad in ["0", "-2", "lots", "", "1.5", "99999999999"] {
            assert!(bad.parse::<LogRetain>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn instances() {
        let i = |s: &str| s.parse::<Instances>().map(|n| n.resolve(8));
        assert_eq!(i("max"), Ok(8));
        assert_eq!(i("MAX"), Ok(8));
        assert_eq!(i("0"), Ok(8));
        assert_eq!(i("-1"), Ok(7));
        assert_eq!(i("-3"), Ok(5));
        assert_eq!(i("-100"), Ok(1));
        assert_eq!(i("4"), Ok(4));
        assert!(i("lots").is_err());
        assert!(i("1.5").is_err());
        assert!(i("5000").is_err());
        assert_eq!(Instances(-1).resolve(1), 1);
        assert_eq!(Instances(0).resolve(0), 1);
        assert_eq!(
            Instances::from_loose(&Loose::Int(i128::MIN)).map(|n| n.resolve(4)),
            Ok(1)
        );
        assert!(Instances::from_loose(&Loose::Bool(true)).is_err());
        assert!(Instances::from_loose(&Loose::Float(1.5)).is_err());
    }

    #[test]
    fn listen() {
        assert_eq!("3000".parse(), Ok(ListenSpec::Port(3000)));
        assert_eq!(
            "127.0.0.1:80".parse(),
            Ok(ListenSpec::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:80".parse(),
            Ok(ListenSpec::Tcp("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            "localhost:80".parse(),
            Ok(ListenSpec::Tcp("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "unix:app.sock".parse(),
            Ok(ListenSpec::Unix("app.sock".into()))
        );
        let e = "70000".parse::<ListenSpec>().unwrap_err();
        assert!(e.contains("not a port"), "{e}");
        let e = "/tmp/x.sock".parse::<ListenSpec>().unwrap_err();
        assert!(e.contains("unix:/tmp/x.sock"), "{e}");
        let e = "example.com:80".parse::<ListenSpec>().unwrap_err();
        assert!(e.contains("host names"), "{e}");
        assert!("unix:".parse::<ListenSpec>().is_err());
    }

    #[test]
    fn signals() {
        for (s, sig) in [
            ("SIGINT", Signal::SIGINT),
            ("term", Signal::SIGTERM),
            ("sigusr2", Signal::SIGUSR2),
            ("KILL", Signal::SIGKILL),
        ] {
            assert_eq!(s.parse(), Ok(KillSignal(sig)));
        }
        assert!("SIGSEGV".parse::<KillSignal>().is_err());
        assert!("".parse::<KillSignal>().is_err());
    }

    #[test]
    fn any_signal_is_named_as_kill_signal_spells_them() {
        for (s, sig) in [
            ("SIGUSR2", Signal::SIGUSR2),
            ("usr1", Signal::SIGUSR1),
            ("SigHup", Signal::SIGHUP),
            ("WINCH", Signal::SIGWINCH),
            ("sigkill", Signal::SIGKILL),
            ("TTIN", Signal::SIGTTIN),
            (" QUIT ", Signal::SIGQUIT),
        ] {
            assert_eq!(any_signal(s), Ok(sig), "{s}");
        }
        for bad in ["", "SIG", "USR3", "9", "SIGRTMIN", "kill -9"] {
            let e = any_signal(bad).unwrap_err();
            assert!(e.contains("not a signal name"), "{bad}: {e}");
        }
    }

    #[test]
    fn args() {
        assert_eq!(
            split_args(r#"--a 1  'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["--a", "1", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(split_args("''").unwrap(), vec![""]);
        assert!(split_args("'open").is_err());
        assert!(split_args("\"open").is_err());
        let list = Loose::List(vec![Loose::Str("--workers".into()), Loose::Int(4)]);
        assert_eq!(
            ArgList::from_loose(&list).unwrap().0,
            vec!["--workers", "4"]
        );
        assert!(ArgList::from_loose(&Loose::List(vec![Loose::Map])).is_err());
    }

    #[test]
    fn modes_and_codes() {
        assert_eq!("cluster_mode".parse(), Ok(ExecMode::Cluster));
        assert_eq!("Fork".parse(), Ok(ExecMode::Fork));
        assert!("both".parse::<ExecMode>().is_err());
        assert_eq!("shared".parse(), Ok(SocketMode::Shared));
        assert!("reuse".parse::<SocketMode>().is_err());
        assert_eq!("0, 3".parse(), Ok(ExitCodes(vec![0, 3])));
        assert!("256".parse::<ExitCodes>().is_err());
        assert!("x".parse::<ExitCodes>().is_err());
    }
}

/// `watch`: on (`true`: the app's cwd), off, or these paths (relative to cwd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    Off,
    Cwd,
    Paths(Vec<PathBuf>),
}

impl FromLoose for Watch {
    fn from_loose(v: &Loose) -> Result<Self, String> {
        match v {
            Loose::Bool(true) => Ok(Watch::Cwd),
            Loose::Bool(false) => Ok(Watch::Off),
            Loose::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Watch::Cwd),
            Loose::Str(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Watch::Off),
            Loose::Str(s) if s.trim().is_empty() => Err("is empty".into()),
            Loose::Str(s) => Ok(Watch::Paths(vec![PathBuf::from(s)])),
            Loose::List(items) => {
                let paths = items
                    .iter()
                    .map(|item| match item {
                        Loose::Str(s) if !s.trim().is_empty() => Ok(PathBuf::from(s)),
                        other => Err(format!(
                            "expected paths, got {} in the list",
                            other.describe()
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if paths.is_empty() {
                    return Err("an empty list watches nothing: write false".into());
                }
                Ok(Watch::Paths(paths))
            }
            other => Err(format!(
                "expected true, false, a path or a list of paths, got {}",
                other.describe()
            )),
        }
    }
}
