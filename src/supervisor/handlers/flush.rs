//! `flush`: empty the target's log files and remove their rotated files.

use super::{Failure, Reply, done, plural};
use crate::protocol::Target;
use crate::supervisor::Supervisor;

impl Supervisor {
    pub(super) fn flush(&self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        let mut emptied = 0;
        let mut removed = 0;
        for file in self.log_files(&ids, true) {
            match self.shared.logs().truncate(&file.path) {
                Ok((existed, rotated)) => {
                    emptied += usize::from(existed);
                    removed += rotated;
                }
                Err(e) => {
                    return Err(Failure::failed(format!(
                        "cannot empty {}: {e}",
                        file.path.display()
                    )));
                }
            }
        }
        let mut message = format!("emptied {emptied} log file{}", plural(emptied));
        if removed > 0 {
            message.push_str(&format!(
                ", removed {removed} rotated file{}",
                plural(removed)
            ));
        }
        done(message)
    }
}
