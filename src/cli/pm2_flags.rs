//! PM2's flags that drover refuses, each with its reason: one table ([`REFUSED`]), from
//! which both the CLI's error for such a flag (`drover: --no-daemon: PM2's foreground
//! mode is `drover run``, instead of clap's "unexpected argument" and its sometimes
//! misleading "a similar argument exists") and README's "Coming from PM2" table of
//! refused flags are made. A test fails when README's table differs
//! (`UPDATE_README=1 cargo test readme_flags` rewrites it), and another when a flag of
//! PM2's CLI is neither one of drover's nor in the table.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Why a PM2 flag is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    /// In its own words.
    Text(&'static str),
    /// As the PM2 key of this name, which the flag sets (`config::keys` has the reason
    /// and what to do instead).
    Key(&'static str),
}

/// One refused flag, with its spellings.
#[derive(Debug)]
pub(crate) struct Refused {
    /// Every spelling PM2 has: the long ones, then the short ones.
    pub flags: &'static [&'static str],
    pub why: Why,
}

impl Refused {
    pub fn why(&self) -> String {
        match self.why {
            Why::Text(text) => text.to_owned(),
            Why::Key(key) => crate::config::why_unsupported(key)
                .unwrap_or_else(|| panic!("REFUSED: no PM2 key {key} in config::keys")),
        }
    }
}

const MONITORING: &str =
    "PM2 Plus / Keymetrics monitoring, which drover does not have: leave the flag out";

/// PM2's flags (lib/binaries/CLI.js) that drover refuses: those of `pm2 start` and the
/// other commands, and of `pm2 logs`.
pub(crate) const REFUSED: &[Refused] = &[
    Refused {
        flags: &["--no-daemon"],
        why: Why::Text(
            "PM2's foreground mode is `drover run` (the supervisor and its apps in the foreground, as pm2-runtime)",
        ),
    },
    Refused {
        flags: &["--ext"],
        why: Why::Text(
            "PM2's --watch filter by extension: drover's --watch takes paths, and --ignore-watch globs leave files out (\"*.md\")",
        ),
    },
    Refused {
        flags: &["--no-autostart"],
        why: Why::Key("autostart"),
    },
    Refused {
        flags: &["--no-treekill"],
        why: Why::Key("treekill"),
    },
    Refused {
        flags: &["--filter-env"],
        why: Why::Key("filter_env"),
    },
    Refused {
        flags: &["--log-type"],
        why: Why::Key("log_type"),
    },
    Refused {
        flags: &["--pid", "-p"],
        why: Why::Key("pid_file"),
    },
    Refused {
        flags: &["--execute-command", "-x"],
        why: Why::Text(
            "PM2's fork mode for an app with instances: drover runs `-i N` in cluster mode; fork mode is an ecosystem file's `exec_mode: fork`",
        ),
    },
    Refused {
        flags: &["--force", "-f"],
        why: Why::Text(
            "PM2 would start a second copy of a running script; drover's names are unique: give the second copy a --name of its own",
        ),
    },
    Refused {
        flags: &["--uid"],
        why: Why::Key("uid"),
    },
    Refused {
        flags: &["--gid"],
        why: Why::Key("gid"),
    },
    Refused {
        flags: &["--user", "-u"],
        why: Why::Text(
            "PM2's user of a startup script: `drover startup -u USER`; an app runs as the user drover runs as",
        ),
    },
    Refused {
        flags: &["--hp", "--service-name"],
        why: Why::Text("flags of `drover startup`"),
    },
    Refused {
        flags: &["--wait-ip"],
        why: Why::Text(
            "PM2's startup script waiting for network-online.target: drover's unit starts after network.target (add After=network-online.target with `systemctl edit`)",
        ),
    },
    Refused {
        flags: &["--namespace"],
        why: Why::Text(
            "drover has no namespaces: a /regex/ target names a group of apps (`drover restart '/^api-/'`)",
        ),
    },
    Refused {
        flags: &["--no-vizion"],
        why: Why::Text(
            "PM2's versioning metadata (git revision in `pm2 show`), which drover does not keep: leave the flag out",
        ),
    },
    Refused {
        flags: &[
            "--no-pmx",
            "--no-automation",
            "--trace",
            "--disable-trace",
            "--v8",
            "--event-loop-inspector",
            "--deep-monitoring",
        ],
        why: Why::Text(MONITORING),
    },
    Refused {
        flags: &["--source-map-support", "--disable-source-map-support"],
        why: Why::Text(
            "PM2 preloads source-map-support in Node apps, drover does not: `--node-args=--enable-source-maps` gives Node's own",
        ),
    },
    Refused {
        flags: &["--silent", "-s"],
        why: Why::Text(
            "drover prints one line per thing done, errors on stderr: send stdout to /dev/null",
        ),
    },
    Refused {
        flags: &["--mini-list", "-m"],
        why: Why::Text("for scripts, `drover list --json` (or `--names`)"),
    },
    Refused {
        flags: &["--no-color"],
        why: Why::Text("drover colours only a terminal: pipe its output through cat for none"),
    },
    Refused {
        flags: &["--sort"],
        why: Why::Text(
            "`drover list` is sorted by id; sort `drover list --json` for another order",
        ),
    },
    Refused {
        flags: &["--attach"],
        why: Why::Text("follow the logs after the command: `drover logs <name>`"),
    },
    Refused {
        flags: &["--write", "-w"],
        why: Why::Text(
            "PM2 writes the app's configuration to a file: `drover describe <name> --json` prints it",
        ),
    },
    Refused {
        flags: &["--format"],
        why: Why::Text(
            "PM2's `logs --format` (key=value lines): `drover logs --json` gives each line's app, id, stream, time and message",
        ),
    },
    Refused {
        flags: &["--highlight"],
        why: Why::Text(
            "PM2's `logs --highlight`: pipe `drover logs` through `grep --color=always -e '' -e TEXT`",
        ),
    },
];

/// The refused PM2 flag `word` spells, if any: `--namespace`, `--namespace=web`, `-u`.
pub(crate) fn refused(word: &str) -> Option<(&'static str, &'static Refused)> {
    let flag = word.split_once('=').map_or(word, |(flag, _)| flag);
    REFUSED
        .iter()
        .find_map(|r| r.flags.iter().find(|f| **f == flag).map(|f| (*f, r)))
}

/// For a clap error about an argument drover does not know that is a PM2 flag drover
/// refuses: the one line that says why (`--no-daemon: PM2's foreground mode is …`).
pub(crate) fn explain(err: &clap::Error) -> Option<String> {
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    refused(word).map(|(flag, r)| format!("{flag}: {}", r.why()))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::Cli;

    /// The error `drover ARGS` gives, explained.
    fn explained(args: &[&str]) -> Option<String> {
        let err = Cli::try_parse_from(std::iter::once("drover").chain(args.iter().copied()))
            .expect_err("refused");
        explain(&err)
    }

    #[test]
    fn every_refused_flag_is_explained_where_pm2_takes_it() {
        for r in REFUSED {
            for flag in r.flags {
                let why = r.why();
                assert!(!why.is_empty() && !why.contains('\n'), "{flag}");
                let want = format!("{flag}: {why}");
                let start = ["start", "app.js", flag];
                assert_eq!(explained(&start).as_deref(), Some(&*want), "{start:?}");
                let logs = ["logs", "api", flag];
                assert_eq!(explained(&logs).as_deref(), Some(&*want), "{logs:?}");
            }
        }
    }

    #[test]
    fn a_value_given_to_a_refused_flag_changes_nothing() {
        let want = "--namespace: drover has no namespaces";
        for args in [
            &["start", "app.js", "--namespace", "web"][..],
            &["start", "app.js", "--namespace=web"],
            &["restart", "all", "--namespace=web"],
        ] {
            let got = explained(args).unwrap();
            assert!(got.starts_with(want), "{args:?}: {got}");
        }
        let got = explained(&["start", "app.js", "-u", "alice"]).unwrap();
        assert!(
            got.starts_with("-u: PM2's user of a startup script"),
            "{got}"
        );
    }

    #[test]
    fn other_errors_are_clap_s_own() {
        for args in [
            &["start", "app.js", "--no-such-flag"][..],
            &["nope"],
            &["logs", "--lines", "x"],
            &["start"],
        ] {
            assert_eq!(explained(args), None, "{args:?}");
        }
        // And what drover accepts is not refused: `startup -u`.
        assert!(Cli::try_parse_from(["drover", "startup", "-u", "root", "--print"]).is_ok());
    }

    /// Every flag of PM2's CLI (lib/binaries/CLI.js: the global options, which PM2
    /// takes with any command, and those of `pm2 logs`).
    const PM2_FLAGS: &[&str] = &[
        "-v",
        "--version",
        "-s",
        "--silent",
        "--ext",
        "-n",
        "--name",
        "-m",
        "--mini-list",
        "--interpreter",
        "--interpreter-args",
        "--node-args",
        "-o",
        "--output",
        "-e",
        "--error",
        "-l",
        "--log",
        "--filter-env",
        "--log-type",
        "--log-date-format",
        "--time",
        "--disable-logs",
        "--env",
        "-a",
        "--update-env",
        "-f",
        "--force",
        "-i",
        "--instances",
        "--parallel",
        "--shutdown-with-message",
        "-p",
        "--pid",
        "-k",
        "--kill-timeout",
        "--listen-timeout",
        "--max-memory-restart",
        "--restart-delay",
        "--exp-backoff-restart-delay",
        "-x",
        "--execute-command",
        "--max-restarts",
        "-u",
        "--user",
        "--uid",
        "--gid",
        "--namespace",
        "--cwd",
        "--hp",
        "--wait-ip",
        "--service-name",
        "-c",
        "--cron",
        "--cron-restart",
        "-w",
        "--write",
        "--no-daemon",
        "--source-map-support",
        "--only",
        "--disable-source-map-support",
        "--wait-ready",
        "--merge-logs",
        "--watch",
        "--ignore-watch",
        "--watch-delay",
        "--no-color",
        "--no-vizion",
        "--no-autostart",
        "--no-autorestart",
        "--stop-exit-codes",
        "--no-treekill",
        "--no-pmx",
        "--no-automation",
        "--trace",
        "--disable-trace",
        "--sort",
        "--attach",
        "--v8",
        "--event-loop-inspector",
        "--deep-monitoring",
        // pm2 logs
        "--json",
        "--format",
        "--raw",
        "--err",
        "--out",
        "--lines",
        "--timestamp",
        "--nostream",
        "--highlight",
    ];

    /// The flags drover's `start`, `restart`, `reload` and `logs` take, and its own.
    fn drovers_flags() -> Vec<String> {
        let mut cmd = Cli::command();
        cmd.build();
        let mut flags = Vec::new();
        let mut add = |c: &clap::Command| {
            for arg in c.get_arguments() {
                let longs = arg
                    .get_long()
                    .into_iter()
                    .chain(arg.get_all_aliases().into_iter().flatten());
                let shorts = arg
                    .get_short()
                    .into_iter()
                    .chain(arg.get_all_short_aliases().into_iter().flatten());
                flags.extend(longs.map(|l| format!("--{l}")));
                flags.extend(shorts.map(|s| format!("-{s}")));
            }
        };
        add(&cmd);
        for name in ["start", "restart", "reload", "logs"] {
            add(cmd.find_subcommand(name).unwrap());
        }
        flags
    }

    /// What README's "Coming from PM2" says of PM2's flags is whole: each one drover
    /// takes where PM2 does, or refuses with a reason, never both.
    #[test]
    fn every_pm2_flag_is_honoured_or_refused_with_a_reason() {
        let drovers = drovers_flags();
        for flag in PM2_FLAGS {
            let honoured = drovers.iter().any(|f| f == flag);
            let refused = refused(flag).is_some();
            assert!(
                honoured != refused,
                "{flag}: honoured {honoured}, refused {refused}"
            );
        }
        for r in REFUSED {
            for flag in r.flags {
                assert!(PM2_FLAGS.contains(flag), "{flag} is not PM2's");
            }
        }
    }

    /// README's table of refused flags, from [`REFUSED`].
    fn readme_table() -> String {
        let mut rows = vec![
            "| PM2 flag | why drover refuses it |".to_owned(),
            "|---|---|".to_owned(),
        ];
        for r in REFUSED {
            let flags: Vec<String> = r.flags.iter().map(|f| format!("`{f}`")).collect();
            rows.push(format!("| {} | {} |", flags.join(", "), r.why()));
        }
        let table = rows.join("\n") + "\n";
        assert!(
            !table.lines().any(|l| l.matches('|').count() != 3),
            "a cell holds a `|`:\n{table}"
        );
        table
    }

    /// README's table is this one: `UPDATE_README=1 cargo test readme_flags` rewrites it.
    #[test]
    fn readme_flags_table_is_generated_from_this_one() {
        const BEGIN: &str =
            "<!-- pm2-flags: generated from src/cli/pm2_flags.rs, do not edit -->\n";
        const END: &str = "<!-- pm2-flags: end -->\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
        let end = start
            + readme[start..]
                .find(END)
                .expect("README has the end marker");
        let want = readme_table();
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{want}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).unwrap();
        } else {
            assert!(
                readme[start..end] == want,
                "README's refused PM2 flags table is out of date: run UPDATE_README=1 cargo test readme_flags"
            );
        }
    }
}
