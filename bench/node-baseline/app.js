// The Node.js baseline: Express, CPU work on a workerpool (worker_threads).
// Run under PM2 in cluster mode, one process per core (ecosystem.config.js);
// each process gets one pool worker, as each corepool instance gets one pool thread.
const express = require('express');
const path = require('path');
const workerpool = require('workerpool');

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

const server = app.listen(Number(process.env.PORT || 3100), process.env.HOST || '127.0.0.1');
server.keepAliveTimeout = 65000; // longer than nginx's upstream keepalive_timeout
process.on('SIGINT', () => server.close(() => pool.terminate().then(() => process.exit(0))));
