//! The systemd unit `drover startup` writes: pure text from a [`Unit`], with systemd's
//! quoting, so it can be tested (and `systemd-analyze verify`'d) without systemd.

use std::path::{Path, PathBuf};

/// The first line of every unit drover writes; `unstartup` removes only such units, and
/// `startup` replaces only such units (for the same stack).
pub const MARKER: &str = "# Written by `drover startup`";

/// Which service manager runs the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system manager (PID 1): `User=`/`Group=` say whom drover runs as.
    System,
    /// The user's own manager (`systemctl --user`): it runs as that user already.
    User,
}

/// What the unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// `drover daemon --resurrect`: the background supervisor with the apps of `drover save`.
    Daemon,
    /// `drover run FILE [--env NAME]`: one stack in the foreground.
    Ecosystem { file: PathBuf, env: Option<String> },
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub scope: Scope,
    pub runs: Runs,
    /// The absolute, canonical path of this drover binary (PM2's units break when the
    /// node they name moves: PM2 #3924, #5297).
    pub drover: PathBuf,
    /// User and group names (System scope only).
    pub user: String,
    pub group: String,
    pub drover_home: PathBuf,
    /// The caller's PATH, for the interpreters the apps name (node from nvm, a venv).
    pub path: Option<String>,
}

impl Unit {
    /// The `# drover-startup:` line that says what the unit runs, so a second stack of
    /// the same name is told apart from a re-run for the same file.
    pub fn identity(&self) -> String {
        match &self.runs {
            Runs::Daemon => "# drover-startup: daemon".to_owned(),
            Runs::Ecosystem { file, .. } => {
                format!("# drover-startup: ecosystem {}", file.display())
            }
        }
    }

    pub fn render(&self) -> String {
        let exe = |args: &[&str]| {
            let mut line = quote_exec(&self.drover.to_string_lossy());
            for arg in args {
                line.push(' ');
                line.push_str(&quote_exec(arg));
            }
            line
        };
        let (description, start) = match &self.runs {
            Runs::Daemon => (
                "drover process supervisor".to_owned(),
                exe(&["daemon", "--resurrect"]),
            ),
            Runs::Ecosystem { file, env } => {
                let file = file.to_string_lossy();
                let mut args = vec!["run", file.as_ref()];
                if let Some(env) = env {
                    args.extend(["--env", env]);
                }
                (
                    format!("drover stack {}", escape_specifiers(&file)),
                    exe(&args),
                )
            }
        };
        let description = match self.scope {
            Scope::System => format!("{description} ({})", escape_specifiers(&self.user)),
            Scope::User => description,
        };
        let mut environment = vec![quote_env(
            "DROVER_HOME",
            &self.drover_home.to_string_lossy(),
        )];
        if let Some(path) = &self.path {
            environment.push(quote_env("PATH", path));
        }
        let environment: String = environment
            .iter()
            .map(|e| format!("Environment={e}\n"))
            .collect();
        // A user manager has no network.target (systemd.special(7)): a user unit
        // orders itself after nothing.
        let (after, account, limits, wanted_by) = match self.scope {
            Scope::System => (
                "After=network.target\n",
                format!(
                    "User={}\nGroup={}\n",
                    escape_specifiers(&self.user),
                    escape_specifiers(&self.group)
                ),
                "LimitNOFILE=65536\n",
                "multi-user.target",
            ),
            Scope::User => ("", String::new(), "", "default.target"),
        };
        format!(
            "{MARKER}; `drover unstartup` removes it.
{id}
# After moving drover, run `drover startup` again: ExecStart names its binary.
#
# Stopping: systemd sends SIGTERM to drover alone (KillMode=mixed), and drover stops
# every worker itself, as `drover kill` does: each gets its kill_signal, then SIGKILL
# after its kill_timeout; then drover exits 0. KillMode=control-group (the default)
# would signal every worker at the same moment, racing that graceful, per-app stop.
# There is no ExecStop=drover kill: systemd runs ExecStop= also after drover has died
# by itself (it would then fail), and a supervisor that no longer answers its socket
# would hold the stop up, while a signal always arrives. KillMode=mixed still sends
# SIGKILL to whatever is left in the unit's cgroup once drover has exited (a process
# that left its worker's group), or at TimeoutStopSec (90 s): raise it if an app's
# kill_timeout comes near.
# Reload (`systemctl reload`): every app, without dropping a request (`drover reload
# all`); drover says RELOADING=1, then READY=1 when it is done.
[Unit]
Description={description}
{after}
[Service]
Type=notify
{account}{environment}ExecStart={start}
ExecReload={reload}
KillMode=mixed
WatchdogSec=30s
Restart=on-failure
RestartSec=1s
{limits}
[Install]
WantedBy={wanted_by}
",
            id = self.identity(),
            reload = exe(&["reload", "all"]),
        )
    }
}

/// A PATH with each directory once, where it first appears (the later ones are never
/// searched: a shell that adds ~/.cargo/bin twice has the same PATH).
pub fn without_duplicates(path: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    path.split(':')
        .filter(|dir| seen.insert(*dir))
        .collect::<Vec<_>>()
        .join(":")
}

/// `%` starts a specifier in every unit setting: a literal one is `%%`.
fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// One word of ExecStart=: as it is when it holds nothing systemd would read, else
/// double-quoted with C escapes; `%` and `$` (specifiers, variable expansion) doubled.
pub fn quote_exec(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.,:=+@-".contains(c));
    let word = word.replace('%', "%%").replace('$', "$$");
    if plain {
        return word;
    }
    format!("\"{}\"", c_escape(&word))
}

/// `"NAME=value"` for Environment= (no `$` expansion there; `%` specifiers yes).
fn quote_env(name: &str, value: &str) -> String {
    format!(
        "\"{}\"",
        c_escape(&format!("{name}={}", escape_specifiers(value)))
    )
}

fn c_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Why a path cannot go into a unit (systemd settings are one line each).
pub fn check_one_line(what: &str, path: &Path) -> Result<(), String> {
    if path.to_string_lossy().contains(['\n', '\r']) {
        return Err(format!(
            "{what} {:?} holds a line break, which no systemd unit can carry",
            path
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(scope: Scope, runs: Runs) -> Unit {
        Unit {
            scope,
            runs,
            drover: "/opt/my tools/drover".into(),
            user: "alice".into(),
            group: "staff".into(),
            drover_home: "/home/alice/.drover".into(),
            path: Some("/usr/bin:/bin".into()),
        }
    }

    #[test]
    fn exec_words_are_quoted_only_when_needed_and_specifiers_escaped() {
        assert_eq!(quote_exec("/usr/bin/drover"), "/usr/bin/drover");
        assert_eq!(quote_exec("--resurrect"), "--resurrect");
        assert_eq!(
            quote_exec("/srv/my app/eco.yaml"),
            "\"/srv/my app/eco.yaml\""
        );
        assert_eq!(quote_exec("/srv/100%/$HOME"), "\"/srv/100%%/$$HOME\"");
        assert_eq!(quote_exec("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote_exec(""), "\"\"");
    }

    #[test]
    fn a_system_unit_names_its_user_and_a_user_unit_does_not() {
        let text = unit(Scope::System, Runs::Daemon).render();
        assert!(text.starts_with(MARKER), "{text}");
        assert!(text.contains("\n# drover-startup: daemon\n"), "{text}");
        assert!(text.contains("\nUser=alice\nGroup=staff\n"), "{text}");
        assert!(text.contains("\nType=notify\n"), "{text}");
        assert!(text.contains("\nKillMode=mixed\n"), "{text}");
        assert!(
            text.contains("\nExecStart=\"/opt/my tools/drover\" daemon --resurrect\n"),
            "{text}"
        );
        assert!(
            text.contains("\nExecReload=\"/opt/my tools/drover\" reload all\n"),
            "{text}"
        );
        assert!(
            text.contains("\nEnvironment=\"DROVER_HOME=/home/alice/.drover\"\n"),
            "{text}"
        );
        assert!(text.contains("\nWantedBy=multi-user.target\n"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("ExecStop=")), "{text}");

        assert!(text.contains("\nAfter=network.target\n"), "{text}");

        let text = unit(Scope::User, Runs::Daemon).render();
        assert!(!text.contains("User="), "{text}");
        // A user manager has no network.target.
        assert!(!text.contains("After="), "{text}");
        assert!(text.contains("\nWantedBy=default.target\n"), "{text}");
    }

    #[test]
    fn a_path_keeps_each_directory_once_in_its_first_place() {
        assert_eq!(
            without_duplicates("/root/.cargo/bin:/root/.cargo/bin:/usr/bin:/bin:/usr/bin"),
            "/root/.cargo/bin:/usr/bin:/bin"
        );
        assert_eq!(without_duplicates("/usr/bin"), "/usr/bin");
        assert_eq!(without_duplicates("/b:/a:/b:/a:/c"), "/b:/a:/c");
    }

    #[test]
    fn an_ecosystem_unit_runs_its_file() {
        let runs = Runs::Ecosystem {
            file: "/srv/shop/ecosystem.config.js".into(),
            env: Some("production".into()),
        };
        let text = unit(Scope::System, runs).render();
        assert!(
            text.contains(
                "\nExecStart=\"/opt/my tools/drover\" run /srv/shop/ecosystem.config.js --env production\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n# drover-startup: ecosystem /srv/shop/ecosystem.config.js\n"),
            "{text}"
        );
    }
}
