//! The preloads that let unmodified apps serve on drover's listener and stop without
//! dropping a request: Node's (`NODE_OPTIONS=--require`) and Python's (a
//! `sitecustomize` on PYTHONPATH).
//!
//! The script is embedded in the binary ([`NODE_SHIM`]) and written to disk once by
//! [`install`]; the supervisor then starts Node workers with
//! `NODE_OPTIONS="--require <path>"` (appended to any NODE_OPTIONS the app sets). See the
//! comments at the top of `node_listen_fd3.js` for what it does and why.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The preload script: turns the app's first `listen(port | path)` into `listen({fd: 3})`.
pub const NODE_SHIM: &str = include_str!("node_listen_fd3.js");

/// The Python preload (a `sitecustomize`): uvicorn's graceful shutdown that resets no
/// connection, and `socket.fromfd` that keeps a TCP socket TCP. See its comments.
pub const PYTHON_SHIM: &str = include_str!("python_sitecustomize.py");

/// Name of the file [`install`] writes: `node-listen-fd3-<hash of the content>.js`.
///
/// The hash is in the name so that a newer drover never loads an older shim left on disk
/// (and two drover versions sharing a home don't overwrite each other's file).
pub fn file_name() -> String {
    format!("node-listen-fd3-{:016x}.js", fnv1a64(NODE_SHIM.as_bytes()))
}

/// Where the preloads were written.
#[derive(Debug, Clone)]
pub struct Shims {
    /// The Node preload, for `NODE_OPTIONS=--require`.
    pub node: PathBuf,
    /// The directory holding the Python preload as `sitecustomize.py`, for PYTHONPATH.
    pub python_dir: PathBuf,
    /// Where each gunicorn master of a worker gets its control socket
    /// (`<app>-<instance>.ctl`; gunicorn creates the directory).
    pub gunicorn_ctl_dir: PathBuf,
}

/// Writes both preloads under `dir` (see [`install_file`]): [`NODE_SHIM`] as
/// [`file_name`], [`PYTHON_SHIM`] as `python-<hash>/sitecustomize.py` (Python finds it by
/// that name only, so the hash is in the directory's).
pub fn install(dir: &Path) -> io::Result<Shims> {
    let node = install_file(dir, &file_name(), NODE_SHIM)?;
    let python_dir = dir.join(format!("python-{:016x}", fnv1a64(PYTHON_SHIM.as_bytes())));
    install_file(&python_dir, "sitecustomize.py", PYTHON_SHIM)?;
    let gunicorn_ctl_dir = dir
        .parent()
        .map_or_else(|| dir.join("gunicorn"), |home| home.join("gunicorn"));
    Ok(Shims {
        node,
        python_dir,
        gunicorn_ctl_dir,
    })
}

/// Writes `content` as `dir/name` (`dir` created with mode 0700 if missing, parents
/// included) and returns its path. Does nothing if the file already holds exactly that
/// content; otherwise writes a temp file in `dir` and renames it over, so a worker
/// starting at the same moment never reads a half-written script.
fn install_file(dir: &Path, name: &str, content: &str) -> io::Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(existing) if existing == content.as_bytes() => return Ok(path),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// 64-bit FNV-1a: stable across Rust releases (unlike `DefaultHasher`), good enough to
/// tell shim versions apart.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn install_writes_the_shim_once_and_repairs_it() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("run").join("shim");

        let path = install(&dir).unwrap().node;
        assert_eq!(path, dir.join(file_name()));
        assert_eq!(fs::read_to_string(&path).unwrap(), NODE_SHIM);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );

        // Idempotent: same path, file left untouched (same inode), no temp files behind.
        let inode = fs::metadata(&path).unwrap().ino();
        assert_eq!(install(&dir).unwrap().node, path);
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        // The Node file and the Python directory.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);

        // A damaged file is replaced.
        fs::write(&path, "truncated").unwrap();
        let shims = install(&dir).unwrap();
        assert_eq!(shims.node, path);
        assert_eq!(fs::read_to_string(&path).unwrap(), NODE_SHIM);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        assert_eq!(
            fs::read_to_string(shims.python_dir.join("sitecustomize.py")).unwrap(),
            PYTHON_SHIM
        );
    }

    #[test]
    fn file_name_depends_on_content() {
        let name = file_name();
        assert!(name.starts_with("node-listen-fd3-") && name.ends_with(".js"));
        assert_eq!(name.len(), "node-listen-fd3-.js".len() + 16);
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a64(b"listen(3000)"), fnv1a64(b"listen(3001)"));
    }
}
