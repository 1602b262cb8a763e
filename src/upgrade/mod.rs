//! Upgrading drover in place (`drover update`, SIGUSR2 to `drover run` or the daemon):
//! a new binary takes over the running supervisor in the same process, while every
//! worker, listener and log pipe carries on. The design, and why: docs/upgrade.md.
//!
//! - [`state`]: what crosses the exec, versioned ([`state::STATE_FORMAT`]).
//! - here: the check a new binary must pass before the exec ([`check`], run by the old
//!   image; [`check_child`], its other side in the new binary), the exec ([`exec`]),
//!   and reading the state back in the new image ([`read_state`]).
//!
//! The supervisor's side, freezing its tasks into a [`state::State`] and rebuilding
//! them from one, is `supervisor::handover`; the host's (the runtime, the lock, the
//! exec on the main thread, resuming in this process when the new binary fails) is
//! `cli::host`.

pub mod state;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use state::{STATE_FORMAT, State};

/// argv[1] of the check: `drover __upgrade-check`, the state on its stdin.
pub const CHECK_ARG: &str = "__upgrade-check";

/// The environment variable that tells a starting drover it is the new image of an
/// upgrade, and on which descriptor its state is. Removed first thing (`main`), so no
/// child ever sees it. The arguments stay those the supervisor was started with, so it
/// is still `drover daemon` (or `drover run …`) to `ps`, pgrep and systemd.
pub const STATE_FD_VAR: &str = "DROVER_UPGRADE_STATE_FD";

/// How long the new binary may take to read the state in the check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a killed check's pipes may take to close before the supervisor goes on.
const CHECK_KILL_GRACE: Duration = Duration::from_secs(1);

/// What `__upgrade-check` prints (one JSON line) when it can take the state over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    /// The state format it read.
    pub format: u32,
    /// Its version.
    pub version: String,
    pub apps: usize,
    pub workers: usize,
}

/// `drover __upgrade-check`: reads a hand-over state on stdin as `__resume` would, and
/// says so ([`CheckAnswer`] on stdout, exit 0) or why not (stderr, exit 3).
pub fn check_child() -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut bytes) {
        eprintln!("drover {}: cannot read the state: {e}", version());
        return ExitCode::from(3);
    }
    match State::decode(&bytes) {
        Ok(state) => {
            let answer = CheckAnswer {
                format: STATE_FORMAT,
                version: version().into(),
                apps: state.apps.len(),
                workers: state.workers(),
            };
            let line = serde_json::to_string(&answer).expect("serializes");
            let _ = writeln!(io::stdout(), "{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("drover {}: {e}", version());
            ExitCode::from(3)
        }
    }
}

/// This binary's version.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Whether `binary` can be run at all: a regular file we may execute. The reason, not.
pub fn runnable(binary: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = binary.display();
    let meta = std::fs::metadata(binary).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0
        || nix::unistd::access(binary, nix::unistd::AccessFlags::X_OK).is_err()
    {
        return Err(format!("{shown}: not executable"));
    }
    Ok(())
}

/// Runs `binary __upgrade-check` with `state` (the sealed memfd) on its stdin: the new
/// binary must read this very state, as it will after the exec, within
/// [`CHECK_TIMEOUT`], and read it in our format. Blocking; run outside the runtime.
pub fn check(binary: &Path, state: &OwnedFd) -> Result<CheckAnswer, String> {
    let shown = binary.display();
    let mut input = File::from(state.try_clone().map_err(|e| e.to_string())?);
    input
        .seek(io::SeekFrom::Start(0))
        .map_err(|e| e.to_string())?;
    // A group of its own, so a hung check is killed with whatever it started: a wrapper
    // script's children would otherwise hold its stdout open after it is gone.
    let mut child = Command::new(binary)
        .arg(CHECK_ARG)
        .process_group(0)
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (exited_tx, exited) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        // stderr on a thread of its own, so a chatty one cannot block stdout.
        let err_reader = std::thread::spawn(move || {
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let _ = stdout.read_to_string(&mut out);
        let err = err_reader.join().unwrap_or_default();
        let status = child.wait();
        let _ = exited_tx.send(());
        (status, out, err)
    });
    if exited.recv_timeout(CHECK_TIMEOUT).is_err() {
        // Hung: its group is killed, then its pipes close and the waiter ends. A process
        // that left the group (setsid) may still hold them: the waiter is then left to
        // end when it does, and the supervisor goes on without it.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        if exited.recv_timeout(CHECK_KILL_GRACE).is_ok() {
            let _ = waiter.join();
        }
        return Err(format!(
            "{shown} did not read the state within {} s (killed)",
            CHECK_TIMEOUT.as_secs()
        ));
    }
    let (status, out, err) = waiter.join().map_err(|_| "the check's waiter failed")?;
    let status = status.map_err(|e| format!("{shown}: {e}"))?;
    let said = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned();
    if let Some(signal) = status.signal() {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|_| format!("signal {signal}"));
        return Err(format!("{shown} crashed reading the state ({name})"));
    }
    if !status.success() {
        let code = status.code().unwrap_or(-1);
        return Err(match said.is_empty() {
            true => format!("{shown} cannot take over (exit code {code})"),
            false => format!("{shown} cannot take over: {said}"),
        });
    }
    let answer: CheckAnswer = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            let printed: String = out.trim().chars().take(200).collect();
            format!("{shown} does not answer drover's upgrade check (it printed {printed:?})")
        })?;
    if answer.format != STATE_FORMAT {
        return Err(format!(
            "{shown} (drover {}) reads hand-over state format {}; this supervisor writes format {STATE_FORMAT}",
            answer.version, answer.format
        ));
    }
    Ok(answer)
}

/// Executes `binary` in this process, with the state on `state` (its close-on-exec
/// cleared) and the same arguments as now. Main thread only (`os::exec_in_place`).
/// Returns only on failure.
pub fn exec(binary: &Path, state: &OwnedFd) -> io::Error {
    if let Err(e) = crate::os::set_cloexec(state.as_fd(), false) {
        return e;
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    let fd = state.as_raw_fd().to_string();
    let err = crate::os::exec_in_place(binary, &argv, &[(STATE_FD_VAR, fd)]);
    let _ = crate::os::set_cloexec(state.as_fd(), true);
    err
}

/// The state the previous image left on descriptor `fd` (named by [`STATE_FD_VAR`]);
/// the descriptor is closed.
pub fn read_state(fd: RawFd) -> Result<State, String> {
    let file = File::from(crate::os::adopt_fd(fd).map_err(|e| e.to_string())?);
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read_at(&mut chunk, bytes.len() as u64)
            .map_err(|e| format!("cannot read the state: {e}"))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    State::decode(&bytes).map_err(|e| e.to_string())
}

/// The state written to a sealed memfd, for the check and the exec.
pub fn seal(state: &State) -> io::Result<OwnedFd> {
    crate::os::sealed_memfd("drover-upgrade-state", &state.encode())
}
