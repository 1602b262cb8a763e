//! The integration tests: the real `drover` binary, real workers (Node, Python, gunicorn,
//! a compiled Rust worker), real sockets on 127.0.0.1 with ports from the OS.

mod bad_input;
mod cluster_port;
mod completions;
mod container;
mod daemon;
mod deploy_doc;
mod ecosystem_js;
mod exit_codes;
mod export;
mod faults;
mod frameworks;
mod fuzz_regressions;
mod hardening;
mod harness;
mod health;
mod log_rotation;
mod logs;
mod man;
mod metrics;
mod monit;
mod pm2_cli;
mod pm2_conformance;
mod reload;
mod responsive;
mod run;
mod systemd;
mod upgrade;
mod watch;
