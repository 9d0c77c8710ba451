// The Node.js baseline: Express, CPU work on a workerpool (worker_threads).
// Run under PM2 in cluster mode, one process per core (ecosystem.config.js);
// each process gets one pool worker, as each corepool instance gets one pool thread.
// Real-time routes as the demo's: GET /ws/echo (the `ws` package: a hello
// message saying which process answered, then every message echoed) and
// GET /events (server-sent events: a hello event, then figures every interval_ms).
const express = require('express');
const os = require('os');
const path = require('path');
const workerpool = require('workerpool');
const { WebSocketServer } = require('ws');

const pool = workerpool.pool(path.join(__dirname, 'compute-worker.js'), {
  maxWorkers: Number(process.env.POOL_WORKERS || 1),
  workerType: 'thread',
});
const started = Date.now();
const app = express();
app.disable('x-powered-by');
app.disable('etag');

app.get('/', (req, res) => {
  res.json({ service: 'node', pid: process.pid, instance: Number(process.env.NODE_APP_INSTANCE || 0),
    uptime_s: (Date.now() - started) / 1000, pool: pool.stats() });
});

app.get('/compute', async (req, res) => {
  const n = Number(req.query.n);
  if (!Number.isSafeInteger(n) || n < 0) return res.status(400).json({ error: 'n must be an unsigned integer', code: 400 });
  const t0 = process.hrtime.bigint();
  try {
    const sum = await pool.exec('sum', [n]);
    res.json({ n, sum: String(sum), ms: Number(process.hrtime.bigint() - t0) / 1e6 });
  } catch (e) {
    res.status(500).json({ error: String(e), code: 500 });
  }
});

const instance = Number(process.env.NODE_APP_INSTANCE || 0);
const hello = () => JSON.stringify({ instance, pid: process.pid, host: os.hostname() });

app.get('/events', (req, res) => {
  const every = Math.max(50, Number(req.query.interval_ms || 1000));
  if (!Number.isSafeInteger(every)) return res.status(400).json({ error: 'interval_ms must be an unsigned integer', code: 400 });
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  res.write(`event: hello\ndata: ${hello()}\n\n`);
  const tick = setInterval(() => {
    res.write(`event: stats\ndata: ${JSON.stringify({ instance, websockets: wss.clients.size, pool: pool.stats() })}\n\n`);
  }, every);
  req.on('close', () => clearInterval(tick));
});

const server = app.listen(Number(process.env.PORT || 3100), process.env.HOST || '127.0.0.1');
server.keepAliveTimeout = 65000; // longer than nginx's upstream keepalive_timeout

// The ws package's server on the same port: upgrades to /ws/echo only
// (ws's defaults otherwise: no permessage-deflate; frames capped at 1 MiB like
// corepool's streams.max_message).
const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
server.on('upgrade', (req, socket, head) => {
  if (new URL(req.url, 'http://x').pathname !== '/ws/echo') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(`{"hello":${hello()}}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => ws.terminate());
  });
});
process.on('SIGINT', () => {
  for (const ws of wss.clients) ws.close(1001);
  server.close(() => pool.terminate().then(() => process.exit(0)));
});
