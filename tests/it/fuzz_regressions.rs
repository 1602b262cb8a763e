//! Inputs found by the fuzz targets (fuzz/, run by `bench/fuzz`) and the known hostile
//! classes they stand for. Each must come back as an error (or a result), never a panic,
//! a stack overflow or a long hang.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use drover::config::{AppSpec, ConfigError, ResolveContext, load_str};
use drover::protocol::{DecodeError, Request, Response, decode};

/// A temp dir laid out as the ecosystem fuzz target's (app.js, run.sh +x, srv/main.js).
fn fx() -> (tempfile::TempDir, ResolveContext) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("srv")).unwrap();
    for f in ["app.js", "worker.py", "data.txt", "srv/main.js"] {
        fs::write(root.join(f), "").unwrap();
    }
    fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = ResolveContext {
        home: root.join("home"),
        cwd: root.to_path_buf(),
        cpus: 4,
        env_name: None,
    };
    (dir, ctx)
}

/// `load_str` on `text`, failing the test with the panic message if it panics.
fn load(text: &str, origin: &str) -> Result<Vec<AppSpec>, ConfigError> {
    let (_dir, ctx) = fx();
    match catch_unwind(AssertUnwindSafe(|| load_str(text, Path::new(origin), &ctx))) {
        Ok(result) => result.map(|loaded| loaded.apps),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("load_str panicked on {text:?}: {msg}");
        }
    }
}

fn load_err(text: &str) -> String {
    match load(text, "ecosystem.yaml") {
        Ok(apps) => panic!("{text:?} was accepted: {apps:?}"),
        Err(e) => e.to_string(),
    }
}

/// Found by fuzz/fuzz_targets/ecosystem.rs (minimized from a 53-byte input): a map
/// whose key carries a YAML tag. `config::locate` walks the text to place the error and
/// its key visitor returned from `visit_enum` without reading the tagged node, so the
/// event stream went out of step and yaml_serde panicked ("unexpected end of mapping").
#[test]
fn a_tagged_key_is_an_error_not_a_panic() {
    for text in [
        "! :",
        "! : x",
        "!x :",
        "!tag key: value\n",
        "!x a: b\napps:\n  - script: app.js\n",
        "apps:\n  - !x name: a\n    script: nope.js\n",
        "apps:\n  - !x {a: b}: 1\n    script: nope.js\n",
        "apps:\n  - script: app.js\n    env: {!x K: v, L: 1}\n    instances: lots\n",
        "{\"apps\": [{! \"k\": 1, \"script\": \"nope.js\"}]}",
    ] {
        let e = load_err(text);
        assert!(!e.is_empty(), "{text:?}");
    }
}

/// The "billion laughs" class: aliases that expand a small file into a huge value.
/// yaml_serde stops after 100 alias jumps per event of the file
/// (RepetitionLimitExceeded), so this must end quickly with an error.
#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("apps: [*a11]\n");
    let start = Instant::now();
    let e = load_err(&text);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(!e.is_empty());

    // The same bomb under a key drover reads (env values are strings: a list is refused).
    let mut text = String::from(
        "apps:\n  - script: app.js\n    env:\n      A0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("      A{i}: &a{i} [{refs}]\n"));
    }
    let start = Instant::now();
    load_err(&text);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

/// Deep nesting: yaml_serde's recursion limit (128) must turn it into an error, not a
/// stack overflow.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [129, 200, 10_000, 100_000] {
        load_err(&"[".repeat(depth));
        load_err(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        load_err(&"- ".repeat(depth));
        load_err(&format!(
            "apps:\n  - script: app.js\n    env:\n{}",
            "- ".repeat(depth)
        ));
    }
}

/// Flow nesting (`[` / `{`) under a key or inside a `{a: ` map makes libyaml's scanner
/// take time quadratic in the depth before yaml_serde's recursion limit refuses it:
/// 200 KB of `args: [[[…x…]]]` took 17 s (release build), 400 KB of `{a: {a: …` 34 s.
/// A file that deep is never valid (the limit is 128), so it must be refused at once.
#[test]
fn deep_flow_nesting_is_refused_quickly() {
    let depth = 50_000;
    for text in [
        format!(
            "apps:\n  - script: app.js\n    args: {}x{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        "{a: ".repeat(depth),
        format!("k: {}", "[".repeat(depth)),
    ] {
        let start = Instant::now();
        load_err(&text);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{}… ({} bytes) took {took:?}",
            &text[..40],
            text.len()
        );
    }
}

/// The protocol decoder on hostile lines: deep nesting, numbers out of range, an empty
/// target, bad UTF-8, a lone surrogate, a repeated field. serde_json's recursion limit
/// turns nesting into an error.
#[test]
fn hostile_protocol_lines_are_errors() {
    let deep = format!(
        "{{\"v\":2,\"cmd\":\"start\",\"apps\":{}",
        "[".repeat(100_000)
    );
    let lines: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        "[".repeat(100_000).into_bytes(),
        br#"{"v":18446744073709551616,"cmd":"ping"}"#.to_vec(),
        br#"{"v":2,"cmd":"scale","name":"a","instances":4294967296}"#.to_vec(),
        br#"{"v":2,"cmd":"stop","target":""}"#.to_vec(),
        b"{\"v\":2,\"cmd\":\"stop\",\"target\":\"\xff\"}".to_vec(),
        br#"{"v":2,"cmd":"stop","target":"\ud800"}"#.to_vec(),
        br#"{"v":2,"v":2,"cmd":"ping"}"#.to_vec(),
    ];
    for line in &lines {
        let shown = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
        let req = catch_unwind(|| decode::<Request>(line));
        let resp = catch_unwind(|| decode::<Response>(line));
        match (req, resp) {
            (Ok(Err(DecodeError::Malformed(_) | DecodeError::Version { .. })), Ok(Err(_))) => {}
            (req, resp) => panic!("{shown:?}: request {req:?}, response {resp:?}"),
        }
    }
}
