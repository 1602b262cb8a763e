#!/usr/bin/env python3
"""A Python 3.11 HTTP worker (stdlib only) that serves on the socket drover passes as fd 3.

drover binds the app's address once and starts each worker with the listener as fd 3,
LISTEN_FDS=1 and LISTEN_PID=<the worker's pid> (the systemd socket-activation protocol).
Run alone, it binds 127.0.0.1:$PORT (default 3000) instead.
"""
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def listener() -> socket.socket:
    # fd 3 is ours only if LISTEN_PID is our pid: a child of ours inherits the environment
    # but must not take it (sd_listen_fds semantics). Then unset the variables.
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        for var in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
        sock = socket.socket(fileno=3)  # TCP v4/v6 or Unix: read from the fd itself
        sock.set_inheritable(False)  # our own children don't get the listener
        return sock
    return socket.create_server(("127.0.0.1", int(os.environ.get("PORT", "3000"))))


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer around a socket that is already bound and listening."""

    # ThreadingHTTPServer's handler threads are daemons, which server_close() does not
    # join: the process would exit with a request accepted but not answered (the client
    # sees the connection close with no response). Joined, every accepted request is
    # answered before the worker exits: what a zero-downtime reload needs.
    daemon_threads = False

    def __init__(self, sock: socket.socket):
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()  # the fresh socket TCPServer.__init__ made; never bound
        self.socket, self.address_family = sock, sock.family


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from python worker {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):  # a Unix-socket peer has no (host, port)
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"


def main() -> int:
    server = Server(listener())

    def stop(signum, frame):
        # Stop between two requests: raising here could land between an accept and its
        # handler and drop that connection. shutdown() waits for serve_forever, so it runs
        # in a thread; what the kernel still queues stays for the other workers.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"python worker {os.getpid()} serving on {server.socket.getsockname()}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
