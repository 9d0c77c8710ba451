// The seed's first, naive version: the sum loop runs on the event loop and
// blocks every other request while it runs.
const express = require('express');
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.get('/', (req, res) => res.json({ service: 'node-naive', pid: process.pid }));
app.get('/compute', (req, res) => {
  const n = Number(req.query.n);
  let s = 0;
  for (let i = 0; i < n; i++) s += i;
  res.json({ n, sum: String(s) });
});
const server = app.listen(Number(process.env.PORT || 3100), process.env.HOST || '127.0.0.1');
server.keepAliveTimeout = 65000;
