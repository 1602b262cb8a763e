// The "ideal" reference of bench/compare: bench/app.js, unmodified, in a plain node
// process with no supervisor. bench/compare binds one SO_REUSEPORT listener per process
// (Node 20 has no `listen({reusePort})`; it came in 22.12/23.1) and hands it over as
// fd 3; this wrapper turns the app's `listen(PORT)` into `listen({fd: 3})`.
const net = require('net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
  net.Server.prototype.listen = listen; // only the app's first listen()
  return listen.call(this, { fd: 3 }, cb);
};
require('./app.js');
