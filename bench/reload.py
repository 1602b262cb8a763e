#!/usr/bin/env python3
"""Reloads under load: how many requests fail when a 2-worker app is reloaded 3 times.

For each client style (keep-alive `wrk -t2 -c64 -d10s`, and a new connection per request
`wrk -t2 -c16 -d10s -H 'Connection: close'`) and each supervisor (drover, PM2 cluster
mode), on a fresh port and a fresh supervisor home:
  1. start bench/app.js with 2 workers (an unmodified Node app, graceful SIGINT handler),
  2. wait until both workers are online and the port answers,
  3. run wrk for 10 s and reload the app at ~2 s, ~5 s and ~8 s,
  4. read wrk's totals (requests, socket errors, non-2xx), then stop everything;
and prints a markdown table, drover and PM2 side by side, with the machine and versions.

drover: target/release/drover (built if missing), DROVER_HOME in a temp dir under /tmp,
`drover reload app` (`drover restart app` where this build has no `reload`, said in the
table), `drover kill` at the end.
PM2: pm2@$PM2_VERSION (7.0.4 by default) from npm into bench/.pm2-install, PM2_HOME in a
temp dir (never ~/.pm2), `pm2 start -i 2`, `pm2 reload app`, `pm2 kill` at the end. If it
cannot be installed, its columns say so and drover's are still printed.
wrk: Debian's package, installed with apt-get if missing.

Everything listens on 127.0.0.1 with ports from the OS. Every process the script starts
is stopped on exit, Ctrl-C included. Takes about 2 minutes: 4 runs of ~12 s, and ~60 s
for the first Connection: close run's sockets to leave TIME_WAIT before the second.

Usage: bench/reload.py [--drover PATH] [--no-pm2]
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
APP = os.path.join(BENCH, "app.js")
PM2_VERSION = os.environ.get("PM2_VERSION", "7.0.4")
PM2_PREFIX = os.path.join(BENCH, ".pm2-install")
PM2_BIN = os.path.join(PM2_PREFIX, "node_modules", ".bin", "pm2")

WORKERS = 2
DURATION_S = 10
RELOAD_AT_S = (2, 5, 8)
CLIENTS = [  # (label, wrk arguments before the URL)
    ("keep-alive, -c64", ["-t2", "-c64", f"-d{DURATION_S}s"]),
    ("Connection: close, -c16", ["-t2", "-c16", f"-d{DURATION_S}s", "-H", "Connection: close"]),
]
READY_DEADLINE_S = 30
# A Connection: close run leaves ~100k+ sockets in TIME_WAIT for 60 s, and the next
# run's connect() rate drops with them: each run first waits for the TIME_WAIT sockets
# of the ports this script used to drain, so every column starts from the same state.
# (Only ours: other work on the machine is out of our hands.)
TIME_WAIT_MAX = 1000
TIME_WAIT_DEADLINE_S = 75
COMMAND_TIMEOUT_S = 60  # start / reload / kill; a reload takes ~1 s
# Every process started here carries this in its environment (workers inherit it), so
# cleanup can find, by pid, whatever a supervisor's own `kill` left behind.
MARKER = f"DROVER_BENCH_RELOAD={uuid.uuid4().hex}"


def log(msg):
    print(f"[reload-bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env=None, timeout=COMMAND_TIMEOUT_S, check=False):
    """Run a command to completion; return CompletedProcess (text), never hang."""
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        res = subprocess.CompletedProcess(cmd, 124, e.stdout or "", f"timed out after {timeout}s")
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()[-500:]}")
    return res


def http_ok(port):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return r.status == 200 and r.read() == b"ok"
    except OSError:
        return False


def time_wait_sockets(ports):
    """How many TCP sockets to or from one of `ports` are in TIME_WAIT."""
    hex_ports = {f"{p:04X}" for p in ports}
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)  # header
                for line in f:
                    _, local, remote, state = line.split(None, 4)[:4]
                    if state == "06" and (local[-4:] in hex_ports or remote[-4:] in hex_ports):
                        count += 1
        except OSError:
            pass
    return count


def wait_time_wait_drained(ports):
    """Wait (bounded) until few TIME_WAIT sockets of `ports` are left; return how many."""
    deadline = time.monotonic() + TIME_WAIT_DEADLINE_S
    count = time_wait_sockets(ports)
    if count > TIME_WAIT_MAX:
        log(f"waiting for {count:,} sockets of the last runs to leave TIME_WAIT "
            f"(up to {TIME_WAIT_DEADLINE_S} s)")
    while count > TIME_WAIT_MAX and time.monotonic() < deadline:
        time.sleep(1)
        count = time_wait_sockets(ports)
    return count


# --- supervisors -------------------------------------------------------------------


class Supervisor:
    """One supervisor in its own temp home: start the app, reload it, list pids, kill."""

    name = ""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # short: unix socket paths
        self.env = dict(os.environ)
        key, value = MARKER.split("=", 1)
        self.env[key] = value
        self.started = False
        self.kill_timeout = 30  # `kill` of 1,000 workers takes longer: callers raise it

    def cmd(self, *args, timeout=COMMAND_TIMEOUT_S, check=False):
        return run([*self.base(), *args], env=self.env, timeout=timeout, check=check)

    def wait_ready(self, port):
        """Both workers online and the port answering, or raise."""
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if len(self.online_pids()) == WORKERS and http_ok(port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: app not ready after {READY_DEADLINE_S}s "
                           f"(online pids {self.online_pids()}, http {http_ok(port)})")

    def online_pids(self):
        return sorted(pid for pid, status, _ in self.workers() if status == "online" and pid)

    def cleanup(self):
        if self.started:
            # `drover kill` / `pm2 kill`: apps + daemon
            res = self.cmd("kill", timeout=self.kill_timeout)
            if res.returncode != 0:
                log(f"{self.name} kill exited {res.returncode}: {res.stderr.strip()[-300:]}")
            self.started = False
        shutil.rmtree(self.home, ignore_errors=True)


class Drover(Supervisor):
    name = "drover"

    def __init__(self, binary):
        super().__init__()
        self.binary = binary
        self.env["DROVER_HOME"] = self.home
        has_reload = run([binary, "reload", "--help"], env=self.env).returncode == 0
        self.reload_args = ["reload", "app"] if has_reload else ["restart", "app"]
        self.note = "" if has_reload else "reload not available: restart used"

    def base(self):
        return [self.binary]

    def start(self, port):
        self.started = True
        self.cmd("start", APP, "-i", str(WORKERS), "--listen", f"127.0.0.1:{port}",
                 "--name", "app", check=True)

    def workers(self):
        res = self.cmd("list", "--json", timeout=10)
        try:
            return [(w["pid"], w["status"], w["restarts"]) for w in json.loads(res.stdout)]
        except (ValueError, KeyError, TypeError):
            return []


class Pm2(Supervisor):
    name = "PM2"
    note = ""
    reload_args = ["reload", "app"]

    def __init__(self):
        super().__init__()
        self.env["PM2_HOME"] = self.home

    def base(self):
        return [PM2_BIN]

    def start(self, port):
        self.started = True
        self.env["PORT"] = str(port)
        self.cmd("start", APP, "-i", str(WORKERS), "--name", "app", check=True)

    def workers(self):
        res = self.cmd("jlist", timeout=20)
        try:
            procs = json.loads(res.stdout)
            return [(p["pid"], p["pm2_env"]["status"], p["pm2_env"]["restart_time"])
                    for p in procs]
        except (ValueError, KeyError, TypeError):
            return []


# --- one measurement ---------------------------------------------------------------

WRK_PATTERNS = {
    "requests": r"(\d+) requests in",
    "rps": r"Requests/sec:\s+([\d.]+)",
    "sock": r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    "non2xx": r"Non-2xx or 3xx responses: (\d+)",
}


def parse_wrk(out):
    m = {k: re.search(p, out) for k, p in WRK_PATTERNS.items()}
    if not m["requests"]:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    sock = [int(x) for x in m["sock"].groups()] if m["sock"] else [0, 0, 0, 0]
    return {
        "requests": int(m["requests"].group(1)),
        "rps": float(m["rps"].group(1)) if m["rps"] else 0.0,
        "connect": sock[0], "read": sock[1], "write": sock[2], "timeout": sock[3],
        "non2xx": int(m["non2xx"].group(1)) if m["non2xx"] else 0,
    }


class Bench:
    def __init__(self):
        self.wrk = None  # the running wrk, to stop on Ctrl-C
        self.supervisors = []
        self.ports = set()  # every port an app listened on

    def add(self, sup):
        """Track `sup` so that it is stopped on any exit."""
        self.supervisors.append(sup)
        return sup

    def done(self, sup):
        sup.cleanup()
        self.supervisors.remove(sup)

    def measure(self, sup, wrk_args):
        """Start the app under `sup`, load it while reloading 3 times, stop it."""
        try:
            return self._measure(sup, wrk_args)
        finally:
            if self.wrk and self.wrk.poll() is None:
                self.wrk.kill()
                self.wrk.wait()
            self.wrk = None
            self.done(sup)

    def _measure(self, sup, wrk_args):
        port = free_port()
        self.ports.add(port)
        sup.start(port)
        sup.wait_ready(port)
        pids_before = sup.online_pids()

        url = f"http://127.0.0.1:{port}/"
        t0 = time.monotonic()
        self.wrk = subprocess.Popen(["wrk", *wrk_args, url], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL)
        reloads = []  # (exit code, seconds)
        for at in RELOAD_AT_S:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            t = time.monotonic()
            res = sup.cmd(*sup.reload_args)
            reloads.append((res.returncode, time.monotonic() - t))
            if res.returncode != 0:
                log(f"{sup.name} {' '.join(sup.reload_args)} exited {res.returncode}: "
                    f"{(res.stderr or res.stdout).strip()[-300:]}")
        try:
            out, _ = self.wrk.communicate(timeout=DURATION_S + 30)
        except subprocess.TimeoutExpired:
            self.wrk.kill()
            out, _ = self.wrk.communicate()
            raise RuntimeError(f"wrk did not finish:\n{out}")
        self.wrk = None

        result = parse_wrk(out)
        result["reloads"] = reloads
        workers = sup.workers()
        result["restarts"] = sum(r for _, _, r in workers)
        result["replaced"] = not set(pids_before) & set(sup.online_pids())
        result["answers_after"] = http_ok(port)
        return result

    def cleanup(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut it short
        if self.wrk and self.wrk.poll() is None:
            self.wrk.kill()
            self.wrk.wait()
        for sup in list(self.supervisors):
            sup.cleanup()
        kill_marked()


def kill_marked():
    """SIGKILL, by pid, any process still carrying this run's marker (a last resort)."""
    needle, killed = MARKER.encode(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/cmdline", "rb") as c:
                        cmdline = c.read().replace(b"\0", b" ").decode(errors="replace")
                    os.kill(int(entry), signal.SIGKILL)
                    killed += 1
                    if killed <= 5:  # bench/compare's 1,000 `sleep`s: a few, then a count
                        log(f"killed leftover process {entry}: {cmdline[:200]}")
        except OSError:
            pass
    if killed > 5:
        log(f"killed {killed} leftover processes in all")


# --- setup: wrk, drover, PM2 -------------------------------------------------------


def ensure_wrk():
    if shutil.which("wrk"):
        return
    log("wrk missing: apt-get install -y wrk")
    if run(["apt-get", "install", "-y", "wrk"], timeout=300).returncode != 0:
        run(["apt-get", "update"], timeout=300)
        run(["apt-get", "install", "-y", "wrk"], timeout=300)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed and apt-get could not install it")


def ensure_drover(binary):
    if os.path.exists(binary):
        return
    log(f"{binary} missing: cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)


def ensure_pm2():
    """Return None when pm2@PM2_VERSION is usable, else why not."""
    pkg = os.path.join(PM2_PREFIX, "node_modules", "pm2", "package.json")
    try:
        with open(pkg) as f:
            if json.load(f)["version"] == PM2_VERSION and os.path.exists(PM2_BIN):
                return None
    except (OSError, ValueError, KeyError):
        pass
    if not shutil.which("npm"):
        return "npm not found"
    log(f"installing pm2@{PM2_VERSION} into {os.path.relpath(PM2_PREFIX, ROOT)}")
    res = run(["npm", "install", "--prefix", PM2_PREFIX, "--no-audit", "--no-fund",
               "--save-exact", "--loglevel=error", f"pm2@{PM2_VERSION}"], timeout=300)
    if res.returncode != 0 or not os.path.exists(PM2_BIN):
        errors = [l for l in res.stderr.splitlines() if l.strip()] or ["(no message)"]
        return f"`npm install pm2@{PM2_VERSION}` failed: {errors[0].strip()[:160]}"
    return None


def first_line(cmd):
    try:
        res = run(cmd, timeout=30)
    except OSError as e:
        return f"({e})"
    lines = (res.stdout + res.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


# --- report --------------------------------------------------------------------------


def fmt_int(n):
    return f"{n:,}"


def column(result, sup_note, reload_cmd):
    """The cells of one column, in ROWS order."""
    if isinstance(result, str):  # "unavailable" or "failed", explained under the table
        return [result] + ["—"] * (len(ROWS) - 1)
    codes = [c for c, _ in result["reloads"]]
    secs = " / ".join(f"{s:.2f}" for _, s in result["reloads"])
    failed_reloads = sum(1 for c in codes if c != 0)
    errors = result["connect"] + result["read"] + result["write"] + result["timeout"]
    cmd = f"`{reload_cmd}`" + (f" ({sup_note})" if sup_note else "")
    return [
        cmd,
        fmt_int(result["requests"]),
        fmt_int(round(result["rps"])),
        f"{result['connect']} / {result['read']} / {result['write']} / {result['timeout']}",
        fmt_int(result["non2xx"]),
        f"**{fmt_int(errors + result['non2xx'])}**",
        secs + (f" ({failed_reloads} failed)" if failed_reloads else ""),
        f"{result['restarts']}" + ("" if result["replaced"] else " (old pids still up)"),
        "yes" if result["answers_after"] else "**no**",
    ]


ROWS = [
    "reload command",
    "requests in 10 s",
    "req/s",
    "socket errors: connect / read / write / timeout",
    "non-2xx",
    "failed requests (errors + non-2xx)",
    "reload command wall time, s (each)",
    "worker restarts counted after (expect 6)",
    "app answers afterwards",
]


def print_report(results, header, notes):
    print(header)
    print()
    cols = []  # (heading, cells)
    for label, _ in CLIENTS:
        for sup_name in ("drover", "PM2"):
            result, note, reload_cmd = results[(label, sup_name)]
            cols.append((f"{label}: {sup_name}", column(result, note, reload_cmd)))
    print("| figure | " + " | ".join(h for h, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for i, row in enumerate(ROWS):
        print(f"| {row} | " + " | ".join(cells[i] for _, cells in cols) + " |")
    print()
    print(f"wrk {shlex.join(CLIENTS[0][1])} / {shlex.join(CLIENTS[1][1])} against {WORKERS} "
          f"workers of bench/app.js, reloaded at ~{', ~'.join(map(str, RELOAD_AT_S))} s; "
          "each cell a fresh supervisor on a fresh port.")
    for note in notes:
        print(f"\n- {note}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drover", default=os.path.join(ROOT, "target/release/drover"))
    ap.add_argument("--no-pm2", action="store_true", help="measure drover only")
    args = ap.parse_args()
    # Ctrl-C (even when started in the background, where SIGINT comes in ignored),
    # SIGTERM and SIGHUP all unwind through the `finally` below, which stops everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))

    ensure_wrk()
    ensure_drover(args.drover)
    pm2_missing = "not measured (--no-pm2)" if args.no_pm2 else ensure_pm2()
    if pm2_missing:
        log(f"PM2 unavailable: {pm2_missing}")

    bench = Bench()
    results = {}
    notes = [f"PM2 unavailable: {pm2_missing}".replace("|", "/")] if pm2_missing else []
    try:
        # Versions. `pm2 --version` spawns PM2's daemon in a fresh PM2_HOME (after a
        # banner), so it runs in a throwaway home that is then `pm2 kill`ed.
        pm2_version = "unavailable"
        if not pm2_missing:
            probe = bench.add(Pm2())
            probe.started = True
            out = probe.cmd("--version").stdout
            found = re.findall(r"^\d+\.\d+\.\d+\S*$", out, re.M)
            pm2_version = found[-1] if found else "?"
            bench.done(probe)
        drover_version = first_line([args.drover, "--version"])
        node_version = first_line(["node", "--version"])
        wrk_version = first_line(["wrk", "-v"]).split(" Copyright")[0]
        header = "\n".join([
            f"machine: nproc {len(os.sched_getaffinity(0))}, Linux {os.uname().release}",
            f"versions: {drover_version}; pm2 {pm2_version}; node {node_version}; {wrk_version}",
        ])
        for label, wrk_args in CLIENTS:
            for sup_name in ("drover", "PM2"):
                if sup_name == "PM2" and pm2_missing:
                    results[(label, sup_name)] = ("**unavailable**", "", "")
                    continue
                left = wait_time_wait_drained(bench.ports)
                if left > TIME_WAIT_MAX:
                    notes.append(f"{label}, {sup_name}: started with {left:,} sockets "
                                 "still in TIME_WAIT (connect rate may be lower)")
                sup = bench.add(Drover(args.drover) if sup_name == "drover" else Pm2())
                reload_cmd = f"{sup_name.lower()} {' '.join(sup.reload_args)}"
                log(f"{label}: {sup_name} ({reload_cmd}) ...")
                try:
                    res = bench.measure(sup, wrk_args)
                except RuntimeError as e:
                    log(f"{sup_name} failed: {e}")
                    res = "**failed**"
                    notes.append(f"{label}, {sup_name} failed: "
                                 + " ".join(str(e).split())[:300].replace("|", "/"))
                results[(label, sup_name)] = (res, sup.note, reload_cmd)
    finally:
        bench.cleanup()
    print_report(results, header, notes)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
