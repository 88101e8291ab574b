// Shared plumbing of the ota-updater benches: the built service as a process on a device root laid
// out by the real scripts, the package server in its own process (its CPU and memory never count
// against the service), /proc readings of RSS and CPU time, and printing. Nothing here asserts on
// time: the benches print figures beside their goals.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { writeAppPackage } from '../test/package-fixtures.js';
import type { PackageDigest, PackageFaults, PackageSpec } from '../test/simulators/package-server.js';

const run = promisify(execFile);

export const MiB = 1024 * 1024;
/** apps/ota-updater */
export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const CLI_PATH = join(APP_DIR, 'dist', 'cli.js');
const SCRIPTS = join(APP_DIR, 'scripts');

/** Builds dist/cli.js when it is missing or older than a file under src/, so the bench runs today's code. */
export async function ensureBuilt(): Promise<void> {
  const built = await stat(CLI_PATH).catch(() => null);
  let fresh = built !== null;
  if (built !== null) {
    for (const entry of await readdir(join(APP_DIR, 'src'), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && (await stat(join(entry.parentPath, entry.name))).mtimeMs > built.mtimeMs) {
        fresh = false;
        break;
      }
    }
  }
  if (fresh) return;
  console.log('  dist/cli.js is missing or older than src/: pnpm --filter @upgrade/ota-updater build');
  execFileSync('pnpm', ['--filter', '@upgrade/ota-updater', 'build'], {
    cwd: APP_DIR,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** A temp directory and its removal. */
export async function makeTempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * A device root as the installer leaves it: factory 0.9.0 (one app module run by `unit`, health on
 * `port`) made read-only by create_factory_version.sh (versions/0.9.0, versions/factory -> 0.9.0), and
 * `versions/current -> factory` by setup_symlinks.sh.
 */
export async function setUpDeviceRoot(base: string, unit: string, port: number): Promise<string> {
  const root = join(base, 'root');
  const factory = await writeAppPackage(base, { version: '0.9.0', unit, port });
  const staged = join(base, 'staging', '0.9.0');
  await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
  await run(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
  await run(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
  return root;
}

/** The service process as the benches drive it. */
export interface ServiceHandle {
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly address: string;
  /** Log lines written so far (stdout is drained as it comes, like journald would). */
  readonly logLines: number;
  /** The last lines of output, for an error message. */
  tail(): string;
  stop(): Promise<void>;
}

/**
 * Spawns `node [nodeArgs] dist/cli.js serve` (or another built `script` that logs the same line)
 * with exactly this environment (PATH and HOME inherited, nothing else) and resolves once it logged
 * `ota-updater listening` with its `docs` address (so LOG_LEVEL must be info or lower).
 */
export async function startService(
  env: Record<string, string>,
  cwd: string,
  nodeArgs: readonly string[] = serviceNodeArgs(),
  script: string = CLI_PATH,
): Promise<ServiceHandle> {
  const child = spawn(process.execPath, [...nodeArgs, script, 'serve'], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? cwd,
      ...serviceEnv(),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${script}`);
  const recent: string[] = [];
  let lines = 0;
  let address: string | null = null;
  const keep = (line: string): void => {
    lines++;
    recent.push(line);
    if (recent.length > 30) recent.shift();
    if (address === null && line.includes('"ota-updater listening"')) {
      const docs = (JSON.parse(line) as { docs?: string }).docs;
      if (docs?.endsWith('/docs') === true) address = docs.slice(0, -'/docs'.length);
    }
  };
  createInterface({ input: child.stdout }).on('line', keep);
  createInterface({ input: child.stderr }).on('line', (l) => keep(`stderr: ${l}`));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const tail = (): string => recent.join('\n');
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the service exited at start:\n${tail()}`);
    if (address !== null) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the service did not start within 20 s:\n${tail()}`);
    }
    await sleep(50);
  }
  const ready: string = address;
  return {
    pid,
    address: ready,
    get logLines() {
      return lines;
    },
    tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** deploy/tope-updater.service, which the benches read so they measure what the printer runs. */
const UNIT = readFileSync(join(APP_DIR, 'deploy', 'tope-updater.service'), 'utf8');

/** The node flags of the unit's ExecStart (`node <flags> .../dist/cli.js serve`). */
export const PRODUCTION_NODE_ARGS: readonly string[] = (
  /^ExecStart=\S+ (.*?) ?\S+\/dist\/cli\.js serve$/m.exec(UNIT)?.[1] ?? ''
)
  .split(' ')
  .filter((a) => a !== '');

/** The unit's `Environment=GLIBC_TUNABLES=...`, or '' without one. */
export const PRODUCTION_GLIBC_TUNABLES = /^Environment=GLIBC_TUNABLES=(\S+)$/m.exec(UNIT)?.[1] ?? '';

/**
 * The environment the unit adds for the service: GLIBC_TUNABLES from BENCH_SERVICE_GLIBC_TUNABLES when
 * set (an empty string for glibc's defaults), else the unit's.
 */
export function serviceEnv(): Record<string, string> {
  const tunables = process.env.BENCH_SERVICE_GLIBC_TUNABLES ?? PRODUCTION_GLIBC_TUNABLES;
  return tunables === '' ? {} : { GLIBC_TUNABLES: tunables };
}

/**
 * Flags for the service's node: BENCH_SERVICE_NODE_ARGS split on spaces when set (e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof`, or an empty string for node's defaults), else PRODUCTION_NODE_ARGS.
 */
export function serviceNodeArgs(): string[] {
  const given = process.env.BENCH_SERVICE_NODE_ARGS;
  if (given === undefined) return [...PRODUCTION_NODE_ARGS];
  return given.split(' ').filter((a) => a !== '');
}

/** A process's memory from /proc, in KiB: VmRSS, its anonymous part (what no page cache can give back), VmHWM. */
export function memoryOf(pid: number): { rssKiB: number; anonKiB: number; hwmKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rssKiB: field('VmRSS'), anonKiB: field('RssAnon'), hwmKiB: field('VmHWM') };
}

/** Resets VmHWM to the current RSS (Linux >= 4.0, own processes); false when the kernel refuses. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the whole line (utime, stime) in clock ticks; USER_HZ is 100 on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The package server in a child process. */
export interface PackageServerProcess {
  readonly url: string;
  readonly pid: number;
  readonly digests: Record<string, PackageDigest>;
  urlOf(path: string): string;
  stop(): Promise<void>;
}

/** Starts bench/serve-packages.ts in its own process; resolves once it printed its URL and digests. */
export async function startPackageServerProcess(
  packages: Record<string, PackageSpec & { size: number }>,
  faults: PackageFaults = {},
): Promise<PackageServerProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(APP_DIR, 'bench', 'serve-packages.ts')],
    {
      cwd: APP_DIR,
      env: { ...process.env, BENCH_PACKAGES: JSON.stringify(packages), BENCH_FAULTS: JSON.stringify(faults) },
      // stdin is a pipe the child watches: it exits when this process goes away, however it ends.
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const pid = child.pid;
  if (pid === undefined || child.stdout === null) throw new Error('could not spawn the package server');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the package server exited (${code}) before starting`)));
  });
  const ready = JSON.parse(first) as { url: string; digests: Record<string, PackageDigest> };
  return {
    url: ready.url,
    pid,
    digests: ready.digests,
    urlOf: (path) => `${ready.url}${path}`,
    async stop() {
      child.stdin?.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One JSON API call: status and the `{code, msg, data}` envelope. */
export async function api<T = Record<string, unknown>>(
  address: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; code: number; msg: string; data: T }> {
  const response = await fetch(`${address}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const envelope = (await response.json()) as { code: number; msg: string; data: T };
  return { status: response.status, ...envelope };
}

/** GET /progress's data. */
export interface Progress {
  stage: string;
  progress: number;
  message: string;
  error: string | null;
  error_code: string | null;
}

/** Polls GET /progress every `intervalMs` until the stage is one of `stages`; returns the last answer. */
export async function waitForStage(
  address: string,
  stages: readonly string[],
  options: { intervalMs?: number; timeoutMs?: number } = {},
): Promise<Progress> {
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  for (;;) {
    const { data } = await api<Progress>(address, 'GET', '/api/v1.0/progress');
    if (stages.includes(data.stage)) return data;
    if (Date.now() > deadline)
      throw new Error(`stage ${stages.join(' or ')} not reached; last: ${JSON.stringify(data)}`);
    await sleep(options.intervalMs ?? 20);
  }
}

/** Runs a bash command line, timing it from spawn to exit; stdout and the `times` of its children. */
export async function timeShell(
  script: string,
  cwd: string,
): Promise<{ seconds: number; stdout: string; childCpuSeconds: number }> {
  const started = performance.now();
  // `times` prints the shell's and its children's user/system time: the CPU the pipeline used.
  const { stdout } = await run('bash', ['-c', `set -euo pipefail; ${script}; times`], {
    cwd,
    maxBuffer: 16 * MiB,
  });
  const seconds = (performance.now() - started) / 1000;
  const lines = stdout.trimEnd().split('\n');
  const children = lines.pop() ?? '';
  lines.pop();
  const cpu = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
    (sum, m) => sum + Number(m[1]) * 60 + Number(m[2]),
    0,
  );
  return { seconds, stdout: lines.join('\n'), childCpuSeconds: cpu };
}

/** The q-quantile (0..1) of sorted numbers, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/** Prints rows under headers with padded columns: numbers right-aligned, text left-aligned. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.every((r) => /^[-+]?[\d.,]*%?$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] === true ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  console.log(`  ${line(headers)}`);
  console.log(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const row of rows) console.log(`  ${line(row)}`);
}

/** The service's GET /metrics as name (with labels) -> value. */
export async function scrapeMetrics(address: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${address}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

/** One figure against its goal, for the table run-all prints at the end. */
export interface SummaryRow {
  bench: string;
  figure: string;
  value: string;
  goal: string;
  /** `ok`, `MISSED`, or `-` for a figure without a goal. */
  verdict: string;
}

/** Hands the figures to run-all (BENCH_SUMMARY_FILE, JSON lines); a bench run alone prints its own table. */
export function recordSummary(rows: readonly SummaryRow[]): void {
  const file = process.env.BENCH_SUMMARY_FILE;
  if (file === undefined || file === '') return;
  appendFileSync(file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** The machine the figures come from: cores and load (other work on it skews every figure). */
export function machineLine(): string {
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return `${availableParallelism()} cores, load average ${load} (1, 5, 15 min)`;
}

export const verdict = (ok: boolean): string => (ok ? 'ok' : 'MISSED');
export const fixed = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
