// The Node.js chat baseline for bench/broadcast: socket.io 4 with its Redis
// adapter (@socket.io/redis-adapter over the `redis` client), run under PM2
// in cluster mode, one process per core (ecosystem.chat.config.js), the way
// socket.io's docs scale it out. The equivalent of corepool's demo chat
// (GET /chat/{room}/ws): every client joins a room (the `room` query
// parameter of its handshake, "bench" by default), and a 'chat' event from
// any client is emitted to the whole room on every process, the sender
// included: io.to(room).emit('chat', msg).
//
// Transport: WebSocket only (transports: ['websocket']). A WebSocket is one
// TCP connection, so whichever worker accepts it keeps the whole session:
// no sticky sessions are needed (they are for long-polling, whose requests
// must all reach the process that holds the session).
//
// On connect each socket is sent a 'hello' event naming its process (after
// it joined the room), so the load client can count the spread.
//
// Env: PORT (3700), HOST (127.0.0.1), REDIS_URL (redis://127.0.0.1:6379) or
// REDIS_SOCKET (a unix socket path, preferred when set).
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

const instance = Number(process.env.NODE_APP_INSTANCE || 0);
const ROOM = /^[A-Za-z0-9._-]{1,64}$/;

async function main() {
  const opts = process.env.REDIS_SOCKET
    ? { socket: { path: process.env.REDIS_SOCKET } }
    : { url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' };
  const pubClient = createClient(opts);
  const subClient = pubClient.duplicate();
  for (const c of [pubClient, subClient]) c.on('error', (e) => console.error(`redis: ${e.message}`));
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const server = http.createServer((req, res) => {
    // A plain GET / for the bench's "is it up" check and to say who answered.
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ service: 'node-chat', instance, pid: process.pid, sockets: io.engine.clientsCount }));
  });
  server.keepAliveTimeout = 65000; // longer than nginx's upstream keepalive_timeout
  const io = new Server(server, {
    transports: ['websocket'],
    serveClient: false,
    adapter: createAdapter(pubClient, subClient),
  });
  io.on('connection', (socket) => {
    const room = String(socket.handshake.query.room || 'bench');
    if (!ROOM.test(room)) return socket.disconnect(true);
    socket.join(room);
    socket.emit('hello', { instance, pid: process.pid });
    socket.on('chat', (msg) => {
      if (typeof msg === 'string' && msg.length <= 65536) io.to(room).emit('chat', msg);
    });
  });
  server.listen(Number(process.env.PORT || 3700), process.env.HOST || '127.0.0.1');
  process.on('SIGINT', () => {
    io.close(() => Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0)));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
