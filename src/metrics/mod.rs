//! The supervisor's metrics endpoint: `GET /metrics` (Prometheus text, or OpenMetrics
//! when the scraper asks for it) and `GET /healthz` (the control loop answers).
//!
//! It runs on a thread of its own with its own small runtime, so neither a scrape's work
//! (reading /proc for open fds, encoding a thousand workers) nor its clients (slow, or
//! many) ever take a turn of the supervisor's control loop. It knows nothing of the
//! supervisor: it reads through [`Source`], which hands it a [`Snapshot`] built from
//! published state (watch channels, short locks) without waiting on anything.
//!
//! - `http`: the server: a cap on connections (the oldest one still sending its request
//!   makes room), on the request's size and time, and on the response's time.
//! - `encode`: a [`Snapshot`] → the text, through prometheus-client's encoders.

mod encode;
mod http;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::config::MetricsSpec;
use crate::protocol::RestartCauses;

/// What the endpoint reads of the supervisor.
pub trait Source: Send + Sync + 'static {
    /// Every worker and app as they are now. Must not wait on the control loop: built
    /// from what the supervisor publishes.
    fn snapshot(&self) -> Snapshot;
    /// Resolves to true once the control loop has answered a ping (false: it is gone).
    fn ping(&self) -> Pin<Box<dyn Future<Output = bool> + Send>>;
}

/// The figures of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub workers: Vec<WorkerSample>,
    pub apps: Vec<AppSample>,
}

/// One worker slot (labels app, app_instance, id).
#[derive(Debug, Clone)]
pub struct WorkerSample {
    pub app: Arc<str>,
    pub instance: u32,
    pub id: u32,
    /// Its process, when it has one (its open fds are counted at the scrape).
    pub pid: Option<i32>,
    /// Status `online`.
    pub up: bool,
    /// It takes new connections.
    pub ready: bool,
    /// It has a process, and its health check or watchdog has not failed.
    pub healthy: bool,
    /// CPU time of its current process tree, as last sampled.
    pub cpu_seconds: f64,
    /// RSS of its whole process tree, as last sampled.
    pub memory_bytes: u64,
    pub restarts: RestartCauses,
}

/// One app (label app).
#[derive(Debug, Clone)]
pub struct AppSample {
    pub name: Arc<str>,
    /// Lines its workers wrote on stdout and on stderr.
    pub lines_out: u64,
    pub lines_err: u64,
    /// Lines that could not be written to its log files.
    pub lines_dropped: u64,
}

/// Binds `spec`'s address, or says why not in one line that names who asked for it.
pub fn bind(spec: &MetricsSpec) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(spec.listen).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::EADDRINUSE) => {
                "the address is in use (another program, or another drover, listens there)"
                    .to_owned()
            }
            Some(libc::EADDRNOTAVAIL) => "no interface of this machine has that address".to_owned(),
            Some(libc::EACCES) => "permission denied (a port below 1024 needs root)".to_owned(),
            _ => e.to_string(),
        };
        format!(
            "{}: cannot listen on {}: {why}",
            spec.origin.key(),
            spec.listen
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", spec.origin.key()))?;
    Ok(listener)
}

/// The endpoint, serving on its thread until [`Endpoint::stop`] (or drop).
pub struct Endpoint {
    /// What was asked for (the address as written: port 0 stays 0).
    pub spec: MetricsSpec,
    /// Where it listens.
    pub bound: SocketAddr,
    /// A copy of the listener, for an in-place update to hand over.
    kept: Option<std::net::TcpListener>,
    stop: Option<oneshot::Sender<()>>,
    /// Said by the thread once it has stopped serving (its runtime, and every
    /// connection, gone).
    finished: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An endpoint stopping for an in-place update (see [`Endpoint::hand_over`]).
pub struct HandingOver {
    spec: MetricsSpec,
    listener: Option<std::net::TcpListener>,
    finished: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HandingOver {
    /// Once the endpoint's thread has finished: what was asked for, and the listener.
    pub async fn finished(mut self) -> Option<(MetricsSpec, std::net::TcpListener)> {
        if let Some(finished) = self.finished.take() {
            let _ = finished.await;
        }
        if let Some(thread) = self.thread.take() {
            // It has said it is done: this returns at once.
            let _ = thread.join();
        }
        Some((self.spec, self.listener?))
    }
}

impl Endpoint {
    /// Serves `listener` (from [`bind`]) on a new thread.
    pub fn start(
        listener: std::net::TcpListener,
        spec: MetricsSpec,
        source: Arc<dyn Source>,
    ) -> std::io::Result<Endpoint> {
        let bound = listener.local_addr()?;
        let kept = listener.try_clone()?;
        let (stop, stopped) = oneshot::channel();
        let (finish, finished) = oneshot::channel();
        // The process's start, not the endpoint's: a `start FILE` may begin it later.
        let started = crate::sampler::process_start(std::process::id() as i32)
            .unwrap_or_else(SystemTime::now);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("metrics: cannot start its runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("metrics: {e}");
                            return;
                        }
                    };
                    let page = http::Pages { source, started };
                    http::serve(listener, page, http::Limits::default(), async {
                        let _ = stopped.await;
                    })
                    .await;
                });
                drop(runtime);
                let _ = finish.send(());
            })?;
        tracing::info!(
            "metrics on http://{bound}/metrics (asked by {})",
            spec.origin
        );
        Ok(Endpoint {
            spec,
            bound,
            kept: Some(kept),
            stop: Some(stop),
            finished: Some(finished),
            thread: Some(thread),
        })
    }

    /// Whether a request for `spec` is met by this endpoint: the same address as asked,
    /// or as bound (port 0 asked, the port it got named).
    pub fn serves(&self, spec: &MetricsSpec) -> bool {
        spec.listen == self.spec.listen || spec.listen == self.bound
    }

    /// Stops serving and closes the port; returns once the thread is gone.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Stops serving but keeps the port, for the next image of the supervisor (an
    /// in-place update): it stops accepting at once (connections made from now on wait
    /// in the listener's backlog for the next image) and finishes the scrapes under way
    /// (for at most `http::Limits::drain`) while the caller goes on; await
    /// [`HandingOver::finished`] for the listener.
    pub fn hand_over(mut self) -> HandingOver {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        HandingOver {
            spec: self.spec.clone(),
            listener: self.kept.take(),
            finished: self.finished.take(),
            thread: self.thread.take(),
        }
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.halt();
    }
}
