// A tiny HTTP service for fake systemd units to run. It answers GET /health with the version found
// in its working directory (the file VERSION), so a test sees which snapshot is really running.
//   PORT            port to listen on (127.0.0.1)
//   FAIL_HEALTH=1   or a file FAIL_HEALTH in the working directory (checked per request): /health -> 503
//   CRASH=1         or a file CRASH in the working directory: exit 1 at start, as a broken build would
//   IGNORE_SIGTERM=1  keep running on SIGTERM (a hung service: only SIGKILL stops it)
// Extra arguments (e.g. --tag=<test root>) are ignored; tests use them to find their processes.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('test-service: PORT must be set');
  process.exit(2);
}
if (process.env.CRASH === '1' || existsSync('CRASH')) {
  console.error('test-service: crashing on purpose');
  process.exit(1);
}
const version = existsSync('VERSION') ? readFileSync('VERSION', 'utf8').trim() : 'unknown';

const server = createServer((req, res) => {
  if (req.url !== '/health') {
    res.writeHead(404).end();
    return;
  }
  const failing = process.env.FAIL_HEALTH === '1' || existsSync('FAIL_HEALTH');
  res.writeHead(failing ? 503 : 200, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ status: failing ? 'failing' : 'ok', version, pid: process.pid }));
});
server.listen(port, '127.0.0.1', () => console.log(`test-service ${version} listening on ${port}`));
// systemd stops a unit with SIGTERM; answer at once so the port is free for the next start.
process.on('SIGTERM', () => {
  if (process.env.IGNORE_SIGTERM !== '1') process.exit(0);
});
