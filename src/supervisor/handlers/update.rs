//! `update` (and SIGUSR2): the supervisor hands itself over to a new binary in its own
//! process, every worker kept (`crate::upgrade`, docs/upgrade.md). The handler checks
//! at once what can be (the binary is there and executable, no other update under
//! way); then the update waits, the loop answering and refusing changes, until no
//! operation is under way, at most [`QUIET_TIMEOUT`]; then the loop ends and
//! `supervisor::handover` freezes everything for the new image.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Answer, Failure, Pending};
use crate::protocol::{ErrorKind, Response};
use crate::supervisor::Supervisor;
use crate::supervisor::triggers::Trigger;

/// How long an update waits for the operations under way (a reload, a drain, a stop)
/// before it is refused as busy.
pub(crate) const QUIET_TIMEOUT: Duration = Duration::from_secs(10);

/// Updates kept for `ping` (oldest dropped).
pub(crate) const HISTORY: usize = 5;

/// The update under way.
#[derive(Debug)]
pub(crate) struct UpdateRun {
    pub id: u64,
    pub binary: PathBuf,
    /// The `drover update` client; none for SIGUSR2.
    pub reply: Option<mpsc::Sender<Response>>,
    pub give_up_at: Instant,
    /// Apps whose watch or schedule asked for a reload meanwhile: reloaded by the next
    /// image, or by this one if the update does not happen.
    pub held_back: Vec<String>,
}

/// `t` in ms since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Supervisor {
    pub(super) fn update(
        &mut self,
        binary: PathBuf,
        reply: &mpsc::Sender<Response>,
    ) -> Result<Answer, Failure> {
        self.begin_update(binary, Some(reply.clone()))?;
        // Answered when the hand-over begins, or when the update gives up.
        Ok(Answer::Streaming)
    }

    /// SIGUSR2: the binary this image was started from (which a package upgrade has
    /// replaced), the outcome in the supervisor's log.
    pub(in crate::supervisor) fn update_on_signal(&mut self) {
        info!(
            "SIGUSR2 received: re-executing {} in place",
            self.binary.display()
        );
        if let Err(f) = self.begin_update(self.binary.clone(), None) {
            warn!("update refused: {}", f.message);
        }
    }

    fn begin_update(
        &mut self,
        binary: PathBuf,
        reply: Option<mpsc::Sender<Response>>,
    ) -> Result<(), Failure> {
        if let Some(run) = &self.update {
            return Err(Failure {
                kind: ErrorKind::Busy,
                message: format!("an update to {} is already under way", run.binary.display()),
            });
        }
        if !binary.is_absolute() {
            return Err(Failure {
                kind: ErrorKind::BadRequest,
                message: format!("{}: give the binary's absolute path", binary.display()),
            });
        }
        crate::upgrade::runnable(&binary).map_err(Failure::failed)?;
        let id = self.history.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        info!(
            "update {id}: handing over to {} once nothing is under way",
            binary.display()
        );
        self.update = Some(UpdateRun {
            id,
            binary,
            reply,
            give_up_at: Instant::now() + QUIET_TIMEOUT,
            held_back: Vec::new(),
        });
        Ok(())
    }

    /// Whether the update's time has come: nothing under way.
    pub(in crate::supervisor) fn update_can_start(&self) -> bool {
        self.update.is_some() && self.under_way().is_none()
    }

    /// What an update waits for, if anything.
    fn under_way(&self) -> Option<String> {
        if let Some(app) = self.apps.iter().find(|a| a.pending.is_some()) {
            let what = match app.pending {
                Some(Pending::Deleting) => "being deleted".to_owned(),
                Some(Pending::ScalingDown { from, to }) => {
                    format!("scaling down from {from} to {to}")
                }
                None => unreachable!("found above"),
            };
            return Some(format!("{} is {what}", app.spec.name));
        }
        match self.ops.under_way() {
            0 => None,
            1 => Some("an operation (a reload, a restart, a stop…) is under way".into()),
            n => Some(format!(
                "{n} operations (reloads, restarts, stops…) are under way"
            )),
        }
    }

    /// Operations still under way after [`QUIET_TIMEOUT`]: the update is refused.
    pub(in crate::supervisor) fn update_gives_up(&mut self) {
        let why = self
            .under_way()
            .unwrap_or_else(|| "something was under way".into());
        let message = format!(
            "drover update: {why} after {} s; try again once it is done",
            QUIET_TIMEOUT.as_secs()
        );
        self.answer_update(ErrorKind::Busy, message);
    }

    /// The supervisor stops instead.
    pub(in crate::supervisor) fn update_refused(&mut self, why: &str) {
        if self.update.is_some() {
            self.answer_update(ErrorKind::ShuttingDown, format!("drover update: {why}"));
        }
    }

    fn answer_update(&mut self, kind: ErrorKind, message: String) {
        let Some(run) = self.update.take() else {
            return;
        };
        warn!("update {}: {message}", run.id);
        if let Some(reply) = run.reply {
            let _ = reply.try_send(Response::Error { kind, message });
        }
        for app in run.held_back {
            let _ = self.triggered.send(Trigger::HeldBack(app));
        }
    }
}
