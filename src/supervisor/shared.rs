//! What the slot tasks, the reaper, the notify socket and the sampler share: the table
//! of live worker pids (who to tell of an exit, a READY=1, a memory sample), the latest
//! usage samples, the log hub, and the paths every spawn needs. Its locks stay inside:
//! callers use the methods, and no lock is held across an await.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::shim::Shims;

use nix::unistd::Pid;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::warn;

use super::node_channel::{self, ChannelHandover, ToWorker};
use super::slot::SlotMsg;
use crate::logs::{self, LineSink, LogHub, PumpEnd, Stream};
use crate::os::{self, ExitKind};
use crate::sampler::{Usage, Watched};
use crate::sync::{FreezeSender, lock};

use std::sync::Mutex;

/// A worker the reaper, the notify socket and the sampler know about.
struct WorkerEntry {
    tx: mpsc::UnboundedSender<SlotMsg>,
    memory_limit: Option<u64>,
}

pub(crate) struct Shared {
    logs: LogHub,
    trampoline: PathBuf,
    shims: Shims,
    /// NOTIFY_SOCKET for `wait_ready` workers.
    notify_socket: PathBuf,
    workers: Mutex<HashMap<Pid, WorkerEntry>>,
    /// Health-check commands running, and who waits for their exit.
    checks: Mutex<HashMap<Pid, oneshot::Sender<ExitKind>>>,
    usage: Mutex<HashMap<Pid, Usage>>,
    /// Woken whenever a slot's status changes (the main loop's `exit_when_idle`).
    slot_changed: Notify,
    pumps: Mutex<Vec<JoinHandle<Option<PumpHandover>>>>,
    /// The Node workers' IPC channel tasks.
    channels: Mutex<Vec<JoinHandle<Option<ChannelHandover>>>>,
    /// Stops the pumps and the channel tasks for an in-place upgrade.
    freeze: FreezeSender,
}

/// Whose output a log pump drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PumpOf {
    pub app: String,
    pub instance: u32,
    pub stream: Stream,
}

/// A log pump as it crosses an in-place upgrade: the pipe, and the start of a line
/// whose end is still to come.
#[derive(Debug)]
pub(crate) struct PumpHandover {
    pub of: PumpOf,
    pub pipe: std::os::fd::OwnedFd,
    pub partial: Vec<u8>,
}

impl Shared {
    pub fn new(logs: LogHub, trampoline: PathBuf, shims: Shims, notify_socket: PathBuf) -> Self {
        Shared {
            logs,
            trampoline,
            shims,
            notify_socket,
            workers: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
            slot_changed: Notify::new(),
            pumps: Mutex::new(Vec::new()),
            channels: Mutex::new(Vec::new()),
            freeze: FreezeSender::new(),
        }
    }

    pub fn logs(&self) -> &LogHub {
        &self.logs
    }

    /// The drover binary, run as the exec trampoline of every worker.
    pub fn trampoline(&self) -> &Path {
        &self.trampoline
    }

    /// The Node and Python preloads.
    pub fn shims(&self) -> &Shims {
        &self.shims
    }

    pub fn notify_socket(&self) -> &Path {
        &self.notify_socket
    }

    /// A new worker: its exits, READY=1 and memory samples go to `tx`.
    pub fn register(
        &self,
        pid: Pid,
        tx: mpsc::UnboundedSender<SlotMsg>,
        memory_limit: Option<u64>,
    ) {
        lock(&self.workers).insert(pid, WorkerEntry { tx, memory_limit });
    }

    /// A health-check command: its exit status goes to the receiver. Call it before any
    /// await after the spawn, so the reaper cannot take the exit first.
    pub fn register_check(&self, pid: Pid) -> oneshot::Receiver<ExitKind> {
        let (tx, rx) = oneshot::channel();
        lock(&self.checks).insert(pid, tx);
        rx
    }

    /// The slot of worker `pid`, if it is one of ours.
    pub fn slot_of(&self, pid: Pid) -> Option<mpsc::UnboundedSender<SlotMsg>> {
        lock(&self.workers).get(&pid).map(|w| w.tx.clone())
    }

    /// Drains `pipe` (stream `of`) into `sink` until EOF, or until an upgrade freezes
    /// it; `partial` is the unfinished line a previous image handed over.
    pub fn spawn_pump(
        &self,
        of: PumpOf,
        pipe: tokio::net::unix::pipe::Receiver,
        sink: LineSink,
        partial: Vec<u8>,
    ) {
        let freeze = self.freeze.subscribe();
        let pump = tokio::spawn(async move {
            match logs::pump_until(pipe, sink, partial, freeze).await {
                PumpEnd::Drained(_) => None,
                PumpEnd::Frozen { reader, partial } => match reader.into_nonblocking_fd() {
                    Ok(pipe) => Some(PumpHandover { of, pipe, partial }),
                    Err(e) => {
                        warn!(
                            "{}#{}: cannot hand its output pipe over: {e}",
                            of.app, of.instance
                        );
                        None
                    }
                },
            }
        });
        let mut pumps = lock(&self.pumps);
        pumps.retain(|p| !p.is_finished());
        pumps.push(pump);
    }

    /// Serves the IPC channel of Node worker `pid` (see `node_channel`) until it closes,
    /// or until an upgrade freezes it.
    pub fn spawn_channel(
        &self,
        stream: std::os::unix::net::UnixStream,
        pid: Pid,
        slot: mpsc::UnboundedSender<SlotMsg>,
        outgoing: mpsc::UnboundedReceiver<ToWorker>,
        partial: (Vec<u8>, bool),
    ) {
        let freeze = self.freeze.subscribe();
        let task = tokio::spawn(node_channel::serve(
            stream, pid, slot, outgoing, partial, freeze,
        ));
        let mut channels = lock(&self.channels);
        channels.retain(|c| !c.is_finished());
        channels.push(task);
    }

    /// The log pumps still running, for the final drain (or an upgrade's freeze).
    pub fn take_pumps(&self) -> Vec<JoinHandle<Option<PumpHandover>>> {
        std::mem::take(&mut *lock(&self.pumps))
    }

    /// The channel tasks still running, for an upgrade's freeze.
    pub fn take_channels(&self) -> Vec<JoinHandle<Option<ChannelHandover>>> {
        std::mem::take(&mut *lock(&self.channels))
    }

    /// Stops every pump and channel task at its next clean point (an upgrade): each
    /// returns what it holds.
    pub fn freeze_readers(&self) {
        self.freeze.freeze();
    }

    pub fn usage_of(&self, pid: Pid) -> Usage {
        lock(&self.usage).get(&pid).copied().unwrap_or_default()
    }

    /// The usage of each of `pids` (a default one for None or an unknown pid), under
    /// one lock: a scrape of every worker.
    pub fn usages(&self, pids: &[Option<Pid>]) -> Vec<Usage> {
        let usage = lock(&self.usage);
        pids.iter()
            .map(|pid| pid.and_then(|p| usage.get(&p).copied()).unwrap_or_default())
            .collect()
    }

    pub fn slot_changed(&self) {
        self.slot_changed.notify_one();
    }

    pub async fn next_slot_change(&self) {
        self.slot_changed.notified().await;
    }

    /// Hands each reaped child's status to its slot; orphans we adopted are just reaped.
    pub fn dispatch_exits(&self) {
        for reaped in os::reap_all() {
            let entry = lock(&self.workers).remove(&reaped.pid);
            lock(&self.usage).remove(&reaped.pid);
            if let Some(entry) = entry {
                let _ = entry.tx.send(SlotMsg::Exited {
                    pid: reaped.pid,
                    status: reaped.status,
                });
            } else if let Some(check) = lock(&self.checks).remove(&reaped.pid) {
                let _ = check.send(reaped.status);
            }
        }
    }
}

impl Watched for Shared {
    fn roots(&self) -> Vec<(Pid, Option<u64>)> {
        lock(&self.workers)
            .iter()
            .map(|(pid, w)| (*pid, w.memory_limit))
            .collect()
    }

    fn sampled(&self, usage: HashMap<Pid, Usage>, over_limit: Vec<(Pid, u64)>) {
        for (pid, rss) in over_limit {
            match self.slot_of(pid) {
                Some(tx) => {
                    let _ = tx.send(SlotMsg::MemoryExceeded { pid, rss });
                }
                None => warn!("pid {pid} is over its memory limit but already gone"),
            }
        }
        // Only workers still registered: one reaped during the sample has no usage. The
        // roots not sampled this time keep their last figures.
        let workers = lock(&self.workers);
        let mut kept = lock(&self.usage);
        kept.retain(|pid, _| workers.contains_key(pid));
        kept.extend(
            usage
                .into_iter()
                .filter(|(pid, _)| workers.contains_key(pid)),
        );
    }
}
