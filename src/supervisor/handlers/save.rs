//! `save`: the running apps (spec and inherited environment) to the dump, for
//! `resurrect`. An empty list never replaces a dump that lists apps unless `force`
//! (PM2 #2653 lost users' dumps that way), and an unreadable dump is never replaced.

use super::{Failure, Reply, done, plural};
use crate::supervisor::{Supervisor, dump};
use crate::sync::lock;

impl Supervisor {
    pub(super) fn save(&self, force: bool) -> Reply {
        let apps: Vec<dump::SavedApp> = self
            .apps
            .iter()
            .map(|a| {
                let mut spec = (*a.spec).clone();
                // The address actually bound, so `resurrect` comes back on the same port
                // even when the app asked for port 0.
                if let Some(listeners) = &a.listeners {
                    spec.listen = Some(lock(listeners).bound().clone());
                }
                dump::SavedApp {
                    spec,
                    env: (*a.env).clone(),
                }
            })
            .collect();
        let path = dump::save(&self.home, &apps, force)
            .map_err(|e| Failure::failed(format!("cannot save: {e:#}")))?;
        done(format!(
            "saved {} app{} to {}",
            apps.len(),
            plural(apps.len()),
            path.display()
        ))
    }
}
