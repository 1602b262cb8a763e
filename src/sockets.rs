//! Binds every listening socket once, in the supervisor, and keeps it open for the app's
//! lifetime so a worker crash never closes the port. Never accepts: the kernel hands
//! connections straight to the workers, which get the socket as fd 3.
//!
//! `reuseport` gives each worker slot its own SO_REUSEPORT listener on the same address,
//! so the kernel balances connections evenly; a slot's listener outlives its worker and
//! the replacement inherits the same queue. `shared` gives every worker the one listener.
//!
//! ## Retiring a reuseport listener without resetting a connection
//!
//! The kernel binds a connection to one listener of the group when its SYN arrives, and
//! closing that listener resets everything in its queue. So a slot's listener is retired
//! in three steps: [`AppListeners::steer_away`] attaches a classic BPF program to the
//! group that never picks it (new connections go to the others, its queue only shrinks);
//! [`drain`] waits until its worker has accepted what is queued; then the supervisor stops
//! the worker and closes the listener ([`AppListeners::remove`] / `release`).
//!
//! The program returns an index into the kernel's array of the group's sockets
//! (`struct sock_reuseport::socks[]`, net/core/sock_reuseport.c), so `group` mirrors it:
//! a socket joins at the end when it starts listening (`__reuseport_add_sock`), and when
//! one leaves, the last one moves into its place (`__reuseport_detach_sock`:
//! `socks[i] = socks[num_socks - 1]`), which is `Vec::swap_remove`. With
//! `net.ipv4.tcp_migrate_req=1` a closed listener is parked in a separate section at the
//! top of the array (`__reuseport_add_closed_sock`), after the same swap, so the indices
//! the program sees (`0..num_socks`) move the same way either way. An index the program
//! returns that is `>= num_socks` falls back to the hash.
//!
//! The mirror holds as long as the group has no member but ours (a worker that binds the
//! same port itself with SO_REUSEPORT would join it) and every close really removes the
//! socket from the group: a worker (or a stray grandchild) may still hold the listener as
//! fd 3, so closing a reuseport listener first shuts it down (`shutdown(SHUT_RD)` on a
//! listener unhashes it at once, as close would if ours were the last reference).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
    sockopt,
};

use tracing::warn;

use crate::config::{ListenAddr, SocketMode};
use crate::os;

/// The listeners of one app.
#[derive(Debug)]
pub struct AppListeners {
    /// The address actually bound (port 0 resolved to the port the kernel chose).
    bound: ListenAddr,
    mode: SocketMode,
    /// `shared`: one entry. `reuseport`: one entry per slot, None while released.
    fds: Vec<Option<OwnedFd>>,
    /// `reuseport` over TCP: the slots of the open listeners in the order the kernel keeps
    /// the group's sockets (see the module docs). Empty otherwise.
    group: Vec<u32>,
    /// Open listeners that new connections are steered away from, with the time the
    /// program that does so was attached.
    excluded: BTreeMap<u32, Instant>,
    /// Slots whose worker takes no new connection now (booting, not ready, unhealthy,
    /// stopping): steered away from while another slot's worker can take them.
    resting: BTreeSet<u32>,
    /// Health probes in flight: a connection from this source port goes to this slot's
    /// listener, whatever else the program does ([`AppListeners::probe`]).
    probes: BTreeMap<u16, u32>,
    /// Whether a steering program is attached to the group.
    steering: bool,
    /// A unix listener's socket file is ours to remove when the listeners are dropped;
    /// not once they are handed over to the next image (`drover update`).
    owns_path: bool,
}

/// An app's listeners as they cross an in-place upgrade (`crate::upgrade`): each open
/// listener by slot, the kernel's order of the reuseport group (which the steering
/// program indexes), and the slots that take no new connection. Steering away for a
/// drain and health probes do not cross: nothing drains during an upgrade, and a probe
/// in flight is dropped (its check is run again).
#[derive(Debug)]
pub struct ListenersHandover {
    pub bound: ListenAddr,
    pub mode: SocketMode,
    pub fds: Vec<Option<OwnedFd>>,
    pub group: Vec<u32>,
    pub resting: Vec<u32>,
    pub steering: bool,
}

/// A [`ListenerCell`] as it crosses an in-place upgrade.
#[derive(Debug, Default)]
pub struct CellHandover {
    /// The address asked for, and the listeners bound for it.
    pub bound: Option<(ListenAddr, ListenersHandover)>,
    pub more: Vec<(ListenAddr, OwnedFd)>,
}

/// How long a connection whose SYN reached a listener before it was steered away may
/// still take to finish its handshake and enter that listener's accept queue. Linux
/// counts half-open connections per listener nowhere, so [`drain`] waits at least this
/// long after `steer_away` before it trusts an empty queue: a round trip to a distant
/// client, not a lost SYN-ACK (retransmitted after 1 s).
pub const HANDSHAKE_GRACE: Duration = Duration::from_millis(500);

/// How often [`drain`] looks at the queue.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Instructions a classic BPF program may have (the kernel's BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

impl AppListeners {
    /// Binds `addr` for `slots` workers. With reuseport every slot gets its own listener now,
    /// so all of them are in the group before the first worker starts.
    ///
    /// SO_REUSEPORT would let our listeners join a group that another program of the same
    /// user (or another drover app) already listens with on that port, silently splitting
    /// its traffic with ours: a port that is taken is refused first, as a plain bind
    /// would be.
    ///
    /// `[::]` takes both stacks (IPV6_V6ONLY off, as Node does); on a host without IPv6
    /// it becomes `0.0.0.0`.
    pub fn bind(addr: &ListenAddr, mode: SocketMode, slots: u32) -> io::Result<Self> {
        let fallback;
        let addr = match addr {
            ListenAddr::Tcp(SocketAddr::V6(v6)) if v6.ip().is_unspecified() && !has_ipv6() => {
                fallback = ListenAddr::Tcp(SocketAddr::from((
                    std::net::Ipv4Addr::UNSPECIFIED,
                    v6.port(),
                )));
                tracing::info!("no IPv6 on this host: {addr} binds {fallback} instead");
                &fallback
            }
            _ => addr,
        };
        if let (ListenAddr::Tcp(tcp), SocketMode::Reuseport) = (addr, mode)
            && tcp.port() != 0
        {
            ensure_free(*tcp)?;
        }
        let first = bind_one(addr, mode)?;
        let bound = local_addr(&first, addr)?;
        let mut listeners = AppListeners {
            bound,
            mode,
            fds: vec![Some(first)],
            group: Vec::new(),
            excluded: BTreeMap::new(),
            resting: BTreeSet::new(),
            probes: BTreeMap::new(),
            steering: false,
            owns_path: true,
        };
        if listeners.steerable() {
            listeners.group.push(0);
        }
        if mode == SocketMode::Reuseport {
            for slot in 1..slots {
                listeners.acquire(slot)?;
            }
        }
        Ok(listeners)
    }

    pub fn bound(&self) -> &ListenAddr {
        &self.bound
    }

    /// Hands every listener over to the next image (`drover update`): this value is
    /// left without any, and dropping it removes no socket file.
    pub fn hand_over(&mut self) -> ListenersHandover {
        self.owns_path = false;
        ListenersHandover {
            bound: self.bound.clone(),
            mode: self.mode,
            fds: std::mem::take(&mut self.fds),
            group: std::mem::take(&mut self.group),
            resting: std::mem::take(&mut self.resting).into_iter().collect(),
            steering: std::mem::replace(&mut self.steering, false),
        }
    }

    /// The listeners the previous image handed over, with the steering program rebuilt
    /// for what they are now (no drain, no probe).
    pub fn taken_over(handover: ListenersHandover) -> Self {
        let ListenersHandover {
            bound,
            mode,
            fds,
            group,
            resting,
            steering,
        } = handover;
        let mut listeners = AppListeners {
            bound,
            mode,
            fds,
            group,
            excluded: BTreeMap::new(),
            resting: resting.into_iter().collect(),
            probes: BTreeMap::new(),
            steering,
            owns_path: true,
        };
        if let Err(e) = listeners.resteer() {
            warn!("{}: cannot steer connections: {e}", listeners.bound);
        }
        listeners
    }

    /// The TCP port actually bound, if any.
    pub fn port(&self) -> Option<u16> {
        match self.bound {
            ListenAddr::Tcp(addr) => Some(addr.port()),
            ListenAddr::Unix(_) => None,
        }
    }

    /// The listener a worker of `slot` gets as fd 3, binding it again if it was released.
    pub fn acquire(&mut self, slot: u32) -> io::Result<BorrowedFd<'_>> {
        let index = self.index(slot);
        if self.fds.len() <= index {
            self.fds.resize_with(index + 1, || None);
        }
        if self.fds[index].is_none() {
            self.fds[index] = Some(bind_one(&self.bound, self.mode)?);
            if self.steerable() {
                // It joined the group at the end; until the program is rebuilt, the old
                // one (whose indices are all still right) just never picks it.
                self.group.push(slot);
                if let Err(e) = self.resteer() {
                    warn!(
                        "{}: cannot steer connections to slot {slot}: {e}",
                        self.bound
                    );
                }
            }
        }
        Ok(self.fds[index].as_ref().expect("bound above").as_fd())
    }

    /// Stops `slot` from holding connections hostage while no worker will accept them for
    /// a while (errored, stopped, long backoff): its reuseport listener is closed, so new
    /// connections go to the other slots. The last open listener is always kept, so the
    /// port stays reserved for the app. `shared` keeps its one listener.
    ///
    /// Closing a listener resets connections still in its queue (the SO_REUSEPORT caveat in
    /// DESIGN.md); only those that arrived since its worker stopped accepting are affected.
    /// The last listener that new connections are not steered away from is kept as well:
    /// closing it would send them to listeners that are being drained.
    pub fn release(&mut self, slot: u32) {
        if self.mode == SocketMode::Shared {
            return;
        }
        let index = self.index(slot);
        let others_taking = self
            .fds
            .iter()
            .enumerate()
            .filter(|&(i, fd)| {
                i != index && fd.is_some() && !self.excluded.contains_key(&(i as u32))
            })
            .count();
        if others_taking > 0 {
            self.close_slot(slot);
        }
    }

    /// Closes every listener, releasing the port (`drover stop`). A later `acquire` binds
    /// the same address again, so `restart` comes back where it was.
    pub fn close_all(&mut self) {
        let steerable = self.steerable();
        for fd in self.fds.iter_mut().filter_map(Option::take) {
            if steerable {
                shut_down(&fd);
            }
        }
        // The group, and the program with it, is gone once its last socket is.
        self.group.clear();
        self.excluded.clear();
        self.probes.clear();
        self.steering = false;
    }

    /// Closes the listener of a slot that no longer exists (scale-down). Steer away from it
    /// and [`drain`] it first, or the connections in its queue are reset.
    pub fn remove(&mut self, slot: u32) {
        if self.mode == SocketMode::Reuseport {
            self.close_slot(slot);
        }
    }

    /// Steers new connections away from `slot`'s listener, to the other listeners of the
    /// group (picked uniformly at random), so its queue only shrinks; see [`drain`]. It
    /// stays excluded until [`steer_all`](Self::steer_all) or until it is closed. Fails,
    /// changing nothing, when no other listener would take new connections. A no-op for
    /// `shared`, unix listeners and a slot without a listener.
    pub fn steer_away(&mut self, slot: u32) -> io::Result<()> {
        if !self.steerable() || !self.is_open(slot) || self.excluded.contains_key(&slot) {
            return Ok(());
        }
        let others = self
            .group
            .iter()
            .filter(|&&s| s != slot && !self.excluded.contains_key(&s))
            .count();
        if others == 0 {
            return Err(io::Error::other(format!(
                "{}: cannot steer connections away from slot {slot}: no other listener would take them",
                self.bound
            )));
        }
        self.excluded.insert(slot, Instant::now());
        if let Err(e) = self.resteer() {
            // A failed attach leaves the previous program in place.
            self.excluded.remove(&slot);
            return Err(e);
        }
        // The grace of `drain` counts from when the program is in place.
        self.excluded.insert(slot, Instant::now());
        Ok(())
    }

    /// Whether `slot`'s worker takes new connections (ready and healthy): those that do
    /// share them; one that does not gets none while another can take them. When no
    /// worker can (all booting), every listener takes them, as without steering, so they
    /// wait in the queues for the workers. A no-op where nothing is steered.
    pub fn set_taking(&mut self, slot: u32, taking: bool) {
        let changed = if taking {
            self.resting.remove(&slot)
        } else {
            self.resting.insert(slot)
        };
        if changed && let Err(e) = self.resteer() {
            warn!(
                "{}: cannot steer connections {} slot {slot}: {e}",
                self.bound,
                if taking { "to" } else { "away from" }
            );
        }
    }

    /// Sends a connection from `source_port` (a health check's) to `slot`'s listener, so
    /// the check reaches that slot's worker through the shared address. Undo with
    /// [`unprobe`](Self::unprobe) once connected. Fails where connections cannot be
    /// steered (`shared`, unix listeners) or `slot` has no listener.
    pub fn probe(&mut self, slot: u32, source_port: u16) -> io::Result<()> {
        if !self.steerable() || !self.group.contains(&slot) {
            return Err(io::Error::other(format!(
                "{}: no listener of slot {slot} to send a check to",
                self.bound
            )));
        }
        self.probes.insert(source_port, slot);
        if let Err(e) = self.resteer() {
            self.probes.remove(&source_port);
            return Err(e);
        }
        Ok(())
    }

    /// Ends a [`probe`](Self::probe).
    pub fn unprobe(&mut self, source_port: u16) {
        if self.probes.remove(&source_port).is_some()
            && let Err(e) = self.resteer()
        {
            warn!("{}: cannot end a health probe: {e}", self.bound);
        }
    }

    /// Lets the kernel's hash spread new connections over every listener again.
    pub fn steer_all(&mut self) {
        self.excluded.clear();
        if let Err(e) = self.resteer() {
            warn!("{}: cannot stop steering connections: {e}", self.bound);
        }
    }

    /// The number of established connections waiting in `slot`'s accept queue. 0 for a
    /// slot without a listener, `shared` and unix listeners.
    pub fn queue_len(&self, slot: u32) -> io::Result<u32> {
        if !self.steerable() {
            return Ok(0);
        }
        match self.fds.get(slot as usize) {
            Some(Some(fd)) => os::listen_queue_len(fd.as_fd()),
            _ => Ok(0),
        }
    }

    /// Whether `slot`'s listener can be closed without resetting a connection: its accept
    /// queue is empty and, when it was steered away from, [`HANDSHAKE_GRACE`] has passed
    /// since, so no handshake begun before can still land in it. Only meaningful after
    /// [`steer_away`](Self::steer_away): otherwise new connections keep arriving.
    pub fn is_drained(&self, slot: u32) -> io::Result<bool> {
        let settled = self
            .excluded
            .get(&slot)
            .is_none_or(|since| since.elapsed() >= HANDSHAKE_GRACE);
        Ok(settled && self.queue_len(slot)? == 0)
    }

    /// Whether listeners are per slot and in a kernel reuseport group we can steer.
    fn steerable(&self) -> bool {
        self.mode == SocketMode::Reuseport && matches!(self.bound, ListenAddr::Tcp(_))
    }

    fn is_open(&self, slot: u32) -> bool {
        matches!(self.fds.get(self.index(slot)), Some(Some(_)))
    }

    /// Any open listener of the group: the program belongs to the group, not the socket.
    fn any_member(&self) -> Option<BorrowedFd<'_>> {
        self.fds.iter().flatten().next().map(AsFd::as_fd)
    }

    /// Closes `slot`'s listener, keeping the steering program right at every instant.
    fn close_slot(&mut self, slot: u32) {
        let Some(fd) = self.fds.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let Some(pos) = self.group.iter().position(|&s| s == slot) else {
            return; // not steerable: dropping the fd is all there is to do
        };
        let last = self.group.len() - 1;
        if self.steering {
            // Closing moves the last socket into `pos`: until the program is rebuilt, pick
            // only listeners whose index is the same before and after.
            let stable: Vec<u32> = (0..self.group.len())
                .filter(|&p| p != pos && p != last && !self.excluded.contains_key(&self.group[p]))
                .map(|p| p as u32)
                .collect();
            // If none is, the old program stays; the few microseconds until the rebuild
            // may see its index to the moved socket fall back to the hash.
            if !stable.is_empty()
                && let Err(e) = steering_program(&stable)
                    .and_then(|program| os::attach_reuseport_cbpf(fd.as_fd(), &program))
            {
                warn!(
                    "{}: cannot steer connections before closing slot {slot}: {e}",
                    self.bound
                );
            }
        }
        shut_down(&fd);
        drop(fd);
        self.group.swap_remove(pos);
        self.excluded.remove(&slot);
        if let Err(e) = self.resteer() {
            warn!(
                "{}: cannot steer connections after closing slot {slot}: {e}",
                self.bound
            );
        }
    }

    /// Attaches the program that matches `group`, `excluded`, `resting` and `probes`, or
    /// detaches it when every listener takes connections and no probe is in flight.
    fn resteer(&mut self) -> io::Result<()> {
        if !self.steerable() {
            return Ok(());
        }
        let group = &self.group;
        self.excluded.retain(|slot, _| group.contains(slot));
        self.probes.retain(|_, slot| group.contains(slot));
        let open: Vec<u32> = (0..self.group.len())
            .filter(|&p| !self.excluded.contains_key(&self.group[p]))
            .map(|p| p as u32)
            .collect();
        if open.is_empty() && !self.excluded.is_empty() {
            warn!(
                "{}: every listener is steered away from; the kernel's hash picks among them",
                self.bound
            );
        }
        let taking: Vec<u32> = open
            .iter()
            .copied()
            .filter(|&p| !self.resting.contains(&self.group[p as usize]))
            .collect();
        // Nobody takes connections (every worker is booting): the queues hold them for
        // the workers, as without steering.
        let keep = if taking.is_empty() { open } else { taking };
        let everyone = keep.is_empty() || keep.len() == self.group.len();
        let probes: Vec<(u16, u32)> = self
            .probes
            .iter()
            .filter_map(|(&port, slot)| {
                let p = self.group.iter().position(|s| s == slot)?;
                Some((port, p as u32))
            })
            .collect();
        if everyone && probes.is_empty() {
            if self.steering {
                if let Some(fd) = self.any_member() {
                    os::detach_reuseport_bpf(fd)?;
                }
                self.steering = false;
            }
            return Ok(());
        }
        let mut program = probe_prologue(&probes);
        if everyone {
            // An index past the group's end: the kernel's hash picks.
            program.push(op(libc::BPF_RET | libc::BPF_K, u32::MAX, 0, 0));
        } else {
            program.extend(steering_program(&keep)?);
        }
        if program.len() > BPF_MAXINSNS {
            return Err(io::Error::other("too many listeners to steer between"));
        }
        let fd = self
            .any_member()
            .expect("a group with a kept listener has a member");
        os::attach_reuseport_cbpf(fd, &program)?;
        self.steering = true;
        Ok(())
    }

    fn index(&self, slot: u32) -> usize {
        match self.mode {
            SocketMode::Shared => 0,
            SocketMode::Reuseport => slot as usize,
        }
    }
}

/// Waits until `slot`'s listener is drained ([`AppListeners::is_drained`]), looking every
/// 10 ms, for at most `timeout`. Call it after [`AppListeners::steer_away`], while the
/// slot's worker still accepts. Returns whether it drained; never holds the lock across
/// a wait.
pub async fn drain(listeners: &Mutex<AppListeners>, slot: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let drained = crate::sync::lock(listeners).is_drained(slot);
        match drained {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => {
                warn!("cannot read the accept queue of slot {slot}: {e}");
                return false;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL.min(deadline - now)).await;
    }
}

/// A classic BPF program for a reuseport group that picks one of the socket indices `keep`
/// (ascending, non-empty) uniformly at random:
///
/// ```text
///     ld  rand            ; A = a random u32 (the SKF_AD_RANDOM ancillary load)
///     mod #k              ; A = A % k, k = keep.len(): the rank of the pick among `keep`
///     jge #s, 0, 1        ; for each skipped index s, ascending:
///     add #1              ;   if A >= s { A += 1 }  (rank -> index)
///     ret a
/// ```
///
/// Its size grows with the skipped indices only (no jump offset limits), and a single
/// kept index is a plain `ret #index`.
fn steering_program(keep: &[u32]) -> io::Result<Vec<libc::sock_filter>> {
    let Some(&highest) = keep.last() else {
        return Err(io::Error::other("no listener to steer connections to"));
    };
    if keep.len() == 1 {
        return Ok(vec![op(libc::BPF_RET | libc::BPF_K, highest, 0, 0)]);
    }
    // Indices above the highest kept one are never reached by the skips.
    let skipped: Vec<u32> = (0..highest).filter(|i| !keep.contains(i)).collect();
    let mut program = Vec::with_capacity(3 + 2 * skipped.len());
    if program.capacity() > BPF_MAXINSNS {
        return Err(io::Error::other("too many listeners to steer between"));
    }
    program.push(op(
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32,
        0,
        0,
    ));
    program.push(op(
        libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K,
        keep.len() as u32,
        0,
        0,
    ));
    for s in skipped {
        program.push(op(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, s, 0, 1));
        program.push(op(libc::BPF_ALU | libc::BPF_ADD | libc::BPF_K, 1, 0, 0));
    }
    program.push(op(libc::BPF_RET | libc::BPF_A, 0, 0, 0));
    Ok(program)
}

/// One classic BPF instruction.
fn op(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The start of a program that sends a connection from each probe's source port to its
/// listener's index in the group, and falls through to what follows for any other:
///
/// ```text
///     ldb [net + 0]       ; the IP header's first byte (SKF_NET_OFF: the network header)
///     rsh #4              ; its version
///     jeq #6, 2, 0        ; IPv6: the TCP header is at 40, else (IPv4, no options) at 20
///     ldh [net + 20]      ; the source port, IPv4
///     ja 1
///     ldh [net + 40]      ; the source port, IPv6
///     jeq #port, 0, 1     ; for each probe:
///     ret #index          ;   its listener
/// ```
///
/// An IPv4 connection to a dual-stack `[::]` listener arrives as IPv4, so it takes the
/// first branch. Nothing at all without probes.
fn probe_prologue(probes: &[(u16, u32)]) -> Vec<libc::sock_filter> {
    if probes.is_empty() {
        return Vec::new();
    }
    let net = libc::SKF_NET_OFF as u32;
    let mut program = vec![
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, net, 0, 0),
        op(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K, 4, 0, 0),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 6, 2, 0),
        op(
            libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
            net.wrapping_add(20),
            0,
            0,
        ),
        op(libc::BPF_JMP | libc::BPF_JA, 1, 0, 0),
        op(
            libc::BPF_LD | libc::BPF_H | libc::BPF_ABS,
            net.wrapping_add(40),
            0,
            0,
        ),
    ];
    for &(port, index) in probes {
        program.push(op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            u32::from(port),
            0,
            1,
        ));
        program.push(op(libc::BPF_RET | libc::BPF_K, index, 0, 0));
    }
    program
}

/// Takes a listener out of its reuseport group now, even if another process (a worker,
/// a stray grandchild) still holds it: on a listening socket, shutdown(SHUT_RD) does what
/// the last close would (tcp_disconnect: unhash, reset the queue). That keeps the kernel's
/// array where `group` says it is.
fn shut_down(fd: &OwnedFd) {
    // ENOTCONN: it was no longer listening; nothing to take out.
    let _ = socket::shutdown(fd.as_fd().as_raw_fd_compat(), socket::Shutdown::Read);
}

impl Drop for AppListeners {
    fn drop(&mut self) {
        if let (ListenAddr::Unix(path), true) = (&self.bound, self.owns_path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An app's listeners, shared by the app's table entry and its slots: bound when the
/// app starts (`listen:`), or when the first of its workers asks for an address (a Node
/// app in cluster mode without `listen:`: the shim asks over the worker's IPC channel,
/// see `supervisor::node_channel`), or never (an app that binds its own ports).
///
/// Such a Node app may listen on more ports than one (an admin or metrics port next to
/// the main one), as Node's cluster shares them all: each further address gets one
/// listener that every worker accepts on (`socket: shared`), bound at the first request
/// ([`ListenerCell::more`]) and closed with the app's ports.
#[derive(Debug, Default)]
pub struct ListenerCell {
    bound: OnceLock<Bound>,
    /// The further addresses, as asked, with their listener.
    more: Mutex<Vec<(ListenAddr, OwnedFd)>>,
}

#[derive(Debug)]
struct Bound {
    /// The address the app asked for (a port 0 stays 0): later requests must ask for it
    /// too, since they cannot know which port the kernel chose.
    asked: ListenAddr,
    listeners: Mutex<AppListeners>,
}

impl ListenerCell {
    /// A cell holding listeners bound already (the app's `listen:`).
    pub fn bound(asked: ListenAddr, listeners: AppListeners) -> Self {
        let cell = ListenerCell::default();
        let _ = cell.bound.set(Bound {
            asked,
            listeners: Mutex::new(listeners),
        });
        cell
    }

    /// The listeners, once bound.
    pub fn get(&self) -> Option<&Mutex<AppListeners>> {
        self.bound.get().map(|b| &b.listeners)
    }

    /// The address the app's shared listeners were asked for, once bound.
    pub fn asked(&self) -> Option<&ListenAddr> {
        self.bound.get().map(|b| &b.asked)
    }

    /// A copy of the shared listener of a further address `asked` (see the type's docs),
    /// bound now if no worker asked for it before.
    pub fn more(&self, asked: &ListenAddr) -> io::Result<OwnedFd> {
        let mut more = crate::sync::lock(&self.more);
        if let Some((_, fd)) = more.iter().find(|(a, _)| a == asked) {
            return fd.try_clone();
        }
        let fd = bind_one(asked, SocketMode::Shared)?;
        let copy = fd.try_clone()?;
        tracing::info!(
            "also listening on {} (asked for {asked}; one listener, shared by the workers)",
            local_addr(&fd, asked)?
        );
        more.push((asked.clone(), fd));
        Ok(copy)
    }

    /// Hands every listener over to the next image (`drover update`), leaving the cell
    /// empty of them.
    pub fn hand_over(&self) -> CellHandover {
        let bound = self.bound.get().map(|b| {
            let listeners = crate::sync::lock(&b.listeners).hand_over();
            (b.asked.clone(), listeners)
        });
        let more = std::mem::take(&mut *crate::sync::lock(&self.more));
        CellHandover { bound, more }
    }

    /// The cell the previous image handed over.
    pub fn taken_over(handover: CellHandover) -> Self {
        let cell = match handover.bound {
            Some((asked, listeners)) => {
                ListenerCell::bound(asked, AppListeners::taken_over(listeners))
            }
            None => ListenerCell::default(),
        };
        *crate::sync::lock(&cell.more) = handover.more;
        cell
    }

    /// Closes the listeners of the further addresses (the app stopped: its ports are
    /// free); the workers ask again when they start.
    pub fn close_more(&self) {
        crate::sync::lock(&self.more).clear();
    }

    /// The listeners for a worker that asks to listen on `asked`: bound now if this is the
    /// app's first such request, the same ones if it asks for the address the first one
    /// asked for, refused otherwise (further addresses are [`ListenerCell::more`]'s). A failed bind leaves the
    /// cell empty, so a later request tries again.
    pub fn get_or_bind(
        &self,
        asked: &ListenAddr,
        mode: SocketMode,
        slots: u32,
    ) -> io::Result<&Mutex<AppListeners>> {
        if let Some(bound) = self.bound.get() {
            return match bound.asked == *asked {
                true => Ok(&bound.listeners),
                false => Err(io::Error::other(format!(
                    "the app's workers share {} (asked for {}); one address is shared per app",
                    lock_bound(&bound.listeners),
                    bound.asked
                ))),
            };
        }
        let listeners = AppListeners::bind(asked, mode, slots)?;
        // The supervisor's runtime has one thread, so nobody can have set it meanwhile;
        // if somebody had, theirs is kept and ours closed.
        let _ = self.bound.set(Bound {
            asked: asked.clone(),
            listeners: Mutex::new(listeners),
        });
        Ok(&self.bound.get().expect("set above").listeners)
    }
}

fn lock_bound(listeners: &Mutex<AppListeners>) -> ListenAddr {
    crate::sync::lock(listeners).bound().clone()
}

const BACKLOG: i32 = 511;

fn bind_one(addr: &ListenAddr, mode: SocketMode) -> io::Result<OwnedFd> {
    match addr {
        ListenAddr::Tcp(addr) => bind_tcp(*addr, mode == SocketMode::Reuseport),
        ListenAddr::Unix(path) => bind_unix(path),
    }
}

/// Whether this host can make IPv6 sockets.
fn has_ipv6() -> bool {
    socket::socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .is_ok()
}

/// IPV6_V6ONLY off on an IPv6 socket, so `[::]` serves IPv4 too whatever the host's
/// `net.ipv6.bindv6only`; other addresses are left as they are.
fn dual_stack(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    if let SocketAddr::V6(v6) = addr
        && v6.ip().is_unspecified()
    {
        socket::setsockopt(fd, sockopt::Ipv6V6Only, &false)?;
    }
    Ok(())
}

/// Fails with EADDRINUSE when something listens on `addr`, even with SO_REUSEPORT: a
/// socket without it that binds (and never listens) is only refused by a taken port.
fn ensure_free(addr: SocketAddr) -> io::Result<()> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let probe = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&probe, sockopt::ReuseAddr, &true)?;
    dual_stack(&probe, addr)?;
    let result = match addr {
        SocketAddr::V4(v4) => socket::bind(probe.as_fd().as_raw_fd_compat(), &SockaddrIn::from(v4)),
        SocketAddr::V6(v6) => {
            socket::bind(probe.as_fd().as_raw_fd_compat(), &SockaddrIn6::from(v6))
        }
    };
    result.map_err(|e| {
        let why = if e == nix::errno::Errno::EADDRINUSE {
            "the port is taken (by another program, or another drover app)".to_owned()
        } else {
            e.to_string()
        };
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind {addr}: {why}"),
        )
    })
}

fn bind_tcp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    dual_stack(&fd, addr)?;
    if reuseport {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    let result = match addr {
        SocketAddr::V4(v4) => socket::bind(fd.as_fd().as_raw_fd_compat(), &SockaddrIn::from(v4)),
        SocketAddr::V6(v6) => socket::bind(fd.as_fd().as_raw_fd_compat(), &SockaddrIn6::from(v6)),
    };
    result.map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind {addr}: {e}"),
        )
    })?;
    socket::listen(&fd, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))?;
    Ok(fd)
}

fn bind_unix(path: &Path) -> io::Result<OwnedFd> {
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind unix:{}: {e}", path.display()),
        )
    })?;
    Ok(OwnedFd::from(listener))
}

/// A socket file left by a dead process would make bind fail with EADDRINUSE; one that a
/// live process still accepts on must not be stolen.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("unix:{} is in use by another process", path.display()),
            )),
            Err(_) => std::fs::remove_file(path),
        },
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("unix:{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn local_addr(fd: &OwnedFd, requested: &ListenAddr) -> io::Result<ListenAddr> {
    match requested {
        ListenAddr::Unix(path) => Ok(ListenAddr::Unix(PathBuf::from(path))),
        ListenAddr::Tcp(_) => {
            let storage: SockaddrStorage = socket::getsockname(fd.as_fd().as_raw_fd_compat())?;
            if let Some(v4) = storage.as_sockaddr_in() {
                Ok(ListenAddr::Tcp(SocketAddr::V4((*v4).into())))
            } else if let Some(v6) = storage.as_sockaddr_in6() {
                Ok(ListenAddr::Tcp(SocketAddr::V6((*v6).into())))
            } else {
                Err(io::Error::other("listener has no inet address"))
            }
        }
    }
}

/// nix 0.30 still takes raw fds for bind/getsockname.
trait AsRawFdCompat {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd;
}

impl AsRawFdCompat for BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    fn loopback0() -> ListenAddr {
        ListenAddr::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    #[test]
    fn reuseport_binds_every_slot_on_the_port_the_kernel_chose() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 3).unwrap();
        let port = l.port().unwrap();
        assert_ne!(port, 0);
        for slot in 0..3 {
            let fd = l.acquire(slot).unwrap().try_clone_to_owned().unwrap();
            let storage: SockaddrStorage =
                socket::getsockname(fd.as_fd().as_raw_fd_compat()).unwrap();
            assert_eq!(storage.as_sockaddr_in().unwrap().port(), port);
        }
        TcpStream::connect(("127.0.0.1", port)).expect("a listener accepts into its queue");
    }

    #[test]
    fn release_keeps_the_last_listener_so_the_port_stays_reserved() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 2).unwrap();
        let port = l.port().unwrap();
        l.release(0);
        l.release(1);
        TcpStream::connect(("127.0.0.1", port)).expect("port still open");
        l.acquire(0).unwrap();
    }

    #[test]
    fn unix_listener_replaces_a_stale_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        drop(UnixListener::bind(&path).unwrap());
        let addr = ListenAddr::Unix(path.clone());
        let l = AppListeners::bind(&addr, SocketMode::Shared, 2).unwrap();
        UnixStream::connect(&path).unwrap();
        drop(l);
        assert!(!path.exists());
    }

    /// What a worker holds: its own reference to `slot`'s listener (accepting without
    /// blocking).
    fn tap(l: &mut AppListeners, slot: u32) -> TcpListener {
        let fd = l.acquire(slot).unwrap().try_clone_to_owned().unwrap();
        let listener = TcpListener::from(fd);
        listener.set_nonblocking(true).unwrap();
        listener
    }

    /// Opens `n` connections, then accepts them all from `taps`: how many each slot got.
    fn spread(port: u16, n: usize, taps: &BTreeMap<u32, TcpListener>) -> BTreeMap<u32, usize> {
        let clients: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let mut counts: BTreeMap<u32, usize> = taps.keys().map(|&slot| (slot, 0)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts.values().sum::<usize>() < n {
            for (slot, listener) in taps {
                while listener.accept().is_ok() {
                    *counts.get_mut(slot).unwrap() += 1;
                }
            }
            assert!(
                Instant::now() < deadline,
                "only {counts:?} of {n} connections accepted"
            );
            std::thread::yield_now();
        }
        drop(clients);
        counts
    }

    /// The slots in the order the kernel keeps the group: for each index, a program that
    /// always returns it, and one connection to see which listener gets it. Checks that
    /// an index past the end falls back to the hash, then restores the steering.
    fn kernel_order(l: &mut AppListeners, taps: &BTreeMap<u32, TcpListener>) -> Vec<u32> {
        let port = l.port().unwrap();
        let attach = |l: &AppListeners, index: u32| {
            let program = steering_program(&[index]).unwrap();
            os::attach_reuseport_cbpf(l.any_member().unwrap(), &program).unwrap();
        };
        let mut order = Vec::new();
        for index in 0..taps.len() as u32 {
            attach(l, index);
            let counts = spread(port, 1, taps);
            order.push(*counts.iter().find(|&(_, &n)| n == 1).unwrap().0);
        }
        if taps.len() > 1 {
            attach(l, taps.len() as u32);
            let counts = spread(port, 100, taps);
            assert!(
                counts.values().filter(|&&n| n > 0).count() > 1,
                "out of range = hash over all: {counts:?}"
            );
        }
        l.steering = true;
        l.resteer().unwrap();
        order
    }

    #[test]
    fn the_kernel_moves_the_last_socket_into_a_closed_ones_place() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 4).unwrap();
        let mut taps: BTreeMap<u32, TcpListener> = (0..4).map(|s| (s, tap(&mut l, s))).collect();
        assert_eq!(kernel_order(&mut l, &taps), [0, 1, 2, 3]);
        assert_eq!(l.group, [0, 1, 2, 3]);

        // Slot 1's "worker" still holds its listener: it must leave the group all the same.
        let held = taps.remove(&1).unwrap();
        l.remove(1);
        assert!(
            os::listen_queue_len(held.as_fd()).is_err(),
            "no longer listening"
        );
        assert_eq!(kernel_order(&mut l, &taps), [0, 3, 2]);
        assert_eq!(l.group, [0, 3, 2]);

        taps.remove(&0);
        l.remove(0);
        assert_eq!(kernel_order(&mut l, &taps), [2, 3]);
        taps.insert(5, tap(&mut l, 5));
        assert_eq!(kernel_order(&mut l, &taps), [2, 3, 5]);
        assert_eq!(l.group, [2, 3, 5]);

        // Removing the last one moves nothing.
        taps.remove(&5);
        l.remove(5);
        assert_eq!(kernel_order(&mut l, &taps), [2, 3]);
        assert_eq!(l.group, [2, 3]);

        taps.clear();
        l.close_all();
        assert!(l.group.is_empty());
        taps.insert(1, tap(&mut l, 1));
        taps.insert(0, tap(&mut l, 0));
        assert_eq!(kernel_order(&mut l, &taps), [1, 0]);
        assert_eq!(l.group, [1, 0]);
    }

    #[test]
    fn steering_skips_a_slot_and_follows_the_group_as_it_changes() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 3).unwrap();
        let port = l.port().unwrap();
        let mut taps: BTreeMap<u32, TcpListener> = (0..3).map(|s| (s, tap(&mut l, s))).collect();

        l.steer_away(1).unwrap();
        let counts = spread(port, 200, &taps);
        assert_eq!(counts[&1], 0, "{counts:?}");
        assert!(counts[&0] > 0 && counts[&2] > 0, "{counts:?}");

        // Slot 2 moves into slot 0's place: the program must follow it.
        let _worker_of_0 = taps.remove(&0).unwrap();
        l.remove(0);
        let counts = spread(port, 200, &taps);
        assert_eq!((counts[&1], counts[&2]), (0, 200), "{counts:?}");

        // A new listener joins at the end and is picked; 1 stays excluded.
        taps.insert(3, tap(&mut l, 3));
        let counts = spread(port, 200, &taps);
        assert_eq!(counts[&1], 0, "{counts:?}");
        assert!(counts[&2] > 0 && counts[&3] > 0, "{counts:?}");

        l.steer_all();
        assert!(!l.steering);
        let counts = spread(port, 200, &taps);
        assert!(counts.values().all(|&n| n > 0), "{counts:?}");
    }

    /// Connects to `port` on `ip` from a source port of its own, registered as a probe
    /// of `slot` first: which slot's listener got it.
    fn probe_lands(
        l: &mut AppListeners,
        slot: u32,
        ip: std::net::IpAddr,
        taps: &BTreeMap<u32, TcpListener>,
    ) -> u32 {
        let client = BoundClient::new(ip);
        let source = client.local_addr().unwrap().port();
        l.probe(slot, source).unwrap();
        let stream = client.connect(std::net::SocketAddr::new(ip, l.port().unwrap()));
        l.unprobe(source);
        stream.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (s, listener) in taps {
                if listener.accept().is_ok() {
                    return *s;
                }
            }
            assert!(Instant::now() < deadline, "the probe was never accepted");
            std::thread::yield_now();
        }
    }

    /// A client socket bound to a port of its own, not connected yet.
    struct BoundClient(OwnedFd);

    impl BoundClient {
        fn new(ip: std::net::IpAddr) -> Self {
            let family = if ip.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd =
                socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
            let any: std::net::SocketAddr = if ip.is_ipv4() {
                "127.0.0.1:0".parse().unwrap()
            } else {
                "[::1]:0".parse().unwrap()
            };
            socket::bind(fd.as_fd().as_raw_fd_compat(), &SockaddrStorage::from(any)).unwrap();
            BoundClient(fd)
        }
        fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
            let addr: SockaddrStorage =
                socket::getsockname(self.0.as_fd().as_raw_fd_compat()).map_err(io::Error::from)?;
            if let Some(v4) = addr.as_sockaddr_in() {
                return Ok(std::net::SocketAddr::from((v4.ip(), v4.port())));
            }
            let v6 = addr.as_sockaddr_in6().unwrap();
            Ok(std::net::SocketAddr::from((v6.ip(), v6.port())))
        }
        fn connect(self, to: std::net::SocketAddr) -> io::Result<TcpStream> {
            socket::connect(
                self.0.as_fd().as_raw_fd_compat(),
                &SockaddrStorage::from(to),
            )
            .map_err(io::Error::from)?;
            Ok(TcpStream::from(self.0))
        }
    }

    #[test]
    fn a_probe_reaches_the_listener_of_its_slot_whatever_the_steering() {
        for (bind, connect) in [
            ("127.0.0.1:0", "127.0.0.1"),
            ("[::]:0", "127.0.0.1"),
            ("[::]:0", "::1"),
        ] {
            let addr = ListenAddr::Tcp(bind.parse().unwrap());
            let mut l = AppListeners::bind(&addr, SocketMode::Reuseport, 3).unwrap();
            let taps: BTreeMap<u32, TcpListener> = (0..3).map(|s| (s, tap(&mut l, s))).collect();
            let ip: std::net::IpAddr = connect.parse().unwrap();
            for slot in [2, 0, 1, 2] {
                assert_eq!(
                    probe_lands(&mut l, slot, ip, &taps),
                    slot,
                    "{bind} from {connect}"
                );
            }
            // Also to a slot no connection is steered to.
            l.set_taking(1, false);
            assert_eq!(
                probe_lands(&mut l, 1, ip, &taps),
                1,
                "{bind} from {connect}"
            );
            assert!(l.probes.is_empty());
        }
    }

    #[test]
    fn a_slot_whose_worker_takes_nothing_gets_nothing_unless_none_takes() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 3).unwrap();
        let port = l.port().unwrap();
        let taps: BTreeMap<u32, TcpListener> = (0..3).map(|s| (s, tap(&mut l, s))).collect();
        l.set_taking(1, false);
        let counts = spread(port, 200, &taps);
        assert_eq!(counts[&1], 0, "{counts:?}");
        assert!(counts[&0] > 0 && counts[&2] > 0, "{counts:?}");
        l.set_taking(0, false);
        l.set_taking(2, false);
        let counts = spread(port, 200, &taps);
        assert!(
            counts.values().all(|&n| n > 0),
            "nobody ready: everyone queues {counts:?}"
        );
        l.set_taking(2, true);
        let counts = spread(port, 200, &taps);
        assert_eq!(
            (counts[&0], counts[&1], counts[&2]),
            (0, 0, 200),
            "{counts:?}"
        );
        // A slot leaving (scale-down) stays out even when it is the only one taking.
        l.steer_away(2).unwrap();
        let counts = spread(port, 200, &taps);
        assert_eq!(counts[&2], 0, "{counts:?}");
        for s in 0..3 {
            l.set_taking(s, true);
        }
        l.steer_all();
        assert!(!l.steering);
    }

    #[test]
    fn closing_a_kept_listener_keeps_the_excluded_one_excluded() {
        // Group [0, 1, 2, 3], 3 excluded; closing 1 moves 3 (excluded) into index 1.
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 4).unwrap();
        let port = l.port().unwrap();
        let mut taps: BTreeMap<u32, TcpListener> = (0..4).map(|s| (s, tap(&mut l, s))).collect();
        l.steer_away(3).unwrap();
        taps.remove(&1);
        l.release(1);
        assert_eq!(l.group, [0, 3, 2]);
        let counts = spread(port, 200, &taps);
        assert_eq!(counts[&3], 0, "{counts:?}");
        assert!(counts[&0] > 0 && counts[&2] > 0, "{counts:?}");
    }

    #[test]
    fn queue_len_counts_connections_waiting_to_be_accepted() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 2).unwrap();
        let port = l.port().unwrap();
        let taps: BTreeMap<u32, TcpListener> = (1..2).map(|s| (s, tap(&mut l, s))).collect();
        l.steer_away(0).unwrap();
        let clients: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        // The handshake completes on loopback before connect returns, or a moment after.
        let deadline = Instant::now() + Duration::from_secs(10);
        while l.queue_len(1).unwrap() < 5 {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        assert_eq!(l.queue_len(1).unwrap(), 5);
        assert_eq!(l.queue_len(0).unwrap(), 0);
        let mut accepted = 0;
        while taps[&1].accept().is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, 5);
        assert_eq!(l.queue_len(1).unwrap(), 0);
        assert_eq!(l.queue_len(7).unwrap(), 0, "no listener");
        drop(clients);
    }

    #[test]
    fn steer_away_never_leaves_the_port_without_a_listener() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 2).unwrap();
        l.steer_away(0).unwrap();
        assert!(l.steer_away(1).is_err());
        assert_eq!(l.excluded.keys().collect::<Vec<_>>(), [&0]);
        // The excluded slot's listener is not the last one taking connections: 1 stays.
        l.release(1);
        assert!(l.is_open(1));
        l.release(0);
        assert!(!l.is_open(0));
        assert!(l.excluded.is_empty());
        assert!(!l.steering, "nothing left to steer away from");
        assert!(l.steer_away(1).is_err());

        let mut single = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 1).unwrap();
        assert!(single.steer_away(0).is_err());
    }

    #[test]
    fn shared_and_unix_listeners_are_not_steered() {
        let mut shared = AppListeners::bind(&loopback0(), SocketMode::Shared, 3).unwrap();
        shared.steer_away(0).unwrap();
        shared.steer_away(1).unwrap();
        assert!(!shared.steering && shared.group.is_empty());
        assert_eq!(shared.queue_len(0).unwrap(), 0);
        let port = shared.port().unwrap();
        TcpStream::connect(("127.0.0.1", port)).expect("still served");

        let dir = tempfile::tempdir().unwrap();
        let addr = ListenAddr::Unix(dir.path().join("s.sock"));
        let mut unix = AppListeners::bind(&addr, SocketMode::Shared, 2).unwrap();
        unix.steer_away(0).unwrap();
        unix.steer_all();
        assert_eq!(unix.queue_len(0).unwrap(), 0);
    }

    #[test]
    fn steering_program_maps_ranks_to_kept_indices() {
        // Run the program's arithmetic (without the random load) for every rank.
        fn run(program: &[libc::sock_filter], rank: u32) -> u32 {
            let mut a = rank;
            let mut pc = 2; // after `ld rand; mod #k`
            loop {
                let op = program[pc];
                match op.code as u32 {
                    c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                        pc += 1 + if a >= op.k { op.jt } else { op.jf } as usize;
                    }
                    c if c == libc::BPF_ALU | libc::BPF_ADD | libc::BPF_K => {
                        a += op.k;
                        pc += 1;
                    }
                    c if c == libc::BPF_RET | libc::BPF_A => return a,
                    c => panic!("unexpected op {c:#x}"),
                }
            }
        }
        for keep in [
            &[0, 1][..],
            &[1, 2],
            &[0, 2, 5],
            &[3, 4, 7, 9],
            &[1, 3, 5, 6],
        ] {
            let program = steering_program(keep).unwrap();
            assert_eq!(program[1].k, keep.len() as u32);
            let picked: Vec<u32> = (0..keep.len() as u32).map(|r| run(&program, r)).collect();
            assert_eq!(picked, keep);
        }
        let single = steering_program(&[4]).unwrap();
        assert_eq!((single.len(), single[0].k), (1, 4));
        assert!(steering_program(&[]).is_err());
    }

    #[tokio::test]
    async fn drain_waits_for_the_queue_and_the_handshake_grace() {
        let mut l = AppListeners::bind(&loopback0(), SocketMode::Reuseport, 2).unwrap();
        let port = l.port().unwrap();
        let worker = tap(&mut l, 1);
        l.steer_away(0).unwrap();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        l.steer_all();
        l.steer_away(1).unwrap();
        assert!(!l.is_drained(1).unwrap(), "within the grace");
        let l = Mutex::new(l);

        // 3 connections wait in slot 1's queue and nobody accepts them.
        let started = Instant::now();
        assert!(!drain(&l, 1, HANDSHAKE_GRACE + Duration::from_millis(100)).await);
        assert!(started.elapsed() >= HANDSHAKE_GRACE);
        let more: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let mut accepted = 0;
        while worker.accept().is_ok() {
            accepted += 1;
        }
        assert_eq!(accepted, 3, "the later 20 went to slot 0");
        assert!(drain(&l, 1, Duration::from_secs(10)).await);
        let deadline = Instant::now() + Duration::from_secs(10);
        while l.lock().unwrap().queue_len(0).unwrap() < 20 {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        drop((clients, more));
    }
}
