//! Ecosystem parser: any bytes → `config::load_str` must return Ok or Err, never panic,
//! overflow the stack or run away with memory or time (bench/fuzz: -timeout=5,
//! -rss_limit_mb=2048). Built with debug assertions, so integer overflow panics too.
//!
//! The input is read as UTF-8 (lossy). Two things are taken from it so the fuzzer can
//! reach every branch of `load_str` from the text alone:
//! - the file name: `ecosystem.json` when the first non-blank byte is `{` or `[`
//!   (tabs are then turned into spaces, as for a real .json), else `ecosystem.yaml`;
//! - `--env <name>`: a last line `#env:<name>` (a comment in YAML; in JSON a syntax
//!   error, which is fine) sets `ctx.env_name`.
//!
//! Paths resolve against a private temp dir holding real scripts (app.js, worker.py,
//! an executable run.sh, a sub-directory srv/ with main.js), so inputs that name them
//! get past "script not found" into the cross-key rules.
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use drover::config::AppSpec;
use drover::config::{ResolveContext, load_str};
use drover::protocol::{AppConfig, Request, decode, encode};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        // One dir per process (libFuzzer's -fork and -jobs run several); remove those
        // of processes that are gone, since a fuzzer exits without cleaning up.
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("drover-fuzz-"))
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = tmp.join(format!("drover-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("srv")).unwrap();
        for f in ["app.js", "worker.py", "data.txt", "srv/main.js"] {
            std::fs::write(root.join(f), "").unwrap();
        }
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        root
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let origin = match text.trim_start().as_bytes().first() {
        Some(b'{' | b'[') => "ecosystem.json",
        _ => "ecosystem.yaml",
    };
    let env_name = text
        .trim_end()
        .rsplit('\n')
        .next()
        .and_then(|last| last.strip_prefix("#env:"))
        .map(str::to_owned);
    let root = root();
    let ctx = ResolveContext {
        home: root.join("home"),
        cwd: root.to_path_buf(),
        cpus: 4,
        env_name,
    };
    match load_str(&text, Path::new(origin), &ctx).map(|loaded| loaded.apps) {
        Ok(specs) => {
            // What the client does next: send the specs in a Start request. Every
            // accepted spec must encode, come back the same from the wire, and convert
            // back to the same spec (as the supervisor does).
            let req = Request::Start {
                apps: specs.iter().map(AppConfig::from).collect(),
                env: Default::default(),
                update_env: false,
                running: Default::default(),
                parallel: 1,
                metrics: None,
            };
            let line = encode(&req);
            let back: Request =
                decode(&line[..line.len() - 1]).expect("an accepted spec decodes from the wire");
            assert_eq!(
                back, req,
                "an accepted spec round-trips through the protocol"
            );
            let Request::Start { apps, .. } = back else {
                unreachable!("decoded equal to a Start")
            };
            let received: Vec<AppSpec> = apps
                .into_iter()
                .map(|app| AppSpec::try_from(app).expect("an accepted spec converts back"))
                .collect();
            assert_eq!(
                received, specs,
                "an accepted spec survives the protocol's app type"
            );
        }
        Err(e) => {
            // The message is what the user sees: building it must not panic either.
            let _ = e.to_string();
        }
    }
});
