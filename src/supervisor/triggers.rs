//! What reloads an app by itself: its files changing (`watch`, see `crate::watch`) and
//! its schedule (`cron_restart`, see `crate::schedule`). Each app's triggers run beside
//! the control loop and only send it the app's name; the loop reloads the app as
//! `drover reload` would (never waiting on it), or passes when the app is stopped or
//! busy with another change.

use std::path::Path;
use std::sync::Arc;

use chrono::Local;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::config::AppSpec;
use crate::watch::{self, AppWatch};

/// Why an app is to be reloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The app's files changed: the first (relative to the app's cwd when under it)
    /// and how many more.
    FilesChanged {
        app: String,
        first: String,
        more: usize,
    },
    Scheduled(String),
    /// One of the above that came while drover was being updated in place, handed
    /// over to the new image.
    HeldBack(String),
}

impl Trigger {
    pub fn app(&self) -> &str {
        match self {
            Trigger::FilesChanged { app, .. }
            | Trigger::Scheduled(app)
            | Trigger::HeldBack(app) => app,
        }
    }

    /// Why, for the log: `its files changed (src/app.js and 3 more)`.
    pub fn reason(&self) -> String {
        match self {
            Trigger::FilesChanged { first, more: 0, .. } => {
                format!("its files changed ({first})")
            }
            Trigger::FilesChanged { first, more, .. } => {
                format!("its files changed ({first} and {more} more)")
            }
            Trigger::Scheduled(_) => "its cron_restart time came".into(),
            Trigger::HeldBack(_) => {
                "its files changed or its cron_restart time came during the update".into()
            }
        }
    }
}

/// An app's running triggers; dropping them stops them.
#[derive(Default)]
pub(crate) struct Triggers {
    _watch: Option<AppWatch>,
    cron: Option<JoinHandle<()>>,
}

impl Drop for Triggers {
    fn drop(&mut self) {
        if let Some(cron) = &self.cron {
            cron.abort();
        }
    }
}

/// Starts what `spec` asks for. A watch that cannot start (the inotify limit) is an error.
pub(crate) fn arm(
    spec: &Arc<AppSpec>,
    to: &mpsc::UnboundedSender<Trigger>,
) -> Result<Triggers, String> {
    let mut triggers = Triggers::default();
    if let Some(watch) = &spec.watch {
        let (changed_tx, mut changed) = mpsc::unbounded_channel::<watch::Changed>();
        triggers._watch = Some(watch::start(
            &spec.name,
            watch,
            watch::own_logs(&spec.logs),
            changed_tx,
        )?);
        let to = to.clone();
        let cwd = spec.cwd.clone();
        // The watcher's own channel, forwarded: it knows nothing of triggers.
        tokio::spawn(async move {
            while let Some(changed) = changed.recv().await {
                let trigger = Trigger::FilesChanged {
                    app: changed.app,
                    first: shown(&changed.first, &cwd),
                    more: changed.more,
                };
                if to.send(trigger).is_err() {
                    return;
                }
            }
        });
    }
    if let Some(expr) = &spec.cron_restart {
        let cron = crate::schedule::parse(expr)?;
        let (app, to) = (spec.name.clone(), to.clone());
        triggers.cron = Some(tokio::spawn(async move {
            loop {
                let now = Local::now();
                let Some(next) = crate::schedule::next_after(&cron, now) else {
                    warn!("{app}: cron_restart has no time after {now}; no more scheduled reloads");
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                if to.send(Trigger::Scheduled(app.clone())).is_err() {
                    return;
                }
            }
        }));
    }
    Ok(triggers)
}

/// A changed path as the log shows it: relative to the app's cwd when under it (a
/// watched directory may lie elsewhere: then absolute).
fn shown(path: &Path, cwd: &Path) -> String {
    match path.strip_prefix(cwd) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative.display().to_string(),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_change_names_the_first_path_under_the_cwd_and_how_many_more() {
        let cwd = Path::new("/srv/app");
        assert_eq!(shown(Path::new("/srv/app/src/app.js"), cwd), "src/app.js");
        assert_eq!(shown(Path::new("/etc/app.conf"), cwd), "/etc/app.conf");
        assert_eq!(shown(Path::new("/srv/app"), cwd), "/srv/app");
        let changed = |more| Trigger::FilesChanged {
            app: "wapp".into(),
            first: "src/app.js".into(),
            more,
        };
        assert_eq!(changed(0).reason(), "its files changed (src/app.js)");
        assert_eq!(
            changed(3).reason(),
            "its files changed (src/app.js and 3 more)"
        );
    }
}
