//! `ecosystem.config.js`, as PM2 users have it: evaluated with node, its apps started as
//! a YAML file's would be, and every way the file can fail named in one line.

use std::process::Command;

use crate::harness::*;

/// The RamAPI guide's ecosystem file, unchanged, with a stand-in for its dist/index.js,
/// copied into `home` (the file writes its logs next to itself).
fn guide_app(home: &Home) -> std::path::PathBuf {
    let dir = home.path().join("ramapi");
    let status = Command::new("cp")
        .args(["-r", fixture("ramapi").to_str().unwrap()])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    // dist/index.js requires ../../http_worker.js: next to the copied dir.
    std::fs::copy(
        fixture("http_worker.js"),
        home.path().join("http_worker.js"),
    )
    .unwrap();
    dir
}

/// Runs `script` in a network namespace of its own (only loopback, up): the guide's
/// file binds port 3000, which must not collide with anything on this machine.
fn in_own_netns(home: &Home, dir: &std::path::Path, script: &str) -> Output {
    let out = Command::new("unshare")
        .args(["--net", "bash", "-c"])
        .arg(format!("set -u; ip link set lo up; {script}"))
        .env("DROVER", DROVER)
        .env("DROVER_HOME", home.path().join("h"))
        .env_remove("NODE_OPTIONS")
        .current_dir(dir)
        .output()
        .expect("unshare");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls port 3000 for up to 20 s; prints the first answer.
const WAIT_SERVING: &str = r#"
answer=""
for _ in $(seq 400); do
  answer=$(curl -s --max-time 2 http://127.0.0.1:3000/) && [ -n "$answer" ] && break
  sleep 0.05
done
echo "answer: $answer"
"#;

#[test]
fn the_guides_ecosystem_config_js_starts_unchanged_with_start_and_run() {
    let home = Home::new();
    let dir = guide_app(&home);
    let out = in_own_netns(
        &home,
        &dir,
        &format!(
            r#""$DROVER" start ecosystem.config.js || exit 1
{WAIT_SERVING}
echo "v6: $(curl -s -g --max-time 5 'http://[::1]:3000/')"
"$DROVER" list --json; echo
"$DROVER" kill >/dev/null
"$DROVER" run ecosystem.config.js > run.log 2>&1 &
run=$!
{WAIT_SERVING}
kill -TERM $run; wait $run; echo "run exited $?""#
        ),
    );
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let answers: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("answer: {"))
        .collect();
    assert_eq!(
        answers.len(),
        2,
        "start and run both served:\n{}",
        out.stdout
    );
    let list = out
        .stdout
        .lines()
        .find(|l| l.starts_with('['))
        .expect("list --json");
    let workers: Vec<serde_json::Value> = serde_json::from_str(list).unwrap();
    let cpus = drover::cpus::usable() as usize;
    assert_eq!(workers.len(), cpus, "instances: max");
    assert!(
        workers
            .iter()
            .all(|w| w["name"] == "ramapi" && w["mode"] == "cluster")
    );
    assert!(out.stdout.contains("run exited 0"), "{}", out.stdout);
    // A port-only listen takes both stacks, as Node's listen(3000) does.
    assert!(out.stdout.contains("v6: {"), "{}", out.stdout);
    // Its own log files, merged, where the file says.
    assert!(dir.join("logs/out.log").exists());
}

#[test]
fn a_config_js_that_throws_prints_hangs_or_exports_no_apps_is_one_clear_line() {
    let home = Home::new();
    let cases = [
        (
            "throws.config.js",
            "const a = 1;\nthrow new Error('boom')",
            "throws.config.js:2: Error: boom",
        ),
        (
            "syntax.config.js",
            "module.exports = {\n  apps: [ { script: 'a.js' } ]]\n}\n",
            "syntax.config.js:2: SyntaxError: Unexpected token ']'",
        ),
        (
            "prints.config.js",
            "console.log('hi'); module.exports = { apps: [] }",
            "prints to stdout",
        ),
        ("none.config.js", "module.exports = {}", "exports no apps"),
        (
            "never.config.js",
            "module.exports = () => new Promise(() => {})",
            "never settled",
        ),
    ];
    for (name, text, needle) in cases {
        let path = home.write(name, text);
        let out = home.output(&["start", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(name) && out.stderr.contains(needle),
            "{name}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{name}: {}",
            out.stderr
        );
    }
    assert!(daemons_for(home.path()).is_empty(), "nothing was started");
    // A key error names the file, the app and the key (no line: it would be the JSON's).
    let path = home.write(
        "bad.config.js",
        "module.exports = { apps: [{ name: 'x', script: 'x.js', instances: 'lots' }] }",
    );
    let out = home.output(&["start", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("bad.config.js") && out.stderr.contains("instances"),
        "{}",
        out.stderr
    );
}

#[test]
fn esm_and_function_exports_are_read_and_convert_prints_yaml() {
    let home = Home::new();
    let script = fixture("http_worker.js");
    let mjs = home.write(
        "eco.config.mjs",
        &format!(
            "export default async () => ({{ apps: [{{ name: 'esm', script: {:?}, listen: '127.0.0.1:0' }}] }})\n",
            script.display()
        ),
    );
    let out = home.output(&["convert", mjs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("apps:\n- name: esm\n"),
        "{}",
        out.stdout
    );
    // What convert printed is an ecosystem file drover runs.
    let yaml = home.write("eco.yaml", &out.stdout);
    let d = Daemon { home };
    d.ok(&["start", yaml.to_str().unwrap()]);
    wait_serving(listen_of(&d.wait_online("esm", 1)[0]));
    d.ok(&["delete", "esm"]);
    d.ok(&["start", mjs.to_str().unwrap()]);
    wait_serving(listen_of(&d.wait_online("esm", 1)[0]));
}
