//! The one module that talks to the OS below std's safe surface: the code that runs in a
//! forked child before exec, the exec trampoline, signal dispositions, reaping, and the
//! process-wide flags of the supervisor. Every `unsafe` block of drover lives here.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The fd a worker finds its listener on (systemd's SD_LISTEN_FDS_START).
pub const LISTEN_FD: RawFd = 3;

/// argv[1] that turns `drover` into the exec trampoline (see `exec_trampoline`).
pub const TRAMPOLINE_ARG: &str = "__exec";

/// Makes the supervisor the reaper of every orphan below it, so grandchildren whose worker
/// died are reaped by us (and are ours to kill), as when running as PID 1 in a container.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The fd a Node worker finds its IPC channel on (`NODE_CHANNEL_FD`), when it has one.
pub const NODE_CHANNEL_FD: RawFd = 4;

/// Prepares `cmd` so the child, between fork and exec:
/// - gets `listener` as fd 3 and `channel` (its end of a Node IPC channel) as fd 4,
///   with close-on-exec cleared (also when a source already is its target, where dup2
///   would be a no-op and leave the flag set);
/// - dies with SIGKILL when the supervisor dies (PR_SET_PDEATHSIG). The flag is tied to
///   the spawning *thread*: the supervisor runs a current-thread runtime, so that thread
///   is the main thread and lives as long as the process.
///
/// The closure only makes async-signal-safe syscalls and allocates nothing.
pub fn prepare_child(
    cmd: &mut Command,
    listener: Option<BorrowedFd<'_>>,
    channel: Option<BorrowedFd<'_>>,
) {
    let listener_fd: Option<RawFd> = listener.map(|fd| fd.as_raw_fd());
    let channel_fd: Option<RawFd> = channel.map(|fd| fd.as_raw_fd());
    let supervisor_pid = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs in the forked child of a possibly multi-threaded process; it
    // uses only raw syscalls (prctl, getppid, fcntl, dup2) on values captured by copy,
    // and allocates nothing, so it cannot deadlock on a lock held by another thread.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != supervisor_pid {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // A source sitting on the other one's target moves out of the way first.
            let mut sources = [(listener_fd, LISTEN_FD), (channel_fd, NODE_CHANNEL_FD)];
            for i in 0..sources.len() {
                let other_target = sources[1 - i].1;
                if let (Some(fd), _) = sources[i]
                    && fd == other_target
                {
                    let moved = libc::fcntl(fd, libc::F_DUPFD, NODE_CHANNEL_FD + 1);
                    if moved == -1 {
                        return Err(io::Error::last_os_error());
                    }
                    sources[i].0 = Some(moved);
                }
            }
            for (source, target) in sources {
                let Some(fd) = source else { continue };
                if fd != target && libc::dup2(fd, target) == -1 {
                    return Err(io::Error::last_os_error());
                }
                let flags = libc::fcntl(target, libc::F_GETFD);
                if flags == -1
                    || libc::fcntl(target, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The exec trampoline: `drover __exec <program> [args…]`, started by the supervisor with
/// the worker's fds and environment already in place. It runs single-threaded, before any
/// runtime exists, so it may allocate freely — which the pre-exec hook may not. It:
/// - sets LISTEN_PID (and WATCHDOG_PID, with a watchdog) to its own pid (the pid the
///   worker keeps after exec), which the supervisor cannot know before fork;
/// - resets every signal disposition to default and unblocks every signal, so a worker
///   never inherits an ignored SIGINT/SIGTERM (e.g. from `nohup` or a shell's `&`);
/// - execs the program (PATH lookup as execvp).
///
/// Returns only on failure, with the error to report.
pub fn exec_trampoline(mut argv: Vec<OsString>) -> io::Error {
    if argv.is_empty() {
        return io::Error::new(io::ErrorKind::InvalidInput, "no program to exec");
    }
    reset_signals();
    let program = argv.remove(0);
    let mut cmd = Command::new(&program);
    cmd.args(argv);
    if std::env::var_os("LISTEN_FDS").is_some() {
        cmd.env("LISTEN_PID", std::process::id().to_string());
    }
    if std::env::var_os("WATCHDOG_USEC").is_some() {
        cmd.env("WATCHDOG_PID", std::process::id().to_string());
    }
    let err = cmd.exec();
    io::Error::new(
        err.kind(),
        format!("cannot exec {}: {err}", program.to_string_lossy()),
    )
}

fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL registers no Rust code as a handler; this process is
        // single-threaded here (the trampoline runs before anything else).
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Makes `file` this process's stdout and stderr (dup2: drover.log's rotation).
pub fn redirect_output(file: &std::fs::File) -> std::io::Result<()> {
    nix::unistd::dup2_stdout(file)?;
    nix::unistd::dup2_stderr(file)?;
    Ok(())
}

/// Sends `sig` to the process group led by `pgid` (every worker leads its own group).
pub fn signal_group(pgid: Pid, sig: Signal) -> nix::Result<()> {
    signal::killpg(pgid, sig)
}

/// Sends `sig` to process `pid` alone (`drover send-signal`, PM2's sendSignal).
pub fn signal_process(pid: Pid, sig: Signal) -> nix::Result<()> {
    signal::kill(pid, sig)
}

/// One reaped child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub pid: Pid,
    pub status: ExitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(Signal),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(code) => write!(f, "exit code {code}"),
            ExitKind::Signal(sig) => write!(f, "signal {}", sig.as_str()),
        }
    }
}

/// Reaps every child that has exited, without blocking. Orphans adopted as subreaper
/// come back too; callers ignore pids they do not know.
pub fn reap_all() -> Vec<Reaped> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => reaped.push(Reaped {
                pid,
                status: ExitKind::Code(code),
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => reaped.push(Reaped {
                pid,
                status: ExitKind::Signal(sig),
            }),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    reaped
}

/// Whether a process exists (and is not a zombie of ours: those are reaped promptly).
pub fn process_exists(pid: Pid) -> bool {
    !matches!(signal::kill(pid, None), Err(Errno::ESRCH))
}

/// Makes the child of `cmd` the leader of a new session, detached from our terminal: the
/// background supervisor must survive the shell that started it (no SIGHUP on logout).
pub fn detach(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and the hook allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Installs `program` as the classic BPF selector of the SO_REUSEPORT group `fd` belongs
/// to, replacing any earlier one. For each new connection the kernel runs it and takes
/// the result as an index into the group's socket array (the order the sockets joined,
/// a closed socket's place taken by the last one); an index past the end falls back to
/// the kernel's hash. The program belongs to the group, not the socket: attaching it on
/// any member steers them all. Needs no privilege (SO_ATTACH_REUSEPORT_CBPF, Linux 4.5).
pub fn attach_reuseport_cbpf(fd: BorrowedFd<'_>, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a BPF program has 1 to 65535 instructions, not {}",
                    program.len()
                ),
            )
        })?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (the C struct declares it mutable).
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` and the program it points to outlive the call, `len` is exactly the
    // program's length, and the kernel copies the program in without writing to it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast::<libc::c_void>(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the BPF selector of `fd`'s SO_REUSEPORT group, so the kernel's hash picks
/// listeners again (Linux 5.8). Returns whether there was one.
pub fn detach_reuseport_bpf(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let unused: libc::c_int = 0;
    // SAFETY: the kernel reads one int from the pointer (and ignores its value); `unused`
    // outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_REUSEPORT_BPF,
            (&raw const unused).cast::<libc::c_void>(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == -1 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOENT) => Ok(false),
            _ => Err(err),
        };
    }
    Ok(true)
}

/// The number of established connections waiting in the accept queue of a listening TCP
/// socket (the kernel's sk_ack_backlog, which TCP_INFO reports as `tcpi_unacked` for a
/// socket in LISTEN state). Half-open connections (SYN received, handshake not finished)
/// are not counted: Linux reports their number nowhere per listener.
pub fn listen_queue_len(fd: BorrowedFd<'_>) -> io::Result<u32> {
    /// TCP_LISTEN of the kernel's tcp_states.h (libc does not export it).
    const TCP_LISTEN: u8 = 10;
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes and `len` a valid socklen_t; the
    // kernel writes at most `len` bytes into it and the new length into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: tcp_info is plain integers, so the all-zero start is a valid value and the
    // kernel's partial or full write keeps it valid.
    let info = unsafe { info.assume_init() };
    if (len as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_sacked) {
        return Err(io::Error::other("TCP_INFO too short to hold tcpi_unacked"));
    }
    if info.tcpi_state != TCP_LISTEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening TCP socket",
        ));
    }
    Ok(info.tcpi_unacked)
}

// In-place upgrade (`crate::upgrade`): what crosses the exec of a new drover binary.

/// Sets or clears close-on-exec on `fd`. What crosses the exec of `drover update` has
/// it cleared just before the exec, and set again by the new image as it adopts it.
pub fn set_cloexec(fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    let flags = match cloexec {
        true => flags | FdFlag::FD_CLOEXEC,
        false => flags - FdFlag::FD_CLOEXEC,
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// [`set_cloexec`] on a descriptor known by number: one the hand-over state names,
/// which nothing in this image owns until it is adopted.
pub fn set_cloexec_raw(raw: RawFd, cloexec: bool) -> io::Result<()> {
    // SAFETY: F_GETFD fails with EBADF on a number that is not open, and touches nothing.
    if raw < 0 || unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor {raw} is not open"),
        ));
    }
    // SAFETY: the descriptor is open (checked above) and stays so for the call: this
    // image closes no descriptor it does not own, and nothing owns this one.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    set_cloexec(fd, cloexec)
}

/// Takes charge of descriptor `raw`, inherited across an exec from the previous image,
/// and sets close-on-exec on it again. Fails when no such descriptor is open. Each
/// descriptor is adopted once: the state that names them refuses a number named twice
/// (`upgrade::state`).
pub fn adopt_fd(raw: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only reads the descriptor table entry; an unopened number fails
    // with EBADF and touches nothing.
    if raw < 0 || unsafe { libc::fcntl(raw, libc::F_GETFD) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor {raw} is not open"),
        ));
    }
    // SAFETY: the descriptor is open (checked above), and nothing else in this process
    // owns it: it was inherited across exec, named once by the hand-over state, and no
    // code of this image has opened it (descriptors it opens are new numbers).
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    set_cloexec(std::os::fd::AsFd::as_fd(&fd), true)?;
    Ok(fd)
}

/// The kernel's monotonic clock (CLOCK_MONOTONIC, which `Instant` reads on Linux). It
/// goes on across an exec, so deadlines and start times cross as readings of it.
pub fn monotonic_now() -> std::time::Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always there");
    std::time::Duration::from(now)
}

/// An in-memory file holding `bytes`, sealed (memfd_create, then F_ADD_SEALS): whoever
/// reads it sees exactly what was written, and nobody can change it afterwards.
pub fn sealed_memfd(name: &str, bytes: &[u8]) -> io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Write;
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(file.into())
}

/// Replaces this process's image with `binary` run with `argv`, the same environment
/// and `extra_env` (execve): the pid stays, the children stay ours, and every
/// descriptor without close-on-exec stays open. Call it on the main thread only: an
/// exec from another thread ends the main thread, which fires the workers'
/// PR_SET_PDEATHSIG. Returns only on failure.
pub fn exec_in_place(
    binary: &std::path::Path,
    argv: &[OsString],
    extra_env: &[(&str, String)],
) -> io::Error {
    use std::ffi::{CString, OsStr};
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: a NUL byte in an argument", s.to_string_lossy()),
            )
        })
    };
    let replaced = |key: &OsStr| extra_env.iter().any(|(k, _)| OsStr::new(k) == key);
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(key, _)| !replaced(key))
        .map(|(key, value)| {
            let mut kv = key;
            kv.push("=");
            kv.push(value);
            kv
        })
        .collect();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| OsString::from(format!("{k}={v}"))),
    );
    let prepared = (|| {
        let path = cstr(binary.as_os_str())?;
        let args = argv
            .iter()
            .map(|a| cstr(a))
            .collect::<io::Result<Vec<_>>>()?;
        let env = env
            .iter()
            .map(|e| cstr(e))
            .collect::<io::Result<Vec<_>>>()?;
        Ok::<_, io::Error>((path, args, env))
    })();
    match prepared {
        Ok((path, args, env)) => match nix::unistd::execve(&path, &args, &env) {
            Err(errno) => io::Error::from(errno),
            Ok(never) => match never {},
        },
        Err(e) => e,
    }
}

/// Removes variable `name` from this process's environment and returns its value. Call
/// it only at the start of `main`, before any thread exists.
pub fn take_env_var(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: called first thing in main, while the process has a single thread, so no
    // other thread can be reading the environment.
    unsafe { std::env::remove_var(name) };
    Some(value)
}
