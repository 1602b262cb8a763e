// Express 5, as a PM2 user writes it: listen on PORT (drover's shim serves it on fd 3).
//   GET /     -> {"pid", "server": "express"}
//   GET /slow -> the same after 200 ms (a request in flight across a reload)
'use strict';
const express = require('express');
const app = express();
const reply = (res, extra) => res.json({ pid: process.pid, server: 'express', ...extra });
app.get('/', (req, res) => reply(res));
app.get('/slow', (req, res) => setTimeout(() => reply(res, { slow: true }), 200));
app.listen(process.env.PORT || 3000);
