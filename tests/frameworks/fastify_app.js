// Fastify 5, as its docs put it for a server in production: listen on 0.0.0.0:PORT.
'use strict';
const fastify = require('fastify')();
fastify.get('/', async () => ({ pid: process.pid, server: 'fastify' }));
fastify.get('/slow', async () => {
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { pid: process.pid, server: 'fastify', slow: true };
});
fastify.listen({ port: Number(process.env.PORT || 3000), host: '0.0.0.0' }).catch((err) => {
  console.error(err);
  process.exit(1);
});
