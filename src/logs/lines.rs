//! Splitting a byte stream into lines, and the pump that drains a worker's pipe into a
//! [`LineSink`] until EOF.

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::files::LineSink;
use crate::sync::Freeze;

/// Longest line kept in memory: a longer line is cut into pieces of this size, each
/// written as a line of its own.
pub const MAX_LINE: usize = 64 * 1024;

/// Bytes asked of the pipe per read while it has more; a Linux pipe holds 64 KiB by
/// default. Only a pump whose pipe is busy holds a buffer this size: it is dropped as
/// soon as the pipe is empty, since a thousand idle workers would otherwise keep
/// 2 × 64 KiB each resident (most of the supervisor's memory at 1,000 workers).
const READ_CHUNK: usize = 64 * 1024;

/// Bytes a waiting pump reads when its pipe wakes it: enough for the usual trickle of
/// log lines, which then never needs the big buffer; when it comes back full, more is
/// waiting and the big buffer is taken.
const WAKE_READ: usize = 1024;

/// How long the start of a line may wait for its end before it is written as a line of
/// its own (a progress bar, a prompt, a `process.stderr.write('x')` with no newline): a
/// line that completes within this stays whole, one that does not reaches the file
/// anyway, as PM2 writes data as it arrives. Long enough that a writer descheduled in
/// the middle of a line on a busy machine does not split it.
pub const PARTIAL_LINE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Cuts a byte stream into lines (without their `\n`), whatever the read boundaries.
/// Memory stays bounded: at most [`MAX_LINE`] bytes of an unfinished line are held.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream; `emit` gets every line completed by them.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let line = &data[..i];
            data = &data[i + 1..];
            if self.pending.is_empty() && line.len() <= MAX_LINE {
                emit(line); // the common case: no copy
            } else {
                self.push_partial(line, &mut emit);
                emit(&self.pending);
                self.pending.clear();
            }
        }
        self.push_partial(data, &mut emit);
    }

    /// Ends the stream: emits a final line that had no `\n`, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }

    /// A splitter whose stream began with `pending`, an unfinished line (handed over by
    /// another image of drover).
    pub fn with_pending(pending: Vec<u8>) -> Self {
        LineSplitter { pending }
    }

    /// The unfinished line held, leaving none.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Bytes of an unfinished line held.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Appends bytes of an unfinished line; a full piece is emitted only once more bytes
    /// of the same line arrive, so a line of exactly `MAX_LINE` bytes stays one line.
    fn push_partial(&mut self, mut part: &[u8], emit: &mut impl FnMut(&[u8])) {
        while !part.is_empty() {
            if self.pending.len() == MAX_LINE {
                emit(&self.pending);
                self.pending.clear();
            }
            let take = (MAX_LINE - self.pending.len()).min(part.len());
            self.pending.extend_from_slice(&part[..take]);
            part = &part[take..];
        }
    }
}

/// What a [`pump`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpStats {
    /// Lines handed to the sink (pieces of a split line count one each).
    pub lines: u64,
    /// Bytes read from the pipe.
    pub bytes: u64,
}

/// Reads `reader` until EOF (or a read error) and writes each line to `sink`.
///
/// The sink is flushed whenever the reader has nothing more immediately available and
/// at the end, so lines reach the file promptly without one write per line. A final
/// line without `\n` is written with one, and so is the start of a line whose end has
/// not come within [`PARTIAL_LINE_DELAY`]. Write errors never stop the pump: the sink
/// counts the lines it drops and the pipe keeps draining, so the worker never blocks.
pub async fn pump<R: AsyncRead + Unpin>(reader: R, sink: LineSink) -> PumpStats {
    match pump_until(reader, sink, Vec::new(), Freeze::never()).await {
        PumpEnd::Drained(stats) => stats,
        PumpEnd::Frozen { .. } => unreachable!("never frozen"),
    }
}

/// How a [`pump_until`] ended.
#[derive(Debug)]
pub(crate) enum PumpEnd<R> {
    /// The pipe reached EOF (or failed); everything read was written.
    Drained(PumpStats),
    /// Frozen for an in-place upgrade: every whole line read was written and flushed;
    /// `partial` is the start of a line whose end is still to come, and `reader` the
    /// pipe, with whatever the worker wrote since still in it.
    Frozen { reader: R, partial: Vec<u8> },
}

/// [`pump`], starting with `partial` (the unfinished line another image handed over),
/// until EOF or `freeze`. A freeze is seen between two reads: a line is never cut by it.
pub(crate) async fn pump_until<R: AsyncRead + Unpin>(
    mut reader: R,
    mut sink: LineSink,
    partial: Vec<u8>,
    mut freeze: Freeze,
) -> PumpEnd<R> {
    let mut stats = PumpStats::default();
    let mut splitter = LineSplitter::with_pending(partial);
    // Empty (no allocation) while the pipe is idle; READ_CHUNK of capacity while it
    // is busy. Read into its spare capacity, so taking it costs no memset.
    let mut busy: Vec<u8> = Vec::new();
    let mut wake = [0u8; WAKE_READ];
    loop {
        // Looked at before every read, so a worker that writes without pause cannot keep
        // the pump from seeing it.
        if freeze.is_frozen() {
            sink.flush();
            return PumpEnd::Frozen {
                reader,
                partial: splitter.take_pending(),
            };
        }
        let ready = match busy.capacity() {
            0 => None,
            _ => read_if_ready(&mut reader, &mut busy).await,
        };
        let (read, from_wake) = match ready {
            Some(read) => (read, false),
            None => {
                // Nothing more right now: push what we have to disk, then wait.
                busy = Vec::new();
                sink.flush();
                let partial_due = async {
                    match splitter.pending_len() {
                        0 => std::future::pending().await,
                        _ => tokio::time::sleep(PARTIAL_LINE_DELAY).await,
                    }
                };
                tokio::select! {
                    () = freeze.frozen() => continue,
                    read = reader.read(&mut wake) => (read, true),
                    () = partial_due => {
                        // The line's end is not coming soon: write what there is.
                        splitter.finish(|line| {
                            sink.write_line(line);
                            stats.lines += 1;
                        });
                        sink.flush();
                        continue;
                    }
                }
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                stats.bytes += n as u64;
                let data = if from_wake { &wake[..n] } else { &busy[..n] };
                splitter.feed(data, |line| {
                    sink.write_line(line);
                    stats.lines += 1;
                });
                busy.clear();
                if from_wake && n == WAKE_READ {
                    busy = Vec::with_capacity(READ_CHUNK);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "log pipe read failed; ending pump");
                break;
            }
        }
    }
    splitter.finish(|line| {
        sink.write_line(line);
        stats.lines += 1;
    });
    sink.flush();
    PumpEnd::Drained(stats)
}

/// One read attempt that does not wait, into `buf`'s spare capacity (`buf` is empty;
/// what was read is its contents after): `None` when the reader would block.
async fn read_if_ready<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Option<io::Result<usize>> {
    // read_buf is cancel safe: when it is pending, nothing was read, and it is dropped.
    let read = reader.read_buf(buf);
    tokio::pin!(read);
    poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{LogHub, Stream};
    use tokio::io::AsyncWriteExt;

    /// xorshift64*: deterministic chunk sizes without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn split_all(input: &[u8], chunks: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new();
        let mut rest = input;
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].clamp(1, rest.len());
            i += 1;
            s.feed(&rest[..n], |l| out.push(l.to_vec()));
            rest = &rest[n..];
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    /// Both streams to `path`, no combined file.
    fn logs(path: &std::path::Path, merge: bool) -> crate::config::LogSpec {
        crate::config::LogSpec {
            out_file: path.to_path_buf(),
            error_file: path.to_path_buf(),
            log_file: None,
            merge,
            date_format: None,
            rotation: None,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn splits_across_any_boundary() {
        let mut input = Vec::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut want = Vec::new();
        for i in 0..2000 {
            let len = rng.below(200) as usize;
            let line: Vec<u8> = (0..len)
                .map(|j| match (i + j) % 7 {
                    0 => 0xFF, // invalid UTF-8 passes through
                    1 => b'\r',
                    _ => b'a' + ((i * 31 + j) % 26) as u8,
                })
                .collect();
            input.extend_from_slice(&line);
            input.push(b'\n');
            want.push(line);
        }
        for chunks in [vec![1], vec![2, 3, 5], vec![4096], vec![usize::MAX]] {
            assert_eq!(split_all(&input, &chunks), want, "chunks {chunks:?}");
        }
        let random: Vec<usize> = (0..1000).map(|_| 1 + rng.below(300) as usize).collect();
        assert_eq!(split_all(&input, &random), want);
    }

    #[test]
    fn partial_last_line_and_empty_lines() {
        assert_eq!(
            split_all(b"a\n\nb", &[1]),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert_eq!(split_all(b"\n", &[1]), vec![Vec::<u8>::new()]);
        assert!(split_all(b"", &[1]).is_empty());
    }

    #[test]
    fn long_lines_are_cut_in_64k_pieces() {
        let exact = vec![b'x'; MAX_LINE];
        let mut input = exact.clone();
        input.push(b'\n');
        for chunks in [vec![1000], vec![usize::MAX], vec![MAX_LINE]] {
            assert_eq!(split_all(&input, &chunks), vec![exact.clone()]);
        }

        let long: Vec<u8> = (0..MAX_LINE * 2 + 10)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let mut input = long.clone();
        input.extend_from_slice(b"\ntail");
        let want = vec![
            long[..MAX_LINE].to_vec(),
            long[MAX_LINE..2 * MAX_LINE].to_vec(),
            long[2 * MAX_LINE..].to_vec(),
            b"tail".to_vec(),
        ];
        for chunks in [vec![7777], vec![usize::MAX], vec![1, MAX_LINE]] {
            let got = split_all(&input, &chunks);
            assert_eq!(got, want, "chunks {chunks:?}");
        }
        // Memory stays bounded while an endless line streams in.
        let mut s = LineSplitter::new();
        let mut pieces = 0;
        for _ in 0..100 {
            s.feed(&[b'z'; 10_000], |l| {
                assert_eq!(l.len(), MAX_LINE);
                pieces += 1;
            });
            assert!(s.pending_len() <= MAX_LINE);
        }
        assert_eq!(pieces, 1_000_000 / MAX_LINE);
    }

    #[test]
    fn pump_through_duplex_in_random_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let sink = hub.sink("api", 0, Stream::Out, &logs(&path, true)).unwrap();

        let mut rng = Rng(42);
        let mut input = Vec::new();
        for i in 0..5000 {
            let len = rng.below(120) as usize;
            input.extend((0..len).map(|j| b'0' + ((i + j) % 10) as u8));
            input.push(b'\n');
        }
        input.extend_from_slice(b"no newline at the end");
        let stats = rt().block_on(async {
            // Bigger than a wake read, so chunks arrive both through the small read a
            // waiting pump makes and through the big buffer it takes when that fills.
            let (mut tx, rx) = tokio::io::duplex(3 * WAKE_READ);
            let writer = {
                let input = input.clone();
                tokio::spawn(async move {
                    let mut rest = &input[..];
                    let mut rng = Rng(7);
                    while !rest.is_empty() {
                        let n = (1 + rng.below(2500) as usize).min(rest.len());
                        tx.write_all(&rest[..n]).await.unwrap();
                        rest = &rest[n..];
                        if rng.below(4) == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            };
            let stats = pump(rx, sink).await;
            writer.await.unwrap();
            stats
        });
        let mut want = input.clone();
        want.push(b'\n');
        assert_eq!(std::fs::read(&path).unwrap(), want);
        assert_eq!(stats.bytes, input.len() as u64);
        assert_eq!(stats.lines, 5001);
        assert_eq!(hub.dropped_lines(), 0);
    }

    #[test]
    fn pump_real_pipe_drains_after_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe.log");
        let hub = LogHub::new(false);
        let sink = hub
            .sink("api", 3, Stream::Err, &logs(&path, false))
            .unwrap();
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let mut tx = std::fs::File::from(tx);
        // More than a pipe holds, written from a thread that then closes its end.
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            for i in 0..20_000 {
                writeln!(tx, "line {i}").unwrap();
            }
            write!(tx, "last words").unwrap();
        });
        let stats = rt().block_on(async {
            let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rx).unwrap();
            pump(rx, sink).await
        });
        writer.join().unwrap();
        assert_eq!(stats.lines, 20_001);
        let text = std::fs::read_to_string(dir.path().join("pipe-3.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_001);
        assert_eq!(lines[19_999], "line 19999");
        assert_eq!(lines[20_000], "last words");
    }

    #[test]
    fn a_partial_line_reaches_the_file_after_a_delay_and_a_quick_one_stays_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("err.log");
        let hub = LogHub::new(false);
        let sink = hub.sink("api", 0, Stream::Err, &logs(&path, true)).unwrap();
        let written = rt().block_on(async {
            let (mut tx, rx) = tokio::io::duplex(512);
            let pump = tokio::spawn(pump(rx, sink));
            // Completed in time: one line.
            tx.write_all(b"quick ").await.unwrap();
            tx.write_all(b"line\n").await.unwrap();
            // Never completed while the worker lives: written after the delay.
            tx.write_all(b"progress 50%").await.unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let text = loop {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains("progress") {
                    break text;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "never written: {text:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            tx.write_all(b"... done\n").await.unwrap();
            drop(tx);
            pump.await.unwrap();
            text
        });
        assert_eq!(written, "quick line\nprogress 50%\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "quick line\nprogress 50%\n... done\n"
        );
    }

    /// A freeze (an in-place upgrade) stops the pump between two reads: whole lines are
    /// in the file, the start of the next one comes back with the pipe, and a pump
    /// started from them (the next image's) finishes that line as one.
    #[test]
    fn a_frozen_pump_hands_back_the_pipe_and_the_unfinished_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::new(false);
        let spec = logs(&path, true);
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let mut tx = std::fs::File::from(tx);
        use std::io::Write;
        rt().block_on(async {
            let freezer = crate::sync::FreezeSender::new();
            let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rx).unwrap();
            let sink = hub.sink("api", 0, Stream::Out, &spec).unwrap();
            let pump = tokio::spawn(pump_until(rx, sink, Vec::new(), freezer.subscribe()));
            tx.write_all(b"one\ntwo\nthr").unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read_to_string(&path).unwrap_or_default() != "one\ntwo\n" {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the whole lines never came"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            freezer.freeze();
            let (reader, partial) = match pump.await.unwrap() {
                PumpEnd::Frozen { reader, partial } => (reader, partial),
                PumpEnd::Drained(stats) => panic!("drained: {stats:?}"),
            };
            assert_eq!(partial, b"thr");
            // Written while nobody reads: it waits in the pipe.
            tx.write_all(b"ee\nfour\n").unwrap();
            drop(tx);
            let sink = hub.sink("api", 0, Stream::Out, &spec).unwrap();
            let end = pump_until(reader, sink, partial, Freeze::never()).await;
            assert!(matches!(end, PumpEnd::Drained(_)), "{end:?}");
        });
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "one\ntwo\nthree\nfour\n"
        );
    }
}
