// PM2: the socket.io chat, one process per core (cluster mode), like
// `pm2 start chat.js -i max`. The workers share PORT through Node's cluster
// module (PM2's daemon is the cluster master that accepts and hands over).
module.exports = {
  apps: [{
    name: 'node-chat',
    script: __dirname + '/chat.js',
    exec_mode: 'cluster',
    instances: 'max',
    env: {
      PORT: process.env.PORT || 3700,
      NODE_ENV: 'production',
      REDIS_SOCKET: process.env.REDIS_SOCKET || '',
      REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    },
  }],
};
