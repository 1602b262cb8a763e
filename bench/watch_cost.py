#!/usr/bin/env python3
"""What `watch` costs (issue 13 item 5).

An app (`sleep`, 2 workers) watching a tree of 10,000 files in 500 directories, plus a
node_modules of 10,000 more that `ignore_watch` leaves out (the default), in a temp
DROVER_HOME. It measures the supervisor's CPU over 30 s idle, then the time from
writing one file to the app's reload being under way (a worker's restarts_by_cause.reload
grows), median of 5, with watch_delay 200 ms (the figure includes it), and the reloads a
burst of 1,000 writes causes. Prints a table. Local only; stops what it started.

Usage: bench/watch_cost.py [path/to/drover]   (default: target/release/drover)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/drover")
TICK = os.sysconf("SC_CLK_TCK")


def drover(home, *args):
    return subprocess.run([DROVER, *args], env=dict(os.environ, DROVER_HOME=home),
                          check=True, capture_output=True, text=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def reloads(home):
    workers = json.loads(drover(home, "list", "--json").stdout)
    return min(w["restarts_by_cause"]["reload"] for w in workers)


def wait_reloads(home, n, limit=30):
    t = time.monotonic()
    while reloads(home) < n:
        if time.monotonic() - t > limit:
            raise SystemExit(f"no reload {n} within {limit} s")
        time.sleep(0.01)


def main():
    home = tempfile.mkdtemp(prefix="dw", dir="/tmp")
    app = os.path.join(home, "app")
    for d in range(500):
        os.makedirs(os.path.join(app, "src", f"d{d}"))
        for f in range(20):
            open(os.path.join(app, "src", f"d{d}", f"f{f}.js"), "w").close()
        os.makedirs(os.path.join(app, "node_modules", f"m{d}"))
        for f in range(20):
            open(os.path.join(app, "node_modules", f"m{d}", f"f{f}.js"), "w").close()
    with open(os.path.join(home, "eco.yaml"), "w") as f:
        f.write(f"apps:\n  - name: w\n    script: sleep\n    args: ['3600']\n    cwd: {app}\n"
                "    instances: 2\n    exec_mode: fork\n    min_uptime: 100\n    watch: true\n"
                "    watch_delay: 200ms\n")
    try:
        drover(home, "start", os.path.join(home, "eco.yaml"))
        pid = int(drover(home, "ping").stdout.split("pid ")[1].split(",")[0])
        time.sleep(3)
        c0 = cpu_seconds(pid)
        time.sleep(30)
        idle_ms = (cpu_seconds(pid) - c0) * 1000
        times = []
        for i in range(5):
            n = reloads(home)
            time.sleep(0.5)
            t = time.monotonic()
            with open(os.path.join(app, "src", "d0", "f0.js"), "w") as f:
                f.write(f"// {i}\n")
            wait_reloads(home, n + 1)
            times.append((time.monotonic() - t) * 1000)
        n = reloads(home)
        time.sleep(0.5)
        for d in range(50):
            for f in range(20):
                with open(os.path.join(app, "src", f"d{d}", f"f{f}.js"), "w") as fh:
                    fh.write("// burst\n")
        wait_reloads(home, n + 1)
        time.sleep(2)
        burst = reloads(home) - n
        print("| figure | value |")
        print("|---|---|")
        print(f"| files watched (directories) | 10,000 (500), 10,000 more in node_modules left out |")
        print(f"| supervisor CPU over 30 s idle | {idle_ms:.0f} ms |")
        print(f"| one change → reload under way, median of 5 (watch_delay 200 ms) | {statistics.median(times):.0f} ms |")
        print(f"| reloads for a burst of 1,000 writes | {burst} |")
    finally:
        subprocess.run([DROVER, "kill"], env=dict(os.environ, DROVER_HOME=home), capture_output=True)


if __name__ == "__main__":
    main()
