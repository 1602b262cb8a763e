#!/usr/bin/env python3
"""What watching many workers costs the supervisor (issue 13 item 7).

For 200 and 1,000 workers (apps of 100 `sleep` workers each, so the figures are the
supervisor's own), in a temp DROVER_HOME, it measures:
  - `start` of every app → all listed online (wall time);
  - the supervisor's CPU time over 30 s idle (utime + stime from /proc/<pid>/stat);
  - its RSS when idle;
  - `drover list` wall time (median of 20) and `list --json`;
  - with max_memory_restart on one app: the time from a worker's RSS crossing the limit
    to its replacement (a Node worker allocating 200 MB at once, limit 150 MB).
and prints a table. Everything is local and bounded; the supervisor is killed at the end.

Usage: bench/sampling.py [path/to/drover] [counts…]   (default: target/release/drover 200 1000)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/drover")
COUNTS = [int(c) for c in sys.argv[2:]] or [200, 1000]
IDLE_S = 30
PER_APP = 100
TICK = os.sysconf("SC_CLK_TCK")


def drover(home, *args, check=True):
    env = dict(os.environ, DROVER_HOME=home)
    return subprocess.run([DROVER, *args], env=env, check=check, capture_output=True, text=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def supervisor_pid(home):
    out = drover(home, "ping").stdout
    return int(out.split("pid ")[1].split(",")[0])


def online(home, n):
    import json
    workers = json.loads(drover(home, "list", "--json").stdout)
    return sum(1 for w in workers if w["status"] == "online") >= n


def measure(n):
    home = tempfile.mkdtemp(prefix="ds", dir="/tmp")
    row = {"workers": n}
    try:
        drover(home, "ping")
        apps = [
            f"  - name: s{i}\n    script: sleep\n    args: ['3600']\n    instances: {PER_APP}\n    exec_mode: fork\n    min_uptime: 100\n"
            for i in range(n // PER_APP)
        ]
        eco = os.path.join(home, "eco.yaml")
        with open(eco, "w") as f:
            f.write("apps:\n" + "".join(apps))
        t = time.monotonic()
        drover(home, "start", eco)
        while not online(home, n):
            if time.monotonic() - t > 120:
                raise SystemExit(f"{n} workers not online in 120 s")
            time.sleep(0.1)
        row["start_s"] = time.monotonic() - t
        pid = supervisor_pid(home)
        time.sleep(3)  # the start's own work is done
        before = cpu_seconds(pid)
        time.sleep(IDLE_S)
        row["idle_cpu_ms"] = (cpu_seconds(pid) - before) * 1000
        row["rss_mb"] = rss_mb(pid)
        for args, key in ((["list"], "list_ms"), (["list", "--json"], "json_ms")):
            samples = []
            for _ in range(20):
                t = time.perf_counter()
                drover(home, *args)
                samples.append((time.perf_counter() - t) * 1000)
            row[key] = statistics.median(samples)
    finally:
        drover(home, "kill", check=False)
    return row


def memory_reaction():
    """Seconds from a worker crossing max_memory_restart to its replacement."""
    home = tempfile.mkdtemp(prefix="dm", dir="/tmp")
    script = os.path.join(home, "grow.js")
    with open(script, "w") as f:
        f.write(
            "const fs = require('fs');\n"
            "setTimeout(() => { global.b = Buffer.alloc(200 << 20, 1);"
            " fs.writeFileSync(process.env.MARK, String(Date.now())); }, 1500);\n"
            "setInterval(() => {}, 1000);\n"
        )
    mark = os.path.join(home, "crossed")
    try:
        env = dict(os.environ, DROVER_HOME=home, MARK=mark)
        subprocess.run([DROVER, "start", script, "--max-memory-restart", "150M"], env=env,
                       check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            import json
            workers = json.loads(drover(home, "list", "--json").stdout)
            if workers and workers[0]["restarts_by_cause"]["memory"] >= 1:
                with open(mark) as f:
                    crossed = int(f.read()) / 1000
                return time.time() - crossed
            time.sleep(0.02)
        return float("nan")
    finally:
        drover(home, "kill", check=False)


def main():
    rows = [measure(n) for n in COUNTS]
    print("| workers | start → all online | CPU over 30 s idle | RSS idle | `list` median | `list --json` median |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['start_s']:.2f} s | {r['idle_cpu_ms']:.0f} ms | "
              f"{r['rss_mb']:.1f} MB | {r['list_ms']:.1f} ms | {r['json_ms']:.1f} ms |")
    print()
    reaction = memory_reaction()
    print(f"memory limit: replaced {reaction:.2f} s after crossing it (upper bound: "
          "includes up to 20 ms of polling)")


if __name__ == "__main__":
    main()
