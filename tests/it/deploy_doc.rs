//! docs/deploy.md tells the truth about the drover it ships with: every `drover …`
//! command line in it parses as drover's CLI (clap, the real definitions), the unit it
//! shows is the one `drover startup` writes for the flags it shows (but for the paths,
//! user and PATH it substitutes) and passes `systemd-analyze verify`, the ecosystem
//! file loads, every drover invocation in the Dockerfiles and the Kubernetes manifest
//! parses, and the man page install lines (here and in README) install pages man finds. Docker and kubectl do not run here: the images are not built and
//! the manifest is not applied; what they ask of drover is checked.

use std::path::Path;
use std::process::Command;

use clap::Parser;

use crate::harness::*;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md")).unwrap()
}

/// The fenced blocks of the page, with their info string.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Words as a POSIX shell splits a simple command (quotes, no expansions); stops at a
/// redirection or a comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '"'));
            }
            '>' | '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The drover command in a shell line, past `sudo`, `sudo -u X` and `env A=B`.
fn drover_words(line: &str) -> Option<Vec<String>> {
    let words = shell_words(line);
    let start = words.iter().position(|w| w == "drover")?;
    Some(words[start..].to_vec())
}

fn parses(words: &[String]) {
    if let Err(e) = drover::cli::Cli::try_parse_from(words) {
        panic!("docs/deploy.md: `{}` does not parse:\n{e}", words.join(" "));
    }
}

#[test]
fn every_drover_command_in_the_page_parses() {
    let text = doc();
    let mut seen = 0;
    for (info, body) in blocks(&text) {
        match info.as_str() {
            "sh" => {
                for words in body.lines().filter_map(drover_words) {
                    parses(&words);
                    seen += 1;
                }
            }
            // Exec-form CMD/command lines: a JSON array.
            "dockerfile" | "yaml" => {
                for line in body.lines() {
                    let Some(start) = line.find("[\"drover\"") else {
                        continue;
                    };
                    let array: Vec<String> = serde_json::from_str(&line[start..]).unwrap();
                    parses(&array);
                    seen += 1;
                }
            }
            _ => {}
        }
    }
    // startup, the deploy and logs lines, two exports, two CMDs, two in the manifest.
    assert!(
        seen >= 9,
        "only {seen} drover commands found in docs/deploy.md"
    );
}

#[test]
fn the_ecosystem_file_and_the_manifest_load() {
    let text = doc();
    let home = Home::new();
    std::fs::create_dir_all(home.path().join("dist")).unwrap();
    std::fs::write(home.path().join("dist/index.js"), "").unwrap();
    let mut apps = 0;
    let mut manifests = 0;
    for (info, body) in blocks(&text) {
        if info != "yaml" {
            continue;
        }
        if body.starts_with("apps:") {
            let eco = home.write("ecosystem.yaml", &body);
            let out = home.output(&["convert", eco.to_str().unwrap()]);
            assert!(out.status.success(), "{}", out.stderr);
            // Loaded as `run` would: every key valid, the script found.
            let ctx = drover::config::ResolveContext {
                home: home.path().to_path_buf(),
                cwd: home.path().to_path_buf(),
                cpus: 2,
                env_name: Some("production".into()),
            };
            let loaded = drover::config::load_file(&eco, &ctx).unwrap();
            assert_eq!(loaded.apps[0].instances, 2, "max on a 2-CPU pod");
            assert_eq!(loaded.apps[0].env["NODE_ENV"], "production");
            apps += 1;
        } else {
            let manifest: yaml_serde::Value = yaml_serde::from_str(&body)
                .unwrap_or_else(|e| panic!("the manifest does not parse: {e}"));
            assert_eq!(manifest["kind"].as_str(), Some("Deployment"));
            let container = &manifest["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["command"][0].as_str(), Some("drover"));
            let grace = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap();
            assert!(grace > 5, "the grace period must outlast kill_timeout (5s)");
            manifests += 1;
        }
    }
    assert_eq!((apps, manifests), (1, 1));
}

/// The unit on the page is `drover startup`'s, for the command the page gives, with its
/// paths, user and PATH; and systemd accepts it.
#[test]
fn the_unit_on_the_page_is_the_one_startup_writes() {
    let text = doc();
    let shown = blocks(&text)
        .into_iter()
        .find(|(info, _)| info == "ini")
        .expect("a unit block")
        .1;
    let home = Home::new();
    let dir = home.path().join("srv/shop");
    std::fs::create_dir_all(&dir).unwrap();
    let eco = dir.join("ecosystem.yaml");
    std::fs::write(
        &eco,
        "apps:\n  - name: shop\n    script: sleep\n    args: ['60']\n",
    )
    .unwrap();
    // The page's command, as root (a user that exists here), printing instead of writing.
    let out = Command::new(DROVER)
        .args(["startup", "--print", "--ecosystem"])
        .arg(&eco)
        .args(["--env", "production", "-u", "root"])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env_remove("DROVER_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The name and place the page gives are what startup says it would install.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("drover: this is drover-root-shop.service; `drover startup` without --print installs it as /etc/systemd/system/drover-root-shop.service"),
        "{said}"
    );
    assert!(
        text.contains("That writes and enables `drover-shop-shop.service`"),
        "the page names the unit -u shop gets"
    );
    // A home under /root lasts: no warning about it.
    assert!(!said.contains("warning: DROVER_HOME"), "{said}");
    let unit = String::from_utf8(out.stdout).unwrap();
    let binary = std::fs::canonicalize(DROVER).unwrap();
    let written = unit
        .replace(binary.to_str().unwrap(), "/usr/local/bin/drover")
        .replace(eco.to_str().unwrap(), "/srv/shop/ecosystem.yaml")
        .replace("/root/.drover", "/home/shop/.drover")
        .replace("=root", "=shop")
        .replace("(root)", "(shop)");
    let body: String = written
        .lines()
        .skip_while(|l| !l.starts_with("[Unit]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body, shown,
        "docs/deploy.md's unit differs from what startup writes"
    );

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let file = home.path().join("drover-root-shop.service");
        std::fs::write(&file, &unit).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        panic!("systemd-analyze is missing (.ci/run installs the systemd package)");
    }
}

#[test]
fn words_are_split_as_a_shell_would() {
    assert_eq!(
        shell_words("sudo -u shop env A=1 drover reload 'a b' \"c\" --x # note"),
        [
            "sudo", "-u", "shop", "env", "A=1", "drover", "reload", "a b", "c", "--x"
        ]
    );
    assert_eq!(
        drover_words("drover export nginx api > /etc/x.conf").unwrap(),
        ["drover", "export", "nginx", "api"]
    );
}

/// The man page install lines of this page and README work from the checkout: run with
/// a temp dir for /usr/local, `man` finds drover(1), a command's page and
/// drover-ecosystem(5) there.
#[test]
fn the_man_pages_install_where_man_finds_them() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    for page in ["docs/deploy.md", "README.md"] {
        let text = std::fs::read_to_string(checkout.join(page)).unwrap();
        let prefix = tempfile::tempdir().unwrap();
        let prefix_text = prefix.path().to_str().unwrap();
        let mut installs = 0;
        for (info, body) in blocks(&text) {
            if info != "sh" {
                continue;
            }
            for line in body.lines() {
                let words = shell_words(line);
                if !(words.starts_with(&["sudo".into(), "install".into()])
                    && line.contains("/usr/local/share/man/"))
                {
                    continue;
                }
                let line = line
                    .trim_start_matches("sudo ")
                    .replace("/usr/local", prefix_text);
                let out = Command::new("sh")
                    .args(["-c", &line])
                    .current_dir(checkout)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{page}: {line}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                installs += 1;
            }
        }
        assert_eq!(installs, 2, "{page}: man1 and man5");
        for name in ["drover", "drover-run", "drover-ecosystem"] {
            let out = Command::new("man")
                .arg("-M")
                .arg(prefix.path().join("share/man"))
                .args(["-w", name])
                .output()
                .expect("man (Debian's man-db; .ci/run installs it)");
            let found = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && found.starts_with(prefix_text),
                "{page}: man -w {name}: {found}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
