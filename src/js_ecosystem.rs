//! JavaScript ecosystem files (`ecosystem.config.js`, `.cjs`, `.mjs`), as PM2 reads
//! them: the local `node` evaluates the file and drover reads the `apps` it exports
//! like a JSON ecosystem file. The file's exports may be an object, a function (called,
//! its promise awaited) or an ES module's default export.
//!
//! PM2 also reads a `.json` file as a JavaScript expression (`vm.runInThisContext`), so
//! PM2 users' JSON files may have comments, unquoted keys or `[…].join('')`:
//! [`evaluate_expression`] does the same for a `.json` file that is no JSON.
//!
//! The evaluation is bounded ([`TIMEOUT`]), its output goes to a temp file rather than
//! stdout, and a file that throws, hangs, prints to stdout or exports no `apps` is a
//! one-line error naming it. Nothing else in drover runs node to read configuration.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the file may take to evaluate.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of the file's stderr quoted when it fails.
const STDERR_LINES: usize = 5;

/// Evaluates the file and returns the JSON of what it exports.
const LOADER: &str = r#"
'use strict';
const fs = require('fs');
const path = require('path');
const url = require('url');
const [file, out, mode] = process.argv.slice(1);
(async () => {
  const abs = path.resolve(file);
  let exported;
  if (mode === 'expression') {
    const code = '(' + fs.readFileSync(abs, 'utf8') + '\n)';
    exported = require('vm').runInNewContext(code, {}, { filename: abs, timeout: 1000 });
    if (!exported || typeof exported !== 'object') {
      console.error('is neither JSON nor a JavaScript object or array');
      process.exit(3);
    }
    fs.writeFileSync(out, JSON.stringify(exported, null, 2));
    process.exit(0);
  }
  if (abs.endsWith('.mjs')) {
    exported = await import(url.pathToFileURL(abs).href);
  } else {
    try {
      exported = require(abs);
    } catch (e) {
      if (e.code !== 'ERR_REQUIRE_ESM') throw e;
      exported = await import(url.pathToFileURL(abs).href);
    }
  }
  if (exported && exported.default !== undefined && exported.apps === undefined) {
    exported = exported.default;
  }
  if (typeof exported === 'function') exported = await exported();
  if (!exported || typeof exported !== 'object' || exported.apps === undefined) {
    console.error(`exports no apps (expected module.exports = { apps: [...] })`);
    process.exit(3);
  }
  fs.writeFileSync(out, JSON.stringify(exported, null, 2));
  process.exit(0);
})().catch((e) => {
  // `line N: Name: message`, N the file's line where the stack names it (a syntax
  // error's stack starts with `file:N`, a throw's has `(file:N:col)`).
  const abs = path.resolve(file);
  if (!e || typeof e !== 'object') {
    console.error(String(e));
    process.exit(2);
  }
  const stack = String(e.stack || '');
  const at = stack.indexOf(abs + ':');
  const line = at >= 0 ? parseInt(stack.slice(at + abs.length + 1), 10) : NaN;
  const what = `${e.name || 'Error'}: ${e.message}`;
  console.error(Number.isNaN(line) ? what : `line ${line}: ${what}`);
  process.exit(2);
});
"#;

/// Whether drover reads `p` as a JavaScript ecosystem file: `*.config.js`, `.cjs` or
/// `.mjs`, as PM2 decides (any other `.js` is a script).
pub fn is_js_ecosystem(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        [".config.js", ".config.cjs", ".config.mjs"]
            .iter()
            .any(|x| n.to_ascii_lowercase().ends_with(x))
    })
}

/// Evaluates `file` with `node` (found on PATH) and returns the JSON text it exports.
/// The error is one line (plus the file's first stderr lines), naming the file.
pub fn evaluate(file: &Path) -> Result<String, String> {
    run_loader(file, &file.display().to_string(), "module")
}

/// Evaluates a `.json` file that is no JSON as one JavaScript expression (comments,
/// unquoted keys), as PM2 reads JSON files, and returns the JSON text of its value.
/// Errors as [`evaluate`]'s.
pub fn evaluate_expression(file: &Path) -> Result<String, String> {
    run_loader(file, &file.display().to_string(), "expression")
}

/// [`evaluate_expression`] of text (PM2 evaluates an ecosystem file piped to `pm2 start
/// -` the same way); errors name it `shown`.
pub fn evaluate_expression_text(text: &str, shown: &str) -> Result<String, String> {
    let source = TempFile::create("js")
        .and_then(|f| std::fs::write(&f.0, text).map(|()| f))
        .map_err(|e| format!("{shown}: cannot make a temp file: {e}"))?;
    run_loader(&source.0, shown, "expression")
}

fn run_loader(file: &Path, name: &str, mode: &str) -> Result<String, String> {
    let out =
        TempFile::create("json").map_err(|e| format!("{name}: cannot make a temp file: {e}"))?;
    let out = &out.0;
    let mut child = Command::new("node")
        .arg("-e")
        .arg(LOADER)
        .arg(file)
        .arg(out)
        .arg(mode)
        // A config file that reads process.env sees ours, as under PM2.
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("{name}: cannot run node to read it ({e}); install Node, or write the apps as ecosystem.yaml")
        })?;
    // Both pipes are read on threads, so a chatty file cannot block on a full pipe.
    let stdout = read_in_thread(child.stdout.take());
    let stderr = read_in_thread(child.stderr.take());
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name}: did not finish within {} s (does it start a server or wait on something?)",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{name}: cannot wait for node: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(STDERR_LINES)
            .collect();
        let said = said.join("\n");
        // The loader's `line N: …` becomes `file:N: …`, as every config error reads.
        let located = said.strip_prefix("line ").and_then(|rest| {
            let (n, what) = rest.split_once(": ")?;
            n.parse::<u32>().ok().map(|n| format!("{name}:{n}: {what}"))
        });
        return Err(located
            .unwrap_or_else(|| format!("{name}: {said}"))
            .trim_end()
            .to_owned());
    }
    if !stdout.trim().is_empty() {
        let first = stdout.lines().next().unwrap_or_default();
        return Err(format!(
            "{name}: prints to stdout while it is read ({first:?}…); an ecosystem file should only export its apps"
        ));
    }
    match std::fs::read_to_string(out) {
        Ok(json) if !json.is_empty() => Ok(json),
        // node found nothing left to do before the export settled (a promise that never
        // resolves, with nothing pending).
        Ok(_) => Err(format!(
            "{name}: its export never settled (a promise that never resolves?)"
        )),
        Err(e) => Err(format!("{name}: node wrote no apps: {e}")),
    }
}

/// A fresh file in the temp dir (created exclusively, 0600), for node to read or write;
/// removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn create(extension: &str) -> std::io::Result<TempFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "drover-eco-{}-{nanos}.{extension}",
            std::process::id()
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_in_thread(stream: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_string(&mut text);
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_config_files_are_ecosystem_files() {
        assert!(is_js_ecosystem(Path::new("ecosystem.config.js")));
        assert!(is_js_ecosystem(Path::new("a/pm2.config.cjs")));
        assert!(is_js_ecosystem(Path::new("x.CONFIG.mjs")));
        assert!(!is_js_ecosystem(Path::new("app.js")));
        assert!(!is_js_ecosystem(Path::new("config.js")));
    }
}
