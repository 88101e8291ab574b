// Disk hygiene on a real small disk: the install root on a 64 MiB tmpfs (mounting needs root; the
// file is skipped with the reason otherwise). A package that cannot fit is refused before its
// first byte, one whose unpack cannot fit before its first file, both with INSUFFICIENT_SPACE and
// nothing left behind; orphans in downloads/ go at start-up; /healthz and /metrics show the disk.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOtaConfig } from '../src/config.js';
import { startOtaUpdater, type RunningOtaUpdater } from '../src/main.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { versionDirsOf, writeAppPackage } from './package-fixtures.js';
import { publishPackage, startPackageServer, type PackageServer } from './simulators/package-server.js';

const run = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const MiB = 1024 * 1024;

let base: string;
let disk: string;
let mounted = false;
let mountError = '';

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'ota-disk-'));
  disk = join(base, 'disk');
  await mkdir(disk);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', disk]);
    mounted = true;
  } catch (error) {
    mountError = String(error);
  }
});

afterAll(async () => {
  if (mounted) await run('umount', ['-l', disk]).catch(() => undefined);
  await rm(base, { recursive: true, force: true });
});

interface Progress {
  stage: string;
  error: unknown;
  error_code?: string | null;
}

function codeOf(p: Progress): string | null {
  if (p.error_code !== undefined) return p.error_code;
  return (p.error as { code?: string } | null)?.code ?? null;
}

describe('a 64 MiB install disk', () => {
  let packages: PackageServer;
  let service: RunningOtaUpdater | undefined;
  let root: string;

  async function start(): Promise<RunningOtaUpdater> {
    service = await startOtaUpdater(
      loadOtaConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', OTA_ROOT: root }),
      { handleSignals: false },
    );
    return service;
  }

  /** The answer's JSON (or text) body, read loosely: each test looks at the fields it checks. */
  async function call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> | string }> {
    if (service === undefined) throw new Error('no service');
    const res = await fetch(`${service.address}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const json = res.headers.get('content-type')?.includes('json') === true;
    return { status: res.status, body: json ? (JSON.parse(text) as Record<string, unknown>) : text };
  }

  async function publish(version: string, bulkBytes: number): Promise<Record<string, unknown>> {
    const pkg = await writeAppPackage(base, {
      version,
      unit: 'ota-test-app.service',
      port: 1,
      extra: [{ name: 'app/bulk.bin', data: randomBytes(bulkBytes), compress: false }],
    });
    return publishPackage(packages, version, await readFile(pkg.path));
  }

  async function ended(): Promise<Progress> {
    let last: Progress = { stage: '', error: null };
    await waitFor(
      async () => {
        last = ((await call('GET', '/api/v1.0/progress')).body as { data: Progress }).data;
        return ['downloaded', 'failed', 'success', 'rolled_back'].includes(last.stage);
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'the download or deploy to end' },
    );
    return last;
  }

  beforeAll(async () => {
    if (!mounted) return;
    root = join(disk, 'root');
    const factory = await writeAppPackage(base, { version: '0.9.0', unit: 'ota-test-app.service', port: 1 });
    const staged = join(base, 'staging', '0.9.0');
    await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
    await run(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
    await run(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
    packages = await startPackageServer({ packages: {} });
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await packages?.close();
  });

  it('refuses a package larger than the free space before its first byte, with INSUFFICIENT_SPACE', async (context) => {
    if (!mounted) context.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    await start();
    const request = await publish('1.0.0', 80 * MiB);
    expect((await call('POST', '/api/v1.0/download', request)).status).toBe(202);
    const end = await ended();
    expect(end.stage).toBe('failed');
    expect(codeOf(end)).toBe('INSUFFICIENT_SPACE');
    expect(JSON.stringify(end.error)).toMatch(/not enough free disk space for the package 1\.0\.0/);
    expect(JSON.stringify(end.error)).not.toMatch(/ENOSPC: ENOSPC/);
    expect(packages.requests).toHaveLength(0);
    expect(await readdir(join(root, '.ota', 'downloads'))).toEqual([]);
  }, 60_000);

  it('refuses to unpack a 38 MiB package that fits the disk only once, and keeps none of it', async (context) => {
    if (!mounted) context.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    const request = await publish('1.1.0', 38 * MiB);
    expect((await call('POST', '/api/v1.0/download', request)).status).toBe(202);
    expect((await ended()).stage).toBe('downloaded');
    expect((await call('POST', '/api/v1.0/update', { version: '1.1.0' })).status).toBe(202);
    const end = await ended();
    expect(end.stage).toBe('failed');
    expect(codeOf(end)).toBe('INSUFFICIENT_SPACE');
    expect(JSON.stringify(end.error)).toMatch(/unpacking 1\.1\.0/);
    // Neither the package nor a half-unpacked version stays on the small disk. The package goes
    // right after state.json stopped naming it, so just after the stage was published.
    await waitFor(async () => (await readdir(join(root, '.ota', 'downloads'))).length === 0, {
      timeoutMs: 5_000,
      what: 'the rejected package to be deleted',
    });
    expect(await versionDirsOf(root)).toEqual(['0.9.0']); // the factory's directory only
  }, 120_000);

  it('shows the disk in /healthz and its free bytes in /metrics', async (context) => {
    if (!mounted) context.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    const health = await call('GET', '/healthz');
    expect(health.status).toBe(200);
    const { checks } = health.body as { checks: { name: string; status: string; detail: string }[] };
    const diskCheck = checks.find((c) => c.name === 'disk');
    expect(diskCheck).toMatchObject({ status: 'ok' });
    expect(diskCheck?.detail).toMatch(/^\d+ of 67108864 bytes free/);
    const metrics = (await call('GET', '/metrics')).body as string;
    const free = /^ota_disk_free_bytes (\d+)$/m.exec(metrics);
    expect(Number(free?.[1])).toBeGreaterThan(40 * MiB);
    expect(metrics).toMatch(/^ota_disk_size_bytes 67108864$/m);
  });

  it('removes orphans from downloads/ at start-up', async (context) => {
    if (!mounted) context.skip(`cannot mount a tmpfs here (needs root): ${mountError}`);
    await service?.stop();
    service = undefined;
    const downloads = join(root, '.ota', 'downloads');
    await writeFile(join(downloads, '0.8.0.zip'), randomBytes(MiB));
    await writeFile(join(downloads, '1.3.0.zip.part'), randomBytes(MiB));
    await start();
    expect(await readdir(downloads)).toEqual([]);
  });
});
