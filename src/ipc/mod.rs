//! The control socket between the CLI and the supervisor: `$DROVER_HOME/drover.sock`,
//! mode 0600, the peer's uid checked on every connection.
//!
//! One connection carries one exchange: the client writes one [`Request`] line, the
//! supervisor answers with one or more [`Response`] lines and closes (a `logs --follow`
//! stream goes on until the client hangs up). Lines are [`protocol::encode`]d JSON,
//! capped at [`protocol::MAX_FRAME`] bytes on both sides.
//!
//! - [`server`]: async (tokio). [`server::bind`] makes the socket, [`server::serve`]
//!   accepts connections, turns each request line into an [`server::Incoming`] for the
//!   supervisor's handler and writes back whatever the handler answers. It survives any
//!   bytes a client sends.
//! - [`client`]: synchronous, std only, so a CLI command costs no runtime: connect (or
//!   start the supervisor in the background first), send, receive.
//!
//! [`Request`]: crate::protocol::Request
//! [`Response`]: crate::protocol::Response
//! [`protocol::encode`]: crate::protocol::encode
//! [`protocol::MAX_FRAME`]: crate::protocol::MAX_FRAME

pub mod client;
pub mod server;

/// The control socket's file name inside `$DROVER_HOME`.
pub const SOCKET_NAME: &str = "drover.sock";
