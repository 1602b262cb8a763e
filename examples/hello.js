// A Node app exactly as written for `pm2 start hello.js -i max`: nothing drover-specific.
// Under drover, the preloaded shim makes this listen() use the shared socket (fd 3).
const http = require('http');

const server = http
  .createServer((req, res) =>
    res.end(`hello from worker ${process.env.NODE_APP_INSTANCE} pid ${process.pid}\n`))
  .listen(process.env.PORT || 3000);

server.on('listening', () => {
  const addr = server.address();
  console.log(`worker ${process.env.NODE_APP_INSTANCE} pid ${process.pid} listening on`,
    typeof addr === 'string' ? addr : `${addr.address}:${addr.port}`);
});

// Graceful stop (drover, like PM2, sends SIGINT): stop accepting, let in-flight requests
// finish, then exit. Idle keep-alive connections would hold close() open, so drop them.
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 1000).unref();
});
