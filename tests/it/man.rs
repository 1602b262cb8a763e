//! man/ holds the generated man pages, checked in; these tests keep them current and
//! check that man renders each without a warning. After changing the CLI:
//! `UPDATE_MAN=1 cargo test --test it man` rewrites them.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

fn pages() -> Vec<(String, Vec<u8>)> {
    let cmd = drover::cli::Cli::command();
    let mut pages = Vec::new();
    let mut render = |name: String, cmd: clap::Command| {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .expect("render man page");
        pages.push((format!("{name}.1"), out));
    };
    render("drover".into(), cmd.clone());
    // One page per command, and per subcommand of one (drover-export-nginx.1).
    let mut commands: Vec<(String, clap::Command)> = cmd
        .get_subcommands()
        .map(|sub| (format!("drover-{}", sub.get_name()), sub.clone()))
        .collect();
    while let Some((name, sub)) = commands.pop() {
        for nested in sub.get_subcommands() {
            commands.push((format!("{name}-{}", nested.get_name()), nested.clone()));
        }
        let display: &'static str = Box::leak(name.clone().into_boxed_str());
        render(name, sub.name(display));
    }
    pages
}

#[test]
fn man_pages_match_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (name, text) in pages() {
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run UPDATE_MAN=1 cargo test --test it man"
    );
}

/// What `MANWIDTH=80 man --warnings -l` says about every page in man/ (groff's warnings:
/// undefined macros, lines it cannot break, characters the terminal has no glyph for),
/// in a UTF-8 locale and in the C locale, where groff draws with ASCII only. man and
/// groff come from the man-db and groff packages (.ci/run installs them).
#[test]
fn man_renders_every_page_without_a_warning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // Every page there is generated: a page left over from a removed command is stale.
    let mut expected: Vec<String> = pages().into_iter().map(|(name, _)| name).collect();
    expected.push("drover-ecosystem.5".into());
    expected.sort();
    let present: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(present, expected, "man/ holds exactly the generated pages");

    let mut warnings = Vec::new();
    for locale in ["C.UTF-8", "C"] {
        for file in &files {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(file)
                .env("MANWIDTH", "80")
                .env("LC_ALL", locale)
                .env("MANPAGER", "cat")
                .env("PAGER", "cat")
                .output()
                .expect("man is installed (.ci/run installs man-db and groff)");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "man -l {}: {stderr}", file.display());
            assert!(
                out.stdout.len() > 200,
                "man -l {} rendered nothing",
                file.display()
            );
            if !stderr.trim().is_empty() {
                warnings.push(format!("LC_ALL={locale} {}:\n{stderr}", file.display()));
            }
        }
    }
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
}
