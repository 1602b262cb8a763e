//! `flush`: empty the target's log files.

use super::{Failure, Reply, done, plural};
use crate::protocol::Target;
use crate::supervisor::Supervisor;

impl Supervisor {
    pub(super) fn flush(&self, target: &Target) -> Reply {
        let ids = self.resolve(target)?;
        self.shared.logs().flush_all();
        let mut emptied = 0;
        for file in self.log_files(&ids, true) {
            match std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file.path)
            {
                Ok(_) => emptied += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Failure::failed(format!(
                        "cannot empty {}: {e}",
                        file.path.display()
                    )));
                }
            }
        }
        done(format!("emptied {emptied} log file{}", plural(emptied)))
    }
}
