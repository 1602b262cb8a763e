// bench/compare's log app: once the file $LOG_TRIGGER exists, write $LOG_LINES (200,000)
// lines to stdout as fast as possible (console.log, one line per call), each
// `L <instance> <seq, 6 digits> <40 x>` so that a lost or torn line can be told; then
// create $LOG_TRIGGER.done.<instance> and stay up, or with LOG_EXIT=1 call
// process.exit(0) at once. A worker started after its instance is done (a restart)
// writes nothing.
const fs = require('fs');

const trigger = process.env.LOG_TRIGGER;
const lines = Number(process.env.LOG_LINES || 200000);
const id = process.env.NODE_APP_INSTANCE ?? String(process.pid);
const done = `${trigger}.done.${id}`;
const pad = 'x'.repeat(40);

function write() {
  for (let i = 0; i < lines; i++) console.log(`L ${id} ${String(i).padStart(6, '0')} ${pad}`);
  fs.writeFileSync(done, '');
  if (process.env.LOG_EXIT === '1') process.exit(0);
}

setInterval(() => {}, 1 << 30); // stay up
if (!fs.existsSync(done)) {
  const wait = setInterval(() => {
    if (fs.existsSync(trigger)) {
      clearInterval(wait);
      write();
    }
  }, 5);
}
