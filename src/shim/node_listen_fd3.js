// drover's Node.js preload: serve on the listening socket drover hands over as fd 3.
//
// drover binds the app's address itself and starts every worker with that listener as
// fd 3 (systemd socket-activation protocol: LISTEN_FDS=1, LISTEN_PID=<worker pid>,
// LISTEN_FDNAMES=<app name>). A Node app written for `pm2 start app.js -i max` knows
// nothing of this: it calls `server.listen(process.env.PORT || 3000)` and would try to
// bind a port drover already holds. drover loads this file into such workers with
// NODE_OPTIONS="--require <this file>" (works for CommonJS and ESM entry points alike),
// and it turns the app's first listen(<port or path>) into listen({fd: 3}), so the app
// runs unmodified.
//
// Rules, and why:
// - Inert unless LISTEN_FDS is "1" and LISTEN_PID is this process's pid. Children of the
//   app inherit NODE_OPTIONS and the environment, but have another pid (the sd_listen_fds
//   rule), so they never touch fd 3.
// - Only the FIRST listen() call that asks for a TCP port (number, numeric string,
//   {port}, none/0/null) or a pipe path is redirected. An app's second server (metrics,
//   admin...) binds normally. Calls that pass a handle or fd explicitly ({fd}, {handle},
//   a server or handle object) are never rewritten; an explicit {fd: 3} counts as taking it.
// - The requested host/port/path are ignored: drover decides the address. The callback
//   (last function argument), the backlog and an AbortSignal are kept. Node then emits
//   'listening' as usual, and server.address() reports the socket's real address.
// - Once fd 3 is taken, LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are removed from
//   process.env (sd_listen_fds(unset_environment=1)), so nothing started later by the app
//   looks at them. The original values stay readable as globalThis.__droverListen.
//
// Readiness: with DROVER_READY_FD set, the worker tells drover it is ready by writing
// READY=1 on that fd (a pipe; Node has no Unix datagram sockets for sd_notify): when the
// server on fd 3 emits 'listening' (DROVER_READY_ON=listening, PM2's rule for cluster
// apps), and whenever the app calls PM2's process.send('ready') (which an app started
// without an IPC channel could not otherwise call). The variables are removed from
// process.env so the app's children never write there.
//
// Graceful stop of the server on fd 3: Node 19+'s http close() first closes every "idle"
// connection — including one accepted a moment ago whose request has not been read yet —
// so a reload under load would drop requests. The shim's close() of that server stops
// accepting at once, answers requests that come on kept-alive connections with
// `Connection: close`, and closes idle connections only after CLOSE_GRACE_MS, then again
// every CLOSE_GRACE_MS until all are gone. An app with no SIGINT/SIGTERM handler of its
// own (Node would die at once, dropping what is in flight) gets that graceful close and
// exits when it completes; an app with its own handler is left to it.
//
// No dependencies; Node 18-22. Keep it small: it runs in every worker.
'use strict';

(function droverReady() {
  const env = process.env;
  const fdText = env.DROVER_READY_FD;
  if (fdText === undefined) {
    // Not drover's readiness pipe, but still PM2's promise: process.send exists.
    if (typeof process.send !== 'function') process.send = () => true;
    return;
  }
  const onListening = env.DROVER_READY_ON === 'listening';
  delete env.DROVER_READY_FD;
  delete env.DROVER_READY_ON;
  const fs = require('fs');
  const fd = Number(fdText);
  let said = false;
  function ready() {
    if (said) return;
    said = true;
    try {
      fs.writeSync(fd, 'READY=1\n');
      fs.closeSync(fd);
    } catch (_) { /* drover went away: nothing to tell */ }
  }
  if (onListening) globalThis.__droverReadyOnListening = ready;
  const send = process.send;
  process.send = function droverSend(message, ...rest) {
    if (message === 'ready') ready();
    return typeof send === 'function' ? send.call(process, message, ...rest) : true;
  };
})();

(function droverListenFd3() {
  const env = process.env;
  if (env.LISTEN_FDS !== '1' || env.LISTEN_PID !== String(process.pid)) return;

  const net = require('net');
  const fs = require('fs');
  const FD = 3;

  globalThis.__droverListen = Object.freeze({
    pid: Number(env.LISTEN_PID),
    fds: Number(env.LISTEN_FDS),
    names: env.LISTEN_FDNAMES === undefined ? '' : env.LISTEN_FDNAMES,
  });

  const originalListen = net.Server.prototype.listen;
  let taken = false;

  function release() {
    taken = true;
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
  }

  // Node's own coercion (lib/net.js): a non-negative number, else false.
  function toNumber(x) {
    return (x = Number(x)) >= 0 ? x : false;
  }

  // Does this listen() call ask for "a port or a path", i.e. something we serve from fd 3?
  function asksForAddress(args) {
    const a0 = args[0];
    if (args.length === 0 || a0 === undefined || a0 === null) return true; // port 0
    const t = typeof a0;
    if (t === 'function' || t === 'number' || t === 'string') return true; // port, or pipe path
    if (t !== 'object' || Array.isArray(a0)) return false;
    if ('fd' in a0 || 'handle' in a0 || '_handle' in a0) return false; // explicit handle
    return 'port' in a0 || typeof a0.path === 'string';
  }

  // A Unix socket handle has no getsockname(), and Node's address() then returns
  // server._pipeName, which only a listen(path) sets. Find the path drover bound via the
  // socket's inode in /proc/net/unix (abstract names are shown with '@', Node uses '\0').
  function unixPathOfFd3() {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${FD}`));
      if (!m) return null;
      for (const line of fs.readFileSync('/proc/net/unix', 'latin1').split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f[6] === m[1] && f.length > 7) {
          const p = f.slice(7).join(' ');
          return p[0] === '@' ? '\0' + p.slice(1) : p;
        }
      }
    } catch (_) { /* best effort: not Linux, or /proc unavailable */ }
    return null;
  }

  const CLOSE_GRACE_MS = 250;
  let sharedServer = null;

  function gracefulClose(server) {
    const close = function close(cb) {
      if (server.__droverClosing) return net.Server.prototype.close.call(server, cb);
      server.__droverClosing = Date.now();
      // Requests still arriving on kept-alive connections are told to close them.
      if (typeof server.closeIdleConnections === 'function') {
        server.prependListener('request', (req, res) => {
          if (!res.headersSent) res.setHeader('Connection', 'close');
        });
      }
      const result = net.Server.prototype.close.call(server, cb);
      if (typeof server.closeIdleConnections === 'function') {
        const timer = setInterval(() => closeIdle.call(server), CLOSE_GRACE_MS);
        timer.unref();
        server.once('close', () => clearInterval(timer));
      }
      return result;
    };
    Object.defineProperty(server, 'close', { value: close, configurable: true, writable: true });
    // An app that calls closeIdleConnections() right after close() (a common SIGINT
    // handler) would drop the connections accepted a moment ago: within the grace period
    // that call waits for the shim's timer.
    const closeIdle = server.closeIdleConnections;
    if (typeof closeIdle === 'function') {
      const deferred = function closeIdleConnections() {
        const since = server.__droverClosing;
        if (since && Date.now() - since < CLOSE_GRACE_MS) return;
        return closeIdle.call(server);
      };
      Object.defineProperty(server, 'closeIdleConnections', { value: deferred, configurable: true, writable: true });
    }
  }

  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, function droverStop() {
      if (process.listenerCount(sig) > 1) return; // the app stops itself
      const exit = () => {
        process.removeListener(sig, droverStop);
        process.kill(process.pid, sig); // die by the signal, as without the shim
      };
      if (!sharedServer || !sharedServer.listening) return exit();
      sharedServer.close(exit);
    });
  }

  net.Server.prototype.listen = function listen(...args) {
    if (taken || this._handle) return originalListen.apply(this, args);
    const a0 = args[0];
    if (!asksForAddress(args)) {
      if (a0 !== null && typeof a0 === 'object' && a0.fd === FD) release();
      return originalListen.apply(this, args);
    }
    release();

    const isObject = a0 !== null && typeof a0 === 'object';
    const last = args[args.length - 1];
    const cb = typeof last === 'function' ? last : null;
    // Same precedence as Node: options.backlog, then (x, backlog) or (port, host, backlog).
    // Node ignores options.backlog when given {fd}, so it is passed positionally.
    const backlog = (isObject && toNumber(a0.backlog)) ||
      toNumber(args.length > 1 && args[1]) ||
      toNumber(args.length > 2 && args[2]);
    const options = { fd: FD };
    if (isObject && a0.signal) options.signal = a0.signal;
    const newArgs = [options];
    if (backlog) newArgs.push(backlog);
    if (cb) newArgs.push(cb);

    sharedServer = this;
    gracefulClose(this);
    const onListening = globalThis.__droverReadyOnListening;
    if (onListening) this.once('listening', onListening);
    const result = originalListen.apply(this, newArgs);
    if (this._handle && typeof this._handle.getsockname !== 'function') {
      const requested = isObject ? a0.path : a0;
      this._pipeName = unixPathOfFd3() || (typeof requested === 'string' ? requested : null);
    }
    return result;
  };
})();
