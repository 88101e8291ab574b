// `node --import tsx bench/import-cost.ts` in this directory: what each dependency of the built service
// costs in memory by itself. Each module is imported alone in a fresh `node <unit's flags>` process
// (resolved as the service resolves it), then the process waits for start-up garbage to settle and
// reports RSS, its anonymous part, and process.memoryUsage(); "+RSS" is above a bare node process.
// Median of BENCH_IMPORT_RUNS (default 3) processes per module.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { APP_DIR, fixed, machineLine, printTable, serviceNodeArgs } from './lib.js';

const RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 3);
const SERVICE_PKG = join(APP_DIR, '..', '..', 'packages', 'service', 'package.json');
const fromService = createRequire(SERVICE_PKG);
const fromApp = createRequire(join(APP_DIR, 'package.json'));

/** What is imported: a label and the file URL to import ('' for a bare process, 'http' for a listening node:http server). */
const modules: { label: string; url: string }[] = [
  { label: 'bare node', url: '' },
  { label: 'node:http server listening', url: 'http' },
  ...['fastify', 'typebox', 'prom-client', '@fastify/swagger', '@fastify/swagger-ui'].map((m) => ({
    label: m,
    url: pathToFileURL(fromService.resolve(m)).href,
  })),
  {
    label: 'pino (fastify dep)',
    url: pathToFileURL(createRequire(fromService.resolve('fastify')).resolve('pino')).href,
  },
  {
    label: 'ajv (fastify dep)',
    url: pathToFileURL(createRequire(fromService.resolve('fastify')).resolve('ajv')).href,
  },
  {
    label: '@upgrade/core (dist)',
    url: pathToFileURL(join(APP_DIR, '..', '..', 'packages', 'core', 'dist', 'index.js')).href,
  },
  {
    label: '@upgrade/service (dist, all of it)',
    url: pathToFileURL(join(APP_DIR, '..', '..', 'packages', 'service', 'dist', 'index.js')).href,
  },
  { label: 'yauzl', url: pathToFileURL(fromApp.resolve('yauzl')).href },
];

const PROBE = `
const { readFileSync } = await import('node:fs');
const url = process.argv[1];
if (url === 'http') {
  const http = await import('node:http');
  const s = http.createServer((q, r) => r.end('x'));
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
} else if (url !== '') await import(url);
await new Promise((r) => setTimeout(r, 1000));
const status = readFileSync('/proc/self/status', 'utf8');
const kib = (n) => Number(new RegExp('^' + n + ':\\\\s+(\\\\d+) kB', 'm').exec(status)[1]);
const m = process.memoryUsage();
console.log(JSON.stringify({ rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024, heapTotal: m.heapTotal / 1048576, heapUsed: m.heapUsed / 1048576, external: m.external / 1048576 }));
process.exit(0);
`;

type Probe = { rss: number; anon: number; heapTotal: number; heapUsed: number; external: number };
const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

console.log(
  `import cost of the service's dependencies, each alone in node ${serviceNodeArgs().join(' ')}, median of ${RUNS}`,
);
console.log(`  machine: ${machineLine()}`);
const results: { label: string; probe: Probe }[] = [];
for (const { label, url } of modules) {
  const probes: Probe[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(
      process.execPath,
      [...serviceNodeArgs(), '--input-type=module', '-e', PROBE, url],
      {
        encoding: 'utf8',
      },
    );
    probes.push(JSON.parse(out) as Probe);
  }
  const pick = (k: keyof Probe): number => median(probes.map((p) => p[k]));
  results.push({
    label,
    probe: {
      rss: pick('rss'),
      anon: pick('anon'),
      heapTotal: pick('heapTotal'),
      heapUsed: pick('heapUsed'),
      external: pick('external'),
    },
  });
}
const bare = results[0]?.probe.rss ?? 0;
printTable(
  ['module', 'RSS MiB', '+RSS', 'anon', 'heap total', 'heap used', 'external'],
  results.map(({ label, probe }) => [
    label,
    fixed(probe.rss),
    fixed(probe.rss - bare),
    fixed(probe.anon),
    fixed(probe.heapTotal),
    fixed(probe.heapUsed),
    fixed(probe.external),
  ]),
);
