//! `drover completions bash|zsh|fish` loaded into the real shells (zsh and fish are
//! Debian packages .ci/run installs), completing against a running supervisor.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// PATH with the drover under test first, as an installed drover would be.
fn path() -> String {
    let dir = Path::new(DROVER).parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

/// Runs `script` in `shell` (its arguments before `-c`) in `home`, with drover on PATH;
/// returns stdout, and fails on anything on stderr.
fn shell(home: &Home, program: &str, flags: &[&str], script: &str) -> String {
    let out = Command::new(program)
        .args(flags)
        .arg("-c")
        .arg(script)
        .env("PATH", path())
        .env("DROVER_HOME", home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .current_dir(home.path())
        .output()
        .unwrap_or_else(|e| panic!("{program} ({e}): .ci/run installs it"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{program} -c …: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bash function `complete_words WORD…` that completes the last word as bash would
/// on TAB (COMP_WORDS, COMP_CWORD, then the function `complete -p drover` names) and
/// prints COMPREPLY one per line.
const BASH_COMPLETE: &str = r#"
source <(drover completions bash)
complete_words() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    local function
    function=$(complete -p drover | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
    "$function" drover "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
}
"#;

fn bash_complete(home: &Home, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "{BASH_COMPLETE}\ncomplete_words drover {}",
        quoted.join(" ")
    );
    let mut got: Vec<String> = shell(home, "bash", &[], &script)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    got.sort();
    got
}

#[test]
fn bash_completes_commands_and_the_running_apps_names() {
    let d = Daemon::new();
    d.start_http("api", 1, &[]);
    d.start_http("web", 1, &[]);

    let rel = bash_complete(&d.home, &["rel"]);
    assert!(
        rel.contains(&"reload".to_owned()) && rel.contains(&"reload-logs".to_owned()),
        "{rel:?}"
    );
    assert!(rel.iter().all(|w| w.starts_with("rel")), "{rel:?}");

    let names = ["api".to_owned(), "web".to_owned()];
    for words in [
        &["stop", ""][..],
        &["restart", "api", ""],
        &["reload", ""],
        &["del", ""],
        &["describe", ""],
        &["logs", ""],
        &["logs", "--lines", "5", ""],
        &["scale", ""],
        &["start", ""],
        &["flush", ""],
        &["export", "nginx", ""],
        &["export", "haproxy", "--server", "10.0.0.5", ""],
    ] {
        assert_eq!(bash_complete(&d.home, words), names, "drover {words:?}");
    }
    assert_eq!(bash_complete(&d.home, &["stop", "a"]), ["api"]);
    // Not where a command takes an app: an option's value, a second argument, a flag,
    // after `--`, a command without one. (Those complete as clap's script does:
    // options, or files of the directory, none named like an app.)
    for words in [
        &["logs", "--lines", ""][..],
        &["scale", "api", ""],
        &["describe", "api", ""],
        &["export", "nginx", "--server", ""],
        &["list", ""],
        &["stop", "-"],
        &["start", "app.js", "--", ""],
        &["start", "app.js", "--name", ""],
    ] {
        let got = bash_complete(&d.home, words);
        assert!(
            !got.iter().any(|w| names.contains(w)),
            "drover {words:?}: {got:?}"
        );
    }
}

/// Packagers generate the scripts at build time, where HOME may be unset or unwritable.
#[test]
fn the_scripts_need_no_home() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(DROVER)
            .args(["completions", shell])
            .env_remove("HOME")
            .env_remove("DROVER_HOME")
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(script.contains("list --names 2>/dev/null"), "{shell}");
    }
}

#[test]
fn completing_names_never_starts_a_supervisor_and_gives_up_on_one_that_hangs() {
    let home = Home::new();
    // No supervisor: no names, nothing on stderr (shell() checks), none started.
    let got = bash_complete(&home, &["stop", ""]);
    assert!(!got.iter().any(|w| w == "api"), "{got:?}");
    let out = home.output(&["list", "--names"]);
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    assert!(daemons_for(home.path()).is_empty());
    assert!(!home.path().join("drover.sock").exists());

    // A supervisor that accepts and never answers: `list --names` gives up within its
    // second (exit 6, one line), and the completion falls back to clap's.
    let _hung = UnixListener::bind(home.path().join("drover.sock")).unwrap();
    let started = Instant::now();
    let (out, timed_out) = output_within(&home, &["list", "--names"], Duration::from_secs(20));
    assert!(!timed_out && out.status.code() == Some(6), "{}", out.stderr);
    assert!(
        out.stdout.is_empty() && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let got = bash_complete(&home, &["stop", ""]);
    assert!(!got.is_empty(), "files, as clap's script gives");
}

/// A zsh function `complete_line LINE` that types LINE and TAB into an interactive zsh on
/// a pseudo-terminal (zsh/zpty) with the script loaded, and prints the app names `_drover`
/// offered (its `compadd -a`) that match, then `done` once zsh's completion has ended (a
/// `comppostfuncs` hook). It waits for that at most 20 s.
const ZSH_COMPLETE: &str = r#"
zmodload zsh/zpty
complete_line() {
    local log=$PWD/zsh-completion.log i
    rm -f $log
    zpty z zsh -f -i
    zpty -w z "autoload -U compinit; compinit -u -D; source <(drover completions zsh)"
    zpty -w z "compadd() { local -a m; [[ \$funcstack[2] == _drover && \$1 == -a ]] && { builtin compadd -O m \"\$@\"; print -rl -- \$m >> $log }; builtin compadd \"\$@\" }"
    zpty -w z "_log_done() { print done >> $log }; comppostfuncs=(_log_done)"
    zpty -w -n z "$1"$'\t'
    for i in {1..400}; do [[ -f $log ]] && grep -qx done $log && break; sleep 0.05; done
    zpty -d z
    cat $log
}
"#;

#[test]
fn zsh_completes_the_running_apps_names_and_loads_from_fpath() {
    let d = Daemon::new();
    d.start_http("api", 1, &[]);
    d.start_http("web", 1, &[]);
    let complete = |line: &str| {
        shell(
            &d.home,
            "zsh",
            &["-f"],
            &format!("{ZSH_COMPLETE}\ncomplete_line '{line}'"),
        )
    };
    assert_eq!(complete("drover stop "), "api\nweb\ndone\n");
    assert_eq!(complete("drover export haproxy "), "api\nweb\ndone\n");
    assert_eq!(complete("drover describe w"), "web\ndone\n");
    for line in ["drover logs --lines ", "drover scale api ", "drover list "] {
        assert_eq!(complete(line), "done\n", "{line:?}");
    }

    // Installed as a file _drover in $fpath: compinit binds it to drover.
    let dir = d.home.path().join("zfunc");
    std::fs::create_dir_all(&dir).unwrap();
    let out = d.home.output(&["completions", "zsh"]);
    assert!(out.status.success(), "{}", out.stderr);
    std::fs::write(dir.join("_drover"), &out.stdout).unwrap();
    let installed = shell(
        &d.home,
        "zsh",
        &["-f"],
        &format!(
            "fpath=({} $fpath); autoload -U compinit && compinit -u -D\nprint -r -- \"bound=$_comps[drover]\"",
            dir.display()
        ),
    );
    assert_eq!(installed, "bound=_drover\n");
}

#[test]
fn fish_completes_the_running_apps_names() {
    let d = Daemon::new();
    d.start_http("api", 1, &[]);
    d.start_http("web", 1, &[]);
    let complete = |line: &str| -> Vec<String> {
        let script = format!("drover completions fish | source; complete --do-complete='{line}'");
        shell(&d.home, "fish", &["--no-config"], &script)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_owned())
            .collect()
    };
    let stop = complete("drover stop ");
    assert!(
        stop.contains(&"api".to_owned()) && stop.contains(&"web".to_owned()),
        "{stop:?}"
    );
    assert_eq!(complete("drover describe w"), ["web"]);
    let rel = complete("drover rel");
    assert!(
        rel.contains(&"reload".to_owned()) && rel.contains(&"reload-logs".to_owned()),
        "{rel:?}"
    );
    for line in ["drover logs --lines ", "drover scale api ", "drover list "] {
        let got = complete(line);
        assert!(
            !got.contains(&"api".to_owned()) && !got.contains(&"web".to_owned()),
            "{line:?}: {got:?}"
        );
    }
}
