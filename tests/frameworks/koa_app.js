// Koa 3: app.listen(PORT).
'use strict';
const Koa = require('koa');
const app = new Koa();
app.use(async (ctx) => {
  if (ctx.path === '/slow') await new Promise((resolve) => setTimeout(resolve, 200));
  ctx.body = { pid: process.pid, server: 'koa', ...(ctx.path === '/slow' ? { slow: true } : {}) };
});
app.listen(process.env.PORT || 3000);
