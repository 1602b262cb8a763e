//! `resurrect`: start the apps of the dump that are not running (from `dump.yaml.bak`
//! when the dump is missing or damaged, saying so); an app saved stopped comes back
//! stopped, as PM2's.

use tracing::{info, warn};

use super::{Failure, Reply, done, plural};
use crate::supervisor::{NewApp, Supervisor, dump};

impl Supervisor {
    pub(super) fn resurrect(&mut self) -> Reply {
        let loaded = dump::load(&self.home).map_err(|e| Failure::failed(format!("{e:#}")))?;
        if let Some(note) = &loaded.from_backup {
            warn!("{note}");
        }
        let mut fresh = Vec::new();
        let mut skipped = Vec::new();
        for app in loaded.apps {
            if self.app_index(&app.spec.name).is_some() {
                skipped.push(app.spec.name);
            } else {
                fresh.push(NewApp {
                    spec: app.spec,
                    env: app.env,
                    stopped: app.stopped,
                });
            }
        }
        let started = self.add_apps(fresh)?;
        info!("resurrected {}", started.join(", "));
        let mut msg = format!("resurrected {} app{}", started.len(), plural(started.len()));
        if !skipped.is_empty() {
            msg.push_str(&format!(" ({} already running)", skipped.join(", ")));
        }
        if let Some(note) = loaded.from_backup {
            msg.push_str(&format!(" from the backup: {note}"));
        }
        done(msg)
    }
}
