//! `drover monit` in a real terminal: tmux (installed by .ci/run) runs it in an 80×24
//! window; the test reads the screen with capture-pane and types with send-keys.

use std::process::Command;

use crate::harness::*;

/// A tmux session of its own, killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(home: &Home, command: &str) -> Tmux {
        let name = format!(
            "drover-monit-{}",
            home.path().file_name().unwrap().to_string_lossy()
        );
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "80", "-y", "24"])
            .arg(format!(
                "DROVER_HOME={} {command}; echo monit-exited-$?; sleep 600",
                home.path().display()
            ))
            .status()
            .expect("tmux (apt-get install tmux)");
        assert!(status.success());
        Tmux { name }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        wait_for(what, DEADLINE, || {
            let screen = self.screen();
            ok(&screen).then_some(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn monit_shows_the_workers_and_the_selected_apps_logs_and_quits_cleanly() {
    let d = Daemon::new();
    d.start_http("web", 2, &[]);
    d.start_http("api", 1, &[]);
    let tmux = Tmux::start(&d.home, &format!("{DROVER} monit"));
    let screen = tmux.wait_screen("the workers on screen", |s| {
        s.contains("web#0") && s.contains("web#1") && s.contains("api#0")
    });
    assert!(screen.contains("drover monit: 3 workers"), "{screen}");
    assert!(screen.contains("online"), "{screen}");
    assert!(screen.lines().count() <= 24 && screen.lines().all(|l| l.chars().count() <= 80));
    // The selected app's logs: the first row's, then the next app's.
    tmux.wait_screen("web's logs", |s| {
        s.contains("web logs") && s.contains("started pid=")
    });
    tmux.keys(&["Down", "Down"]);
    tmux.wait_screen("api's logs", |s| {
        s.contains("api logs") && s.contains("api#0 started pid=")
    });
    // A worker that goes away shows at the next refresh.
    d.ok(&["stop", "api"]);
    tmux.wait_screen("api stopped", |s| s.contains("stopped"));
    tmux.keys(&["q"]);
    let screen = tmux.wait_screen("monit to exit", |s| s.contains("monit-exited-"));
    assert!(screen.contains("monit-exited-0"), "{screen}");
    // The terminal is back: the alternate screen is gone with its table.
    assert!(!screen.contains("drover monit:"), "{screen}");
}

#[test]
fn monit_without_a_supervisor_says_so_and_leaves_the_terminal_alone() {
    let home = Home::new();
    let out = home.output(&["monit"]);
    assert_eq!(out.status.code(), Some(6), "{}", out.stderr);
    assert!(
        out.stderr.contains("no supervisor is running"),
        "{}",
        out.stderr
    );
}
