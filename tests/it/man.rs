//! man/ holds the generated man pages, checked in; this test keeps them current.
//! After changing the CLI: `UPDATE_MAN=1 cargo test --test it man` rewrites them.

use std::path::Path;

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
    for sub in cmd.get_subcommands() {
        let name = format!("drover-{}", sub.get_name());
        let display: &'static str = Box::leak(name.clone().into_boxed_str());
        render(name, sub.clone().name(display));
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
