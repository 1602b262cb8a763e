//! man/ holds the generated man pages, checked in; these tests keep them current and
//! check that man renders each without a warning. After changing the CLI:
//! `UPDATE_MAN=1 cargo test --test it man` rewrites them.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = drover::cli::Cli::command();
    // Built, so clap's own `help` command is there too: drover(1) lists it.
    cmd.build();
    let mut pages = vec![("drover.1".to_owned(), drover_1(&cmd))];
    // One page per command, and per subcommand of one (drover-export-nginx.1); each
    // page's synopsis spells the command as typed (`drover start …`).
    let mut commands: Vec<(String, String, clap::Command)> = cmd
        .get_subcommands()
        .map(|sub| {
            let name = sub.get_name();
            (
                format!("drover-{name}"),
                format!("drover {name}"),
                sub.clone(),
            )
        })
        .collect();
    while let Some((name, typed, sub)) = commands.pop() {
        // `drover help` has one page; the help of a command is that command's page.
        let nested = sub.get_subcommands().filter(|_| sub.get_name() != "help");
        for nested in nested.filter(|n| n.get_name() != "help") {
            let n = nested.get_name();
            commands.push((
                format!("{name}-{n}"),
                format!("{typed} {n}"),
                nested.clone(),
            ));
        }
        let display: &'static str = Box::leak(name.clone().into_boxed_str());
        let mut out = Vec::new();
        clap_mangen::Man::new(sub.name(display).bin_name(typed))
            .render(&mut out)
            .expect("render man page");
        pages.push((format!("{name}.1"), out));
    }
    pages
}

/// drover(1): clap's sections, then ENVIRONMENT, FILES and EXIT STATUS from the tables
/// `drover --help` shows, and SEE ALSO.
fn drover_1(cmd: &clap::Command) -> Vec<u8> {
    use roff::{Roff, bold, italic, roman};
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    man.render_subcommands_section(&mut out).unwrap();
    let mut page = Roff::new();
    let table = |page: &mut Roff, title: &str, rows: &[(&str, &str)]| {
        page.control("SH", [title]);
        for (name, what) in rows {
            page.control("TP", [])
                .text([bold(*name)])
                .text([roman(*what)]);
        }
    };
    table(&mut page, "ENVIRONMENT", drover::cli::ENVIRONMENT);
    let files: Vec<(String, &str)> = drover::cli::FILES
        .iter()
        .map(|(name, what)| (format!("$DROVER_HOME/{name}"), *what))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    table(&mut page, "FILES", &files);
    page.control("SH", ["EXIT STATUS"]);
    for line in drover::error::EXIT_STATUS.lines().skip(1) {
        let (code, what) = line.trim().split_once("  ").expect("code  meaning");
        page.control("TP", [])
            .text([bold(code)])
            .text([roman(what.trim())]);
    }
    page.control("SH", ["SEE ALSO"]).text([
        bold("drover-ecosystem"),
        roman("(5), and "),
        bold("drover-"),
        italic("command"),
        roman("(1) for each command above."),
    ]);
    out.extend(page.render().into_bytes());
    man.render_version_section(&mut out).unwrap();
    out
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
