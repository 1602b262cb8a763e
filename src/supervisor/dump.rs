//! `save` / `resurrect`: the running apps (spec and inherited environment) in
//! `$DROVER_HOME/dump.yaml`, written atomically (temp file, fsync, rename), mode 0600
//! (environments hold secrets), the previous dump kept as `dump.yaml.bak`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::AppSpec;

pub const FILE: &str = "dump.yaml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedApp {
    pub spec: AppSpec,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Dump {
    /// The drover version that wrote it.
    drover: String,
    apps: Vec<SavedApp>,
}

pub fn path(home: &Path) -> PathBuf {
    home.join(FILE)
}

/// Writes the dump; returns its path.
pub fn save(home: &Path, apps: &[SavedApp]) -> anyhow::Result<PathBuf> {
    let dump = Dump {
        drover: env!("CARGO_PKG_VERSION").into(),
        apps: apps.to_vec(),
    };
    let text = yaml_serde::to_string(&dump).context("cannot encode the dump")?;
    let target = path(home);
    let tmp = home.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(file);
    if target.exists() {
        let bak = home.join(format!("{FILE}.bak"));
        let _ = std::fs::remove_file(&bak);
        std::fs::hard_link(&target, &bak)
            .with_context(|| format!("cannot keep {}", bak.display()))?;
    }
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("cannot replace {}", target.display()))?;
    // The rename itself must reach the disk.
    if let Ok(dir) = std::fs::File::open(home) {
        let _ = dir.sync_all();
    }
    Ok(target)
}

pub fn load(home: &Path) -> anyhow::Result<Vec<SavedApp>> {
    let path = path(home);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("nothing to resurrect: cannot read {}", path.display()))?;
    let dump: Dump =
        yaml_serde::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    Ok(dump.apps)
}
