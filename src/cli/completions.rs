//! `drover completions bash|zsh|fish`: clap_complete's static script for the shell, plus
//! app names from the running supervisor where a command takes an app (`stop <TAB>`).
//!
//! clap_complete's dynamic completion (`CompleteEnv`) is still behind its
//! `unstable-dynamic` feature, so the names come from `drover list --names` (which never
//! starts a supervisor and answers within a second, or prints nothing): a small function
//! per shell decides from the words typed so far whether the word being completed names
//! an app, and asks for the names only then. That function is generated from the clap
//! definitions below ([`APP_ARGS`], each command's aliases and the options that take a
//! value), so it follows the CLI as it changes.

use clap::{Args, CommandFactory, ValueEnum};

use crate::error::Error;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish.
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The arguments that name an app the supervisor runs: the command (its words) and the
/// argument's id. App names are offered there.
const APP_ARGS: &[(&[&str], &str)] = &[
    (&["start"], "targets"),
    (&["start-or-reload"], "targets"),
    (&["start-or-restart"], "targets"),
    (&["stop"], "targets"),
    (&["restart"], "targets"),
    (&["delete"], "targets"),
    (&["reload"], "targets"),
    (&["scale"], "name"),
    (&["describe"], "target"),
    (&["logs"], "targets"),
    (&["reset"], "targets"),
    (&["env"], "target"),
    (&["flush"], "target"),
    (&["export", "nginx"], "app"),
    (&["export", "haproxy"], "app"),
];

pub fn run(args: &CompletionsArgs) -> Result<(), Error> {
    super::render::print(&script(args.shell))
}

/// The whole script for `shell`.
pub(crate) fn script(shell: Shell) -> String {
    let mut cmd = super::Cli::command();
    let model = Model::of(&mut cmd);
    let mut generated = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut cmd, "drover", &mut generated);
    let generated = String::from_utf8(generated).expect("clap_complete writes UTF-8");
    match shell {
        Shell::Bash => generated + &model.bash(),
        Shell::Zsh => model.zsh(&generated),
        Shell::Fish => generated + &model.fish(),
    }
}

/// What the shell functions need to know of the CLI, as case patterns: `path,word`,
/// where `path` is the command so far (`""`, `stop`, `export nginx`).
#[derive(Debug, Default)]
struct Model {
    /// `path,word` that enters a subcommand, and the subcommand's path.
    commands: Vec<(String, String)>,
    /// `path,option` for the options that take a value (the next word is that value).
    valued: Vec<String>,
    /// Commands whose positional arguments from the first (0) on name apps.
    many: Vec<String>,
    /// Commands whose first positional argument alone names an app.
    first: Vec<String>,
}

impl Model {
    fn of(cmd: &mut clap::Command) -> Model {
        cmd.build();
        let mut model = Model::default();
        model.walk(cmd, "");
        for (path, id) in APP_ARGS {
            let command = path
                .iter()
                .try_fold(&*cmd, |c, name| c.find_subcommand(name))
                .unwrap_or_else(|| panic!("APP_ARGS: no command {path:?}"));
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("APP_ARGS: {path:?} has no argument {id}"));
            // Positionals go by index; these are all the first one.
            assert_eq!(
                command.get_positionals().next().map(clap::Arg::get_id),
                Some(arg.get_id()),
                "APP_ARGS: {path:?} {id} is not the first positional argument"
            );
            let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
            let path = path.join(" ");
            match many {
                true => model.many.push(path),
                false => model.first.push(path),
            }
        }
        model
    }

    fn walk(&mut self, cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
            // `--timestamp=FORMAT` takes its value after `=` only.
            if !arg.get_action().takes_values() || arg.is_require_equals_set() {
                continue;
            }
            // Hidden aliases too: a word typed is a word to skip.
            let longs = arg
                .get_long()
                .into_iter()
                .chain(arg.get_all_aliases().into_iter().flatten());
            let shorts = arg
                .get_short()
                .into_iter()
                .chain(arg.get_all_short_aliases().into_iter().flatten());
            self.valued.extend(
                longs
                    .map(|l| format!("{path},--{l}"))
                    .chain(shorts.map(|s| format!("{path},-{s}"))),
            );
        }
        for sub in cmd.get_subcommands() {
            let sub_path = match path {
                "" => sub.get_name().to_owned(),
                _ => format!("{path} {}", sub.get_name()),
            };
            for name in std::iter::once(sub.get_name()).chain(sub.get_all_aliases()) {
                self.commands
                    .push((format!("{path},{name}"), sub_path.clone()));
            }
            self.walk(sub, &sub_path);
        }
    }

    /// `_drover_takes_app` in sh syntax (bash and zsh share it): its arguments are the
    /// words after the command name, the word being completed last.
    fn sh_takes_app(&self) -> String {
        let mut out = String::from(
            r#"# Whether the last argument, the word being completed, names an app: a positional
# argument of a command that takes one, not an option or an option's value.
_drover_takes_app() {
    local path="" word positional=0
    while [ $# -gt 1 ]; do
        word="$1"
        shift
        case "$word" in
            --) return 1 ;;
            -*=*) continue ;;
            -*)
                case "$path,$word" in
"#,
        );
        // The option's value is the next word (bash splits `--only=a` into three); when
        // that is the word being completed, it is no app.
        out += &sh_arm(
            &self.valued,
            r#"[ "$1" = "=" ] && shift; [ $# -le 1 ] && return 1; shift"#,
        );
        out += r#"                esac
                continue ;;
        esac
        case "$path,$word" in
"#;
        for (pattern, path) in &self.commands {
            out += &format!("            \"{pattern}\") path=\"{path}\"; continue ;;\n");
        }
        out += r#"        esac
        positional=$((positional + 1))
    done
    case "$1" in -*) return 1 ;; esac
    case "$path" in
"#;
        out += &sh_arm(&self.many, "return 0");
        out += &sh_arm(&self.first, r#"[ "$positional" -eq 0 ]; return"#);
        out += "    esac\n    return 1\n}\n";
        out
    }

    fn bash(&self) -> String {
        let mut out = String::from("\n# App names, from the running supervisor.\n");
        out += &self.sh_takes_app();
        out += r#"
_drover_with_apps() {
    local cur="${COMP_WORDS[COMP_CWORD]}" names
    if _drover_takes_app "${COMP_WORDS[@]:1:COMP_CWORD}"; then
        names="$("$1" list --names 2>/dev/null)"
        COMPREPLY=( $(compgen -W "$names" -- "$cur") )
        [ ${#COMPREPLY[@]} -gt 0 ] && return 0
    fi
    _drover "$@"
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _drover_with_apps -o nosort -o bashdefault -o default drover
else
    complete -F _drover_with_apps -o bashdefault -o default drover
fi
"#;
        out
    }

    /// clap's script with its `_drover` renamed `_drover_static`, and a `_drover` that
    /// offers app names first, for both ways zsh loads it (a file `_drover` in $fpath, or
    /// sourced).
    fn zsh(&self, generated: &str) -> String {
        const DEFINE: &str = "\n_drover() {\n";
        const TAIL: &str = "if [ \"$funcstack[1]\" = \"_drover\" ]; then\n    _drover \"$@\"\nelse\n    compdef _drover drover\nfi\n";
        assert_eq!(generated.matches(DEFINE).count(), 1, "clap's zsh script");
        let body = generated
            .strip_suffix(TAIL)
            .expect("clap's zsh script ends by calling or registering _drover");
        let mut out = body.replace(DEFINE, "\n_drover_static() {\n");
        out += "# App names, from the running supervisor.\n";
        out += &self.sh_takes_app();
        out += r#"
_drover() {
    local -a names
    if _drover_takes_app "${(@)words[2,CURRENT]}"; then
        names=(${(f)"$($words[1] list --names 2>/dev/null)"})
        (( $#names )) && compadd -a names && return 0
    fi
    _drover_static "$@"
}

"#;
        out += TAIL;
        out
    }

    fn fish(&self) -> String {
        let mut out = String::from(
            r#"
# App names, from the running supervisor, where a command takes an app: a positional
# argument, not an option or an option's value.
function __drover_takes_app
    set -l path ""
    set -l positional 0
    set -l skip 0
    for word in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case --
                return 1
            case '-*=*'
                continue
            case '-*'
                switch "$path,$word"
"#,
        );
        out += &fish_arm(&self.valued, "set skip 1", 20);
        out += r#"                end
                continue
        end
        switch "$path,$word"
"#;
        for (pattern, path) in &self.commands {
            out += &format!(
                "            case '{pattern}'\n                set path '{path}'\n                continue\n"
            );
        }
        out += r#"        end
        set positional (math $positional + 1)
    end
    # The word being completed is the value of the option before it.
    test $skip = 1; and return 1
    string match -q -- '-*' (commandline -ct); and return 1
    switch $path
"#;
        out += &fish_arm(&self.many, "return 0", 8);
        out += &fish_arm(&self.first, "test $positional -eq 0; return", 8);
        out += r#"    end
    return 1
end

function __drover_app_names
    set -l drover (commandline -opc)[1]
    command $drover list --names 2>/dev/null
end

complete -c drover -n __drover_takes_app -a '(__drover_app_names)' -d app
"#;
        out
    }
}

/// One `case` arm of sh matching any of `patterns` (none: nothing).
fn sh_arm(patterns: &[String], then: &str) -> String {
    if patterns.is_empty() {
        return String::new();
    }
    let alternatives: Vec<String> = patterns.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "                    {}) {then} ;;\n",
        alternatives.join("|")
    )
}

/// One `case` of a fish `switch` matching any of `patterns`, indented by `indent`.
fn fish_arm(patterns: &[String], then: &str, indent: usize) -> String {
    if patterns.is_empty() {
        return String::new();
    }
    let alternatives: Vec<String> = patterns.iter().map(|p| format!("'{p}'")).collect();
    let pad = " ".repeat(indent);
    format!(
        "{pad}case {}\n{pad}    {}\n",
        alternatives.join(" "),
        then.replace("; ", &format!("\n{pad}    "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_knows_the_commands_their_aliases_and_valued_options() {
        let model = Model::of(&mut super::super::Cli::command());
        for (pattern, path) in [
            (",stop", "stop"),
            (",del", "delete"),
            (",show", "describe"),
            (",startOrReload", "start-or-reload"),
            ("export,nginx", "export nginx"),
        ] {
            assert!(
                model
                    .commands
                    .contains(&(pattern.to_owned(), path.to_owned())),
                "{pattern}"
            );
        }
        for valued in [
            "start,--name",
            "start,-i",
            "logs,--lines",
            "export nginx,--server",
            "reload,--only",
            "start,--node-args",
        ] {
            assert!(model.valued.iter().any(|v| v == valued), "{valued}");
        }
        for flag in ["start,--time", "list,--json", "stop,-h"] {
            assert!(!model.valued.iter().any(|v| v == flag), "{flag}");
        }
        assert!(
            model.many.contains(&"stop".to_owned()) && model.many.contains(&"start".to_owned())
        );
        assert!(
            model.first.contains(&"scale".to_owned())
                && model.first.contains(&"export haproxy".to_owned())
        );
    }

    /// Every word put in a pattern is safe inside the quotes of each shell.
    #[test]
    fn patterns_hold_only_plain_characters() {
        let model = Model::of(&mut super::super::Cli::command());
        let all = model
            .commands
            .iter()
            .flat_map(|(a, b)| [a, b])
            .chain(&model.valued)
            .chain(&model.many)
            .chain(&model.first);
        for word in all {
            assert!(
                word.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ,-_".contains(c)),
                "{word:?}"
            );
        }
    }

    #[test]
    fn each_script_is_clap_s_plus_the_app_names() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            assert!(text.contains("list --names 2>/dev/null"), "{shell:?}");
        }
        assert!(script(Shell::Zsh).contains("\n_drover_static() {\n"));
        assert!(script(Shell::Bash).contains("complete -F _drover_with_apps"));
    }
}
