// `pnpm bench` for ota-updater, part 3: unpacking a package of 10,000 small files (plus app files
// and a manifest listing them all) with `unpackPackage`, beside `unzip -q -o` of the same ZIP, in
// the same run and alternating which goes first; then one full `deployVersion` of that package on a
// device root laid out by the real scripts, its unit run by the fake systemctl.
// Prints: seconds, files/s and CPU seconds of both, their ratio, the time an fsync of every file and
// directory takes after unzip (unpackPackage makes each durable before the version appears), and
// the deploy's time per phase. The issue sets no goal here: the figures stand beside unzip's.
// Env: BENCH_DEPLOY_FILES (default 10000), BENCH_DEPLOY_ROUNDS (default 2).
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { systemClock } from '@upgrade/core';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import { deployVersion, type DeployPhase } from '../src/deploy.js';
import { createServiceHealthCheck } from '../src/service-health.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { createFakeSystemd, freePort, getHealth } from '@upgrade/testkit';
import { appManifest, writeZip, type ZipEntrySpec } from '../test/package-fixtures.js';
import {
  MiB,
  fixed,
  machineLine,
  makeTempDir,
  printTable,
  recordSummary,
  setUpDeviceRoot,
  timeShell,
} from './lib.js';

const FILES = Number(process.env.BENCH_DEPLOY_FILES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_DEPLOY_ROUNDS ?? 2);
const UNIT = 'ota-bench-app.service';
const VERSION = '2.0.0';
const run = promisify(execFile);

/** `FILES` text files of 0.5-3.5 KiB in 100 directories, listed in the manifest beside the app module. */
function packageEntries(version: string, port: number): ZipEntrySpec[] {
  const perDir = Math.ceil(FILES / 100);
  const data: ZipEntrySpec[] = [];
  for (let i = 0; i < FILES; i++) {
    const dir = String(Math.floor(i / perDir)).padStart(2, '0');
    const name = `data/d${dir}/f${String(i % perDir).padStart(4, '0')}.txt`;
    const line = `${version} ${name} ${(i * 2_654_435_761) % 4_294_967_296}\n`;
    data.push({ name, data: line.repeat(Math.ceil((512 + ((i * 97) % 3072)) / line.length)) });
  }
  const manifest = appManifest(version, UNIT, port) as { modules: unknown[] };
  manifest.modules.push({
    name: 'data',
    files: data.map((e) => ({ path: e.name, mode: '0644' })),
    services: [],
  });
  return [
    { name: 'app/VERSION', data: `${version}\n` },
    { name: 'app/bin/run.sh', data: '#!/bin/sh\necho run\n' },
    ...data,
    { name: 'manifest.json', data: JSON.stringify(manifest) },
  ];
}

interface Timed {
  what: string;
  seconds: number;
  cpuSeconds: number;
}

const tmp = await makeTempDir('ota-bench-deploy-');
console.log(`ota-updater bench: deploy of a package with ${FILES} files, beside unzip of it`);
console.log(`  machine: ${machineLine()}`);
const hasUnzip = await run('bash', ['-c', 'command -v unzip']).then(
  () => true,
  () => false,
);
const fake = await createFakeSystemd(tmp.path);
try {
  // One package for everything: the unpack rounds, then the deploy onto a device running 0.9.0.
  const port = await freePort();
  const root = await setUpDeviceRoot(tmp.path, UNIT, port);
  const zip = join(tmp.path, `bench-${VERSION}.zip`);
  const built = performance.now();
  const entries = packageEntries(VERSION, port);
  await writeZip(zip, entries);
  const inflated = entries.reduce((sum, e) => sum + Buffer.byteLength(e.data ?? ''), 0);
  const zipBytes = (await stat(zip)).size;
  console.log(
    `  package: ${entries.length} entries (${FILES} data files), ${fixed(inflated / MiB)} MiB inflated, ${fixed(zipBytes / MiB)} MiB zipped (yazl, ${fixed((performance.now() - built) / 1000, 1)} s to build)`,
  );
  if (!hasUnzip)
    console.log('  unzip is not installed (apt-get install unzip): its side of the comparison is skipped');

  // Each measurement starts with the disk clean: dirty pages of the previous one must not be
  // flushed on its account (an fsync can wait for them).
  const settle = async (...dirs: string[]): Promise<void> => {
    for (const dir of dirs) await run('rm', ['-rf', dir]);
    await run('sync');
  };
  const viaUnpack = async (dest: string): Promise<Timed> => {
    await settle(dest);
    const cpu = process.cpuUsage();
    const t = performance.now();
    const result = await unpackPackage(zip, dest, DEFAULT_UNPACK_LIMITS, { version: VERSION });
    const seconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    if (result.files !== entries.length)
      throw new Error(`unpacked ${result.files} files, expected ${entries.length}`);
    return { what: 'unpackPackage', seconds, cpuSeconds: (used.user + used.system) / 1e6 };
  };
  const viaUnzip = async (dest: string): Promise<Timed> => {
    await settle(dest);
    const { seconds, childCpuSeconds } = await timeShell(`unzip -q -o '${zip}' -d '${dest}'`, tmp.path);
    return { what: 'unzip -q -o', seconds, cpuSeconds: childCpuSeconds };
  };
  /** What unpackPackage adds for power-loss safety, on unzip's output: `sync FILE...` fsyncs each path. */
  const fsyncAfterUnzip = async (dest: string): Promise<Timed> => {
    await settle(dest);
    await run('unzip', ['-q', '-o', zip, '-d', dest]);
    const { seconds, childCpuSeconds } = await timeShell(
      `find '${dest}' -print0 | xargs -0 sync --`,
      tmp.path,
    );
    return { what: 'fsync of every file and dir, after unzip', seconds, cpuSeconds: childCpuSeconds };
  };

  const rounds: { round: number; unpack: Timed; unzip: Timed | null }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const unpackDest = join(tmp.path, 'versions', `${VERSION}-run${round}`);
    const unzipDest = join(tmp.path, `unzip-run${round}`);
    process.stdout.write(`  round ${round} (${round % 2 === 1 || !hasUnzip ? 'unpack' : 'unzip'} first)...`);
    if (round % 2 === 1 || !hasUnzip) {
      const unpack = await viaUnpack(unpackDest);
      rounds.push({ round, unpack, unzip: hasUnzip ? await viaUnzip(unzipDest) : null });
    } else {
      const unzip = await viaUnzip(unzipDest);
      rounds.push({ round, unzip, unpack: await viaUnpack(unpackDest) });
    }
    await settle(unpackDest, unzipDest);
    process.stdout.write(' done\n');
  }
  const durable = hasUnzip ? await fsyncAfterUnzip(join(tmp.path, 'unzip-fsync')) : null;
  await settle(join(tmp.path, 'unzip-fsync'));

  process.stdout.write('  deployVersion (factory 0.9.0 running under the fake systemctl)...');
  await fake.addAppUnit(UNIT, join(root, 'versions'), port); // runs <root>/versions/current/app
  const services = createSystemdServiceManager({ env: fake.env, timeoutMs: 10_000 });
  await services.start([UNIT]);
  const phases: { phase: DeployPhase; at: number }[] = [];
  const deployStarted = performance.now();
  const result = await deployVersion(
    {
      root,
      services,
      // Test-like pacing: one healthy round suffices, probed every 250 ms (the service's default
      // is two rounds 1 s apart, which would add a fixed second to the figure).
      checkHealth: createServiceHealthCheck({
        services,
        timeoutMs: 10_000,
        intervalMs: 250,
        consecutiveOk: 1,
      }),
      clock: systemClock,
    },
    { version: VERSION, path: zip, size: zipBytes, md5: '', sha256: '' },
    { onPhase: (phase) => void phases.push({ phase, at: performance.now() }) },
  );
  const deployEnded = performance.now();
  const running = await getHealth(port);
  process.stdout.write(' done\n');

  console.log('');
  const row = (label: string, t: Timed): string[] => [
    label,
    t.what,
    fixed(t.seconds, 2),
    fixed(entries.length / t.seconds, 0),
    fixed(t.cpuSeconds, 2),
  ];
  printTable(
    ['round', 'what', 's', 'entries/s', 'CPU s'],
    [
      ...rounds.flatMap((r) => [
        row(String(r.round), r.unpack),
        ...(r.unzip === null ? [] : [row(String(r.round), r.unzip)]),
      ]),
      ...(durable === null ? [] : [row('ref', durable)]),
    ],
  );
  const ratios = rounds.flatMap((r) => (r.unzip === null ? [] : [r.unpack.seconds / r.unzip.seconds]));
  console.log('');
  if (ratios.length > 0)
    console.log(`  unpackPackage time / unzip time: ${ratios.map((r) => fixed(r, 1)).join(', ')}`);
  const unpackPhase = (phases[1]?.at ?? deployEnded) - (phases[0]?.at ?? deployStarted);
  console.log(
    `  deployVersion, 1 unit: ${result.status} in ${fixed((deployEnded - deployStarted) / 1000, 2)} s; the unit now answers ${running?.version ?? 'nothing'}`,
  );
  printTable(
    ['phase', 'at s', 'took s'],
    phases.map((p, i) => [
      p.phase,
      fixed((p.at - deployStarted) / 1000, 2),
      fixed(((phases[i + 1]?.at ?? deployEnded) - p.at) / 1000, 2),
    ]),
  );
  if (durable !== null) {
    const meanUnpack = rounds.reduce((sum, r) => sum + r.unpack.seconds, 0) / rounds.length;
    const meanUnzip =
      rounds.reduce((sum, r) => sum + (r.unzip?.seconds ?? 0), 0) / Math.max(1, ratios.length);
    console.log('');
    const meanUnpackCpu = rounds.reduce((sum, r) => sum + r.unpack.cpuSeconds, 0) / rounds.length;
    const meanUnzipCpu =
      rounds.reduce((sum, r) => sum + (r.unzip?.cpuSeconds ?? 0), 0) / Math.max(1, ratios.length);
    const perEntry = (seconds: number): string => fixed((seconds / entries.length) * 1000, 2);
    console.log('  where the unpack time goes:');
    console.log(
      `    unzip ${fixed(meanUnzip, 2)} s + an fsync of each of its paths ${fixed(durable.seconds, 2)} s (${perEntry(durable.seconds)} ms each on this disk) = ${fixed(meanUnzip + durable.seconds, 2)} s, against unpackPackage's ${fixed(meanUnpack, 2)} s:`,
    );
    console.log(
      `    CPU per entry: unpackPackage ${perEntry(meanUnpackCpu)} ms, unzip ${perEntry(meanUnzipCpu)} ms. unpackPackage creates the directories once,`,
    );
    console.log(
      '    then writes 8 entries at a time: a small entry is read whole and inflated in one call (a large one is',
    );
    console.log(
      '    streamed), then open, fchmod, write, fsync, close, each a hand-off to the libuv threadpool; the fsyncs',
    );
    console.log(
      '    of concurrent entries overlap (the file system commits them together). unzip makes nothing durable.',
    );
  }
  console.log(`  machine after: ${machineLine()}`);
  recordSummary([
    {
      bench: 'deploy',
      figure: `unpack of ${entries.length} entries vs unzip`,
      value: rounds
        .map((r) =>
          r.unzip === null
            ? `${fixed(r.unpack.seconds, 2)} s`
            : `${fixed(r.unpack.seconds, 2)} s vs ${fixed(r.unzip.seconds, 2)} s`,
        )
        .join('; ')
        .concat(durable === null ? '' : ` (fsync of each after unzip: ${fixed(durable.seconds, 2)} s)`),
      goal: 'none (beside unzip)',
      verdict: '-',
    },
    {
      bench: 'deploy',
      figure: `deployVersion, ${entries.length} entries, 1 unit`,
      value: `${result.status} in ${fixed((deployEnded - deployStarted) / 1000, 2)} s (unpacking ${fixed(unpackPhase / 1000, 2)} s)`,
      goal: 'none',
      verdict: result.status === 'committed' ? '-' : 'FAILED',
    },
  ]);
} finally {
  await fake.stopAll();
  await tmp.remove();
}
