// The whole service over real HTTP: download from a package server on loopback, deploy into a
// temp root laid out by the real scripts, units started by the fake systemctl, progress posted to
// the device API simulator, state.json on disk.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor, createFakeSystemd, freePort, getHealth, type FakeSystemd } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import { loadOtaConfig } from '../src/config.js';
import { startOtaUpdater, type RunningOtaUpdater } from '../src/main.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import type { WireProgress } from '../src/progress-wire.js';
import { writeAppPackage, type AppPackageOptions } from './package-fixtures.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';
import { publishPackage, startPackageServer, type PackageServer } from './simulators/package-server.js';

const run = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const UNIT = 'ota-test-app.service';

interface Device {
  base: string;
  root: string;
  port: number;
  fake: FakeSystemd;
  packages: PackageServer;
  deviceApi: DeviceApiSimulator;
  service: RunningOtaUpdater;
  /** Serves a package of `version` and returns the body of POST /download for it. */
  publish(options: Omit<AppPackageOptions, 'unit' | 'port'>): Promise<Record<string, unknown>>;
  start(): Promise<RunningOtaUpdater>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A device on factory 0.9.0 with its service running, and the OTA service started on it. */
async function setUpDevice(env: (base: string) => Record<string, string> = () => ({})): Promise<Device> {
  const base = await mkdtemp(join(tmpdir(), 'ota-service-'));
  const root = join(base, 'root');
  const port = await freePort();
  const fake = await createFakeSystemd(base);
  cleanups.push(async () => {
    await fake.stopAll();
    await rm(base, { recursive: true, force: true });
  });
  const factory = await writeAppPackage(base, { version: '0.9.0', unit: UNIT, port });
  const staged = join(base, 'staging', '0.9.0');
  await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
  await run(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
  await run(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
  await fake.addAppUnit(UNIT, join(root, 'versions'), port); // runs <root>/versions/current/app
  await createSystemdServiceManager({ env: fake.env }).start([UNIT]);
  // systemctl start returns once the process runs; its HTTP server may need a moment longer.
  await waitFor(async () => (await getHealth(port))?.version === '0.9.0', {
    timeoutMs: 10_000,
    intervalMs: 50,
  });

  const packages = await startPackageServer({ packages: {} });
  const deviceApi = await startDeviceApiSimulator();
  cleanups.push(() => packages.close());
  cleanups.push(() => deviceApi.close());

  const config = loadOtaConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    OTA_ROOT: root,
    DEVICE_API_URL: deviceApi.url,
    HEALTH_TIMEOUT_MS: '3000',
    HEALTH_INTERVAL_MS: '250',
    HEALTH_CONSECUTIVE_OK: '1',
    SYSTEMCTL_TIMEOUT_MS: '10000',
    DOWNLOAD_RETRY_DELAY_MS: '50',
    DOWNLOAD_STALL_TIMEOUT_MS: '2000',
    ...env(base),
  });
  const device: Device = {
    base,
    root,
    port,
    fake,
    packages,
    deviceApi,
    service: undefined as unknown as RunningOtaUpdater,
    async publish(options) {
      const pkg = await writeAppPackage(base, { unit: UNIT, port, ...options });
      const data = await readFile(pkg.path);
      return publishPackage(packages, options.version, data, `/packages/${options.version}.zip`);
    },
    async start() {
      const service = await startOtaUpdater(config, { handleSignals: false, env: fake.env });
      device.service = service;
      cleanups.push(() => service.stop());
      return service;
    },
  };
  await device.start();
  return device;
}

interface Envelope {
  code: number;
  msg: string;
  error_code?: string;
  data: Record<string, unknown> & Partial<WireProgress>;
}

async function call(
  device: Device,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Envelope }> {
  const res = await fetch(`${device.service.address}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Envelope };
}

async function stageReached(device: Device, stages: string[], timeoutMs = 15_000): Promise<WireProgress> {
  let last = {} as WireProgress;
  await waitFor(
    async () => {
      last = (await call(device, 'GET', '/api/v1.0/progress')).body.data as unknown as WireProgress;
      return stages.includes(last.stage);
    },
    { timeoutMs, intervalMs: 50, what: `stage ${stages.join(' or ')}` },
  );
  return last;
}

/** Random bytes do not compress: a package this size takes size / throttle seconds to download. */
const bulk = (bytes: number) => [{ name: 'app/bulk.bin', data: randomBytes(bytes) }];

/**
 * A package that served is deleted once state.json no longer names it, so a final stage can be
 * seen a moment before the file is gone (a cut between the two leaves an orphan for the start-up
 * sweep, never a state naming a missing file).
 */
async function usedPackageDeleted(device: { root: string }): Promise<void> {
  const downloads = join(device.root, '.ota', 'downloads');
  await waitFor(async () => (await readdir(downloads)).length === 0, {
    timeoutMs: 5_000,
    intervalMs: 20,
    what: `${downloads} emptied of the used package`,
  });
}

describe('ota-updater service', () => {
  it('downloads, verifies, deploys and reports a new version, then lists it as current', async () => {
    const device = await setUpDevice();
    expect((await getHealth(device.port))?.version).toBe('0.9.0');
    const request = await device.publish({ version: '1.0.0' });

    const accepted = await call(device, 'POST', '/api/v1.0/download', request);
    expect(accepted).toMatchObject({
      status: 202,
      body: { code: 202, data: { version: '1.0.0', stage: 'downloading' } },
    });
    await stageReached(device, ['downloaded']);
    // GET /progress speaks seed 004's envelope exactly, plus error_code.
    expect((await call(device, 'GET', '/api/v1.0/progress')).body).toEqual({
      code: 200,
      msg: 'success',
      data: {
        stage: 'downloaded',
        progress: 100,
        message: '1.0.0 downloaded and verified',
        error: null,
        error_code: null,
      },
    });
    const update = await call(device, 'POST', '/api/v1.0/update', { version: '1.0.0' });
    expect(update.status).toBe(202);
    const final = await stageReached(device, ['success', 'rolled_back', 'failed']);
    expect(final).toMatchObject({ stage: 'success', progress: 100, error: null });

    expect((await getHealth(device.port))?.version).toBe('1.0.0');
    expect((await call(device, 'GET', '/api/v1.0/versions')).body.data).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: [],
    });
    // Reports go to the device API in the background: the last one may land after GET /progress.
    await waitFor(() => device.deviceApi.accepted.some((p) => p.stage === 'success'), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: 'the success report at the device API',
    });
    const stages = [...new Set(device.deviceApi.accepted.map((p) => p.stage))];
    expect(stages).toEqual([
      'idle',
      'downloading',
      'verifying',
      'downloaded',
      'deploying',
      'health_check',
      'success',
    ]);
    const state = JSON.parse(await readFile(join(device.root, '.ota', 'state.json'), 'utf8')) as {
      stage: string;
    };
    expect(state.stage).toBe('success');
    await usedPackageDeleted(device);
  });

  it('treats a re-push of the running release as a no-op, and the same version with new bytes as an upgrade', async () => {
    const device = await setUpDevice();
    const request = await device.publish({ version: '1.0.0' });
    expect((await call(device, 'POST', '/api/v1.0/download', request)).status).toBe(202);
    await stageReached(device, ['downloaded']);
    expect((await call(device, 'POST', '/api/v1.0/update', { version: '1.0.0' })).status).toBe(202);
    expect(await stageReached(device, ['success', 'rolled_back', 'failed'])).toMatchObject({
      stage: 'success',
    });
    const served = device.packages.requests.length;

    // Same version, same MD5: success at once, nothing downloaded, nothing restarted.
    const again = await call(device, 'POST', '/api/v1.0/download', request);
    expect(again).toMatchObject({ status: 200, body: { data: { version: '1.0.0', stage: 'success' } } });
    expect((await call(device, 'GET', '/api/v1.0/progress')).body.data).toMatchObject({
      stage: 'success',
      error: null,
    });
    expect(device.packages.requests).toHaveLength(served);

    // Same version, other bytes: a release of its own, downloaded and installed beside the running one.
    const rereleased = await device.publish({
      version: '1.0.0',
      extra: [{ name: 'app/fix.txt', data: 'fixed' }],
    });
    expect(rereleased.package_md5).not.toBe(request.package_md5);
    expect((await call(device, 'POST', '/api/v1.0/download', rereleased)).status).toBe(202);
    await stageReached(device, ['downloaded']);
    expect((await call(device, 'POST', '/api/v1.0/update', { version: '1.0.0' })).status).toBe(202);
    expect(await stageReached(device, ['success', 'rolled_back', 'failed'])).toMatchObject({
      stage: 'success',
      error: null,
    });
    const snapshot = `1.0.0~${String(rereleased.package_md5).slice(0, 8)}`;
    expect((await call(device, 'GET', '/api/v1.0/versions')).body.data).toMatchObject({
      current: snapshot,
      previous: '1.0.0',
    });
    expect(await readFile(join(device.root, 'versions', 'current', 'app', 'fix.txt'), 'utf8')).toBe('fixed');
    expect((await getHealth(device.port))?.version).toBe('1.0.0');
  });

  it('answers bad input with 400 naming the field, unknown versions with 404, and a busy updater with 409', async () => {
    const device = await setUpDevice();
    const request = await device.publish({ version: '1.1.0', extra: bulk(3 << 20) });

    const missing = await call(device, 'POST', '/api/v1.0/download', { ...request, package_md5: undefined });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: 400, error_code: 'VALIDATION_FAILED', data: null });
    expect(missing.body.msg).toContain('package_md5');
    const badSize = await call(device, 'POST', '/api/v1.0/download', { ...request, package_size: 'big' });
    expect(badSize.body.msg).toContain('package_size');
    // Each field is checked at the API, before anything starts: 400 naming it, nothing downloaded.
    for (const [field, value] of [
      ['package_url', 'http://'],
      ['package_url', 'file:///etc/passwd'],
      ['package_size', 1e300],
      ['package_size', 2 ** 53],
      ['package_size', 1.5],
      ['version', 'current'],
      ['version', '../1.0'],
    ] as const) {
      const bad = await call(device, 'POST', '/api/v1.0/download', { ...request, [field]: value });
      expect({ field, value, status: bad.status, code: bad.body.error_code }).toEqual({
        field,
        value,
        status: 400,
        code: 'VALIDATION_FAILED',
      });
      expect(bad.body.msg).toContain(field);
    }
    expect(device.packages.requests).toHaveLength(0);
    expect((await call(device, 'GET', '/api/v1.0/progress')).body.data.stage).toBe('idle');

    expect((await call(device, 'POST', '/api/v1.0/update', { version: '9.9.9' })).body).toMatchObject({
      error_code: 'NOT_FOUND',
    });

    device.packages.setFaults({ throttleBytesPerSec: 1 << 20 });
    // Two requests at once: exactly one starts.
    const both = await Promise.all([
      call(device, 'POST', '/api/v1.0/download', request),
      call(device, 'POST', '/api/v1.0/download', request),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([202, 409]);
    const busy = await call(device, 'POST', '/api/v1.0/download', request);
    expect(busy.status).toBe(409);
    expect(busy.body.error_code).toBe('CONFLICT');
    expect(busy.body.msg).toContain('an update is in progress (downloading of 1.1.0)');
    expect((await call(device, 'POST', '/api/v1.0/update', { version: '1.1.0' })).status).toBe(409);

    const cancelled = await call(device, 'POST', '/api/v1.0/cancel');
    expect(cancelled.body.data).toMatchObject({ stage: 'idle' });
    expect(await readdir(join(device.root, '.ota', 'downloads'))).toEqual([]);
    expect((await call(device, 'POST', '/api/v1.0/cancel')).status).toBe(409);
  });

  it('fails a package whose MD5 does not match, deletes it and says which check failed', async () => {
    const device = await setUpDevice();
    const request = await device.publish({ version: '1.2.0' });
    await call(device, 'POST', '/api/v1.0/download', { ...request, package_md5: '0'.repeat(32) });
    const failed = await stageReached(device, ['failed', 'downloaded']);
    expect(failed.stage).toBe('failed');
    expect(failed.error_code).toBe('MD5_MISMATCH');
    expect(await readdir(join(device.root, '.ota', 'downloads'))).toEqual([]);
    // Reports go to the device API in the background: the last one may land after GET /progress.
    await waitFor(() => device.deviceApi.accepted.at(-1)?.stage === 'failed', {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: 'the failed report at the device API',
    });
    expect(device.deviceApi.accepted.at(-1)).toMatchObject({
      stage: 'failed',
      error_code: 'MD5_MISMATCH',
    });
  });

  it('rolls back to the running version when the new one fails its health check', async () => {
    const device = await setUpDevice();
    const request = await device.publish({ version: '1.3.0', failHealth: true });
    await call(device, 'POST', '/api/v1.0/download', request);
    await stageReached(device, ['downloaded']);
    await call(device, 'POST', '/api/v1.0/update', { version: '1.3.0' });
    const final = await stageReached(device, ['success', 'rolled_back', 'failed'], 30_000);
    expect(final.stage).toBe('rolled_back');
    expect(final.error_code).toBe('HEALTH_CHECK_FAILED');
    expect((await getHealth(device.port))?.version).toBe('0.9.0');
    expect((await call(device, 'GET', '/api/v1.0/versions')).body.data).toMatchObject({ current: 'factory' });
    // The rejected package does not stay on the disk (KEEP_LAST_PACKAGE is off by default).
    await usedPackageDeleted(device);
  });

  it('writes its JSON log to a size-rotated file when LOG_FILE is set, with ISO 8601 times and failed reports as one code + message', async () => {
    // Nothing listens on the device API's port: every progress report fails.
    const closed = await freePort();
    const device = await setUpDevice((base) => ({
      LOG_LEVEL: 'info',
      LOG_FILE: join(base, 'log', 'ota.log'),
      DEVICE_API_URL: `http://127.0.0.1:${closed}/api/v1.0/ota/progress`,
    }));
    const request = await device.publish({ version: '1.0.0' });
    await call(device, 'POST', '/api/v1.0/download', { ...request, package_md5: '0'.repeat(32) });
    await stageReached(device, ['failed']);
    type Line = { msg?: string; service?: string; time?: unknown; level?: number } & Record<string, unknown>;
    const read = async (): Promise<{ text: string; lines: Line[] }> => {
      const text = await readFile(join(device.base, 'log', 'ota.log'), 'utf8');
      return {
        text,
        lines: text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Line),
      };
    };
    const isReport = (l: Line) => l.msg?.startsWith('device API progress report failed') === true;
    await waitFor(async () => (await read()).lines.some(isReport), { what: 'the failed report warning' });

    const { text, lines } = await read();
    expect(lines.find((l) => l.msg === 'ota-updater listening')?.service).toBe('ota-updater');
    for (const line of lines) expect(line.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const reports = lines.filter(isReport);
    expect(reports).toHaveLength(1); // further failures are counted in /metrics, not logged
    expect(reports[0]).toMatchObject({ level: 40, code: 'UNREACHABLE' });
    expect(reports[0]?.reason).toMatch(/^device API at 127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\)$/);
    expect(reports[0]).not.toHaveProperty('err');
    expect(text).not.toContain('"stack"');
    expect(text).not.toMatch(/\s+at \S+ \(/); // no stack frame anywhere
  });

  it('resumes an interrupted download after a restart with HTTP Range and still verifies it', async () => {
    const device = await setUpDevice();
    const request = await device.publish({ version: '1.4.0', extra: bulk(6 << 20) });
    device.packages.setFaults({ throttleBytesPerSec: 2 << 20 });
    await call(device, 'POST', '/api/v1.0/download', request);
    await waitFor(
      async () => ((await call(device, 'GET', '/api/v1.0/progress')).body.data.progress ?? 0) >= 30,
      {
        timeoutMs: 10_000,
      },
    );
    await device.service.stop();
    const saved = JSON.parse(await readFile(join(device.root, '.ota', 'state.json'), 'utf8')) as {
      stage: string;
      download: { offset: number };
    };
    expect(saved.stage).toBe('downloading');
    expect(saved.download.offset).toBeGreaterThan(0);

    device.packages.setFaults({});
    await device.start();
    const done = await stageReached(device, ['downloaded', 'failed']);
    expect(done.stage).toBe('downloaded');
    const resumed = device.packages.requests.at(-1);
    expect(resumed?.headers.range).toBe(`bytes=${saved.download.offset}-`);
  });
});
