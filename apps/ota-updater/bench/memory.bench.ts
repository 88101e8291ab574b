// `pnpm --filter @upgrade/ota-updater bench:memory` (also part of `pnpm bench`): the printer's memory
// budget (seed 004: < 50 MB) against the BUILT service (`node <unit's flags> dist/cli.js serve`,
// flags from deploy/tope-updater.service). Each run starts a fresh service, reads its idle RSS after
// start-up settled, then downloads + verifies a 1 GiB package from a loopback server (another
// process) and takes the peak RSS (VmHWM reset before the download, and /proc sampled every 50 ms).
// Prints every run, the median of the runs against the 50 MiB goal, and where the memory goes:
// from /proc/<pid>/status the file-backed part (node's code and libraries, mapped from disk) and the
// anonymous part, and from the service's own ota_memory_bytes gauge (process.memoryUsage() at the
// scrape) the V8 heap, external memory (Buffers) and what is left of the anonymous part (native:
// malloc arenas, thread stacks, V8 outside its heap).
// Env: BENCH_MEMORY_BYTES (default 1 GiB), BENCH_MEMORY_RUNS (default 3), BENCH_SERVICE_NODE_ARGS.
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startDeviceApiSimulator } from '../test/simulators/device-api.js';
import {
  MiB,
  api,
  ensureBuilt,
  fixed,
  machineLine,
  makeTempDir,
  printTable,
  recordSummary,
  resetPeakRss,
  scrapeMetrics,
  serviceEnv,
  serviceNodeArgs,
  setUpDeviceRoot,
  sleep,
  startPackageServerProcess,
  startService,
  verdict,
  waitForStage,
} from './lib.js';

const SIZE = Number(process.env.BENCH_MEMORY_BYTES ?? 1024 * MiB);
const RUNS = Number(process.env.BENCH_MEMORY_RUNS ?? 3);
const GOAL_MIB = 50;
const PATH = '/packages/big.zip';

/** One reading of the process, in MiB. */
interface Reading {
  rss: number;
  /** /proc: RssFile + RssShmem (code and data mapped from files) and RssAnon. */
  file: number;
  anon: number;
  /** process.memoryUsage() from the service's gauge; NaN when the scrape failed. */
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

function procOf(pid: number): { rss: number; file: number; anon: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024;
  return {
    rss: kib('VmRSS'),
    file: kib('RssFile') + kib('RssShmem'),
    anon: kib('RssAnon'),
    hwm: kib('VmHWM'),
  };
}

async function readingOf(pid: number, address: string): Promise<Reading> {
  const metrics = await scrapeMetrics(address).catch(() => new Map<string, number>());
  const gauge = (kind: string): number =>
    (metrics.get(`ota_memory_bytes{kind="${kind}"}`) ?? Number.NaN) / MiB;
  const proc = procOf(pid);
  return {
    rss: proc.rss,
    file: proc.file,
    anon: proc.anon,
    heapTotal: gauge('heap_total'),
    heapUsed: gauge('heap_used'),
    external: gauge('external'),
    arrayBuffers: gauge('array_buffers'),
  };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
};

await ensureBuilt();
const nodeArgs = serviceNodeArgs();
const tmp = await makeTempDir('ota-bench-memory-');
console.log(
  `ota-updater bench: memory of ${Object.entries(serviceEnv())
    .map(([k, v]) => `${k}=${v} `)
    .join(
      '',
    )}the built service (node ${nodeArgs.join(' ') || '(no flags)'} dist/cli.js serve), idle and through a ${fixed(SIZE / MiB, 0)} MiB download, ${RUNS} runs`,
);
console.log(`  machine: ${machineLine()}`);
console.log('  package server (own process): computing the digest of the generated package...');
const server = await startPackageServerProcess({ [PATH]: { size: SIZE, seed: 5 } });
const deviceApi = await startDeviceApiSimulator();
try {
  const digest = server.digests[PATH];
  if (digest === undefined) throw new Error(`no digest for ${PATH}`);
  const root = await setUpDeviceRoot(tmp.path, 'ota-bench-app.service', 9);
  const runs: { idle: Reading; peak: Reading; peakRss: number; seconds: number }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const dataDir = join(tmp.path, `data-${run}`);
    const service = await startService(
      {
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        OTA_ROOT: root,
        OTA_DATA_DIR: dataDir,
        DEVICE_API_URL: deviceApi.url,
      },
      tmp.path,
      nodeArgs,
    );
    try {
      // Start-up garbage settles; the printer's service is idle most of its life.
      await sleep(2000);
      const idle = await readingOf(service.pid, service.address);
      const hwmResets = resetPeakRss(service.pid);
      let peak = idle;
      let sampledPeak = idle.rss;
      // /proc every 50 ms for the peak; the breakdown at the highest RSS seen by a scrape (every 250 ms).
      const sampler = setInterval(() => {
        sampledPeak = Math.max(sampledPeak, procOf(service.pid).rss);
      }, 50);
      let scraping = true;
      const scraper = (async () => {
        while (scraping) {
          const reading = await readingOf(service.pid, service.address);
          if (reading.rss > peak.rss) peak = reading;
          await sleep(250);
        }
      })();
      const started = performance.now();
      try {
        const accepted = await api(service.address, 'POST', '/api/v1.0/download', {
          version: `9.${run}.0`,
          package_url: server.urlOf(PATH),
          package_name: `9.${run}.0.zip`,
          package_size: digest.size,
          package_md5: digest.md5,
        });
        if (accepted.status !== 202)
          throw new Error(`POST /download answered ${accepted.status}: ${accepted.msg}`);
        const final = await waitForStage(service.address, ['downloaded', 'failed', 'idle'], {
          intervalMs: 100,
        });
        if (final.stage !== 'downloaded')
          throw new Error(`the download ended ${final.stage}: ${final.error ?? final.message}`);
      } finally {
        clearInterval(sampler);
        scraping = false;
        await scraper;
      }
      const seconds = (performance.now() - started) / 1000;
      const hwm = procOf(service.pid).hwm;
      const peakRss = Math.max(sampledPeak, hwmResets ? hwm : 0, peak.rss);
      runs.push({ idle, peak, peakRss, seconds });
      console.log(
        `  run ${run}: idle RSS ${fixed(idle.rss)} MiB, peak RSS ${fixed(peakRss)} MiB through ${fixed(SIZE / MiB, 0)} MiB in ${fixed(seconds, 1)} s (${fixed(SIZE / MiB / seconds, 0)} MiB/s)${hwmResets ? '' : ' (VmHWM not reset: 50 ms samples only)'}`,
      );
    } finally {
      await service.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  const row = (label: string, r: Reading, rss = r.rss): string[] => [
    label,
    fixed(rss),
    fixed(r.file),
    fixed(r.anon),
    fixed(r.heapTotal),
    fixed(r.heapUsed),
    fixed(r.external),
    fixed(r.arrayBuffers),
    fixed(r.anon - r.heapTotal - r.external),
  ];
  console.log('');
  console.log('  where it goes (MiB): file = node binary + libraries mapped from disk (RssFile + RssShmem);');
  console.log(
    '  anon = RssAnon = V8 heap + external (Buffers, incl. array buffers) + native rest (malloc, stacks, V8 outside its heap)',
  );
  printTable(
    ['reading', 'RSS', 'file', 'anon', 'heap total', 'heap used', 'external', 'array buf', 'native rest'],
    runs.flatMap((r, i) => [row(`run ${i + 1} idle`, r.idle), row(`run ${i + 1} at peak scrape`, r.peak)]),
  );
  const idleMedian = median(runs.map((r) => r.idle.rss));
  const peakMedian = median(runs.map((r) => r.peakRss));
  console.log('');
  console.log(
    `  idle RSS, median of ${RUNS}:                 ${fixed(idleMedian)} MiB (goal <= ${GOAL_MIB} MiB: ${verdict(idleMedian <= GOAL_MIB)}) [${runs.map((r) => fixed(r.idle.rss)).join(', ')}]`,
  );
  console.log(
    `  peak RSS, ${fixed(SIZE / MiB, 0)} MiB download, median of ${RUNS}: ${fixed(peakMedian)} MiB (goal <= ${GOAL_MIB} MiB: ${verdict(peakMedian <= GOAL_MIB)}) [${runs.map((r) => fixed(r.peakRss)).join(', ')}]`,
  );
  console.log(`  machine after: ${machineLine()}`);
  recordSummary([
    {
      bench: 'memory',
      figure: `idle RSS, median of ${RUNS}`,
      value: `${fixed(idleMedian)} MiB (${runs.map((r) => fixed(r.idle.rss)).join(', ')})`,
      goal: `<= ${GOAL_MIB} MiB`,
      verdict: verdict(idleMedian <= GOAL_MIB),
    },
    {
      bench: 'memory',
      figure: `peak RSS, ${fixed(SIZE / MiB, 0)} MiB download, median of ${RUNS}`,
      value: `${fixed(peakMedian)} MiB (${runs.map((r) => fixed(r.peakRss)).join(', ')})`,
      goal: `<= ${GOAL_MIB} MiB`,
      verdict: verdict(peakMedian <= GOAL_MIB),
    },
  ]);
} finally {
  await server.stop();
  await deviceApi.close();
  await tmp.remove();
}
