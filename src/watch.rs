//! `watch`: an app's files, watched with inotify (the notify crate), directory by
//! directory: the ignored ones (`ignore_watch`: node_modules, .git, logs by default; the
//! app's own log files always) are never watched, so 10,000 files in node_modules cost
//! no watch and no wake-up. A change starts a quiet period of `watch_delay`, which every
//! further change restarts; when it ends the app is reloaded once (a `git checkout` of
//! a thousand files is one reload). The watcher tells the supervisor through a channel;
//! the supervisor's control loop does the reload as `drover reload` would.
//!
//! A watch limit that runs out (`fs.inotify.max_user_watches`) is an error when the app
//! starts, naming the sysctl, not a silent miss; one that runs out for a directory
//! created later is logged.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::WatchSpec;
use crate::sync::lock;

/// What `ignore_watch` leaves out: plain names match any path component, globs match the
/// path relative to the watched root, or the file's name. Also the app's own log files:
/// each given as its directory and the start of its name (`api-out` covers
/// `api-out.log`, `api-out-1.log` and the rotated `api-out__2026-…log`), or a write to
/// its log would reload the app, which would write to its log…
#[derive(Debug, Clone)]
pub struct Ignore {
    names: Vec<String>,
    globs: GlobSet,
    logs: Vec<(PathBuf, String)>,
}

/// The (directory, name start) of each of the app's log files, for [`Ignore`].
pub fn own_logs(logs: &crate::config::LogSpec) -> Vec<(PathBuf, String)> {
    [
        Some(&logs.out_file),
        Some(&logs.error_file),
        logs.log_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|file| {
        let dir = file.parent()?.to_path_buf();
        let stem = file.file_stem()?.to_string_lossy().into_owned();
        Some((dir, stem))
    })
    .collect()
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

impl Ignore {
    /// Whether `pattern` is a name or a glob drover reads (the config's check).
    pub fn check(pattern: &str) -> Result<(), String> {
        if pattern.trim().is_empty() {
            return Err("an empty pattern".into());
        }
        if is_glob(pattern) {
            Glob::new(pattern).map_err(|e| format!("{pattern:?}: {e}"))?;
        }
        Ok(())
    }

    pub fn new(patterns: &[String], logs: Vec<(PathBuf, String)>) -> Ignore {
        let mut names = Vec::new();
        let mut globs = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.trim().trim_end_matches('/');
            if is_glob(pattern) {
                if let Ok(glob) = Glob::new(pattern) {
                    globs.add(glob);
                }
            } else {
                names.push(pattern.trim_start_matches("./").to_owned());
            }
        }
        Ignore {
            names,
            globs: globs.build().unwrap_or_else(|_| GlobSet::empty()),
            logs,
        }
    }

    /// Whether `path` (under `root`) is left out.
    pub fn ignores(&self, root: &Path, path: &Path) -> bool {
        let own_log = self.logs.iter().any(|(dir, stem)| {
            path.parent() == Some(dir.as_path())
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(stem.as_str()))
        });
        if own_log {
            return true;
        }
        let relative = path.strip_prefix(root).unwrap_or(path);
        let rel_text = relative.to_string_lossy();
        if self.names.iter().any(|name| {
            relative
                .components()
                .any(|c| c.as_os_str() == name.as_str())
                || (name.contains('/')
                    && (rel_text == *name || rel_text.starts_with(&format!("{name}/"))))
        }) {
            return true;
        }
        self.globs.is_match(relative)
            || relative
                .file_name()
                .is_some_and(|name| self.globs.is_match(Path::new(name)))
    }
}

/// One quiet end of a burst of changes: the app, the first file that changed (what
/// the log names, so a watch that keeps firing shows its cause) and how many others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub app: String,
    pub first: PathBuf,
    pub more: usize,
}

/// The paths a burst of changes touched, the first apart.
#[derive(Default)]
struct Burst {
    first: Option<PathBuf>,
    others: HashSet<PathBuf>,
}

impl Burst {
    fn add(&mut self, path: &Path) {
        match &self.first {
            None => self.first = Some(path.to_path_buf()),
            Some(first) if first == path => {}
            Some(_) => {
                self.others.insert(path.to_path_buf());
            }
        }
    }
}

/// A running watch of one app; dropping it stops it.
pub struct AppWatch {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AppWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `spec` for app `name`; each quiet end of a burst of changes sends what
/// changed on `changed`. Must be called on the supervisor's runtime.
pub fn start(
    name: &str,
    spec: &WatchSpec,
    logs: Vec<(PathBuf, String)>,
    changed: mpsc::UnboundedSender<Changed>,
) -> Result<AppWatch, String> {
    let ignore = Arc::new(Ignore::new(&spec.ignore, logs));
    let (events_tx, mut events) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let watcher = notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    })
    .map_err(|e| format!("app {name}: cannot watch its files: {e}"))?;
    let watcher = Arc::new(Mutex::new(watcher));
    let mut watched = 0usize;
    for root in &spec.paths {
        watched += add_tree(&watcher, root, root, &ignore)
            .map_err(|(e, done)| describe(name, e, watched + done))?;
    }
    info!(
        "{name}: watching {watched} director{} for changes",
        if watched == 1 { "y" } else { "ies" }
    );
    let roots = spec.paths.clone();
    let delay = spec.delay;
    let app = name.to_owned();
    let tree = watcher.clone();
    let task = tokio::spawn(async move {
        loop {
            // Wait for a change that counts…
            let Some(event) = events.recv().await else {
                return;
            };
            let mut burst = Burst::default();
            counts(&event, &roots, &ignore, &tree, &app, &mut burst);
            let Some(first) = burst.first.clone() else {
                continue;
            };
            // …then for `delay` without one.
            loop {
                match tokio::time::timeout(delay, events.recv()).await {
                    Ok(Some(event)) => counts(&event, &roots, &ignore, &tree, &app, &mut burst),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let more = burst.others.len();
            if changed
                .send(Changed {
                    app: app.clone(),
                    first,
                    more,
                })
                .is_err()
            {
                return;
            }
        }
    });
    Ok(AppWatch {
        _watcher: watcher,
        task,
    })
}

/// Adds to `burst` the watched files `event` changed; a new directory gets watched.
fn counts(
    event: &notify::Result<notify::Event>,
    roots: &[PathBuf],
    ignore: &Ignore,
    watcher: &Mutex<RecommendedWatcher>,
    app: &str,
    burst: &mut Burst,
) {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            warn!("{app}: file watch error: {e}");
            return;
        }
    };
    if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
        return;
    }
    for path in &event.paths {
        let Some(root) = roots.iter().find(|r| path.starts_with(r)) else {
            continue;
        };
        if ignore.ignores(root, path) {
            continue;
        }
        burst.add(path);
        if matches!(event.kind, EventKind::Create(_))
            && path.is_dir()
            && let Err((e, done)) = add_tree(watcher, root, path, ignore)
        {
            warn!("{}", describe(app, e, done));
        }
    }
}

/// Watches `dir` and every directory under it that is not ignored (not following
/// symlinks); a file root is watched as itself. Returns how many were watched (also
/// with the error that stopped it).
fn add_tree(
    watcher: &Mutex<RecommendedWatcher>,
    root: &Path,
    dir: &Path,
    ignore: &Ignore,
) -> Result<usize, (notify::Error, usize)> {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        lock(watcher)
            .watch(&next, RecursiveMode::NonRecursive)
            .map_err(|e| (e, count))?;
        count += 1;
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !ignore.ignores(root, &path) {
                stack.push(path);
            }
        }
    }
    Ok(count)
}

fn describe(app: &str, e: notify::Error, watched: usize) -> String {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            format!(
                "app {app}: the inotify watch limit ran out after {watched} directories (fs.inotify.max_user_watches = {limit}): raise it (sysctl -w fs.inotify.max_user_watches=524288) or leave more out with ignore_watch"
            )
        }
        _ => format!("app {app}: cannot watch its files: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_globs_leave_paths_out() {
        let root = Path::new("/srv/app");
        let ignore = Ignore::new(
            &[
                "node_modules".into(),
                ".git".into(),
                "*.log".into(),
                "tmp/**".into(),
                "build/out".into(),
            ],
            vec![("/srv/app".into(), "api-out".into())],
        );
        let out = |p: &str| ignore.ignores(root, Path::new(p));
        assert!(out("/srv/app/node_modules"));
        assert!(out("/srv/app/node_modules/a/b.js"));
        assert!(out("/srv/app/src/node_modules/x.js"));
        assert!(out("/srv/app/.git/index"));
        assert!(out("/srv/app/server.log"));
        assert!(out("/srv/app/deep/dir/server.log"));
        assert!(out("/srv/app/tmp/a/b"));
        assert!(out("/srv/app/build/out/x"));
        assert!(out("/srv/app/api-out.log"));
        assert!(out("/srv/app/api-out-1.log"));
        assert!(out("/srv/app/api-out__2026-12-05_00-00-00.log.gz"));
        assert!(!out("/srv/app/sub/api-out.txt"));
        assert!(!out("/srv/app/src/index.js"));
        assert!(!out("/srv/app/gitignore"));
        assert!(!out("/srv/app/build/in/x"));
        assert!(Ignore::check("[oops").is_err());
        assert!(Ignore::check(" ").is_err());
        assert!(Ignore::check("**/*.tmp").is_ok());
    }
}
