//! Binds every listening socket once, in the supervisor, and keeps it open for the app's
//! lifetime so a worker crash never closes the port. Never accepts: the kernel hands
//! connections straight to the workers, which get the socket as fd 3.
//!
//! `reuseport` gives each worker slot its own SO_REUSEPORT listener on the same address,
//! so the kernel balances connections evenly; a slot's listener outlives its worker and
//! the replacement inherits the same queue. `shared` gives every worker the one listener.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
    sockopt,
};

use crate::config::{ListenAddr, SocketMode};

/// The listeners of one app.
#[derive(Debug)]
pub struct AppListeners {
    /// The address actually bound (port 0 resolved to the port the kernel chose).
    bound: ListenAddr,
    mode: SocketMode,
    /// `shared`: one entry. `reuseport`: one entry per slot, None while released.
    fds: Vec<Option<OwnedFd>>,
}

impl AppListeners {
    /// Binds `addr` for `slots` workers. With reuseport every slot gets its own listener now,
    /// so all of them are in the group before the first worker starts.
    pub fn bind(addr: &ListenAddr, mode: SocketMode, slots: u32) -> io::Result<Self> {
        let first = bind_one(addr, mode)?;
        let bound = local_addr(&first, addr)?;
        let mut listeners = AppListeners {
            bound,
            mode,
            fds: vec![Some(first)],
        };
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
    pub fn release(&mut self, slot: u32) {
        if self.mode == SocketMode::Shared {
            return;
        }
        let index = self.index(slot);
        let open = self.fds.iter().filter(|fd| fd.is_some()).count();
        if open > 1 && index < self.fds.len() {
            self.fds[index] = None;
        }
    }

    /// Closes every listener, releasing the port (`drover stop`). A later `acquire` binds
    /// the same address again, so `restart` comes back where it was.
    pub fn close_all(&mut self) {
        for fd in &mut self.fds {
            *fd = None;
        }
    }

    /// Closes the listener of a slot that no longer exists (scale-down).
    pub fn remove(&mut self, slot: u32) {
        let index = self.index(slot);
        if self.mode == SocketMode::Reuseport && index < self.fds.len() {
            self.fds[index] = None;
        }
    }

    fn index(&self, slot: u32) -> usize {
        match self.mode {
            SocketMode::Shared => 0,
            SocketMode::Reuseport => slot as usize,
        }
    }
}

impl Drop for AppListeners {
    fn drop(&mut self) {
        if let ListenAddr::Unix(path) = &self.bound {
            let _ = std::fs::remove_file(path);
        }
    }
}

const BACKLOG: i32 = 511;

fn bind_one(addr: &ListenAddr, mode: SocketMode) -> io::Result<OwnedFd> {
    match addr {
        ListenAddr::Tcp(addr) => bind_tcp(*addr, mode == SocketMode::Reuseport),
        ListenAddr::Unix(path) => bind_unix(path),
    }
}

fn bind_tcp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
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
    use std::net::{Ipv4Addr, TcpStream};

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
}
