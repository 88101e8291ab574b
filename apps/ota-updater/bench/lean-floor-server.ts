// The memory floor of the service's own code: the real updater (download, verify, state file,
// reporter, systemd adapter) behind a bare node:http server with only what bench/memory.bench.ts
// drives (POST /api/v1.0/download, GET /api/v1.0/progress, GET /metrics with ota_memory_bytes), and
// none of the service kit (fastify, typebox, pino, prom-client, Swagger). Not a service: a yardstick
// for what a lean HTTP layer could reach. Bundled and started by `BENCH_MEMORY_TARGET=lean-floor
// node --import tsx bench/memory.bench.ts`; configured like dist/cli.js serve (PORT, HOST, OTA_ROOT,
// OTA_DATA_DIR, DEVICE_API_URL) with the service's defaults for everything else.
import { createServer, type ServerResponse } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock } from '@upgrade/core';
import { createDeviceApiReporter } from '../src/adapters/device-api.js';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import { toWireProgress } from '../src/progress-wire.js';
import { createServiceHealthCheck } from '../src/service-health.js';
import { createUpdater, type UpdaterLogger } from '../src/updater.js';

const env = process.env;
const root = env.OTA_ROOT ?? '/opt/tope';
const dataDir = env.OTA_DATA_DIR ?? join(root, '.ota');
await mkdir(join(dataDir, 'downloads'), { recursive: true });
const line = (level: number, o: object, msg: string): void => {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), ...o, msg })}\n`);
};
const logger: UpdaterLogger = {
  debug: () => undefined,
  info: (o, m) => line(30, o, m),
  warn: (o, m) => line(40, o, m),
  error: (o, m) => line(50, o, m),
};
const services = createSystemdServiceManager({ command: 'systemctl', timeoutMs: 90_000 });
const sink = createDeviceApiReporter({
  url: env.DEVICE_API_URL ?? 'http://127.0.0.1:9080/api/v1.0/ota/progress',
  timeoutMs: 2_000,
  logger,
});
const updater = createUpdater({
  statePath: join(dataDir, 'state.json'),
  downloadsDir: join(dataDir, 'downloads'),
  clock: systemClock,
  sink,
  logger,
  keepLastPackage: false,
  deploy: {
    root,
    services,
    checkHealth: createServiceHealthCheck({
      services,
      timeoutMs: 60_000,
      intervalMs: 1_000,
      consecutiveOk: 2,
      onError: () => undefined,
    }),
    clock: systemClock,
    limits: { maxEntryBytes: 512 * 1024 * 1024, maxTotalBytes: 2 * 1024 * 1024 * 1024, maxEntries: 50_000 },
    keepVersions: 2,
  },
  download: {
    connectTimeoutMs: 10_000,
    headersTimeoutMs: 30_000,
    stallTimeoutMs: 30_000,
    totalTimeoutMs: 2 * 60 * 60 * 1000,
    retries: 3,
    retryDelayMs: 1_000,
    checkpointBytes: 64 * 1024 * 1024,
    checkpointIntervalMs: 5_000,
  },
});
await updater.recover();

const send = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
};
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/api/v1.0/progress') {
    send(res, 200, { code: 200, msg: 'success', data: toWireProgress(updater.progress()) });
    return;
  }
  if (req.method === 'GET' && req.url === '/metrics') {
    const m = process.memoryUsage();
    const kinds: [string, number][] = [
      ['rss', m.rss],
      ['heap_total', m.heapTotal],
      ['heap_used', m.heapUsed],
      ['external', m.external],
      ['array_buffers', m.arrayBuffers],
    ];
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(kinds.map(([k, v]) => `ota_memory_bytes{kind="${k}"} ${v}\n`).join(''));
    return;
  }
  if (req.method === 'POST' && req.url === '/api/v1.0/download') {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const body = JSON.parse(text) as {
        version: string;
        package_url: string;
        package_name: string;
        package_size: number;
        package_md5: string;
      };
      updater
        .startDownload({
          version: body.version,
          packageUrl: body.package_url,
          packageName: body.package_name,
          packageSize: body.package_size,
          packageMd5: body.package_md5.toLowerCase(),
        })
        .then(
          () => send(res, 202, { code: 202, msg: 'download started', data: { version: body.version } }),
          (error: unknown) => send(res, 409, { code: 409, msg: String(error), data: null }),
        );
    });
    return;
  }
  send(res, 404, { code: 404, msg: 'not found', data: null });
});
server.listen(Number(env.PORT ?? 12315), env.HOST ?? '0.0.0.0', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  line(30, { docs: `http://${env.HOST ?? '0.0.0.0'}:${port}/docs` }, 'ota-updater listening');
});
process.once('SIGTERM', () => {
  void updater
    .close()
    .then(() => sink.close())
    .finally(() => server.close(() => process.exit(0)));
});
