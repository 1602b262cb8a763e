#!/usr/bin/env python3
"""CLI latency and idle supervisor cost (issue 3's "Fast" figures).

Starts a background supervisor in a temp DROVER_HOME with 10 apps x 2 workers (each
worker a `sleep`, so the figures are the supervisor's own), then measures:
  - wall time of `drover list` and `drover list --json` (median, p90 of 200 runs each);
  - the idle supervisor's RSS, and its wake-ups per second (context switches over 10 s);
  - `drover list` wall time while a `drover stop` waits on a Node worker that ignores
    SIGINT (kill_timeout 8 s): the control loop must not wait with it;
and prints a table. Everything is local; the supervisor is killed at the end.

Usage: bench/supervisor_cost.py [path/to/drover]   (default: target/release/drover)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/drover")
APPS, WORKERS, RUNS, IDLE_S = 10, 2, 200, 10


def drover(home, *args, check=True):
    env = dict(os.environ, DROVER_HOME=home)
    return subprocess.run([DROVER, *args], env=env, check=check, capture_output=True, text=True)


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    # Context switches of every thread of the supervisor, not just the main one.
    for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(l.split()[1]) for l in f if l.startswith(key + ":"))
        fields[key] = str(total)
    return fields


def timed(home, args):
    env = dict(os.environ, DROVER_HOME=home)
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([DROVER, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def list_while_a_stop_is_pending(home):
    """`list` timings while `drover stop` waits on a worker that ignores SIGINT."""
    script = os.path.join(home, "stubborn.js")
    with open(script, "w") as f:
        f.write("process.on('SIGINT', () => {}); setInterval(() => {}, 1000);\n")
    drover(home, "start", script, "--name", "stubborn", "--kill-timeout", "8s")
    deadline = time.time() + 20
    while "online" not in [l for l in drover(home, "list").stdout.splitlines() if "stubborn" in l][0]:
        if time.time() > deadline:
            sys.exit("stubborn never came online")
        time.sleep(0.05)
    env = dict(os.environ, DROVER_HOME=home)
    stop = subprocess.Popen([DROVER, "stop", "stubborn"], env=env, stdout=subprocess.DEVNULL)
    while "stopping" not in drover(home, "list").stdout:
        time.sleep(0.01)
    samples = []
    # Only while the stop is still pending (about 8 s); at most RUNS samples.
    while stop.poll() is None and len(samples) < RUNS:
        t = time.perf_counter()
        out = subprocess.run([DROVER, "list"], env=env, check=True, capture_output=True, text=True)
        took = (time.perf_counter() - t) * 1000
        if stop.poll() is None and "stopping" in out.stdout:
            samples.append(took)
    stop.wait(timeout=30)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)], len(samples)


def main():
    if not os.path.exists(DROVER):
        sys.exit(f"build first: cargo build --release ({DROVER} missing)")
    home = tempfile.mkdtemp(prefix="dbench", dir="/tmp")
    try:
        eco = os.path.join(home, "eco.yaml")
        with open(eco, "w") as f:
            f.write("apps:\n")
            for i in range(APPS):
                f.write(f"  - name: app{i}\n    script: /bin/sleep\n    args: ['100000']\n"
                        f"    instances: {WORKERS}\n")
        drover(home, "start", eco)
        pid = int(drover(home, "ping").stdout.split("pid ")[1].split(",")[0])
        deadline = time.time() + 20
        while time.time() < deadline:
            if drover(home, "list").stdout.count("online") == APPS * WORKERS:
                break
            time.sleep(0.05)
        list_med, list_p90 = timed(home, ["list"])
        json_med, json_p90 = timed(home, ["list", "--json"])
        # Idle: let the CLI's connections settle, then watch for IDLE_S seconds.
        time.sleep(1)
        before = proc_status(pid)
        t0 = time.time()
        time.sleep(IDLE_S)
        after = proc_status(pid)
        elapsed = time.time() - t0
        switches = sum(int(after[k]) - int(before[k])
                       for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
        rss_kb = int(after["VmRSS"].split()[0])
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
        cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        pending_med, pending_p90, pending_n = list_while_a_stop_is_pending(home)
        print(f"drover {drover(home, '--version').stdout.strip()}, {os.cpu_count()} cores, "
              f"{APPS} apps x {WORKERS} workers, {RUNS} runs per command")
        print()
        print("| figure | drover | target | PM2 (PM2-BASELINE.md) |")
        print("|---|---|---|---|")
        print(f"| `list` wall time, median (p90) | {list_med:.1f} ms ({list_p90:.1f}) | < 10 ms | 134 ms |")
        print(f"| `list --json` wall time, median (p90) | {json_med:.1f} ms ({json_p90:.1f}) | < 10 ms | 125 ms |")
        print(f"| idle supervisor RSS | {rss_kb / 1024:.1f} MB | < 10 MB | 56 MB |")
        print(f"| idle wake-ups | {switches / elapsed:.2f} /s | <= 1 /s | |")
        print(f"| supervisor CPU since start | {cpu_s:.2f} s | | |")
        print(f"| `list` while a stop waits on kill_timeout 8 s, median (p90, n={pending_n}) "
              f"| {pending_med:.1f} ms ({pending_p90:.1f}) | < 10 ms | |")
    finally:
        drover(home, "kill", check=False)


if __name__ == "__main__":
    main()
