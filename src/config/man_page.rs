//! drover-ecosystem(5), generated from the key tables the parser uses ([`keys::KNOWN`],
//! [`keys::UNSUPPORTED`]) and checked in as `man/drover-ecosystem.5`: the test fails
//! when the page and the tables differ; `UPDATE_MAN=1 cargo test man` rewrites it (and
//! the clap pages, tests/it/man.rs).

use roff::{Inline, Roff, bold, italic, line_break, roman};

use super::keys::{self, Known, Noop, Policy, Unset};

/// `a `code` span` → roman and bold runs (the tables' text uses Markdown's backticks).
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

fn paragraph(page: &mut Roff, text: &str) {
    page.control("PP", []).text(inline(text));
}

fn key_entry(page: &mut Roff, k: &Known) {
    let mut tag = vec![bold(k.key)];
    if !k.aliases.is_empty() {
        tag.push(roman(" (also "));
        for (i, alias) in k.aliases.iter().enumerate() {
            if i > 0 {
                tag.push(roman(", "));
            }
            tag.push(bold(*alias));
        }
        tag.push(roman(")"));
    }
    page.control("TP", []).text(tag);
    let mut body = inline(k.about);
    body.push(line_break());
    body.push(italic("Type: "));
    body.extend(inline(k.ty));
    body.push(line_break());
    body.push(italic("Default: "));
    match k.unset {
        Unset::Same(value) => body.push(bold(value)),
        Unset::Means(words) => body.extend(inline(words)),
    }
    body.push(line_break());
    body.push(italic("Example: "));
    body.push(bold(format!("{}: {}", k.key, k.example)));
    for with in k.example_with.lines() {
        body.push(roman(" with "));
        body.push(bold(with));
    }
    if !k.note.is_empty() && !k.own {
        body.push(line_break());
        body.push(italic("PM2: "));
        body.extend(inline(k.note));
    }
    page.text(body);
}

/// The page, as roff.
pub(crate) fn render() -> String {
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "drover-ecosystem",
            "5",
            "",
            concat!("drover ", env!("CARGO_PKG_VERSION")),
        ],
    );
    page.control("SH", ["NAME"]).text([roman(
        "drover-ecosystem - the apps drover runs: an ecosystem file, PM2's keys",
    )]);
    page.control("SH", ["SYNOPSIS"]).text([
        bold("ecosystem.yaml"),
        roman(", "),
        bold("ecosystem.json"),
        roman(", "),
        bold("ecosystem.config.js"),
        roman(" ("),
        bold(".cjs"),
        roman(", "),
        bold(".mjs"),
        roman(")"),
    ]);

    page.control("SH", ["DESCRIPTION"]);
    paragraph(
        &mut page,
        "An ecosystem file lists apps for `drover start FILE` and `drover run FILE`, with the keys of PM2's ecosystem.config.js. YAML (`.yaml`, `.yml`) and JSON (`.json`) are read as text; a JavaScript file (`*.config.js`, `.cjs`, `.mjs`) is evaluated by the local node (an object, `module.exports = { apps }`, a function returning one, or an ESM default export) and must print nothing. `-` reads YAML or JSON from stdin.",
    );
    paragraph(
        &mut page,
        "The apps are the list under `apps:` (PM2's other name for it, `pm2:`, too), a list at the top of the file, or one app object. PM2's `deploy:` section is skipped with a warning. Each app is a map of the keys below; `script` is the only one required.",
    );
    paragraph(
        &mut page,
        "Beside `apps:`, the top of the file may have these keys (any other is an error):",
    );
    for k in keys::TOP_KEYS {
        let mut tag = vec![bold(k.key)];
        for alias in k.aliases {
            tag.push(roman(", "));
            tag.push(bold(*alias));
        }
        page.control("TP", []).text(tag);
        let mut body = inline(k.about);
        body.push(roman("."));
        body.push(line_break());
        body.push(italic("Example: "));
        body.push(bold(format!("{}: {}", k.key, k.example)));
        page.text(body);
    }
    paragraph(
        &mut page,
        "A file is checked whole before anything starts: an unknown key (with the key it probably meant), a value of the wrong type, two apps of one name, or a key drover refuses is an error naming the file, the line, the app and the key, and nothing running is touched. Relative paths are resolved against the app's `cwd`, which is itself relative to the file's directory.",
    );

    page.control("SH", ["KEYS"]);
    for k in keys::KNOWN.iter().filter(|k| !k.own) {
        key_entry(&mut page, k);
    }
    page.control("TP", []).text([bold("env_"), italic("name")]);
    page.text(inline(
        "Variables merged over `env` when the command is given `--env <name>` (`env_production` with `--env production`); a map, as `env`.",
    ));

    page.control("SH", ["DROVER'S OWN KEYS"]);
    paragraph(&mut page, "Keys of drover's, not of PM2's schema.");
    for k in keys::KNOWN.iter().filter(|k| k.own) {
        key_entry(&mut page, k);
    }

    page.control("SH", ["PM2 KEYS DROVER DOES NOT IMPLEMENT"]);
    paragraph(
        &mut page,
        "Every other key of PM2's schema is one of these. A skipped key feeds PM2's own machinery, so the app runs the same without it: the file's one warning names it, with its line. A refused key would change what the app does, so the file is refused, with what to do instead. A value that asks for what drover does anyway is accepted without a word.",
    );
    for policy in [Policy::Skip, Policy::Refuse] {
        for u in keys::UNSUPPORTED.iter().filter(|u| u.policy == policy) {
            let mut tag = vec![bold(u.key)];
            for alias in u.aliases {
                tag.push(roman(", "));
                tag.push(bold(*alias));
            }
            page.control("TP", []).text(tag);
            let verdict = match policy {
                Policy::Skip => "Skipped with a warning",
                Policy::Refuse => "Refused",
            };
            let mut body = vec![italic(verdict)];
            match u.noop {
                Noop::Never => {}
                Noop::Bool(b) => {
                    body.push(roman(" (accepted: "));
                    body.push(bold(format!("{}: {b}", u.key)));
                    body.push(roman(")"));
                }
                Noop::AnyBool => body.push(roman(" (accepted: true or false)")),
                Noop::Str(s) => {
                    body.push(roman(" (accepted: "));
                    body.push(bold(format!("{}: {s}", u.key)));
                    body.push(roman(")"));
                }
            }
            body.push(roman(": "));
            body.extend(inline(u.why));
            body.push(roman("."));
            if let Some(hint) = u.hint {
                body.push(roman(" Instead: "));
                body.extend(inline(hint));
                body.push(roman("."));
            }
            page.text(body);
        }
    }

    page.control("SH", ["EXAMPLE"]);
    paragraph(
        &mut page,
        "The example cluster of drover's source tree (ecosystem.example.yaml), an unmodified Node app run as 2 workers sharing port 3000:",
    );
    page.control("RS", ["4"]).control("nf", []);
    for line in include_str!("../../ecosystem.example.yaml").lines() {
        page.text([roman(line)]);
    }
    page.control("fi", []).control("RE", []);

    page.control("SH", ["SEE ALSO"]).text([
        bold("drover"),
        roman("(1), "),
        bold("drover-start"),
        roman("(1), "),
        bold("drover-run"),
        roman("(1), "),
        bold("drover-convert"),
        roman("(1)"),
    ]);
    page.render()
}

#[test]
fn man_page_drover_ecosystem_5_is_generated_from_the_key_tables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/drover-ecosystem.5");
    let want = render();
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(path, &want).unwrap();
    } else {
        assert!(
            std::fs::read_to_string(path).ok().as_deref() == Some(want.as_str()),
            "man/drover-ecosystem.5 is out of date: run UPDATE_MAN=1 cargo test man"
        );
    }
}
