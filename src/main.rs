//! argv → command. The exec trampoline is handled first, before clap or any runtime, so a
//! worker's start costs one exec of a small static binary and nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    // The new image of an in-place update: removed from the environment before
    // anything else, so no child ever sees it.
    if let Some(fd) = drover::os::take_env_var(drover::upgrade::STATE_FD_VAR) {
        return drover::cli::resume(fd);
    }
    let mut args = std::env::args_os();
    let first = args.nth(1);
    if first.as_deref() == Some(drover::upgrade::CHECK_ARG.as_ref()) {
        // `drover __upgrade-check`: can this binary take over the state on stdin?
        return drover::upgrade::check_child();
    }
    if first.as_deref() == Some(drover::os::TRAMPOLINE_ARG.as_ref()) {
        // `drover __exec -- <program> [args…]`
        let argv: Vec<_> = args.skip_while(|a| a != "--").skip(1).collect();
        let err = drover::os::exec_trampoline(argv);
        eprintln!("drover: {err}");
        // 127: the shell's "command not found / cannot execute", which the restart policy
        // treats as any quick crash.
        return ExitCode::from(127);
    }
    drover::cli::main()
}
