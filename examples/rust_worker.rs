//! A tiny HTTP/1.1 worker in Rust (std + the `listenfd` crate) for drover.
//!
//! Under drover it serves on the listener passed as fd 3 (`LISTEN_FDS=1`,
//! `LISTEN_PID=<its pid>`: the systemd protocol, which `listenfd` reads, checks and then
//! unsets). Run alone (`cargo run --example rust_worker`), it binds 127.0.0.1:$PORT
//! (default 3000). Every request gets `200 hello from rust worker <pid>` and
//! `Connection: close`, served by a few threads that each accept on the shared listener.
//! SIGINT/SIGTERM keep their default action (exit at once): the worker holds no state.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const THREADS: usize = 4;
/// A client that sends no complete request head within this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// drover may hand over a TCP (IPv4 or IPv6) or a Unix stream listener.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

fn take_listener() -> io::Result<Listener> {
    let mut fds = listenfd::ListenFd::from_env();
    // take_* leaves the fd in place when its type does not match, so try both.
    if let Ok(Some(listener)) = fds.take_tcp_listener(0) {
        return Ok(Listener::Tcp(listener));
    }
    if let Ok(Some(listener)) = fds.take_unix_listener(0) {
        return Ok(Listener::Unix(listener));
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    Ok(Listener::Tcp(TcpListener::bind(("127.0.0.1", port))?))
}

/// Reads one request head (the body, if any, is ignored) and writes a fixed response.
fn serve<S: Read + Write>(stream: S) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut head_bytes = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        head_bytes += n;
        if n == 0 || head_bytes > 16 * 1024 {
            return Ok(()); // client went away, or a head too large to be real
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    let body = format!("hello from rust worker {}\n", std::process::id());
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    );
    let mut stream = reader.into_inner();
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// Runs THREADS threads, each accepting on the shared listener and serving one connection
/// at a time.
fn run<S: Read + Write>(accept: impl Fn() -> io::Result<S> + Send + Sync + 'static) {
    let accept = Arc::new(accept);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let accept = Arc::clone(&accept);
            thread::spawn(move || {
                loop {
                    match accept() {
                        Ok(stream) => {
                            let _ = serve(stream);
                        }
                        Err(e) => eprintln!("accept: {e}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

fn main() -> io::Result<()> {
    let pid = std::process::id();
    // The O_NONBLOCK flag belongs to the socket, shared with whoever else holds it (the
    // supervisor, other workers): make sure accept() blocks here.
    match take_listener()? {
        Listener::Tcp(listener) => {
            listener.set_nonblocking(false)?;
            println!("rust worker {pid} listening on {}", listener.local_addr()?);
            run(move || {
                let (stream, _) = listener.accept()?;
                stream.set_read_timeout(Some(READ_TIMEOUT))?;
                Ok(stream)
            });
        }
        Listener::Unix(listener) => {
            listener.set_nonblocking(false)?;
            println!(
                "rust worker {pid} listening on {:?}",
                listener.local_addr()?
            );
            run(move || {
                let (stream, _) = listener.accept()?;
                stream.set_read_timeout(Some(READ_TIMEOUT))?;
                Ok(stream)
            });
        }
    }
    Ok(())
}
