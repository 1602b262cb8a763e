//! `ping`: the supervisor's pid and version, and where it serves its metrics.

use std::net::SocketAddr;

use super::Reply;
use crate::protocol::Response;

pub(super) fn ping(metrics: Option<SocketAddr>) -> Reply {
    Ok(Response::Pong {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        metrics: metrics.map(|addr| format!("http://{addr}/metrics")),
    })
}
