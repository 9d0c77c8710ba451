// PM2: one Express process per core (cluster mode), like `pm2 start app.js -i max`.
module.exports = {
  apps: [{
    name: 'node-baseline',
    script: __dirname + '/app.js',
    exec_mode: 'cluster',
    instances: 'max',
    env: { PORT: process.env.PORT || 3100, NODE_ENV: 'production' },
  }],
};
