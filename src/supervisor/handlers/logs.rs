//! `logs`: the log files of the targets (the CLI reads their tails itself), then, with
//! `follow`, every new line from a task of its own until the client hangs up.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::{Answer, Failure};
use crate::logs::Stream;
use crate::protocol::{LogLine, Response, Target};
use crate::supervisor::Supervisor;

impl Supervisor {
    /// Answers with the log files, then (follow) streams new lines from a task of its own
    /// until the client hangs up, so the control loop stays free.
    pub(super) fn logs(
        &self,
        targets: &[Target],
        follow: bool,
        reply: &mpsc::Sender<Response>,
    ) -> Result<Answer, Failure> {
        let mut ids = Vec::new();
        for target in targets {
            match (target, self.resolve(target)) {
                (_, Ok(more)) => {
                    for id in more {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                // `drover logs` with nothing running yet still follows what comes.
                (Target::All, Err(_)) => {}
                (_, Err(f)) => return Err(f),
            }
        }
        let files = self.log_files(&ids, false);
        self.shared.logs().flush_all();
        let names: BTreeMap<(String, u32), u32> = self
            .apps
            .iter()
            .flat_map(|a| {
                a.slots
                    .iter()
                    .map(move |s| ((a.spec.name.clone(), s.handle.instance), s.id))
            })
            .collect();
        let all = targets.contains(&Target::All);
        let mut lines = self.shared.logs().subscribe();
        let reply = reply.clone();
        tokio::spawn(async move {
            if reply.send(Response::LogFiles { files }).await.is_err() || !follow {
                return;
            }
            loop {
                let line = match lines.recv().await {
                    Ok(line) => line,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(&id) = names.get(&(line.app.to_string(), line.instance)) else {
                    if !all {
                        continue;
                    }
                    // A worker added after the follow began (scale up, start).
                    let msg = log_line(u32::MAX, &line);
                    if reply.send(msg).await.is_err() {
                        return;
                    }
                    continue;
                };
                if !all && !ids.contains(&id) {
                    continue;
                }
                if reply.send(log_line(id, &line)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Answer::Streaming)
    }
}

fn log_line(id: u32, line: &crate::logs::FollowedLine) -> Response {
    Response::LogLine(LogLine {
        id,
        app: line.app.to_string(),
        instance: line.instance,
        stream: match line.stream {
            Stream::Out => "out".into(),
            Stream::Err => "err".into(),
        },
        timestamp: line.at.to_rfc3339(),
        message: line.text.clone(),
    })
}
