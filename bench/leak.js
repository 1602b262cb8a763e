// bench/compare's memory-limit app: bench/app.js's server, plus a leak. Once the file
// $LEAK_TRIGGER exists, exactly one worker (the first to create $LEAK_TRIGGER.leaker,
// where it writes its pid; a replacement finds it there and does not leak) grows its
// RSS by ~$LEAK_MB_PER_S MB/s (50) up to $LEAK_MAX_MB (2500), and logs its RSS with a
// timestamp every 100 ms.
const fs = require('fs');
const http = require('http');

const server = http.createServer((req, res) =>
  res.end(req.url === '/pid' ? String(process.pid) : 'ok'));
server.listen(process.env.PORT || 3000);
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});

const trigger = process.env.LEAK_TRIGGER;
const rate = Number(process.env.LEAK_MB_PER_S || 50);
const max = Number(process.env.LEAK_MAX_MB || 2500);
const MB = 1024 * 1024;
const kept = [];

function leak(t0) {
  const due = Math.min(max, Math.floor(((Date.now() - t0) / 1000) * rate));
  while (kept.length < due) kept.push(Buffer.allocUnsafe(MB).fill(kept.length & 0xff));
}

if (trigger) {
  const wait = setInterval(() => {
    if (!fs.existsSync(trigger)) return;
    clearInterval(wait);
    try {
      fs.writeFileSync(`${trigger}.leaker`, String(process.pid), { flag: 'wx' });
    } catch {
      return; // another worker leaks
    }
    const t0 = Date.now();
    setInterval(() => leak(t0), 10);
    setInterval(() => console.log(`${new Date().toISOString()} rss ${process.memoryUsage.rss()}`), 100);
  }, 10);
}
