//! `ping`: the supervisor's pid and version.

use super::Reply;
use crate::protocol::Response;

pub(super) fn ping() -> Reply {
    Ok(Response::Pong {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
