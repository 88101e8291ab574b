// `node --import tsx bench/unpack-heap.ts` in this directory: the JS heap a deploy's unpack needs,
// against the unit's heap cap. Builds a package of BENCH_UNPACK_FILES small files (default 20,000:
// about as many as a manifest.json within its 1 MiB limit can list) listed in its manifest, then unpacks it with `unpackPackage` in a
// child `node <unit's flags>` (the unit's --max-old-space-size included), sampling V8's used heap
// every 20 ms. Prints the peak, the RSS the unpack added (VmHWM against the RSS before it) and
// whether the child finished; an exit by V8's out-of-memory means the cap is too low for such a
// package.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { appManifest, writeZip, type ZipEntrySpec } from '../test/package-fixtures.js';
import { APP_DIR, MiB, fixed, machineLine, makeTempDir, serviceNodeArgs } from './lib.js';

const FILES = Number(process.env.BENCH_UNPACK_FILES ?? 20_000);
const VERSION = '2.0.0';

const CHILD = `
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
const kib = (name) => Number(new RegExp('^' + name + ':\\\\s+(\\\\d+)', 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from './src/unpack.ts';
let peak = 0;
const sample = () => (peak = Math.max(peak, getHeapStatistics().used_heap_size));
const timer = setInterval(sample, 20);
const before = getHeapStatistics().used_heap_size;
const rssBefore = kib('VmRSS');
const result = await unpackPackage(process.argv[1], process.argv[2], { ...DEFAULT_UNPACK_LIMITS, maxEntries: ${FILES + 10} }, { version: '${VERSION}' });
sample();
clearInterval(timer);
console.log(JSON.stringify({ files: result.files, before, peak, rssBefore, rssPeak: kib('VmHWM') }));
`;

const tmp = await makeTempDir('ota-bench-unpack-heap-');
try {
  console.log(`ota-updater bench: JS heap of unpacking a package of ${FILES} files`);
  console.log(`  machine: ${machineLine()}`);
  const data: ZipEntrySpec[] = [];
  for (let i = 0; i < FILES; i++) {
    const name = `data/d${String(i % 100).padStart(2, '0')}/f${String(i).padStart(6, '0')}.txt`;
    data.push({ name, data: `${VERSION} ${name}\n` });
  }
  const manifest = appManifest(VERSION, 'ota-bench-app.service', 9) as { modules: unknown[] };
  manifest.modules.push({
    name: 'data',
    files: data.map((e) => ({ path: e.name, mode: '0644' })),
    services: [],
  });
  const zip = join(tmp.path, 'pkg.zip');
  const manifestText = JSON.stringify(manifest);
  await writeZip(zip, [
    { name: 'app/VERSION', data: `${VERSION}\n` },
    { name: 'app/bin/run.sh', data: '#!/bin/sh\necho run\n' },
    ...data,
    { name: 'manifest.json', data: manifestText },
  ]);
  console.log(`  manifest.json: ${fixed(manifestText.length / 1024, 0)} KiB`);
  const args = [
    ...serviceNodeArgs(),
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    CHILD,
    zip,
    join(tmp.path, 'out'),
  ];
  console.log(`  child: node ${serviceNodeArgs().join(' ')} (unpackPackage via tsx)`);
  const child = spawn(process.execPath, args, { cwd: APP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) {
    console.log(`  child exited ${code}: ${/FATAL ERROR[^\n]*/.exec(err)?.[0] ?? err.slice(-500)}`);
    process.exitCode = 1;
  } else {
    const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
      files: number;
      before: number;
      peak: number;
      rssBefore: number;
      rssPeak: number;
    };
    console.log(
      `  unpacked ${r.files} files: JS heap used ${fixed(r.before / MiB)} MiB before, peak ${fixed(r.peak / MiB)} MiB`,
    );
    // The child runs TypeScript through tsx, which has its own RSS: the difference is the unpack's.
    console.log(
      `  RSS ${fixed(r.rssBefore / MiB)} MiB before, peak ${fixed(r.rssPeak / MiB)} MiB: the unpack adds up to ${fixed((r.rssPeak - r.rssBefore) / MiB)} MiB`,
    );
  }
} finally {
  await tmp.remove();
}
