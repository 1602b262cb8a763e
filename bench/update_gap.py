#!/usr/bin/env python3
"""In-place update under load: `drover update` against `pm2 update`, with a 4-worker app.

For each supervisor (drover, PM2 7.0.4 cluster mode), --runs times (5), A/B interleaved
(the order alternates every run), on a fresh port and a fresh supervisor home:
  1. start bench/app.js with 4 workers (an unmodified Node app), restart it once (so that
     every restart count is 1 before the updates), wait until all 4 are online and answer;
  2. twice, once per client style (keep-alive, then a new connection per request):
     a. start a bounded load: 8 client threads in a separate Python process, each sending
        `GET /pid` and pausing 2 ms after every attempt, for 6 s (at most ~3,500 req/s,
        a small part of what the app serves: the supervisor is not starved of CPU);
     b. 0.3 s before the update a probe thread starts asking the supervisor's control
        socket for its status as fast as it can, directly on the socket, no CLI spawned:
        drover: `{"v":2,"cmd":"ping"}` on $DROVER_HOME/drover.sock (one connection per
        exchange, as the CLI does); PM2: the `ping` RPC on $PM2_HOME/rpc.sock (axon's AMP
        framing, what `pm2 ping` sends), a new connection per call; 1 ms pause after a
        failed attempt (PM2's socket is gone while its daemon is down);
     c. 2 s into the load: `drover update --binary OTHER` (OTHER: a copy of the binary
        at another path, and back to the original for the second update, so that
        /proc/<pid>/exe changes; checked) or `pm2 update`; its wall time is measured;
     d. the probe stops 0.2 s after the command returned and the socket answered again;
        the control-socket gap is the longest interval between two consecutive answers;
     e. after the load: requests answered 2xx, requests that failed (sent, and no 2xx
        answer: reset, EOF, timeout of 2 s, non-2xx), connection attempts refused (each
        client retries every 2 ms), and the traffic gap: the longest time without a 2xx
        answer to any client, from the update's start to the load's end (4 s: `pm2
        update` takes up to ~3 s), and the longest one client went without one (a
        kept-alive connection to a worker PM2 is still stopping can be answered while
        every other client is refused); next to them, the longest time without a 2xx
        answer in the 1.5 s before the update (the load's own rhythm);
     f. supervisor pid, worker pids and restart counts before and after.
Prints a markdown table of medians, drover and PM2 side by side with their ratio, and
every update's values; --json FILE keeps the figures of every update. Before each
supervisor's turn, with nothing of ours running, it samples /proc/stat for 0.5 s: the
share of the CPU other work on the machine used then is in the table's header.

Why not wrk: when every worker is gone (PM2's update), wrk reconnects in a tight loop
(~300,000 write errors a second, both its threads spinning), which would slow the very
restart it measures and make its error count meaningless. The client here paces every
attempt, and time-stamps each answer with the same monotonic clock as the update command
and the probe.

drover: target/release/drover (built if missing), DROVER_HOME in a temp dir under /tmp,
`drover kill` at the end. PM2: pm2@$PM2_VERSION (7.0.4) from npm into bench/.pm2-install,
PM2_HOME in a temp dir (never ~/.pm2), `pm2 start -i 4` with PORT in its environment,
`pm2 update` (which re-launches the daemon from the same install, as after
`npm i -g pm2@latest`), `pm2 kill` at the end. If PM2 cannot be installed, its column
says so and drover's is still printed. Helpers (temp homes, PM2 install, cleanup by a
marker in every started process's environment) come from bench/reload.py.

Everything listens on 127.0.0.1 with ports from the OS; every process the script starts
is stopped on exit, Ctrl-C included. About 3 minutes with --runs 5 on 2 cores.

Usage: bench/update_gap.py [--runs N] [--no-pm2] [--drover PATH] [--json FILE]
"""
import argparse
import datetime
import json
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reload as rb  # noqa: E402  bench/reload.py: temp homes, PM2 install, cleanup

WORKERS = 4
LOAD_S = 6.0  # each load, fixed
UPDATE_AT_S = 2.0  # into the load; after the update: 4 s (pm2 update takes up to ~3 s)
PROBE_LEAD_S = 0.3  # the probe starts this long before the update
PROBE_TAIL_S = 0.2  # and stops this long after the command returned and it was answered
PROBE_DEADLINE_S = 30  # the socket must answer again within this, or the update failed
PROBE_TIMEOUT_S = 5  # one probe exchange
PROBE_RETRY_S = 0.001  # after a failed probe (nobody listening)
CLIENTS = 8  # load client threads
CLIENT_PAUSE_S = 0.002  # after every attempt, whatever its outcome
CLIENT_TIMEOUT_S = 2.0  # connect, or one response (wrk's default timeout)
STYLES = [("ka", "keep-alive"), ("close", "Connection: close")]
UPDATE_TIMEOUT_S = 60
READY_DEADLINE_S = 40


def log(msg):
    print(f"[update-gap] {msg}", file=sys.stderr, flush=True)


# --- the load: a paced client pool, in its own process (`--client`) ---------------------


def read_response(sock, close):
    """Read one HTTP/1.1 response; return (status, body, server keeps the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed before the response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip().lower()
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed inside the body")
        body += chunk
    keep = headers.get(b"connection") != b"close" and not close
    if not keep:  # the server closes first (its side keeps the TIME_WAIT, not ours)
        while sock.recv(4096):
            pass
    return status, body, keep


def client_thread(client, port, close, end_at, out):
    request = (b"GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + (b"Connection: close\r\n" if close else b"") + b"\r\n")
    sock = None
    while time.monotonic() < end_at:
        phase = "connect"
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            phase = "write"
            sock.sendall(request)
            phase = "read"
            status, body, keep = read_response(sock, close)
            now = time.monotonic()
            if 200 <= status < 300:
                out["ok"].append((round(now, 6), int(body or 0), client))
            else:
                out["fail"].append((round(now, 6), "non2xx"))
            if not keep:
                sock.close()
                sock = None
        except (OSError, EOFError, ValueError, IndexError) as e:
            kind = "timeout" if isinstance(e, socket.timeout) else phase
            out["fail"].append((round(time.monotonic(), 6), kind))
            if sock is not None:
                sock.close()
                sock = None
        time.sleep(CLIENT_PAUSE_S)
    if sock is not None:
        sock.close()


def client_main(port, style, seconds):
    """`--client`: load 127.0.0.1:port for `seconds`, print every outcome as JSON."""
    sys.setswitchinterval(0.0005)  # a thread with an answer gets the GIL soon
    start = time.monotonic()
    end_at = start + seconds
    outs = [{"ok": [], "fail": []} for _ in range(CLIENTS)]
    threads = [threading.Thread(target=client_thread, daemon=True,
                                args=(n, port, style == "close", end_at, out))
               for n, out in enumerate(outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT_S * 3 + seconds)
    json.dump({"start": start, "end": end_at,
               "ok": sorted(x for o in outs for x in o["ok"]),
               "fail": sorted(x for o in outs for x in o["fail"])}, sys.stdout)


# --- the probe: status on the control socket, as fast as it answers ------------------


def drover_ping(home):
    """One `ping` on drover's control socket; return the pong (a dict)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(PROBE_TIMEOUT_S)
        s.connect(os.path.join(home, "drover.sock"))
        # ping is one of the messages every protocol version reads (protocol::Stable).
        s.sendall(b'{"v":2,"cmd":"ping"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("drover closed the connection without an answer")
            data += chunk
    answer = json.loads(data)
    if answer.get("reply") != "pong":
        raise ValueError(f"drover answered {answer}")
    return answer


def amp_encode(*args):
    """AMP framing (axon): version 1 and the count in one byte, then length-prefixed args."""
    return bytes([0x10 | len(args)]) + b"".join(struct.pack(">I", len(a)) + a for a in args)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("PM2 closed the connection without an answer")
        data += chunk
    return data


_pm2_ids = iter(range(1, 1 << 62))


def pm2_ping(home):
    """One `ping` RPC on PM2's rpc.sock (what `pm2 ping` calls); return its answer."""
    call_id = f"s:update-gap:{next(_pm2_ids)}".encode()
    call = json.dumps({"type": "call", "method": "ping", "args": [{}]}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(PROBE_TIMEOUT_S)
        s.connect(os.path.join(home, "rpc.sock"))
        s.sendall(amp_encode(b"j:" + call, call_id))
        argc = recv_exact(s, 1)[0] & 0xF
        args = [recv_exact(s, struct.unpack(">I", recv_exact(s, 4))[0]) for _ in range(argc)]
    if not args or args[-1] != call_id or not args[0].startswith(b"j:"):
        raise ValueError(f"PM2 answered {args!r}")
    answer = json.loads(args[0][2:])
    if "error" in answer:
        raise ValueError(f"PM2 answered {answer}")
    return answer


class Probe(threading.Thread):
    """Asks `ask()` back to back; keeps the time of every answer and counts failures."""

    def __init__(self, ask):
        super().__init__(daemon=True)
        self.ask = ask
        self.answers = []
        self.errors = {}
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.ask()
                self.answers.append(time.monotonic())
            except (OSError, EOFError, ValueError, IndexError, struct.error) as e:
                kind = type(e).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                time.sleep(PROBE_RETRY_S)

    def stop(self):
        self.stopping.set()
        self.join(PROBE_TIMEOUT_S + 1)


# --- the supervisors ------------------------------------------------------------------


class Drover(rb.Drover):
    def __init__(self, binary, other):
        super().__init__(binary)
        self.binaries = [binary, other]  # updates alternate between the two paths
        self.updates = 0

    def start_app(self, port):
        self.started = True
        self.cmd("start", rb.APP, "-i", str(WORKERS), "--listen", f"127.0.0.1:{port}",
                 "--name", "app", check=True)

    def restart_app(self):
        self.cmd("restart", "app", check=True)

    def ping(self):
        return drover_ping(self.home)

    def supervisor_pid(self):
        return self.ping()["pid"]

    def update_cmd(self):
        self.updates += 1
        target = self.binaries[self.updates % 2]
        return [self.binary, "update", "--binary", target], target

    def own_figure(self):
        """The supervisor's own "did not answer for" of its last update, ms."""
        last = self.ping().get("last_update") or {}
        return last.get("took_ms"), last.get("failure")


class Pm2(rb.Pm2):
    def start_app(self, port):
        self.started = True
        self.env["PORT"] = str(port)
        self.cmd("start", rb.APP, "-i", str(WORKERS), "--name", "app", check=True)

    def restart_app(self):
        self.cmd("restart", "app", check=True)

    def ping(self):
        return pm2_ping(self.home)

    def supervisor_pid(self):
        with open(os.path.join(self.home, "pm2.pid")) as f:
            return int(f.read().strip())

    def update_cmd(self):
        return [rb.PM2_BIN, "update"], None

    def own_figure(self):
        return None, None


def snapshot(sup):
    """Online worker pids, the sum of restart counts, the supervisor's pid and executable."""
    workers = sorted(sup.workers(), key=lambda w: w[0] or 0)
    pid = sup.supervisor_pid()
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = None
    return {"pids": sorted(p for p, status, _ in workers if status == "online" and p),
            "restarts": sum(r for _, _, r in workers), "supervisor": pid, "exe": exe}


def wait_settled(sup, port, not_pids=()):
    """All WORKERS online (none of `not_pids`) and the port answering, or raise."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        pids = sup.online_pids()
        if len(pids) == WORKERS and not set(pids) & set(not_pids) and rb.http_ok(port):
            return pids
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sup.name}: {WORKERS} new workers not online and answering "
                               f"after {READY_DEADLINE_S} s (online: {pids})")
        time.sleep(0.05)


# --- one update under load ------------------------------------------------------------


class Bench(rb.Bench):
    """reload.py's tracking (supervisors, a running load process), plus the probe."""

    def __init__(self):
        super().__init__()
        self.probe = None

    def cleanup(self):
        if self.probe:
            self.probe.stopping.set()
        super().cleanup()


def longest_silence(times, t_update, end):
    """The longest time between two answers (of `times`, sorted) from t_update on (an
    interval that began before it counts whole), when it began, and whether it is still
    open: no answer in the load's last 0.5 s, so that it runs to the load's end and is
    only a lower bound."""
    gap, at = 0.0, t_update
    for a, b in zip(times, times[1:]):
        if b > t_update and b - a > gap:
            gap, at = b - a, a
    back = bool(times) and times[-1] > t_update and end - times[-1] < 0.5
    if not back and (end - times[-1] if times else end - t_update) > gap:
        gap, at = (end - times[-1], times[-1]) if times else (end - t_update, t_update)
    return gap, at, not back


def traffic(load, t_update, t_done):
    """The load's figures around an update that ran from t_update to t_done."""
    ok, fail = load["ok"], load["fail"]
    times = [t for t, _, _ in ok]
    kinds = {}
    for _, kind in fail:
        kinds[kind] = kinds.get(kind, 0) + 1
    gap, gap_at, gap_open = longest_silence(times, t_update, load["end"])
    # The worst client: one kept-alive connection to a worker PM2 is still stopping can
    # go on being answered while every other client is refused.
    client_gap, client_at, client_open = 0.0, t_update, False
    for client in range(CLIENTS):
        mine = [t for t, _, c in ok if c == client]
        g, at, o = longest_silence(mine, t_update, load["end"])
        if g > client_gap:
            client_gap, client_at, client_open = g, at, o
    since = t_update - UPDATE_AT_S + 0.5  # the load's first half second left out

    def rhythm(times):
        return max((b - a for a, b in zip(times, times[1:]) if a >= since and b <= t_update),
                   default=0.0)

    baseline = rhythm(times)
    client_baseline = max(rhythm([t for t, _, c in ok if c == client])
                          for client in range(CLIENTS))
    return {
        "answered": len(ok),
        "failed": sum(n for k, n in kinds.items() if k != "connect"),
        "refused": kinds.get("connect", 0),
        "fail_kinds": kinds,
        "gap_ms": gap * 1000,
        "gap_open": gap_open,
        "gap_began_ms": (gap_at - t_update) * 1000,  # after the update began
        "client_gap_ms": client_gap * 1000,
        "client_gap_open": client_open,
        "client_gap_began_ms": (client_at - t_update) * 1000,
        "baseline_ms": baseline * 1000,
        "client_baseline_ms": client_baseline * 1000,
        "pids_answering_before": sorted({pid for t, pid, _ in ok if t < t_update}),
        "pids_answering_after": sorted({pid for t, pid, _ in ok if t > t_done}),
    }


def measure_update(bench, sup, port, style):
    before = snapshot(sup)
    load = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--client",
                             str(port), style, str(LOAD_S)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=sup.env)
    bench.wrk = load  # reload.py's Bench kills it on any exit
    t0 = time.monotonic()
    time.sleep(max(0.0, t0 + UPDATE_AT_S - PROBE_LEAD_S - time.monotonic()))
    probe = bench.probe = Probe(sup.ping)
    probe.start()
    time.sleep(max(0.0, t0 + UPDATE_AT_S - time.monotonic()))
    cmd, target = sup.update_cmd()
    t_update = time.monotonic()
    res = rb.run(cmd, env=sup.env, timeout=UPDATE_TIMEOUT_S)
    t_done = time.monotonic()
    deadline = t_done + PROBE_DEADLINE_S
    while time.monotonic() < deadline:
        answered = [t for t in probe.answers if t > t_done]
        if answered and time.monotonic() > answered[0] + PROBE_TAIL_S:
            break
        time.sleep(0.01)
    probe.stop()
    bench.probe = None
    answers = probe.answers
    gaps = [b - a for a, b in zip(answers, answers[1:])]
    back = any(t > t_done for t in answers)
    control_gap_ms = (max(gaps) * 1000 if back and gaps else None)
    try:
        out, err = load.communicate(timeout=LOAD_S + CLIENT_TIMEOUT_S * 3 + 10)
    except subprocess.TimeoutExpired:
        load.kill()
        load.communicate()
        raise RuntimeError("the load client did not finish")
    bench.wrk = None
    if load.returncode != 0:
        raise RuntimeError(f"the load client exited {load.returncode}: {err.strip()[-300:]}")
    figures = traffic(json.loads(out), t_update, t_done)

    wait_settled(sup, port)
    after = snapshot(sup)
    took_ms, failure = sup.own_figure()
    result = {
        "style": style,
        "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
        "exit": res.returncode,
        "output": ((res.stdout + res.stderr).strip().splitlines() or [""])[-1][-400:],
        "wall_ms": (t_done - t_update) * 1000,
        "control_gap_ms": control_gap_ms,
        "probe_answers": len(answers),
        "probe_errors": probe.errors,
        "own_figure_ms": took_ms,
        "own_failure": failure,
        **figures,
        "before": before,
        "after": after,
        "workers_kept": before["pids"] == after["pids"] and len(after["pids"]) == WORKERS,
        "supervisor_kept": before["supervisor"] == after["supervisor"],
        "exe_is_new": (after["exe"] == target) if target else None,
    }
    if res.returncode != 0:
        log(f"{sup.name}: {' '.join(cmd)} exited {res.returncode}: {result['output']}")
    return result


def measure_supervisor(bench, sup):
    """Start the 4-worker app, restart it once, then one update per client style."""
    try:
        port = rb.free_port()
        bench.ports.add(port)
        sup.start_app(port)
        first = wait_settled(sup, port)
        sup.restart_app()
        wait_settled(sup, port, not_pids=first)
        return [measure_update(bench, sup, port, style) for style, _ in STYLES]
    finally:
        if bench.wrk and bench.wrk.poll() is None:
            bench.wrk.kill()
            bench.wrk.wait()
        bench.wrk = None
        try:
            pid = sup.supervisor_pid()
        except (OSError, EOFError, ValueError):
            pid = None
        bench.done(sup)
        # `pm2 kill` can return while its daemon is still exiting: let it go before the
        # next measurement (bounded; whatever is left is SIGKILLed at the end).
        deadline = time.monotonic() + 5
        while pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)


# --- report ---------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f_ms(v):
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def f_int(v):
    return "—" if v is None else f"{v:,.0f}"


def ratio(d, p):
    if d is None or p is None:
        return "—"
    if p == 0:
        return "=" if d == 0 else "(PM2: 0)"
    if d == 0:
        return "0"
    r = d / p
    return f"{r:.2f}" if r >= 0.01 else f"{r:.4f}"


def updates(results, sup, style=None):
    return [u for run in results["runs"] for u in run.get(sup, [])
            if style is None or u["style"] == style]


# (key, label, format, style or None for both)
ROWS = [
    ("control_gap_ms", "**control socket gap**: longest time without an answer (probe "
     "back to back)", f_ms, None),
    ("wall_ms", "update command wall time", f_ms, None),
    ("own_figure_ms", "the supervisor's own figure (`drover ping`: \"… ms without answering\")",
     f_ms, None),
]
for _style, _label in STYLES:
    ROWS += [
        ("answered", f"{_label}: requests answered 2xx in {LOAD_S:.0f} s", f_int, _style),
        ("failed", f"{_label}: failed requests (sent; reset, EOF, 2 s timeout, non-2xx)",
         f_int, _style),
        ("refused", f"{_label}: connection attempts refused (a client retries after "
         f"{CLIENT_PAUSE_S * 1000:.0f} ms)", f_int, _style),
        ("gap_ms", f"{_label}: **traffic gap**: longest time no client got a 2xx answer, "
         f"update → load's end ({LOAD_S - UPDATE_AT_S:.0f} s)", f_ms, _style),
        ("client_gap_ms", f"{_label}: longest time one client got no 2xx answer, "
         "update → load's end", f_ms, _style),
        ("baseline_ms", f"{_label}: the load's own rhythm, {UPDATE_AT_S - 0.5:.1f} s "
         "before the update: longest time no client got a 2xx answer", f_ms, _style),
        ("client_baseline_ms", f"{_label}: the same, one client", f_ms, _style),
    ]


def cell(values, fmt, open_flags=()):
    m = med(values)
    text = fmt(m)
    if any(open_flags) and m is not None:
        text = "≥ " + text
    return text, m


def render(results):
    m, v = results["machine"], results["versions"]
    missing = results.get("pm2_missing")
    others = sorted(p for run in results["runs"] for p in run["others_cpu_pct"]) or [math.nan]
    lines = [
        f"- **Date**: {results['date']}; `{results['command']}`, {results['config']['runs']} "
        f"run(s), {results['minutes']} min",
        f"- **Machine**: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Linux "
        f"{m['kernel']}; load average (1 min) {results['loadavg_start']:.2f} at start, "
        f"{results['loadavg_end']:.2f} at end",
        f"- **Other work on the machine** used {others[0]:.0f}–{others[-1]:.0f}% (median "
        f"{statistics.median(others):.0f}%) of its CPU in 0.5 s samples taken before each "
        "supervisor's turn, with nothing of this bench running",
        f"- **Versions**: drover {v['drover']} ({v['drover_commit']}), PM2 {v['pm2']}, "
        f"Node {v['node']}, Python {v['python']}",
        "",
        "| figure | drover | PM2 | drover/PM2 |",
        "|---|---|---|---|",
    ]
    details = ["| figure | drover, each update | PM2, each update |", "|---|---|---|"]
    for key, label, fmt, style in ROWS:
        d_ups, p_ups = updates(results, "drover", style), updates(results, "PM2", style)
        d_vals, p_vals = [u[key] for u in d_ups], [u[key] for u in p_ups]
        flag = {"gap_ms": "gap_open", "client_gap_ms": "client_gap_open"}.get(key)
        open_d = [u[flag] for u in d_ups] if flag else ()
        open_p = [u[flag] for u in p_ups] if flag else ()
        d, dm = cell(d_vals, fmt, open_d)
        p, pm = cell(p_vals, fmt, open_p)
        if missing:
            p, pm = "not measured", None
        lines.append(f"| {label} | {d} | {p} | {ratio(dm, pm)} |")
        each_d = " / ".join(("≥ " if o else "") + fmt(x)
                            for x, o in zip(d_vals, open_d or [False] * len(d_vals)))
        each_p = " / ".join(("≥ " if o else "") + fmt(x)
                            for x, o in zip(p_vals, open_p or [False] * len(p_vals)))
        details.append(f"| {label} | {each_d} | {each_p if not missing else '—'} |")

    def kept(sup, key):
        ups = updates(results, sup)
        if sup == "PM2" and missing:
            return "not measured"
        yes = sum(1 for u in ups if u[key])
        verdict = "yes" if yes == len(ups) else "no" if yes == 0 else "partly"
        return f"{verdict}, {yes} of {len(ups)}"

    def restarts(sup):
        ups = updates(results, sup)
        if sup == "PM2" and missing:
            return "not measured"
        pairs = sorted({(u["before"]["restarts"], u["after"]["restarts"]) for u in ups})
        return ", ".join(f"{a} → {b}" for a, b in pairs)

    lines.append(f"| workers kept (the same {WORKERS} pids after the update) | "
                 f"{kept('drover', 'workers_kept')} | {kept('PM2', 'workers_kept')} | |")
    lines.append(f"| restart counts, sum of the {WORKERS} workers, before → after | "
                 f"{restarts('drover')} | {restarts('PM2')} | |")
    lines.append(f"| supervisor pid kept | {kept('drover', 'supervisor_kept')} | "
                 f"{kept('PM2', 'supervisor_kept')} | |")
    d_ups = updates(results, "drover")
    exe_new = sum(1 for u in d_ups if u["exe_is_new"])
    lines.append(f"| `/proc/<supervisor>/exe` is the new binary afterwards | "
                 f"{'yes' if exe_new == len(d_ups) else 'no'}, {exe_new} of {len(d_ups)} | "
                 "— (node) | |")
    lines += ["", "Medians over every update (the first three rows: both client styles); "
              "every update's values, in run order:", "", *details]
    odd, notes = [], []
    for sup in ("drover", "PM2"):
        for u in updates(results, sup):
            if u["exit"] != 0:
                odd.append(f"{sup}: `{u['command']}` exited {u['exit']}: {u['output']}")
            if u["probe_errors"] and sup == "drover":
                odd.append(f"drover: failed control-socket probes during an update: "
                           f"{u['probe_errors']}")
            if u["fail_kinds"] and sup == "drover":
                odd.append(f"drover: failed requests during an update ({u['style']}): "
                           f"{u['fail_kinds']}")
            if sup == "drover" and not set(u["pids_answering_after"]) <= set(u["before"]["pids"]):
                odd.append(f"drover: pids {u['pids_answering_after']} answered after the update, "
                           f"workers before were {u['before']['pids']}")
    d_ups = updates(results, "drover")
    if d_ups:
        def overlaps(u, key):
            began = u[key + "_began_ms"]
            return began < u["wall_ms"] and began + u[key + "_ms"] > 0
        odd_any = sum(1 for u in d_ups if overlaps(u, "gap"))
        odd_one = sum(1 for u in d_ups if overlaps(u, "client_gap"))
        notes.append(f"drover: the longest silence after the update began overlapped the "
                     f"update command's run in {odd_any} of {len(d_ups)} updates (any "
                     f"client) and {odd_one} of {len(d_ups)} (one client); the rest fell "
                     "later, in the load's own rhythm")
    pm2_probe = {}
    for u in updates(results, "PM2"):
        for k, n in u["probe_errors"].items():
            pm2_probe[k] = pm2_probe.get(k, 0) + n
    if pm2_probe:
        notes.append("PM2's control socket while its daemon was down, failed probes in all: "
                     + ", ".join(f"{k} {n:,}" for k, n in sorted(pm2_probe.items())))
    notes += [f"failed, left out: {f}" for f in results["failures"]]
    if missing:
        notes.append(f"PM2: {missing}")
    lines += [""] + [f"- {n}" for n in odd + notes] if odd or notes else []
    return "\n".join(lines)


# --- setup and the run ----------------------------------------------------------------


def others_cpu_pct(seconds=0.5):
    """How busy the whole machine is, in % of all its CPUs, over `seconds` (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])
    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return 100 * (busy1 - busy0) / max(1, total1 - total0)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cores": len(os.sched_getaffinity(0)), "cpu": model,
            "kernel": os.uname().release, "memory_gb": round(mem_kb / 2**20, 1)}


def versions(drover, pm2_missing):
    pm2 = "unavailable"
    if not pm2_missing:
        with open(os.path.join(rb.PM2_PREFIX, "node_modules", "pm2", "package.json")) as f:
            pm2 = json.load(f)["version"]
    commit = rb.first_line(["git", "-C", rb.ROOT, "rev-parse", "--short", "HEAD"])
    dirty = rb.run(["git", "-C", rb.ROOT, "status", "--porcelain", "--", "src", "Cargo.toml",
                    "Cargo.lock"]).stdout.strip()
    return {
        "drover": rb.first_line([drover, "--version"]).replace("drover ", ""),
        "drover_commit": commit + (" (src modified)" if dirty else ""),
        "pm2": pm2,
        "node": rb.first_line(["node", "--version"]),
        "python": sys.version.split()[0],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="updates per supervisor and client "
                    "style (default 5)")
    ap.add_argument("--no-pm2", action="store_true", help="measure drover only")
    ap.add_argument("--drover", default=os.path.join(rb.ROOT, "target/release/drover"))
    ap.add_argument("--json", metavar="FILE", help="write every update's figures to FILE")
    ap.add_argument("--client", nargs=3, metavar=("PORT", "STYLE", "SECONDS"),
                    help=argparse.SUPPRESS)  # the load process this script starts
    args = ap.parse_args()
    if args.client:
        port, style, seconds = args.client
        client_main(int(port), style, float(seconds))
        return
    if not 1 <= args.runs <= 20:
        ap.error("--runs must be between 1 and 20")
    # Ctrl-C (even when started in the background, where SIGINT comes in ignored),
    # SIGTERM and SIGHUP all unwind through the `finally` below, which stops everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    started = time.monotonic()
    drover = os.path.abspath(args.drover)
    rb.ensure_drover(drover)
    pm2_missing = "not measured (--no-pm2)" if args.no_pm2 else rb.ensure_pm2()
    if pm2_missing:
        log(f"PM2 unavailable: {pm2_missing}")
    if os.getloadavg()[0] > 1.5:
        log(f"the machine is busy (load average {os.getloadavg()[0]:.2f}): the figures "
            "will show it")
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"bench/update_gap.py --runs {args.runs}"
                   + (" --no-pm2" if args.no_pm2 else ""),
        "machine": machine(),
        "versions": versions(drover, pm2_missing),
        "config": {"runs": args.runs, "workers": WORKERS, "load_s": LOAD_S,
                   "update_at_s": UPDATE_AT_S, "clients": CLIENTS,
                   "client_pause_ms": CLIENT_PAUSE_S * 1000},
        "pm2_missing": pm2_missing,
        "loadavg_start": os.getloadavg()[0],
        "runs": [],
        "failures": [],
    }
    bench = Bench()
    copies = tempfile.mkdtemp(prefix="ug", dir="/tmp")
    try:
        # The "new binary": the same build at another path, so that the exec is visible
        # in /proc/<pid>/exe (updates alternate: to the copy, then back).
        other = os.path.join(copies, "drover")
        shutil.copy2(drover, other)
        for n in range(args.runs):
            order = ["drover", "PM2"] if n % 2 == 0 else ["PM2", "drover"]
            run = {"others_cpu_pct": []}
            for name in order:
                if name == "PM2" and pm2_missing:
                    continue
                run["others_cpu_pct"].append(others_cpu_pct())
                sup = bench.add(Drover(drover, other) if name == "drover" else Pm2())
                log(f"run {n + 1}/{args.runs}: {name} ...")
                try:
                    run[name] = measure_supervisor(bench, sup)
                except RuntimeError as e:
                    log(f"{name} failed: {e}")
                    results["failures"].append(f"run {n + 1}, {name}: "
                                               + " ".join(str(e).split())[:300])
                    continue
                for u in run[name]:
                    log(f"  {u['style']}: control gap {f_ms(u['control_gap_ms'])}, command "
                        f"{f_ms(u['wall_ms'])}, traffic gap {f_ms(u['gap_ms'])}, "
                        f"{u['failed']} failed, {u['refused']} refused, workers kept "
                        f"{u['workers_kept']}")
            results["runs"].append(run)
    finally:
        bench.cleanup()
        shutil.rmtree(copies, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()[0]
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    print(render(results))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
