//! drover runs any web app as a herd of worker processes that share one listening port,
//! keeps them alive, caps their memory, and merges their logs.
//!
//! # Layout
//!
//! - [`cli`]: clap definitions and one function per command; argv → a call below.
//! - [`config`]: ecosystem file and CLI flags → validated [`config::AppSpec`]s. No
//!   processes, no sockets; bad input is rejected here, with file, line and key.
//! - [`supervisor`]: the supervisor: [`supervisor::run`] takes apps and a shutdown signal.
//!   - [`supervisor::policy`]: the restart policy, a pure state machine tested as a table.
//!   - [`supervisor::slot`]: one task per worker slot, carrying out the policy's actions.
//!   - [`supervisor::spawn`]: the only place that builds a worker's command.
//! - [`ipc`]: the control socket: the server (permissions, peer uid, framing caps) and
//!   the synchronous client the CLI uses (it starts the background supervisor on demand).
//! - [`protocol`]: the versioned Request/Response messages between CLI and supervisor.
//! - [`sockets`]: binds each app's listener once; describes what a worker gets as fd 3.
//! - [`logs`]: worker output → whole, timestamped lines in files (and the console).
//! - [`sampler`]: RSS/CPU of each worker's process tree, once a second.
//! - [`shim`]: the Node preload that turns `listen(PORT)` into `listen({fd: 3})`.
//! - [`os`]: the one module with `unsafe`: pre-exec hooks, the exec trampoline, signals,
//!   reaping.
//! - [`error`]: one error enum, mapped to exit codes in one place.
//! - `sync`: the one poison-tolerant lock helper.

pub mod cli;
pub mod config;
pub mod error;
pub mod ipc;
pub mod logs;
pub mod os;
pub mod protocol;
pub mod sampler;
pub mod shim;
pub mod sockets;
pub mod supervisor;
mod sync;
