#!/usr/bin/env python3
"""Python servers under drover: throughput, and failed requests across reloads.

For each server of tests/frameworks/ (FastAPI under uvicorn, FastAPI under gunicorn's
UvicornWorker, Flask under gunicorn), 2 drover workers on 127.0.0.1:0:
  1. throughput: `wrk -t2 -c32 -d5s` (keep-alive) on `/`;
  2. reloads: the same wrk run for 10 s with `drover reload` at ~2 s, ~5 s and ~8 s;
    failed = wrk's socket errors + non-2xx.
Then the baseline the README's uvicorn recipe is measured against: plain
`uvicorn --port` (2 workers, uvicorn's own --workers), throughput only.

Needs the test venv that `.ci/run` builds (target/test-deps/venv) and wrk (Debian's
package, installed with apt-get if missing). Everything listens on 127.0.0.1 with ports
from the OS; every process started is stopped at the end. Takes about 1.5 minutes.

Usage: bench/python_servers.py [--drover PATH]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
APPS = os.path.join(ROOT, "tests", "frameworks")
VENV = os.path.join(ROOT, "target", "test-deps", "venv", "bin")

SERVERS = [  # (label, program, args)
    ("FastAPI, uvicorn --fd 3", "uvicorn", ["fastapi_app:app", "--fd", "3", "--no-access-log"]),
    ("FastAPI, gunicorn -k UvicornWorker", "gunicorn",
     ["-k", "uvicorn.workers.UvicornWorker", "fastapi_app:app"]),
    ("Flask, gunicorn (sync)", "gunicorn", ["flask_app:app"]),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, seconds, during=None):
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if during:
        during()
    out, _ = proc.communicate(timeout=seconds + 30)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return reqs, rate, failed


def wait_serving(url, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def under_drover(drover, label, program, args):
    home = tempfile.mkdtemp(prefix="drover-bench-")
    env = dict(os.environ, DROVER_HOME=home, PATH=VENV + os.pathsep + os.environ["PATH"])
    run = lambda *a: subprocess.run([drover, *a], env=env, check=True, capture_output=True, text=True)
    try:
        run("start", os.path.join(VENV, program), "-i", "2", "--listen", "127.0.0.1:0",
            "--name", "py", "--cwd", APPS, "--", *args)
        deadline = time.time() + 30
        while True:
            workers = json.loads(run("list", "--json").stdout)
            if len(workers) == 2 and all(w["status"] == "online" for w in workers):
                break
            if time.time() > deadline:
                raise RuntimeError(f"{label}: workers not online: {workers}")
            time.sleep(0.05)
        url = "http://127.0.0.1:%d/" % int(workers[0]["listen"].rsplit(":", 1)[1])
        wait_serving(url)
        _, rate, _ = wrk(url, 5)

        def reloads():
            start = time.time()
            for at in (2, 5, 8):
                time.sleep(max(0, start + at - time.time()))
                run("reload", "py")

        reqs, _, failed = wrk(url, 10, during=reloads)
        return rate, reqs, failed
    finally:
        subprocess.run([drover, "kill"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def plain_uvicorn():
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(VENV, "uvicorn"), "fastapi_app:app", "--port", str(port), "--host", "127.0.0.1",
         "--workers", "2", "--no-access-log"],
        cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_serving(url)
        _, rate, _ = wrk(url, 5)
        return rate
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--drover", default=os.path.join(ROOT, "target", "release", "drover"))
    opts = parser.parse_args()
    if not os.path.exists(opts.drover):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    if not os.path.isdir(VENV):
        sys.exit("the test venv is missing: run `bash .ci/run` first")
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)

    rows = [(label, *under_drover(opts.drover, label, program, args)) for label, program, args in SERVERS]
    baseline = plain_uvicorn()
    print(f"2 workers each, wrk -t2 -c32 (keep-alive); {os.cpu_count()} CPUs\n")
    print("| server | req/s | requests during 3 reloads (10 s) | failed |")
    print("|---|---|---|---|")
    for label, rate, reqs, failed in rows:
        print(f"| {label} under drover | {rate:,.0f} | {reqs:,} | {failed} |")
    print(f"| FastAPI, plain `uvicorn --port --workers 2` (no drover) | {baseline:,.0f} | - | - |")


if __name__ == "__main__":
    main()
