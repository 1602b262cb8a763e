//! Errors of the config module: [`ConfigError`] (what callers see: one message naming
//! the file, line, app and key, with a hint) and [`FieldError`] (an error inside one
//! app, before it is placed in a file or on the command line).

use std::fmt;
use std::path::PathBuf;

/// One step of a path into the document: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// An error inside one app entry. `path` is relative to the app's map and is used to
/// find the line; `label` is the key as shown to the user (`instances`, `env.PORT`).
#[derive(Debug, Clone)]
pub(crate) struct FieldError {
    pub label: Option<String>,
    pub path: Vec<Seg>,
    pub message: String,
    /// Render as `label: message` (a bad value) rather than `message` alone.
    pub keyed: bool,
    pub hint: Option<String>,
}

impl FieldError {
    /// A bad value of `key`: rendered `key: message`.
    pub fn value(key: &str, message: impl Into<String>) -> Self {
        FieldError {
            label: Some(key.to_owned()),
            path: vec![Seg::Key(key.to_owned())],
            message: message.into(),
            keyed: true,
            hint: None,
        }
    }

    /// A problem located at `key` whose message already names it.
    pub fn at_key(key: &str, message: impl Into<String>) -> Self {
        FieldError {
            keyed: false,
            ..FieldError::value(key, message)
        }
    }

    /// A problem of the whole app (no single key).
    pub fn app(message: impl Into<String>) -> Self {
        FieldError {
            label: None,
            path: Vec::new(),
            message: message.into(),
            keyed: false,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_path(mut self, label: String, path: Vec<Seg>) -> Self {
        self.label = Some(label);
        self.path = path;
        self
    }
}

/// A rejected ecosystem file or set of CLI flags. `Display` gives the whole message:
///
/// ```text
/// ecosystem.yaml:5: app "api": instances: expected a number, "max" or -1, got "lots"
/// ```
///
/// For the CLI there is no file and keys are shown as flags (`--instances: …`).
/// The parts are in [`ErrorInfo`] (reached through `Deref`: `err.line`, `err.key`).
#[derive(Debug, Clone)]
pub struct ConfigError(Box<ErrorInfo>);

/// The parts of a [`ConfigError`].
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// The ecosystem file as the user named it (None: CLI flags).
    pub file: Option<PathBuf>,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column (given for syntax errors).
    pub column: Option<usize>,
    /// `app "api"` or `app #2` (1-based) when the error is inside one app.
    pub app: Option<String>,
    /// The key as written in the file (`instances`, `node_args`, `env.PORT`).
    pub key: Option<String>,
    /// The message after the location and app, key included (`instances: expected …`).
    pub message: String,
    /// Advice printed on its own line.
    pub hint: Option<String>,
}

impl std::ops::Deref for ConfigError {
    type Target = ErrorInfo;
    fn deref(&self) -> &ErrorInfo {
        &self.0
    }
}

impl std::ops::DerefMut for ConfigError {
    fn deref_mut(&mut self) -> &mut ErrorInfo {
        &mut self.0
    }
}

impl ConfigError {
    /// An error about a whole file (no line).
    pub(crate) fn file(file: &std::path::Path, message: impl Into<String>) -> Self {
        ConfigError(Box::new(ErrorInfo {
            file: Some(file.to_path_buf()),
            line: None,
            column: None,
            app: None,
            key: None,
            message: message.into(),
            hint: None,
        }))
    }

    /// A combination of command-line flags that makes no sense (no file, no app).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        ConfigError(Box::new(ErrorInfo {
            file: None,
            line: None,
            column: None,
            app: None,
            key: None,
            message: message.into(),
            hint: None,
        }))
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// Place an app's error in a file.
    pub(crate) fn from_field(
        file: &std::path::Path,
        line: Option<usize>,
        app: String,
        err: FieldError,
    ) -> Self {
        let message = match (&err.label, err.keyed) {
            (Some(label), true) => format!("{label}: {}", err.message),
            _ => err.message,
        };
        ConfigError(Box::new(ErrorInfo {
            file: Some(file.to_path_buf()),
            line,
            column: None,
            app: Some(app),
            key: err.label,
            message,
            hint: err.hint,
        }))
    }

    /// An app's error from CLI flags: keys become `--flags`.
    pub(crate) fn from_cli(err: FieldError) -> Self {
        let message = match (&err.label, err.keyed) {
            (Some(label), true) => format!("{}: {}", flag(label), err.message),
            _ => err.message,
        };
        ConfigError(Box::new(ErrorInfo {
            file: None,
            line: None,
            column: None,
            app: None,
            key: err.label,
            message,
            hint: err.hint,
        }))
    }
}

/// The CLI flag of a key: `max_memory_restart` → `--max-memory-restart`, with PM2's
/// spellings where they differ (`out_file` → `--output`).
pub(crate) fn flag(key: &str) -> String {
    match key {
        "out_file" => "--output".into(),
        "error_file" => "--error".into(),
        "log_file" => "--log".into(),
        "autorestart" => "--no-autorestart".into(),
        _ => format!("--{}", key.replace('_', "-")),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
        }
        if let Some(app) = &self.app {
            write!(f, "{app}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The closest of `candidates` to `word`: a case/camelCase-insensitive match, a
/// candidate within edit distance 2, or one `word` is a prefix of (3+ chars).
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = snake_case(word);
    if let Some(exact) = candidates.iter().find(|c| **c == norm) {
        return Some(exact);
    }
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let d = edit_distance(&norm, cand);
        let close = d <= 2 && d < cand.len().max(1);
        if close && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    if let Some((_, cand)) = best {
        return Some(cand);
    }
    if norm.len() >= 3 {
        return candidates.iter().find(|c| c.starts_with(&norm)).copied();
    }
    None
}

/// `execMode` → `exec_mode`, `Exec-Mode` → `exec_mode`.
fn snake_case(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 4);
    let mut prev_lower = false;
    for c in word.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c == '-' {
            out.push('_');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, cell) in d.iter_mut().step_by(w).enumerate() {
        *cell = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = [
            "instances",
            "exec_mode",
            "script",
            "max_memory_restart",
            "env",
        ];
        assert_eq!(did_you_mean("intances", &keys), Some("instances"));
        assert_eq!(did_you_mean("instnaces", &keys), Some("instances"));
        assert_eq!(did_you_mean("execMode", &keys), Some("exec_mode"));
        assert_eq!(did_you_mean("scirpt", &keys), Some("script"));
        assert_eq!(
            did_you_mean("max_memory", &keys),
            Some("max_memory_restart")
        );
        assert_eq!(did_you_mean("banana", &keys), None);
        assert_eq!(did_you_mean("x", &keys), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "acb"), 1);
    }
}
