//! `save`: the apps (spec, inherited environment, whether they are stopped) to the
//! dump, for `resurrect`. An empty list never replaces a dump that lists apps unless `force`
//! (PM2 #2653 lost users' dumps that way), and an unreadable dump is never replaced.

use std::sync::Mutex;

use super::{Answer, Failure, done, plural};
use crate::supervisor::policy::Status;
use crate::supervisor::{Supervisor, Tidy, dump};
use crate::sync::lock;

/// One save at a time: they share the dump's temp file name, and the last one asked
/// must be the last one written.
static SAVING: Mutex<()> = Mutex::new(());

impl Supervisor {
    /// The apps are copied now; the file is written (and fsynced) on a blocking thread,
    /// off the control loop.
    pub(super) fn save(&self, force: bool) -> Answer {
        let apps: Vec<dump::SavedApp> = self
            .apps
            .iter()
            .map(|a| {
                let mut spec = (*a.spec).clone();
                // The address actually bound, so `resurrect` comes back on the same port
                // even when the app asked for port 0. A cluster app that shares the port its
                // workers listen on keeps no `listen:`: they ask again after resurrect.
                if let Some(listeners) = a.listeners.get().filter(|_| a.spec.listen.is_some()) {
                    spec.listen = Some(lock(listeners).bound().clone());
                }
                dump::SavedApp {
                    spec,
                    env: (*a.env).clone(),
                    stopped: a
                        .slots
                        .iter()
                        .all(|s| s.handle.status.borrow().status == Status::Stopped),
                }
            })
            .collect();
        let home = self.home.clone();
        Answer::Later(Box::pin(async move {
            let n = apps.len();
            let written = tokio::task::spawn_blocking(move || {
                let _one_at_a_time = lock(&SAVING);
                dump::save(&home, &apps, force)
            })
            .await;
            let reply = match written {
                Ok(Ok(path)) => done(format!("saved {n} app{} to {}", plural(n), path.display())),
                Ok(Err(e)) => Err(Failure::failed(format!("cannot save: {e:#}"))),
                Err(e) => Err(Failure::failed(format!("cannot save: {e}"))),
            };
            (Tidy::Nothing, reply)
        }))
    }
}
