//! drover runs any web app as a herd of worker processes that share one listening port,
//! keeps them alive, caps their memory, and merges their logs.
//!
//! # Layout
//!
//! - [`cli`]: clap definitions and one file per command; argv → a call below
//!   (`cli::startup` writes the systemd unit, its text in `cli::startup::unit`). `cli::host`
//!   runs the supervisor in this process (`run`, `daemon`), `cli::apps` loads the apps a
//!   command names, `cli::pm2_flags` says why a PM2 flag is refused.
//! - [`config`]: ecosystem file and CLI flags (`config::AppFlags`) → validated
//!   [`config::AppSpec`]s. No processes, no sockets; bad input is rejected here, with
//!   file, line and key.
//! - [`supervisor`]: the supervisor: [`supervisor::run`] takes apps and a shutdown signal,
//!   and its control loop never waits (slow operations are tasks that answer when done).
//!   - [`supervisor::policy`]: the restart policy, a pure state machine tested as a table.
//!   - [`supervisor::slot`]: one task per worker slot, carrying out the policy's actions.
//!   - `supervisor::handlers`: one file per control request.
//!   - `supervisor::shared`: what slots, reaper, notify socket and sampler share.
//!   - `supervisor::service_manager`: sd_notify to the systemd that started us (READY,
//!     RELOADING, STOPPING, WATCHDOG, STATUS); `supervisor::notify` is the workers' own.
//!   - [`supervisor::spawn`]: the only place that builds a worker's command.
//!   - `supervisor::node_channel`: a Node worker's IPC channel (readiness, the shared
//!     listener a cluster app without `listen:` asks for, `shutdown_with_message`).
//!   - [`supervisor::dump`]: `save`/`resurrect`'s file, versioned, with its own types.
//! - [`js_ecosystem`]: `ecosystem.config.js` evaluated by the local node, bounded, into
//!   the JSON that [`config`] reads.
//! - [`ipc`]: the control socket: the server (permissions, peer uid, memory caps) and
//!   the synchronous client the CLI uses (it starts the background supervisor on demand).
//! - [`protocol`]: the versioned Request/Response messages between CLI and supervisor.
//! - [`sockets`]: binds each app's listener once (at start, or at a Node cluster app's
//!   first request: [`sockets::ListenerCell`]); describes what a worker gets as fd 3.
//! - [`logs`]: worker output → whole, timestamped lines in files (and the console),
//!   rotated between two lines (`logs::rotation`); the supervisor's own drover.log
//!   (`logs::own`).
//! - [`metrics`]: the Prometheus endpoint (`/metrics`, `/healthz`) on a thread of its
//!   own, reading the supervisor through [`metrics::Source`] (`supervisor::metrics`
//!   implements it from published state); its address comes from a file's top-level
//!   `metrics:` or `--metrics` (`config::MetricsSpec`).
//! - [`sampler`]: RSS/CPU of each worker's process tree, once a second; knows nothing
//!   of the supervisor (it reports through [`sampler::Watched`]).
//! - [`shim`]: the preloads: Node's turns `listen(PORT)` into the shared listener;
//!   Python's gives uvicorn a graceful shutdown and keeps fromfd'd TCP sockets TCP.
//! - [`cpus`]: the CPUs this process may use (affinity and cgroup quota), for
//!   `instances: max`.
//! - [`watch`]: an app's files watched with inotify, a burst of changes one reload.
//! - [`schedule`]: `cron_restart`'s expressions and their next times (pure).
//! - [`os`]: the one module with `unsafe`: pre-exec hooks, the exec trampoline, signals,
//!   reaping.
//! - [`error`]: one error enum, mapped to exit codes in one place ([`error::Exit`]).
//! - `sync`: the one poison-tolerant lock helper.

pub mod cli;
pub mod config;
pub mod cpus;
pub mod error;
pub mod ipc;
pub mod js_ecosystem;
pub mod logs;
pub mod metrics;
pub mod os;
pub mod protocol;
pub mod sampler;
pub mod schedule;
pub mod shim;
pub mod sockets;
pub mod supervisor;
mod sync;
pub mod upgrade;
pub mod watch;
