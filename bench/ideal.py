#!/usr/bin/env python3
"""The ideal reference of bench/compare: N plain node processes, no supervisor.

  ideal.py --port P -n N SCRIPT   binds N SO_REUSEPORT listeners on 127.0.0.1:P and
                                   starts `node SCRIPT` N times, each with one of them as
                                   fd 3 (bench/ideal.js makes the app's listen() use it);
  ideal.py --out-dir D -n N SCRIPT starts `node SCRIPT` N times, instance i's stdout
                                   appended to D/logs-out-i.log (node -> file).

Each process gets NODE_APP_INSTANCE=i. The launcher waits for its children; on SIGTERM
or SIGINT it SIGKILLs them and exits. bench/compare starts it in a session of its own,
so that it and its node processes are scheduled as one group, like a supervisor and its
workers (Linux autogroups).
"""
import argparse
import os
import shutil
import signal
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--out-dir")
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("script")
    args = ap.parse_args()
    node = shutil.which("node") or "node"
    pids = []

    def stop(*_):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(args.n):
        env = dict(os.environ, NODE_APP_INSTANCE=str(i))
        out = os.path.join(args.out_dir, f"logs-out-{i}.log") if args.out_dir else os.devnull
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)]
        sock = None
        if args.port:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", args.port))
            sock.listen(511)
            fd = sock.fileno() if sock.fileno() != 3 else os.dup(sock.fileno())
            actions.append((os.POSIX_SPAWN_DUP2, fd, 3))  # dup2 clears close-on-exec
        pids.append(os.posix_spawn(node, [node, args.script], env, file_actions=actions))
        if sock:
            sock.close()  # the child has it
    for _ in pids:
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    main()
