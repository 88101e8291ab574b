// Stand-in for the node's Java service: a small HTTP server a fake systemd unit runs. It reads the
// installed jar's version file once at start, as a JVM loads its jar, so installing a jar changes
// what it reports only after a restart.
//   LAB_NODE      node id it reports (node-a, node-b)
//   HOST, PORT    where it listens (0.0.0.0:8080 inside the node's namespace: node IP and VIP)
//   VERSION_FILE  the installed version, one line
//   JAR_FILE      the installed jar; a line `ha-lab: crash-on-start` makes it exit 1 at start (a
//                 broken build), `ha-lab: fail-health` makes /health answer 503
// GET /health -> {status, node, version, pid, startedAt}; GET / -> {node, version}.
// Extra arguments (--ha-lab=<dir>) tag the process for the lab's cleanup.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const node = process.env.LAB_NODE ?? 'unknown';
const host = process.env.HOST ?? '0.0.0.0';
const port = Number(process.env.PORT ?? 8080);
const read = (path) => (path !== undefined && existsSync(path) ? readFileSync(path, 'utf8') : '');

const version = read(process.env.VERSION_FILE).trim() || 'unknown';
const jar = read(process.env.JAR_FILE);
if (jar.includes('ha-lab: crash-on-start')) {
  console.error(`app ${version} on ${node}: jar marked crash-on-start, exiting`);
  process.exit(1);
}
const failHealth = jar.includes('ha-lab: fail-health');
const startedAt = new Date().toISOString();

const server = createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify(body));
  };
  if (req.method !== 'GET') return send(405, { error: 'method not allowed' });
  if (req.url === '/health') {
    return send(failHealth ? 503 : 200, {
      status: failHealth ? 'failing' : 'ok',
      node,
      version,
      pid: process.pid,
      startedAt,
    });
  }
  if (req.url === '/') return send(200, { node, version });
  return send(404, { error: 'not found' });
});
server.listen(port, host, () => console.log(`app ${version} on ${node} listening on ${host}:${port}`));
// systemd stops a unit with SIGTERM: exit at once so the port is free for the next start.
process.on('SIGTERM', () => process.exit(0));
