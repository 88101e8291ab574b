// The deploy flow against real files, real processes started by the fake systemctl, and real HTTP
// health checks over loopback. A "device" is a temp root laid out by the real scripts, with a
// factory version running, exactly as after setup.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isUpgradeError, systemClock, type UpgradeError } from '@upgrade/core';
import {
  waitFor,
  TEST_SERVICE,
  createFakeSystemd,
  freePort,
  getHealth,
  livePidsWithTagPrefix,
  type FakeSystemd,
} from '@upgrade/testkit';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import {
  deployVersion,
  resumeDeploy,
  stageOfPhase,
  type DeployDeps,
  type DeployPhase,
  type DeployRecord,
} from '../src/deploy.js';
import type { ServiceManager, VerifiedPackage } from '../src/ports.js';
import { createServiceHealthCheck } from '../src/service-health.js';
import { readLinks, versionDir } from '../src/snapshots.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { versionDirsOf, writeAppPackage, type AppPackageOptions } from './package-fixtures.js';

const run = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const UNIT = 'ota-test-app.service';

interface Device {
  base: string;
  root: string;
  port: number;
  fake: FakeSystemd;
  services: ServiceManager;
  deps: DeployDeps;
  phases: DeployPhase[];
  records: DeployRecord[];
  pkg: (options: Omit<AppPackageOptions, 'unit' | 'port'>) => Promise<VerifiedPackage>;
  /** onPhase that records every phase (what the service would persist). */
  onPhase: (phase: DeployPhase, detail: { record: DeployRecord }) => void;
}

const TMP_PREFIX = join(tmpdir(), 'ota-deploy-');

afterAll(async () => {
  // Every test stops its own processes; this catches any a failing test may have left.
  const leftovers = await livePidsWithTagPrefix(`--fake-systemd-tag=${TMP_PREFIX}`);
  for (const pid of leftovers) process.kill(pid, 'SIGKILL');
  expect(leftovers).toEqual([]);
});

/**
 * A device on factory 0.9.0 with its service running; `factoryBroken` ships a factory that fails
 * health. Torn down when the test finishes: every process stopped (and checked gone), files removed.
 */
async function setUpDevice(context: TestContext, options: { factoryBroken?: boolean } = {}): Promise<Device> {
  const base = await mkdtemp(TMP_PREFIX);
  const root = join(base, 'root');
  const port = await freePort();
  const fake = await createFakeSystemd(base);
  const services = createSystemdServiceManager({ env: fake.env, timeoutMs: 10_000 });
  const checkHealth = createServiceHealthCheck({
    services,
    clock: systemClock,
    // Long enough for a loaded CI box to start a healthy service; every failing level waits it out.
    // An attempt spawns the fake systemctl (a node process): beside the power-loss harness on 2
    // cores (load 14-23) that took over 1 s, so 2 s per attempt and a 3 s budget.
    timeoutMs: 3000,
    intervalMs: 250,
    attemptTimeoutMs: 2000,
    consecutiveOk: 1,
  });
  const phases: DeployPhase[] = [];
  const records: DeployRecord[] = [];
  const device: Device = {
    base,
    root,
    port,
    fake,
    services,
    deps: { root, services, checkHealth, clock: systemClock, keepVersions: 2 },
    phases,
    records,
    pkg: (o) => writeAppPackage(base, { unit: UNIT, port, ...o }),
    onPhase: (phase, detail) => {
      phases.push(phase);
      records.push(detail.record);
    },
  };
  context.onTestFinished(async () => {
    await fake.stopAll();
    expect(await fake.livePids()).toEqual([]);
    await rm(base, { recursive: true, force: true });
  });

  const factory = await device.pkg({ version: '0.9.0', failHealth: options.factoryBroken ?? false });
  const staged = join(base, 'staging', '0.9.0');
  await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
  await run(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
  await run(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
  await fake.addAppUnit(UNIT, join(root, 'versions'), port); // runs <root>/versions/current/app
  await services.start([UNIT]);
  // systemctl start returns once the process runs; its HTTP server may need a moment longer.
  await waitFor(async () => (await getHealth(port))?.version === '0.9.0', {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  return device;
}

async function deploy(device: Device, options: Omit<AppPackageOptions, 'unit' | 'port'>) {
  device.phases.length = 0;
  return deployVersion(device.deps, await device.pkg(options), { onPhase: device.onPhase });
}

async function failure(promise: Promise<unknown>): Promise<UpgradeError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isUpgradeError(error)) throw new Error(`expected an UpgradeError, got ${String(error)}`);
  return error;
}

/** Waits (real time, bounded) for a phase to be reported, as a crash point. */
async function phaseReached(device: Device, phase: DeployPhase): Promise<DeployRecord> {
  for (let i = 0; i < 200 && !device.phases.includes(phase); i++) await new Promise((r) => setTimeout(r, 25));
  const record = device.records[device.phases.lastIndexOf(phase)];
  if (record === undefined) throw new Error(`phase ${phase} never came`);
  return record;
}

// Each test has its own root, port and fake systemd: they run side by side.
// Sequential, not describe.concurrent: every health round spawns the fake systemctl (a node
// process) with a 1 s attempt limit, and a dozen tests doing so at once beside the power-loss
// harness on 2 cores (load 14-23) pushed one spawn past 1 s: rollbacks where none belonged.
describe('deployVersion', () => {
  it('installs, restarts and commits a healthy version', async (context) => {
    const device = await setUpDevice(context);
    expect((await getHealth(device.port))?.version).toBe('0.9.0');

    expect(await deploy(device, { version: '1.0.0' })).toEqual({ status: 'committed', version: '1.0.0' });
    expect(device.phases).toEqual([
      'unpacking',
      'stopping',
      'switched',
      'starting',
      'health_check',
      'committed',
    ]);
    expect(await readLinks(device.root)).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: [],
    });
    const first = await getHealth(device.port);
    expect(first).toMatchObject({ status: 200, version: '1.0.0' });

    await deploy(device, { version: '2.0.0' });
    expect(await readLinks(device.root)).toMatchObject({ current: '2.0.0', previous: '1.0.0' });
    const second = await getHealth(device.port);
    expect(second).toMatchObject({ status: 200, version: '2.0.0' });
    expect(second?.pid).not.toBe(first?.pid);
    expect((await device.fake.systemctl('is-active', UNIT)).stdout.trim()).toBe('active');
    expect(device.records.at(-1)).toMatchObject({
      version: '2.0.0',
      from: '1.0.0',
      previousBefore: 'factory',
    });
  });

  it('rolls back to the previous version when the new one fails its health check', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });

    const result = await deploy(device, { version: '2.0.0', failHealth: true });
    expect(result).toMatchObject({ status: 'rolled_back', version: '2.0.0', restored: '1.0.0' });
    if (result.status !== 'rolled_back') throw new Error('unreachable');
    expect(result.error.code).toBe('HEALTH_CHECK_FAILED');
    expect(result.error.message).toContain(`${UNIT} http://127.0.0.1:${device.port}/health (HTTP 503)`);
    expect(device.phases.slice(-3)).toEqual(['health_check', 'rolling_back_previous', 'rolled_back']);
    // The links are as before the update; the failed version is gone.
    expect(await readLinks(device.root)).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: [],
    });
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });
  });

  it('rolls back when the new version does not even start', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });

    const result = await deploy(device, { version: '2.0.0', crash: true });
    expect(result).toMatchObject({ status: 'rolled_back', restored: '1.0.0' });
    if (result.status !== 'rolled_back') throw new Error('unreachable');
    // systemctl reports a unit that dies within its start check (FAKE_SYSTEMD_START_CHECK_MS, as
    // systemd does for a unit that fails while starting); a process that takes longer than that to
    // even get to its crash (a loaded machine) starts "successfully" and fails the health check
    // instead, as it would under a Type=simple unit. Both must end rolled back on 1.0.0.
    if (result.error.code === 'DEPLOYMENT_FAILED') {
      expect(result.error.message).toMatch(
        /systemctl start ota-test-app\.service failed \(exit 1\): Job for/,
      );
    } else {
      expect(result.error.code).toBe('HEALTH_CHECK_FAILED');
    }
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });
  });

  it('rolls back to the factory when the previous version is unhealthy too', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });
    await writeFile(join(versionDir(device.root, '1.0.0'), 'app', 'FAIL_HEALTH'), 'broken meanwhile');

    const result = await deploy(device, { version: '2.0.0', failHealth: true });
    expect(result).toMatchObject({ status: 'rolled_back', restored: 'factory' });
    expect(device.phases.slice(-3)).toEqual(['rolling_back_previous', 'rolling_back_factory', 'rolled_back']);
    expect(await readLinks(device.root)).toMatchObject({ current: 'factory', previous: '1.0.0' });
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '0.9.0' });
  });

  it('fails with ROLLBACK_FAILED and a message a technician can act on when nothing is healthy', async (context) => {
    const device = await setUpDevice(context, { factoryBroken: true });
    await deploy(device, { version: '1.0.0' });
    await writeFile(join(versionDir(device.root, '1.0.0'), 'app', 'FAIL_HEALTH'), 'broken meanwhile');

    const error = await failure(deploy(device, { version: '2.0.0', failHealth: true }));
    expect(error.code).toBe('ROLLBACK_FAILED');
    expect(error.message).toContain('Update to 2.0.0 failed (HEALTH_CHECK_FAILED');
    expect(error.message).toContain('rollback to version 1.0.0 failed: HEALTH_CHECK_FAILED');
    expect(error.message).toContain('rollback to the factory version failed: HEALTH_CHECK_FAILED');
    expect(error.message).toContain('current now points at the factory version');
    expect(error.message).toContain(`systemctl status ${UNIT}; journalctl -u ${UNIT}`);
    expect(error.message).toContain(`verify_setup.sh ${device.root}`);
    expect(device.phases.at(-1)).toBe('failed');
    expect(device.records.at(-1)?.error?.code).toBe('ROLLBACK_FAILED');
    expect(stageOfPhase('failed')).toBe('failed');
  });

  it('changes nothing for a bad package: no service stopped, no version written', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });
    const before = await getHealth(device.port);

    const error = await failure(
      deploy(device, { version: '2.0.0', manifest: { version: '2.0.1', modules: [] } }),
    );
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(device.phases).toEqual(['unpacking']);
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0', '1.0.0']);
    expect(await getHealth(device.port)).toEqual(before);

    // The running version again, with other bytes (a re-release): installed beside it, not refused.
    const pkg = await device.pkg({ version: '1.0.0', extra: [{ name: 'app/fix.txt', data: 'fixed' }] });
    const snapshot = `1.0.0~${pkg.md5.slice(0, 8)}`;
    expect(await deployVersion(device.deps, pkg, { onPhase: device.onPhase })).toEqual({
      status: 'committed',
      version: snapshot,
    });
    expect((await readLinks(device.root)).current).toBe(snapshot);
    // That very snapshot again: nothing to deploy.
    await expect(deployVersion(device.deps, pkg)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('installs a package of the factory version beside the read-only factory directory', async (context) => {
    const device = await setUpDevice(context);
    const pkg = await device.pkg({ version: '0.9.0', extra: [{ name: 'app/fix.txt', data: 'fixed' }] });
    const snapshot = `0.9.0~${pkg.md5.slice(0, 8)}`;
    expect(await deployVersion(device.deps, pkg, { onPhase: device.onPhase })).toEqual({
      status: 'committed',
      version: snapshot,
    });
    expect(await readLinks(device.root)).toEqual({
      current: snapshot,
      previous: 'factory',
      factory: true,
      others: [],
    });
    expect(await readFile(join(device.root, 'versions', 'current', 'app', 'fix.txt'), 'utf8')).toBe('fixed');
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0', snapshot]);
    // The factory's directory is the one create_factory_version.sh made, untouched.
    await expect(readFile(join(device.root, 'versions', 'factory', 'app', 'fix.txt'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('resumeDeploy after a power cut', () => {
  /** Starts a deploy that "loses power" at phase `at`: nothing after that phase ever runs. */
  async function cutAt(
    device: Device,
    at: DeployPhase,
    options: Omit<AppPackageOptions, 'unit' | 'port'>,
  ): Promise<DeployRecord> {
    device.phases.length = 0;
    device.records.length = 0;
    const pkg = await device.pkg(options);
    void deployVersion(device.deps, pkg, {
      onPhase: (phase, detail) => {
        device.onPhase(phase, detail);
        if (phase === at) return new Promise<void>(() => undefined);
      },
    });
    return phaseReached(device, at);
  }

  it('commits a deploy cut after the switch, trusting the link over the last record', async (context) => {
    const device = await setUpDevice(context);
    await cutAt(device, 'switched', { version: '1.0.0' });
    // The record persisted last before the switch says "stopping"; the link says switched.
    const record = await phaseReached(device, 'stopping');

    expect(await resumeDeploy(device.deps, record)).toEqual({ status: 'committed', version: '1.0.0' });
    expect(await readLinks(device.root)).toMatchObject({ current: '1.0.0', previous: 'factory' });
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });
  });

  it('rolls back a switched deploy whose version is unhealthy', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });
    const record = await cutAt(device, 'starting', { version: '2.0.0', failHealth: true });

    expect(await resumeDeploy(device.deps, record)).toMatchObject({
      status: 'rolled_back',
      restored: '1.0.0',
    });
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });
  });

  it('rolls back a deploy cut before the switch (stopping or unpacking) and restarts the old services', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });
    const record = await cutAt(device, 'stopping', { version: '2.0.0' });
    await device.services.stop([UNIT]); // as if the cut came after the stop
    await mkdir(join(device.root, 'versions', '.unpack-3.0.0-dead'));

    expect(await resumeDeploy(device.deps, record)).toMatchObject({
      status: 'rolled_back',
      restored: '1.0.0',
    });
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0', '1.0.0']);
    expect(await readLinks(device.root)).toMatchObject({ current: '1.0.0', previous: 'factory' });
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });

    const unpacking: DeployRecord = { ...record, version: '4.0.0', phase: 'unpacking' };
    await mkdir(versionDir(device.root, '4.0.0'));
    // The same end state for a cut while unpacking: rolled back, the unpacked files gone.
    expect(await resumeDeploy(device.deps, unpacking)).toMatchObject({
      status: 'rolled_back',
      version: '4.0.0',
      restored: '1.0.0',
      error: { code: 'DEPLOYMENT_FAILED' },
    });
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0', '1.0.0']);
  });

  it('redoes a rollback the cut interrupted', async (context) => {
    const device = await setUpDevice(context);
    await deploy(device, { version: '1.0.0' });
    const record = await cutAt(device, 'rolling_back_previous', { version: '2.0.0', failHealth: true });
    expect(record.error?.code).toBe('HEALTH_CHECK_FAILED');

    const result = await resumeDeploy(device.deps, record);
    expect(result).toMatchObject({ status: 'rolled_back', restored: '1.0.0' });
    expect(result.status === 'rolled_back' && result.error.code).toBe('HEALTH_CHECK_FAILED');
    expect(await getHealth(device.port)).toMatchObject({ status: 200, version: '1.0.0' });
  });
});

describe('systemd adapter over the fake systemctl', () => {
  it('reports units the way systemctl does', async (context) => {
    const device = await setUpDevice(context);
    expect(await device.services.isActive(UNIT)).toBe(true);
    expect(await device.services.isActive('nope.service')).toBe(false);
    const error = await failure(device.services.start(['nope.service']));
    expect(error.code).toBe('DEPLOYMENT_FAILED');
    expect(error.message).toContain('Unit nope.service not found.');
    await expect(device.services.stop(['-rf'])).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await device.services.stop([UNIT]);
    expect(await device.services.isActive(UNIT)).toBe(false);
    expect(await getHealth(device.port)).toBeNull();
  });

  it('bounds every call with a timeout and says when systemctl is missing', async (context) => {
    const device = await setUpDevice(context);
    await device.fake.addUnit('hung.service', {
      exec: [process.execPath, TEST_SERVICE, device.fake.tag],
      env: { PORT: String(await freePort()), IGNORE_SIGTERM: '1' },
      stopTimeoutMs: 1000,
    });
    await device.services.start(['hung.service']);
    const quick = createSystemdServiceManager({ env: device.fake.env, timeoutMs: 300 });
    expect((await failure(quick.stop(['hung.service']))).code).toBe('TIMEOUT');

    const missing = createSystemdServiceManager({ command: join(device.base, 'no-systemctl') });
    expect((await failure(missing.isActive(UNIT))).code).toBe('UNAVAILABLE');
  });
});
