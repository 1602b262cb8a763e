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
// No dependencies; Node 18-22. Keep it small: it runs in every worker.
'use strict';

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

    const result = originalListen.apply(this, newArgs);
    if (this._handle && typeof this._handle.getsockname !== 'function') {
      const requested = isObject ? a0.path : a0;
      this._pipeName = unixPathOfFd3() || (typeof requested === 'string' ? requested : null);
    }
    return result;
  };
})();
