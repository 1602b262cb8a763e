// The app the benches run: a minimal HTTP server written for `pm2 start app.js -i N`
// (it knows nothing of fd 3), with the graceful SIGINT handler a production app has:
// stop accepting, drop idle keep-alive sockets, exit once the last in-flight request
// is answered. `/` answers the plain 'ok'; `GET /pid` answers the worker's pid (so a
// bench can tell which worker accepted a connection).
const http = require('http');

const server = http.createServer((req, res) =>
  res.end(req.url === '/pid' ? String(process.pid) : 'ok'));
server.listen(process.env.PORT || 3000);

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
