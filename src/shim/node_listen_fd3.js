// drover's Node.js preload: serve on the listening socket drover hands over (fd 3, or a
// handle over the IPC channel).
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
// Cluster mode without a listen address: a Node app started with `-i N` and no
// `--listen`, which calls listen(3000) itself, as under PM2. drover sets
// DROVER_LISTEN=ask, and the shim turns each listen(<TCP port>) into a request over
// the worker's IPC channel ({cmd: 'NODE_DROVER_LISTEN', address, port}); the supervisor
// binds each address once for the app, and answers each worker with a handle, which the
// server then listens on: for the app's first address its slot's listener, for others
// (an admin or metrics port) one listener all workers share, as Node's cluster shares
// every port. Like a Node cluster worker's, that listen is asynchronous. A refusal (the
// port is taken by another program) or no answer within ASK_TIMEOUT_MS makes the shim
// bind as it would without drover, so the app sees Node's own error. The first server
// is the one the graceful close and readiness below are about.
//
// Readiness and the IPC channel: drover gives every Node worker an IPC channel
// (NODE_CHANNEL_FD, as PM2 and child_process.fork do), so process.send exists and the
// app's process.send('ready') reaches drover. With DROVER_READY_ON=listening (PM2's rule
// for cluster apps) the shim also says {cmd: 'NODE_DROVER_READY'} when the shared
// server emits 'listening'. Both variables are removed from process.env so the app's
// children never act on them.
//
// Graceful stop of the shared server: Node 19+'s http close() first closes every "idle"
// connection — including one accepted a moment ago whose request has not been read yet —
// so a reload under load would drop requests. The shim's close() of that server stops
// accepting at once, answers requests that come on kept-alive connections with
// `Connection: close`, and closes idle connections only after CLOSE_GRACE_MS, then again
// every CLOSE_GRACE_MS until all are gone. An app with no SIGINT/SIGTERM handler of its
// own (Node would die at once, dropping what is in flight) gets that graceful close and
// exits when it completes; an app with its own handler is left to it.
//
// Watchdog: with WATCHDOG_USEC set (the app's `watchdog:`) and WATCHDOG_PID this process,
// the shim says {cmd: 'NODE_DROVER_WATCHDOG'} on the channel every half period, from a
// timer of the event loop (unref'd: it keeps nothing alive). An event loop that blocks
// (a `while (true) {}` in a handler) stops the pings, so drover sees it and replaces the
// worker, with no change to the app.
//
// No dependencies; Node 18-22. Keep it small: it runs in every worker.
'use strict';

(function droverWatchdog() {
  const env = process.env;
  const usec = Number(env.WATCHDOG_USEC);
  if (!(usec > 0) || env.WATCHDOG_PID !== String(process.pid)) return;
  if (typeof process.send !== 'function') return;
  const send = process.send;
  const ping = () => send.call(process, { cmd: 'NODE_DROVER_WATCHDOG' }, () => {});
  setInterval(ping, Math.max(Math.floor(usec / 2000), 10)).unref();
  ping();
})();

(function droverReady() {
  const env = process.env;
  const on = env.DROVER_READY_ON;
  delete env.DROVER_READY_ON;
  // Not started by drover with a channel: still PM2's promise, process.send exists.
  if (typeof process.send !== 'function') {
    process.send = () => true;
    return;
  }
  if (on !== 'listening') return;
  const send = process.send; // the app may replace process.send later
  let said = false;
  globalThis.__droverReadyOnListening = function ready() {
    if (said) return;
    said = true;
    // With a callback, a closed channel is an error passed to it, not an 'error' event.
    send.call(process, { cmd: 'NODE_DROVER_READY' }, () => {});
  };
})();

(function droverListen() {
  const env = process.env;
  const viaFd3 = env.LISTEN_FDS === '1' && env.LISTEN_PID === String(process.pid);
  const viaChannel = !viaFd3 && env.DROVER_LISTEN === 'ask' && typeof process.send === 'function';
  delete env.DROVER_LISTEN;
  if (!viaFd3 && !viaChannel) return;

  const net = require('net');
  const fs = require('fs');
  const FD = 3;
  const send = process.send;

  if (viaFd3) {
    globalThis.__droverListen = Object.freeze({
      pid: Number(env.LISTEN_PID),
      fds: Number(env.LISTEN_FDS),
      names: env.LISTEN_FDNAMES === undefined ? '' : env.LISTEN_FDNAMES,
    });
  }

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

  // Cluster mode without a listen address (DROVER_LISTEN=ask): each listen() that asks
  // for a TCP port gets a listener the app's workers share from the supervisor, as a
  // Node cluster worker gets its handle from the primary. The listen is asynchronous, as in a
  // cluster worker: 'listening' (and the callback) come once the handle is here.
  const ASK_TIMEOUT_MS = 5000;
  // Each request's number: the answer names it (a worker may ask for several ports).
  let nextSeq = 1;

  // The TCP port and host a listen() call asks for, in Node's forms (lib/net.js):
  // (port[, host][, backlog][, cb]), ({port, host, backlog}[, cb]), () and (cb) for
  // port 0. Null for a pipe path, an exclusive listen (never shared in a cluster either)
  // or a port Node would refuse (Node then throws, as it would).
  function tcpRequest(args) {
    const a0 = args[0];
    let port, host, backlog;
    if (a0 !== null && typeof a0 === 'object') {
      if (typeof a0.path === 'string' || a0.exclusive || a0.ipv6Only) return null;
      ({ port, host, backlog } = a0);
    } else {
      if (typeof a0 === 'string' && toNumber(a0) === false) return null; // a pipe path
      port = typeof a0 === 'function' ? 0 : a0;
      if (typeof args[1] === 'string') host = args[1];
      backlog = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
    }
    port = port === undefined || port === null ? 0 : toNumber(port);
    if (port === false || port > 65535 || port !== Math.floor(port)) return null;
    return { port, host, backlog: toNumber(backlog) };
  }

  function askForListener(server, args) {
    const want = tcpRequest(args);
    if (!want) return originalListen.apply(server, args);
    const first = !taken;
    taken = true;
    const last = args[args.length - 1];
    const cb = typeof last === 'function' ? last : null;
    // Nothing else may keep the process alive while the answer is on its way.
    const keepAlive = setInterval(() => {}, 1 << 30);
    const timeout = setTimeout(() => finish(null), ASK_TIMEOUT_MS);
    let done = false;
    function finish(handle) {
      if (done) return;
      done = true;
      clearInterval(keepAlive);
      clearTimeout(timeout);
      process.removeListener('internalMessage', onMessage);
      // No shared listener (refused, or no answer): bind as without drover.
      if (!handle) return originalListen.apply(server, args);
      if (first) {
        sharedServer = server;
        gracefulClose(server);
        const onListening = globalThis.__droverReadyOnListening;
        if (onListening) server.once('listening', onListening);
      }
      const newArgs = [handle];
      if (want.backlog) newArgs.push(want.backlog);
      if (cb) newArgs.push(cb);
      originalListen.apply(server, newArgs);
    }
    const seq = nextSeq++;
    function onMessage(message, handle) {
      if (message && message.cmd === 'NODE_DROVER_LISTEN' && message.seq === seq) {
        finish(message.ok && handle ? handle : null);
      }
    }
    process.on('internalMessage', onMessage);
    const ask = (address) => send.call(process,
      { cmd: 'NODE_DROVER_LISTEN', address, port: want.port, seq },
      (err) => { if (err) finish(null); });
    const host = want.host;
    if (host === undefined || host === null || host === '') ask(null);
    else if (net.isIP(host)) ask(host);
    else require('dns').lookup(host, (err, address) => (err ? finish(null) : ask(address)));
    return server;
  }

  net.Server.prototype.listen = function listen(...args) {
    if (this._handle) return originalListen.apply(this, args);
    if (viaChannel) return askForListener(this, args);
    if (taken) return originalListen.apply(this, args);
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
