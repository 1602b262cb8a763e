//! `kill`: the answer; the main loop then stops every app and ends.

use super::{Reply, done};

pub(super) fn kill() -> Reply {
    done("stopping every app and the supervisor")
}
