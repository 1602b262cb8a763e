//! The endpoint's HTTP/1.1 server: one request per connection (`Connection: close`),
//! GET or HEAD of `/metrics`, `/healthz` and `/`. Requests are parsed by httparse.
//!
//! What a client may hold is capped, so slow clients and many clients cost the
//! supervisor nothing: at most [`Limits::connections`] connections, and when a new one
//! comes past that, the oldest connection not being answered (still sending its
//! request, or done) is dropped; when every one is being answered, the new one is
//! closed instead. A request
//! must arrive whole within [`Limits::request_time`] and [`Limits::request_bytes`]
//! (dribbling does not extend it), and the answer must be taken within
//! [`Limits::response_time`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use super::Source;
use super::encode::{Format, Scrape, Supervisor};

/// What a client may hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once.
    pub connections: usize,
    /// The request line and headers, at most.
    pub request_bytes: usize,
    /// From accept to the end of the request's headers.
    pub request_time: Duration,
    /// To write the answer (a client that does not read it is dropped).
    pub response_time: Duration,
    /// How long `/healthz` waits for the control loop before it says 503.
    pub healthz_time: Duration,
    /// Once told to stop, how long the connections open may take to finish (a scrape
    /// takes milliseconds; a client still sending its request by then is dropped). An
    /// in-place update waits this long at most.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 64,
            request_bytes: 8 << 10,
            request_time: Duration::from_secs(5),
            response_time: Duration::from_secs(10),
            healthz_time: Duration::from_secs(2),
            drain: Duration::from_millis(500),
        }
    }
}

/// After an accept error (out of fds, say), how long before the next accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// After the answer, how long the client's leftover bytes are read, so closing with them
/// unread does not reset the connection (and the client lose the answer).
const LINGER: Duration = Duration::from_secs(1);

/// What the pages are made of.
pub(super) struct Pages {
    pub source: Arc<dyn Source>,
    /// When the supervisor started (`process_start_time_seconds`).
    pub started: SystemTime,
}

/// A connection being served.
struct Open {
    accepted: Instant,
    /// Its request is in and its answer is being made or written: it is not dropped to
    /// make room (before, it is still sending its request; after, it is lingering).
    answering: Arc<AtomicBool>,
    abort: AbortHandle,
}

/// Serves `listener` until `stop` resolves; then it accepts no more, and the
/// connections open have [`Limits::drain`] to finish before they are dropped.
pub(super) async fn serve(
    listener: TcpListener,
    pages: Pages,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let pages = Arc::new(pages);
    let mut tasks = JoinSet::new();
    let mut open: HashMap<tokio::task::Id, Open> = HashMap::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(done) = tasks.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                open.remove(&id);
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("metrics: accept: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                if open.len() >= limits.connections && !evict_oldest_unanswered(&mut open) {
                    // Every connection is being answered: this one waits for none.
                    drop(stream);
                    continue;
                }
                let answering = Arc::new(AtomicBool::new(false));
                let abort = tasks.spawn(connection(
                    stream,
                    pages.clone(),
                    limits,
                    answering.clone(),
                ));
                open.insert(
                    abort.id(),
                    Open {
                        accepted: Instant::now(),
                        answering,
                        abort,
                    },
                );
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

/// Drops the oldest connection that is not being answered; false if every one is.
fn evict_oldest_unanswered(open: &mut HashMap<tokio::task::Id, Open>) -> bool {
    let oldest = open
        .iter()
        .filter(|(_, c)| !c.answering.load(Ordering::Relaxed))
        .min_by_key(|(_, c)| c.accepted)
        .map(|(id, _)| *id);
    match oldest.and_then(|id| open.remove(&id)) {
        Some(conn) => {
            conn.abort.abort();
            true
        }
        None => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Other,
}

#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    accept: Option<String>,
}

/// Why no request was read.
#[derive(Debug)]
enum NoRequest {
    /// The client closed, or the connection failed: nothing to answer.
    Gone,
    /// Answer with this status, then close.
    Refuse(Status),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadersTooLarge,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::Unavailable => "503 Service Unavailable",
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    pages: Arc<Pages>,
    limits: Limits,
    answering: Arc<AtomicBool>,
) {
    let read = tokio::time::timeout(
        limits.request_time,
        read_request(&mut stream, limits.request_bytes),
    )
    .await;
    let response = match read {
        // Too slow: dropped without a word, as a client that sends nothing deserves.
        Err(_) | Ok(Err(NoRequest::Gone)) => return,
        Ok(Err(NoRequest::Refuse(status))) => {
            answering.store(true, Ordering::Relaxed);
            response(
                status,
                "text/plain; charset=utf-8",
                &[],
                reason(status),
                false,
            )
        }
        Ok(Ok(request)) => {
            answering.store(true, Ordering::Relaxed);
            pages.answer(&request, &limits).await
        }
    };
    let _ = tokio::time::timeout(limits.response_time, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    // The answer is out: from here on, this connection may make room for another.
    answering.store(false, Ordering::Relaxed);
    // What the client still sends (a body we did not ask for) is read and dropped, so
    // the close is a FIN rather than a reset that could cut the answer short.
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

fn reason(status: Status) -> &'static str {
    match status {
        Status::BadRequest => "not an HTTP request\n",
        Status::HeadersTooLarge => "the request's headers are too large\n",
        _ => "",
    }
}

/// Reads up to the end of the request's headers, at most `cap` bytes.
async fn read_request(stream: &mut TcpStream, cap: usize) -> Result<Request, NoRequest> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = (cap + 1 - buf.len()).min(chunk.len());
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(|_| NoRequest::Gone)?;
        if n == 0 {
            return Err(NoRequest::Gone);
        }
        // Only a blank line can end the headers: look near the new bytes for one.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        let ended = buf[from..].windows(2).any(|w| w == b"\n\n")
            || buf[from..].windows(4).any(|w| w == b"\r\n\r\n");
        if !ended {
            if buf.len() > cap {
                return Err(NoRequest::Refuse(Status::HeadersTooLarge));
            }
            continue;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        return match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = match request.method {
                    Some("GET") => Method::Get,
                    Some("HEAD") => Method::Head,
                    _ => Method::Other,
                };
                let path = request.path.unwrap_or("/");
                let path = path.split_once('?').map_or(path, |(p, _)| p).to_owned();
                let accept = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("accept"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                Ok(Request {
                    method,
                    path,
                    accept,
                })
            }
            Ok(httparse::Status::Partial) if buf.len() > cap => {
                Err(NoRequest::Refuse(Status::HeadersTooLarge))
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => Err(NoRequest::Refuse(Status::HeadersTooLarge)),
            Err(_) => Err(NoRequest::Refuse(Status::BadRequest)),
        };
    }
}

/// The pages the endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Index,
    Metrics,
    Healthz,
}

impl Page {
    fn of(path: &str) -> Option<Page> {
        match path {
            "/" => Some(Page::Index),
            "/metrics" => Some(Page::Metrics),
            "/healthz" => Some(Page::Healthz),
            _ => None,
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Pages {
    async fn answer(&self, request: &Request, limits: &Limits) -> Vec<u8> {
        let head = request.method == Method::Head;
        let Some(page) = Page::of(&request.path) else {
            return response(
                Status::NotFound,
                TEXT,
                &[],
                "not found: drover serves /metrics and /healthz\n",
                head,
            );
        };
        if request.method == Method::Other {
            return response(
                Status::MethodNotAllowed,
                TEXT,
                &[("Allow", "GET, HEAD")],
                "only GET and HEAD\n",
                false,
            );
        }
        match page {
            Page::Index => response(
                Status::Ok,
                TEXT,
                &[],
                "drover: /metrics (Prometheus text; OpenMetrics when asked), /healthz (the supervisor answers)\n",
                head,
            ),
            Page::Metrics => {
                let format = Format::from_accept(request.accept.as_deref());
                let body = self.scrape().encode(format);
                response(Status::Ok, format.content_type(), &[], &body, head)
            }
            Page::Healthz => {
                let asked = Instant::now();
                match tokio::time::timeout(limits.healthz_time, self.source.ping()).await {
                    Ok(true) => {
                        let took = asked.elapsed().as_secs_f64() * 1000.0;
                        let body = format!("ok: the supervisor answered in {took:.1} ms\n");
                        response(Status::Ok, TEXT, &[], &body, head)
                    }
                    Ok(false) => response(
                        Status::Unavailable,
                        TEXT,
                        &[],
                        "the supervisor's control loop is gone\n",
                        head,
                    ),
                    Err(_) => {
                        let body = format!(
                            "the supervisor did not answer within {} ms\n",
                            limits.healthz_time.as_millis()
                        );
                        response(Status::Unavailable, TEXT, &[], &body, head)
                    }
                }
            }
        }
    }

    /// Everything one scrape reports. Runs on the endpoint's thread: the /proc reads
    /// here never hold up the supervisor.
    fn scrape(&self) -> Scrape {
        let snapshot = self.source.snapshot();
        let open_fds = snapshot
            .workers
            .iter()
            .map(|w| w.pid.and_then(open_fds).unwrap_or(0))
            .collect();
        let own = crate::sampler::process_usage(std::process::id() as i32).unwrap_or_default();
        Scrape {
            snapshot,
            open_fds,
            supervisor: Supervisor {
                cpu_seconds: own.cpu_seconds,
                memory_bytes: own.rss,
                open_fds: open_fds_of("self").unwrap_or(0),
                started: Some(self.started),
            },
        }
    }
}

/// Entries of /proc/<pid>/fd (None if the process is gone).
fn open_fds(pid: i32) -> Option<u64> {
    open_fds_of(&pid.to_string())
}

fn open_fds_of(proc_name: &str) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{proc_name}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// A whole response; `head`: without its body (HEAD), Content-Length kept.
fn response(
    status: Status,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
    head: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        status.line(),
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::pin::Pin;

    use super::*;
    use crate::metrics::Snapshot;

    /// A supervisor whose control loop answers as told.
    enum Loop {
        Answers,
        Gone,
        Stuck,
    }

    impl Source for Loop {
        fn snapshot(&self) -> Snapshot {
            Snapshot::default()
        }
        fn ping(&self) -> Pin<Box<dyn Future<Output = bool> + Send>> {
            match self {
                Loop::Answers => Box::pin(async { true }),
                Loop::Gone => Box::pin(async { false }),
                Loop::Stuck => Box::pin(std::future::pending()),
            }
        }
    }

    /// Serves on a thread of its own until the returned sender is dropped.
    fn server(source: Loop, limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let pages = Pages {
                    source: Arc::new(source),
                    started: SystemTime::now(),
                };
                serve(listener, pages, limits, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        (addr, stop)
    }

    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn healthz_says_whether_the_control_loop_answers() {
        let limits = Limits {
            healthz_time: Duration::from_millis(200),
            ..Limits::default()
        };
        let (addr, _stop) = server(Loop::Answers, limits);
        let ok = exchange(addr, HEALTHZ);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        let (addr, _stop) = server(Loop::Stuck, limits);
        let stuck = exchange(addr, HEALTHZ);
        assert!(
            stuck.starts_with("HTTP/1.1 503 ") && stuck.ends_with("did not answer within 200 ms\n"),
            "{stuck}"
        );
        let (addr, _stop) = server(Loop::Gone, limits);
        let gone = exchange(addr, HEALTHZ);
        assert!(
            gone.starts_with("HTTP/1.1 503 ") && gone.contains("gone"),
            "{gone}"
        );
    }

    /// Whether the server closed `s` within a second.
    fn closed(s: &mut TcpStream) -> bool {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    #[test]
    fn at_the_cap_the_oldest_connection_still_sending_makes_room() {
        let limits = Limits {
            connections: 2,
            ..Limits::default()
        };
        let (addr, _stop) = server(Loop::Answers, limits);
        // Accepted in the order they connect (the kernel's queue is first in, first out).
        let mut oldest = TcpStream::connect(addr).unwrap();
        oldest.write_all(b"GET /metr").unwrap();
        let mut younger = TcpStream::connect(addr).unwrap();
        younger.write_all(b"GET /metr").unwrap();
        // Two silent connections held: a third comes in, and is answered.
        let third = exchange(addr, HEALTHZ);
        assert!(third.starts_with("HTTP/1.1 200"), "{third}");
        assert!(closed(&mut oldest), "the oldest silent one made room");
        assert!(!closed(&mut younger), "the younger one is still waited for");
    }
}
