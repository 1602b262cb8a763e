# drover's Python preload (sitecustomize, on PYTHONPATH of drover's Python workers).
#
# It does what the Node shim does for Node, for the Python servers that need it, and
# nothing else; each part is inert unless the module it fixes is imported:
#
# - uvicorn's graceful shutdown (also under gunicorn's UvicornWorker): on SIGTERM/SIGINT
#   uvicorn stops accepting and closes every connection that has no request in progress
#   at once: a kept-alive connection whose next request is on its way, or one accepted a
#   moment ago whose request has not been read yet, is reset, so a reload under load
#   loses requests. Here a connection with no request in progress is closed only once it
#   stayed so for CLOSE_GRACE_S (checked again every CLOSE_GRACE_S), and a request that
#   arrives meanwhile is answered with `Connection: close`, then the connection closes.
#   A request in progress is answered with `Connection: close` if its response has not
#   started; if it has (uvicorn would close the connection right after that response,
#   which told the client to keep it), the connection stays open for the next request.
#
# - gunicorn's control socket (25.1+): one per drover worker instead of one per user,
#   at $DROVER_GUNICORN_CTL, so the masters of an app's workers do not collide.
#
# - socket.fromfd(fd, AF_UNIX, ...) of a TCP socket (uvicorn's --fd treats every fd as a
#   Unix socket): the socket object then believes it is AF_UNIX, asyncio never sets
#   TCP_NODELAY on its connections, and Nagle + delayed ACKs make uvicorn --fd several
#   times slower than --port. fromfd here asks the kernel for the fd's real family.
#
# A sitecustomize of the environment's own (Debian ships one) is still run: the next one
# on sys.path after this directory is executed too.
#
# Standard library only; Python 3.8+. Keep it small: it runs in every Python worker.

import os
import socket
import sys

CLOSE_GRACE_S = 0.25


def _run_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    import importlib.machinery
    import importlib.util

    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _fix_fromfd():
    original = socket.fromfd

    def fromfd(fd, family, type, proto=0):
        if family == socket.AF_UNIX:
            # socket(fileno=) asks the kernel for family, type and protocol: asyncio sets
            # TCP_NODELAY only on sockets that say AF_INET(6), SOCK_STREAM, IPPROTO_TCP.
            try:
                real = socket.socket(fileno=os.dup(fd))
            except OSError:
                real = None
            if real is not None:
                if real.family in (socket.AF_INET, socket.AF_INET6):
                    return real
                real.close()
        return original(fd, family, type, proto)

    fromfd.__doc__ = original.__doc__
    socket.fromfd = fromfd


def _defer_close(protocol):
    """Replaces a uvicorn HTTP protocol's shutdown() on this connection (see above)."""
    loop = protocol.loop
    closing = {"on": False}
    data_received = protocol.data_received

    def idle():
        cycle = protocol.cycle
        return cycle is None or cycle.response_complete

    def last_request(cycle):
        # Only while the response head is unsent: it then says `Connection: close`. A
        # response whose head went out with keep-alive must keep the connection open
        # (closing it after that response would reset the client's next request): the
        # next request, or the idle check, ends it.
        if getattr(cycle, "response_started", False):
            return
        cycle.keep_alive = False
        # uvicorn's h11 protocol closes a connection that is not kept alive without
        # saying so in the response: the header goes into the response's head here.
        headers = getattr(cycle, "default_headers", None)
        if isinstance(headers, list) and not any(k.lower() == b"connection" for k, _ in headers):
            cycle.default_headers = headers + [(b"connection", b"close")]

    def received(data):
        data_received(data)
        cycle = protocol.cycle
        # A request that began after the shutdown: answered, then the connection closes.
        if closing["on"] and cycle is not None and not cycle.response_complete:
            last_request(cycle)

    def close_if_idle(was_idle):
        if protocol.transport.is_closing():
            return
        now_idle = idle()
        if was_idle and now_idle:
            protocol.transport.close()
            return
        if not now_idle:
            last_request(protocol.cycle)
        loop.call_later(CLOSE_GRACE_S, close_if_idle, now_idle)

    def shutdown():
        if closing["on"]:
            return
        closing["on"] = True
        if not idle():
            last_request(protocol.cycle)
        loop.call_later(CLOSE_GRACE_S, close_if_idle, idle())

    protocol.data_received = received
    protocol.shutdown = shutdown


def _patch_uvicorn_server(module):
    Server = getattr(module, "Server", None)
    original = getattr(Server, "shutdown", None)
    if original is None or getattr(original, "_drover", False):
        return

    async def shutdown(self, *args, **kwargs):
        for connection in list(getattr(self.server_state, "connections", ())):
            if all(hasattr(connection, a) for a in ("cycle", "transport", "loop", "data_received")):
                _defer_close(connection)
        return await original(self, *args, **kwargs)

    shutdown._drover = True
    Server.shutdown = shutdown


def _patch_gunicorn_config(module):
    # gunicorn 25.1+ opens a control socket at one default path per user: the masters of
    # an app's N workers would replace each other's. drover names one per worker
    # (DROVER_GUNICORN_CTL); an explicit --control-socket still wins.
    path = os.environ.get("DROVER_GUNICORN_CTL")
    setting = getattr(module, "ControlSocket", None)
    if path and setting is not None:
        setting.default = path


class _PatchOnImport:
    """A meta path finder that runs a patch right after a module is first executed."""

    patches = {
        "uvicorn.server": _patch_uvicorn_server,
        "gunicorn.config": _patch_gunicorn_config,
    }

    def find_spec(self, name, path=None, target=None):
        patch = self.patches.get(name)
        if patch is None:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                exec_module(module)
                try:
                    patch(module)
                except Exception as e:  # never break the app over a shim problem
                    sys.stderr.write("drover: cannot adjust %s: %r\n" % (name, e))

        spec.loader = Loader()
        return spec


_fix_fromfd()
sys.meta_path.insert(0, _PatchOnImport())
try:
    _run_next_sitecustomize()
except Exception as e:
    sys.stderr.write("drover: the environment's sitecustomize failed: %r\n" % (e,))
