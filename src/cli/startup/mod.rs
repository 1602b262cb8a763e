//! `drover startup [systemd]` and `drover unstartup`: a systemd unit that starts drover
//! at boot (PM2's `pm2 startup`), for the system manager (`User=` the invoking user, or
//! `-u USER`) or the user's own (`--user`); running the supervisor with the apps of
//! `drover save` (`drover daemon --resurrect`), or one stack (`--ecosystem FILE`:
//! `drover run FILE`, one unit per file, each with a DROVER_HOME of its own).
//!
//! The unit is written atomically (a temp file in the unit directory, fsynced, renamed)
//! and enabled with systemctl when systemd runs here and the unit goes to its own
//! directory; `--unit-dir DIR` writes it elsewhere (a package's tree, an image being
//! built) and prints the commands that enable it; `--print` only prints it. A caller who
//! may not write systemd's directory is shown the exact command to run as root.

mod unit;

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use nix::unistd::{Group, User};

use super::apps::{self, Ecosystem, Source};
use crate::error::Error;
use unit::{MARKER, Runs, Scope, Unit};

/// The init systems `startup` knows: systemd alone (PM2 also writes upstart, launchd,
/// rc.d and SysV scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Systemd,
}

/// What names a unit: shared by `startup` and `unstartup`.
#[derive(Debug, Args)]
pub struct UnitArgs {
    /// The init system; systemd is the only one.
    #[arg(value_enum)]
    pub platform: Option<Platform>,
    /// A unit for your own systemd user manager (`systemctl --user`,
    /// ~/.config/systemd/user) instead of a system unit. At boot it starts only with
    /// lingering on (`loginctl enable-linger`).
    #[arg(long)]
    pub user: bool,
    /// The user drover runs as in a system unit (PM2's -u); default: you.
    #[arg(
        short = 'u',
        long = "username",
        value_name = "USER",
        conflicts_with = "user"
    )]
    pub username: Option<String>,
    /// A unit that runs `drover run FILE` (one stack), with a DROVER_HOME of its own
    /// ($DROVER_HOME/stacks/<stack>), instead of the supervisor with the apps of `drover
    /// save`. The stack is named after the file's name up to its first dot (shop.yaml:
    /// shop), or after its directory when that is `ecosystem` (ecosystem.config.js,
    /// ecosystem.yaml, ecosystem.prod.yaml).
    #[arg(long, value_name = "FILE")]
    pub ecosystem: Option<PathBuf>,
    /// The unit's name (default: drover-<user>, drover-<user>-<stack>; drover or
    /// drover-<stack> with --user).
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
    /// The unit directory (for a package's tree or an image being built) instead of
    /// systemd's; systemctl is not run, the commands that enable the unit are printed.
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    #[command(flatten)]
    pub unit: UnitArgs,
    /// The home whose .drover is DROVER_HOME (PM2's --hp); default: DROVER_HOME when
    /// set, else the user's home.
    #[arg(long = "hp", value_name = "DIR")]
    pub hp: Option<PathBuf>,
    /// With --ecosystem: run the file with `--env NAME` (its env_NAME).
    #[arg(long, value_name = "NAME", requires = "ecosystem")]
    pub env: Option<String>,
    /// Print the unit on stdout, and on stderr its name and where `drover startup`
    /// would install it; write nothing.
    #[arg(long, conflicts_with = "unit_dir")]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct UnstartupArgs {
    #[command(flatten)]
    pub unit: UnitArgs,
}

/// The account the unit runs as.
struct Account {
    name: String,
    group: String,
    home: PathBuf,
    /// The caller itself (not `-u` someone else).
    is_caller: bool,
}

/// Everything decided before anything is written.
struct Plan {
    unit: Unit,
    name: String,
    dir: PathBuf,
    /// `dir` is systemd's own directory: enable with systemctl once written.
    systemd_dir: bool,
    account: Account,
    /// The DROVER_HOME the unit's home derives from (the stack's parent for --ecosystem).
    base_home: PathBuf,
}

pub fn startup(args: StartupArgs) -> Result<(), Error> {
    let plan = plan(&args.unit, args.hp.as_deref(), args.env.clone(), true)?;
    let text = plan.unit.render();
    if args.print {
        // stdout stays the unit alone (it is redirected into a file); where it would go
        // is said on stderr.
        eprintln!(
            "drover: this is {}; `drover startup` without --print installs it as {}",
            plan.name,
            plan.dir.join(&plan.name).display()
        );
        warn_volatile(&plan);
        print!("{text}");
        return Ok(());
    }
    if plan.systemd_dir {
        require_systemd()?;
    }
    let path = plan.dir.join(&plan.name);
    if let Err(e) = std::fs::create_dir_all(&plan.dir).and_then(|()| probe_writable(&plan.dir)) {
        return Err(unwritable(&plan, &args, &e));
    }
    check_replaceable(&path, &plan.unit.identity())?;
    write_atomically(&path, &text).map_err(|e| {
        Error::Failed(format!(
            "cannot write {}: {e}; nothing was changed",
            path.display()
        ))
    })?;
    println!("wrote {}", path.display());
    warn_volatile(&plan);
    let scope = plan.unit.scope;
    if plan.systemd_dir {
        systemctl(scope, &["daemon-reload"])?;
        systemctl(scope, &["enable", &plan.name])?;
        println!("enabled {}: it starts at boot", plan.name);
    } else {
        println!(
            "to enable it where {} is systemd's unit directory:\n  {} daemon-reload && {} enable {}",
            plan.dir.display(),
            systemctl_shown(scope),
            systemctl_shown(scope),
            plan.name
        );
    }
    print_next_steps(&plan);
    Ok(())
}

pub fn unstartup(args: UnstartupArgs) -> Result<(), Error> {
    let plan = plan(&args.unit, None, None, false)?;
    let path = plan.dir.join(&plan.name);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Failed(format!(
                "there is no {}: nothing to undo",
                path.display()
            )));
        }
        Err(e) => {
            return Err(Error::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if !existing.starts_with(MARKER) {
        return Err(Error::Failed(format!(
            "{} was not written by drover startup; leaving it alone",
            path.display()
        )));
    }
    if plan.systemd_dir {
        require_systemd()?;
    }
    if let Err(e) = probe_writable(&plan.dir) {
        return Err(Error::Failed(format!(
            "cannot remove {}: {e}; as root: sudo {} unstartup systemd{}",
            path.display(),
            std::env::current_exe().map_or("drover".into(), |p| p.display().to_string()),
            identifying_flags(&args.unit)
        )));
    }
    let scope = plan.unit.scope;
    if plan.systemd_dir {
        // Stops it too: the unit's supervisor stops its apps, as PM2's unstartup does.
        systemctl(scope, &["disable", "--now", &plan.name])?;
    }
    std::fs::remove_file(&path)
        .map_err(|e| Error::Failed(format!("cannot remove {}: {e}", path.display())))?;
    println!("removed {}", path.display());
    if plan.systemd_dir {
        systemctl(scope, &["daemon-reload"])?;
    } else {
        println!(
            "where {} is systemd's unit directory, also run:\n  {} disable --now {} && {} daemon-reload",
            plan.dir.display(),
            systemctl_shown(scope),
            plan.name,
            systemctl_shown(scope)
        );
    }
    Ok(())
}

/// Resolves who, what, which name and where; checks the ecosystem file (`startup`).
fn plan(
    args: &UnitArgs,
    hp: Option<&Path>,
    env: Option<String>,
    check_file: bool,
) -> Result<Plan, Error> {
    // Every platform drover knows writes a systemd unit.
    let (Some(Platform::Systemd) | None) = args.platform;
    let scope = match args.user {
        true => Scope::User,
        false => Scope::System,
    };
    let account = account(args.username.as_deref())?;
    let base_home = base_home(&account, hp)?;
    let drover = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Error::Failed(format!("cannot find drover's own binary: {e}")))?;
    unit::check_one_line("drover's path", &drover).map_err(Error::Usage)?;
    let (runs, drover_home, stack) = match &args.ecosystem {
        None => (Runs::Daemon, base_home.clone(), None),
        Some(file) => {
            let file = ecosystem_path(file, check_file)?;
            let stack = stack_name(&file)?;
            let home = base_home.join("stacks").join(&stack);
            if check_file {
                check_ecosystem(&file, &home, env.clone())?;
            }
            (Runs::Ecosystem { file, env }, home, Some(stack))
        }
    };
    unit::check_one_line("DROVER_HOME", &drover_home).map_err(Error::Usage)?;
    let name = unit_name(args, scope, &account, stack.as_deref())?;
    let (dir, systemd_dir) = match &args.unit_dir {
        Some(dir) => (absolute(dir)?, false),
        None => (default_unit_dir(scope)?, true),
    };
    let path = std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| unit::without_duplicates(&p));
    let unit = Unit {
        scope,
        runs,
        drover,
        user: account.name.clone(),
        group: account.group.clone(),
        drover_home,
        path,
    };
    Ok(Plan {
        unit,
        name,
        dir,
        systemd_dir,
        account,
        base_home,
    })
}

fn account(username: Option<&str>) -> Result<Account, Error> {
    let user = match username {
        Some(name) => User::from_name(name)
            .map_err(|e| Error::Failed(format!("cannot read the user database: {e}")))?
            .ok_or_else(|| Error::Usage(format!("-u {name}: no such user on this system")))?,
        None => {
            let uid = nix::unistd::geteuid();
            User::from_uid(uid)
                .map_err(|e| Error::Failed(format!("cannot read the user database: {e}")))?
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "your uid {uid} has no entry in the user database: give -u USER"
                    ))
                })?
        }
    };
    let group = Group::from_gid(user.gid)
        .ok()
        .flatten()
        .map_or_else(|| user.gid.to_string(), |g| g.name);
    // Your own home is $HOME, as `drover` itself takes it; someone else's, the database's.
    let home = match username {
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map_or(user.dir.clone(), PathBuf::from),
        Some(_) => user.dir.clone(),
    };
    Ok(Account {
        name: user.name,
        group,
        home,
        is_caller: username.is_none(),
    })
}

/// `--hp DIR` → DIR/.drover; else DROVER_HOME when set; else the user's ~/.drover.
fn base_home(account: &Account, hp: Option<&Path>) -> Result<PathBuf, Error> {
    let home = match (
        hp,
        std::env::var_os("DROVER_HOME").filter(|h| !h.is_empty()),
    ) {
        (Some(hp), _) => absolute(hp)?.join(".drover"),
        (None, Some(home)) => absolute(Path::new(&home))?,
        (None, None) => account.home.join(".drover"),
    };
    Ok(home)
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path)
        .map_err(|e| Error::Usage(format!("{}: cannot make it absolute: {e}", path.display())))
}

/// The ecosystem file, absolute (canonical when it exists; `startup` requires it).
fn ecosystem_path(file: &Path, must_exist: bool) -> Result<PathBuf, Error> {
    if file == Path::new("-") {
        return Err(Error::Usage(
            "--ecosystem -: a unit cannot read stdin; give the file's path".into(),
        ));
    }
    match std::fs::canonicalize(file) {
        Ok(path) => {
            unit::check_one_line("the ecosystem file", &path).map_err(Error::Usage)?;
            Ok(path)
        }
        Err(e) if must_exist => Err(Error::Usage(format!("--ecosystem {}: {e}", file.display()))),
        Err(_) => absolute(file),
    }
}

/// Loads the file as `drover run` will, so a broken one is refused now, not at boot.
fn check_ecosystem(file: &Path, home: &Path, env: Option<String>) -> Result<(), Error> {
    let kind = match Source::of(file) {
        Source::Ecosystem(kind @ (Ecosystem::Js | Ecosystem::Text)) => kind,
        Source::Ecosystem(Ecosystem::Stdin) | Source::Script => {
            return Err(Error::Usage(format!(
                "--ecosystem {}: not an ecosystem file (*.config.js, .cjs, .mjs, .json, .yaml, .yml)",
                file.display()
            )));
        }
    };
    let ctx = apps::context(home, env)?;
    apps::ecosystem(kind, file, &ctx)?;
    Ok(())
}

/// The stack's name, from its file: the name up to its first dot (`shop.yaml`,
/// `shop.prod.yaml` → shop); when that is `ecosystem` (any case: PM2's usual
/// `ecosystem.config.js`, `ecosystem.yaml`, `ecosystem.example.yaml`) or nothing
/// (`.yaml`), the name of its directory. Characters a unit name cannot hold become `-`,
/// and leading or trailing `-` and `.` go.
fn stack_name(file: &Path) -> Result<String, Error> {
    let stem = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default().to_owned();
    let raw = if stem.eq_ignore_ascii_case("ecosystem") || stem.is_empty() {
        file.parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        stem
    };
    let name: String = raw
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "_.-".contains(c) {
            true => c,
            false => '-',
        })
        .collect();
    let name = name.trim_matches(['-', '.']).to_owned();
    if name.is_empty() {
        return Err(Error::Usage(format!(
            "--ecosystem {}: cannot name a unit after it; give --service-name",
            file.display()
        )));
    }
    Ok(name)
}

fn unit_name(
    args: &UnitArgs,
    scope: Scope,
    account: &Account,
    stack: Option<&str>,
) -> Result<String, Error> {
    if let Some(name) = &args.service_name {
        let name = match name.strip_suffix(".service") {
            Some(stem) => stem,
            None => name,
        };
        let valid = !name.is_empty()
            && name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":_.-".contains(c));
        if !valid {
            return Err(Error::Usage(format!(
                "--service-name {name}: a unit name is letters, digits and : _ . - (up to 200)"
            )));
        }
        return Ok(format!("{name}.service"));
    }
    let mut name = "drover".to_owned();
    if scope == Scope::System {
        name.push('-');
        name.push_str(&account.name);
    }
    if let Some(stack) = stack {
        name.push('-');
        name.push_str(stack);
    }
    // User names may hold characters a unit name cannot.
    let name: String = name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || ":_.-".contains(c) {
            true => c,
            false => '-',
        })
        .collect();
    Ok(format!("{name}.service"))
}

/// Directories whose contents a reboot (tmpfs) or systemd-tmpfiles' age cleaning removes.
const VOLATILE: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// Warns (on stderr) about each path the unit depends on that lies in a [`VOLATILE`]
/// directory: the unit is written all the same (a test, a dev checkout), but at boot
/// its binary, home (the dump) or file may be gone.
fn warn_volatile(plan: &Plan) {
    let mut paths = vec![
        ("drover's binary", plan.unit.drover.clone()),
        ("DROVER_HOME", plan.unit.drover_home.clone()),
    ];
    if let Runs::Ecosystem { file, .. } = &plan.unit.runs {
        paths.push(("the ecosystem file", file.clone()));
    }
    for (what, path) in paths {
        // The real place: /tmp reached through a symlink is still /tmp.
        let real = std::fs::canonicalize(&path).unwrap_or(path.clone());
        if let Some(dir) = VOLATILE.iter().find(|dir| real.starts_with(dir)) {
            eprintln!(
                "drover: warning: {what} {} is under {dir}, which may not survive a reboot: the unit would not find it",
                path.display()
            );
        }
    }
}

/// systemd's directory for units an administrator (or a user) writes.
fn default_unit_dir(scope: Scope) -> Result<PathBuf, Error> {
    match scope {
        Scope::System => Ok(PathBuf::from("/etc/systemd/system")),
        Scope::User => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|h| !h.is_empty())
                        .map(|h| PathBuf::from(h).join(".config"))
                })
                .ok_or_else(|| {
                    Error::Usage("--user: neither XDG_CONFIG_HOME nor HOME is set".into())
                })?;
            Ok(config.join("systemd/user"))
        }
    }
}

/// systemd runs this machine (sd_booted(3): /run/systemd/system is a directory).
fn require_systemd() -> Result<(), Error> {
    match sd_notify::booted() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Failed(
            "systemd is not running here (no /run/systemd/system): nothing installed; `drover startup --print` shows the unit, `--unit-dir DIR` writes it for a system that runs systemd".into(),
        )),
        Err(e) => Err(Error::Failed(format!(
            "cannot tell whether systemd runs (/run/systemd/system: {e}): nothing installed"
        ))),
    }
}

/// Creating a file in `dir` works (root or not, read-only mounts included).
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".drover-startup-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// The unit directory cannot be written: for systemd's own, the command to run as root.
fn unwritable(plan: &Plan, args: &StartupArgs, e: &std::io::Error) -> Error {
    let dir = plan.dir.display();
    if !plan.systemd_dir || e.kind() != std::io::ErrorKind::PermissionDenied {
        return Error::Failed(format!("cannot write the unit into {dir}: {e}"));
    }
    let exe = plan.unit.drover.to_string_lossy().into_owned();
    let mut command = format!(
        "sudo env PATH=\"$PATH\" DROVER_HOME={} {} startup systemd",
        shell_quote(&plan.base_home.to_string_lossy()),
        shell_quote(&exe)
    );
    if plan.account.is_caller {
        let _ = write!(command, " -u {}", shell_quote(&plan.account.name));
    }
    command.push_str(&identifying_flags(&args.unit));
    if let Some(env) = &args.env {
        let _ = write!(command, " --env {}", shell_quote(env));
    }
    println!("{command}");
    Error::Failed(format!(
        "cannot write the unit into {dir} ({e}): run the command above as root to install it"
    ))
}

/// The flags that say which unit (shell-quoted, each with a leading space).
fn identifying_flags(args: &UnitArgs) -> String {
    let mut flags = String::new();
    if args.user {
        flags.push_str(" --user");
    }
    if let Some(user) = &args.username {
        let _ = write!(flags, " -u {}", shell_quote(user));
    }
    if let Some(file) = &args.ecosystem {
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        let _ = write!(
            flags,
            " --ecosystem {}",
            shell_quote(&file.to_string_lossy())
        );
    }
    if let Some(name) = &args.service_name {
        let _ = write!(flags, " --service-name {}", shell_quote(name));
    }
    flags
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.,:=+@%-".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// An existing file there is replaced only if drover wrote it for the same thing: a
/// re-run (drover moved, a new PATH) updates it; another stack of the same name, or a
/// unit of the administrator's, is not overwritten.
fn check_replaceable(path: &Path, identity: &str) -> Result<(), Error> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Failed(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if !existing.starts_with(MARKER) {
        return Err(Error::Failed(format!(
            "{} exists and was not written by drover startup: remove it, or give --service-name",
            path.display()
        )));
    }
    let theirs = existing.lines().nth(1).unwrap_or_default();
    if theirs != identity {
        let what = theirs.strip_prefix("# drover-startup: ").unwrap_or(theirs);
        return Err(Error::Failed(format!(
            "{} already runs {what}: give this one --service-name",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `text` to a temp file next to `path`, fsyncs it, then renames it over `path`:
/// `path` is the old unit or the new one, never a part of either.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn systemctl_shown(scope: Scope) -> &'static str {
    match scope {
        Scope::System => "systemctl",
        Scope::User => "systemctl --user",
    }
}

fn systemctl(scope: Scope, args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("systemctl");
    if scope == Scope::User {
        cmd.arg("--user");
    }
    cmd.args(args);
    let shown = format!("{} {}", systemctl_shown(scope), args.join(" "));
    let out = cmd
        .output()
        .map_err(|e| Error::Failed(format!("cannot run {shown}: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(Error::Failed(format!(
            "{shown} failed ({}): {said}",
            out.status
        )));
    }
    Ok(())
}

fn print_next_steps(plan: &Plan) {
    let name = &plan.name;
    let sudo = match (
        plan.unit.scope,
        plan.account.is_caller && plan.account.name == "root",
    ) {
        (Scope::User, _) | (Scope::System, true) => "",
        (Scope::System, false) => "sudo ",
    };
    let systemctl = systemctl_shown(plan.unit.scope);
    let home = plan.unit.drover_home.display();
    match &plan.unit.runs {
        Runs::Daemon if !plan.account.is_caller => println!(
            "DROVER_HOME={home}: it starts the apps {} saved there with `drover save`; then: {sudo}{systemctl} start {name}",
            plan.account.name
        ),
        Runs::Daemon => println!(
            "DROVER_HOME={home}: it starts the apps of `drover save`. To hand the apps you run now over to it:\n  drover save && drover kill && {sudo}{systemctl} start {name}"
        ),
        Runs::Ecosystem { .. } => println!(
            "start it now: {sudo}{systemctl} start {name}\nits supervisor's home: DROVER_HOME={home} drover list"
        ),
    }
    if plan.unit.scope == Scope::User {
        println!(
            "a user unit starts at boot only with lingering on: loginctl enable-linger {}",
            plan.account.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule drover-startup(1), README and docs/deploy.md state.
    #[test]
    fn a_stack_is_named_after_its_file_or_an_ecosystem_files_directory() {
        for (file, stack) in [
            ("/srv/shop/shop.yaml", "shop"),
            ("/srv/x/shop.prod.yaml", "shop"),
            ("/srv/x/api.config.js", "api"),
            ("/srv/shop/ecosystem.config.js", "shop"),
            ("/srv/shop/ecosystem.yaml", "shop"),
            ("/home/me/newcomer/ecosystem.example.yaml", "newcomer"),
            ("/srv/shop/Ecosystem.json", "shop"),
            ("/srv/my shop/.yaml", "my-shop"),
            ("/srv/x/my app!.yml", "my-app"),
        ] {
            assert_eq!(stack_name(Path::new(file)).unwrap(), stack, "{file}");
        }
        assert!(stack_name(Path::new("/ecosystem.yaml")).is_err());
    }
}
