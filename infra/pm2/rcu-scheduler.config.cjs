// PM2 ecosystem file for rcu-scheduler on Linux and Windows Server.
//   pm2 start infra/pm2/rcu-scheduler.config.cjs && pm2 save
// Configuration comes from apps/rcu-scheduler/.env (see .env.example). apps/rcu-scheduler/pm2.json
// is the same declaration as JSON, for `cd apps/rcu-scheduler && pm2 start pm2.json`. The service runs a single
// fork-mode instance per host; several hosts may share one PostgreSQL: an advisory lock and the
// unique schedule slot make exactly one of them run each round.
const path = require('node:path');

const appDir = path.join(__dirname, '..', '..', 'apps', 'rcu-scheduler');
const logDir = process.env.RCU_LOG_DIR || path.join(appDir, 'logs');

module.exports = {
  apps: [
    {
      name: 'rcu-scheduler',
      cwd: appDir,
      // `node dist/cli.js` rather than a shell script: the same line works on Windows and Linux.
      script: path.join(appDir, 'dist', 'cli.js'),
      args: 'serve',
      interpreter: 'node',
      exec_mode: 'fork',
      instances: 1,
      autorestart: true,
      // A configuration error exits with 2: restarting cannot fix it, so PM2 must not loop on it.
      stop_exit_codes: [0, 2],
      max_restarts: 20,
      min_uptime: '30s',
      restart_delay: 5000,
      exp_backoff_restart_delay: 1000,
      // SIGTERM (SIGINT on Windows) lets a running round spool its results before exit.
      kill_timeout: 15000,
      max_memory_restart: '512M',
      out_file: path.join(logDir, 'rcu-scheduler.out.log'),
      error_file: path.join(logDir, 'rcu-scheduler.err.log'),
      merge_logs: true,
      time: false,
      env: {
        NODE_ENV: 'production',
      },
    },
  ],
};
