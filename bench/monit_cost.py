#!/usr/bin/env python3
"""CPU of `drover monit` itself with 200 workers (issue 13 item 4: under 2% of a core).

Starts 200 `sleep` workers in a temp DROVER_HOME, runs `drover monit` in a detached
80x24 tmux window for 30 s, and prints its CPU time over that window as a percentage of
one core, with the supervisor's over the same window. Local only; everything it started
is stopped at the end.

Usage: bench/monit_cost.py [path/to/drover]   (default: target/release/drover)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/drover")
WORKERS, WINDOW_S = 200, 30
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    home = tempfile.mkdtemp(prefix="dmc", dir="/tmp")
    env = dict(os.environ, DROVER_HOME=home)
    session = "drover-monit-cost"
    try:
        subprocess.run([DROVER, "start", "sleep", "-i", str(WORKERS), "--name", "sleepers",
                        "--min-uptime", "100", "--", "3600"],
                       env=env, check=True, capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                        f"DROVER_HOME={home} {DROVER} monit"], check=True)
        time.sleep(3)
        pid = int(subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"],
                                 capture_output=True, text=True).stdout.split()[0])
        # The pane's shell execs nothing: monit is its child.
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        monit = int(kids[0]) if kids else pid
        sup = int(subprocess.run([DROVER, "ping"], env=env, capture_output=True,
                                 text=True).stdout.split("pid ")[1].split(",")[0])
        m0, s0 = cpu_seconds(monit), cpu_seconds(sup)
        time.sleep(WINDOW_S)
        m1, s1 = cpu_seconds(monit), cpu_seconds(sup)
        print("| process | CPU over 30 s | % of one core |")
        print("|---|---|---|")
        print(f"| drover monit, {WORKERS} workers | {(m1 - m0) * 1000:.0f} ms | {(m1 - m0) / WINDOW_S * 100:.2f}% |")
        print(f"| supervisor, same window | {(s1 - s0) * 1000:.0f} ms | {(s1 - s0) / WINDOW_S * 100:.2f}% |")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        subprocess.run([DROVER, "kill"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
