#!/usr/bin/env python3
"""Soak: 10,000 crash-restarts; the supervisor's RSS growth and fd leak (issue 5).

A worker that exits at once (/bin/false) with min_uptime 0 is restarted by the policy
every time (never "unstable", so no backoff and never errored). The supervisor's RSS
and open fds are read after a warm-up of 500 restarts and again at the end.

Usage: bench/soak.py [path/to/drover] [restarts]   (default target/release/drover, 10000)
"""
import os
import subprocess
import sys
import tempfile
import time
import json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/drover")
TARGET = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
WARMUP = 500
DEADLINE_S = 600


def drover(home, *args):
    return subprocess.run([DROVER, *args], env=dict(os.environ, DROVER_HOME=home),
                          check=True, capture_output=True, text=True).stdout


def restarts(home):
    return sum(w["restarts"] for w in json.loads(drover(home, "list", "--json")))


def cost(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def wait_restarts(home, n):
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        r = restarts(home)
        if r >= n:
            return r
        time.sleep(0.2)
    sys.exit(f"only {restarts(home)} restarts after {DEADLINE_S} s")


def main():
    home = tempfile.mkdtemp(prefix="dsoak", dir="/tmp")
    try:
        eco = os.path.join(home, "eco.yaml")
        with open(eco, "w") as f:
            f.write("apps:\n  - name: crash\n    script: /bin/false\n    min_uptime: 0\n"
                    "    out_file: /dev/null\n    error_file: /dev/null\n")
        drover(home, "start", eco)
        pid = int(drover(home, "ping").split("pid ")[1].split(",")[0])
        wait_restarts(home, WARMUP)
        rss0, fds0 = cost(pid)
        t0 = time.time()
        done = wait_restarts(home, TARGET)
        elapsed = time.time() - t0
        rss1, fds1 = cost(pid)
        print(f"{done} crash-restarts ({done - WARMUP} measured in {elapsed:.1f} s, "
              f"{(done - WARMUP) / elapsed:.0f}/s)")
        print()
        print("| figure | after warm-up | after soak | change |")
        print("|---|---|---|---|")
        print(f"| supervisor RSS | {rss0 / 1024:.1f} MB | {rss1 / 1024:.1f} MB | {(rss1 - rss0) / 1024:+.2f} MB |")
        print(f"| supervisor open fds | {fds0} | {fds1} | {fds1 - fds0:+d} |")
    finally:
        subprocess.run([DROVER, "kill"], env=dict(os.environ, DROVER_HOME=home), capture_output=True)


if __name__ == "__main__":
    main()
