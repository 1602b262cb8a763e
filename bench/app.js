// The app bench/reload.sh reloads under load: a minimal HTTP server written for
// `pm2 start app.js -i N` (it knows nothing of fd 3), with the graceful SIGINT
// handler a production app has: stop accepting, drop idle keep-alive sockets,
// exit once the last in-flight request is answered.
const http = require('http');

const server = http.createServer((req, res) => res.end('ok'));
server.listen(process.env.PORT || 3000);

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
