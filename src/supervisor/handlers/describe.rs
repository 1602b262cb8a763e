//! `describe`: an app's resolved settings, its workers, its log files' dropped lines.

use super::Reply;
use crate::logs::instance_log_path;
use crate::protocol::{AppConfig, AppInfo, LogFile, Response, Target};
use crate::supervisor::Supervisor;
use crate::sync::lock;

impl Supervisor {
    pub(super) fn describe(&self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        let apps = self
            .apps
            .iter()
            .filter(|a| a.slots.iter().any(|s| ids.contains(&s.id)))
            .map(|a| {
                let app_ids: Vec<u32> = a.slots.iter().map(|s| s.id).collect();
                AppInfo {
                    spec: AppConfig::from(&*a.spec),
                    listen: a.listeners.get().map(|l| lock(l).bound().to_string()),
                    workers: self.workers(Some(&app_ids)),
                    dropped_log_lines: self
                        .log_files(&app_ids, true)
                        .iter()
                        .map(|f| self.shared.logs().dropped_lines_in(&f.path))
                        .sum(),
                    cron_next: a
                        .spec
                        .cron_restart
                        .as_deref()
                        .and_then(|expr| crate::schedule::parse(expr).ok())
                        .and_then(|cron| crate::schedule::next_after(&cron, chrono::Local::now()))
                        .map(|next| next.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
                }
            })
            .collect();
        Ok(Response::Apps { apps })
    }

    /// The files the workers `ids` write, each once. `combined`: with the apps'
    /// `log_file`s (stream `log`), which `logs` leaves out: their lines are in the
    /// out and err files too.
    pub(super) fn log_files(&self, ids: &[u32], combined: bool) -> Vec<LogFile> {
        let mut files: Vec<LogFile> = Vec::new();
        for app in &self.apps {
            for slot in app.slots.iter().filter(|s| ids.contains(&s.id)) {
                let logs = &app.spec.logs;
                let combined = logs.log_file.as_ref().filter(|_| combined);
                for (stream, base) in [("out", &logs.out_file), ("err", &logs.error_file)]
                    .into_iter()
                    .chain(combined.map(|f| ("log", f)))
                {
                    let merge = app.spec.logs.merge;
                    let path = instance_log_path(base, slot.handle.instance, merge);
                    // A merged file is listed once, under its first worker; a path two
                    // apps name is merged too.
                    if let Some(known) = files.iter_mut().find(|f| f.path == path) {
                        known.merged = true;
                        continue;
                    }
                    files.push(LogFile {
                        id: slot.id,
                        app: app.spec.name.clone(),
                        instance: slot.handle.instance,
                        stream: stream.into(),
                        path,
                        merged: merge,
                    });
                }
            }
        }
        files
    }
}
