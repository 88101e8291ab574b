// Power-loss safety of the built service (issue: "a test harness kills the service with SIGKILL at
// random points of download and deploy, restarts it, and checks that `current` always points at a
// complete version whose services are healthy and the state file parses"). The harness is in
// power-loss-harness.ts, shared with bench/power-loss.bench.ts (`pnpm bench`, 300 runs).
//
// Env: POWER_LOSS_RUNS (default 20: ~60 s of the gate; each run's kill point is random, so every CI
// run tries new ones, and `pnpm bench` runs 300), POWER_LOSS_CONCURRENCY (default 2), POWER_LOSS_SEED (session
// seed, default random and printed), POWER_LOSS_REPLAY=<run seed> (one run, as printed with a
// failure). Needs dist/cli.js: built here when missing or older than src/.
//
// Below the harness: the crash points it found, reproduced without timing from the exact state a
// kill left on disk. Fixed ones stay as regression tests; open ones are `it.fails` (and listed in
// KNOWN_ISSUES of the harness) until their fix lands. None is open today.
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor, createFakeSystemd, freePort, getHealth, type FakeSystemd } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import { loadOtaConfig } from '../src/config.js';
import { startOtaUpdater, type RunningOtaUpdater } from '../src/main.js';
import type { OtaProgress } from '../src/ports.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { versionDirsOf, writeAppPackage } from './package-fixtures.js';
import {
  createPowerLossHarness,
  describeFailure,
  formatReport,
  type PowerLossHarness,
} from './power-loss-harness.js';
import { APP_DIR, isBuildFresh } from './service-process.js';

const execFileAsync = promisify(execFile);
const number = (name: string): number | undefined =>
  process.env[name] === undefined || process.env[name] === '' ? undefined : Number(process.env[name]);
const RUNS = number('POWER_LOSS_RUNS') ?? 20;
const CONCURRENCY = number('POWER_LOSS_CONCURRENCY') ?? 2;
const SESSION_SEED = number('POWER_LOSS_SEED') ?? randomInt(2 ** 32);
const REPLAY = number('POWER_LOSS_REPLAY');

describe('power loss: SIGKILL of the built service at random points of download and deploy', () => {
  let harness: PowerLossHarness | undefined;

  beforeAll(async () => {
    if (!(await isBuildFresh())) await execFileAsync('pnpm', ['exec', 'tsup'], { cwd: APP_DIR });
    harness = await createPowerLossHarness({ concurrency: CONCURRENCY });
  }, 120_000);
  afterAll(async () => {
    await harness?.close();
  }, 60_000);

  it(`keeps current complete, the unit healthy and state.json parsable across ${REPLAY === undefined ? RUNS : 1} runs`, async () => {
    if (harness === undefined) throw new Error('no harness');
    const report = await harness.runMany({
      count: RUNS,
      sessionSeed: SESSION_SEED,
      ...(REPLAY === undefined ? {} : { replay: REPLAY }),
    });
    console.log(formatReport(report));
    expect(report.runs.filter((r) => r.violations.length > 0).map(describeFailure)).toEqual([]);
    expect(report.runs).toHaveLength(REPLAY === undefined ? RUNS : 1);
    // Every run was killed at least once and restarted after it.
    expect(report.runs.every((r) => r.kills.length >= 1 && r.startMs.length >= 2)).toBe(true);
  }, 900_000);
});

// ---------------------------------------------------------------------------------------------
// Bugs found by the harness, reproduced from the on-disk state the kill left.

const UNIT = 'ota-repro-app.service';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface ReproDevice {
  root: string;
  dataDir: string;
  port: number;
  fake: FakeSystemd;
  base: string;
  start(): Promise<RunningOtaUpdater>;
}

/** Factory 0.9.0 laid out by the scripts and running under the fake systemctl; the service not started. */
async function reproDevice(): Promise<ReproDevice> {
  const base = await mkdtemp(join(tmpdir(), 'ota-power-repro-'));
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
  const scripts = fileURLToPath(new URL('../scripts', import.meta.url));
  await execFileAsync(join(scripts, 'create_factory_version.sh'), [root, staged]);
  await execFileAsync(join(scripts, 'setup_symlinks.sh'), [root]);
  await fake.addAppUnit(UNIT, join(root, 'versions'), port); // runs <root>/versions/current/app
  await createSystemdServiceManager({ env: fake.env }).start([UNIT]);
  // systemctl start returns once the process runs; its HTTP server may need a moment longer.
  await waitFor(async () => (await getHealth(port))?.version === '0.9.0', {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  const dataDir = join(root, '.ota');
  await mkdir(join(dataDir, 'downloads'), { recursive: true });
  return {
    root,
    dataDir,
    port,
    fake,
    base,
    async start() {
      const config = loadOtaConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'silent',
        OTA_ROOT: root,
        DEVICE_API_URL: 'http://127.0.0.1:9/api/v1.0/ota/progress',
        DEVICE_API_TIMEOUT_MS: '200',
        HEALTH_TIMEOUT_MS: '2000',
        HEALTH_INTERVAL_MS: '200',
        HEALTH_CONSECUTIVE_OK: '1',
      });
      const service = await startOtaUpdater(config, { handleSignals: false, env: fake.env });
      cleanups.push(() => service.stop());
      return service;
    },
  };
}

async function settled(service: RunningOtaUpdater, busy: OtaProgress['stage'][]): Promise<OtaProgress> {
  await waitFor(() => !busy.includes(service.updater.progress().stage), {
    timeoutMs: 15_000,
    intervalMs: 20,
  });
  return service.updater.progress();
}

describe('crash points the power-loss harness found (fixed; kept as regression tests)', () => {
  // Crash point: POST /download saved {stage: downloading, download: null}; downloadPackage then
  // created <version>.zip.part (PartialFile.open, O_CREAT) and was killed before its first
  // checkpoint reached state.json (the checkpoint is saved once the server's 200 arrives).
  // recover() (updater.ts, case 'downloading' with checkpoint === null) goes back to idle, as the
  // issue says, but never removes the partial: the issue asks for "idle with the partial cleaned
  // up". A later download of the same version reuses the file; one of another version leaves it
  // behind for good. Harness: `leftover partial download 1.0.0.zip.part in stage idle`.
  it('a download killed before its first checkpoint goes back to idle and removes its partial file', async () => {
    const device = await reproDevice();
    await writeFile(
      join(device.dataDir, 'state.json'),
      JSON.stringify({
        stage: 'downloading',
        progress: 0,
        message: 'downloading 1.0.0',
        error: null,
        version: '1.0.0',
        download: null,
        downloaded: null,
        deploy: null,
        updatedAt: Date.now(),
      }),
    );
    await writeFile(join(device.dataDir, 'downloads', '1.0.0.zip.part'), '');

    const service = await device.start();
    expect(service.updater.progress().stage).toBe('idle');
    expect(await readdir(join(device.dataDir, 'downloads'))).toEqual([]);
  });

  // End state (README, "Interruptions"): a deploy cut before the switch ends rolled_back with
  // DEPLOYMENT_FAILED whatever point it hit; here POST /update saved {stage: deploying} and the cut
  // came before the first phase was recorded (it used to end `failed`, other cuts `idle`).
  it('a deploy killed before its first phase ends rolled_back DEPLOYMENT_FAILED, the package removed', async () => {
    const device = await reproDevice();
    const pkgPath = join(device.dataDir, 'downloads', '1.0.0.zip');
    await writeFile(pkgPath, 'not needed any more');
    await writeFile(
      join(device.dataDir, 'state.json'),
      JSON.stringify({
        stage: 'deploying',
        progress: 0,
        message: 'deploying 1.0.0',
        error: null,
        version: '1.0.0',
        download: null,
        downloaded: { version: '1.0.0', path: pkgPath, size: 19, md5: '0'.repeat(32), sha256: null },
        deploy: null,
        updatedAt: Date.now(),
      }),
    );

    const service = await device.start();
    expect(service.updater.progress()).toMatchObject({
      stage: 'rolled_back',
      error: { code: 'DEPLOYMENT_FAILED' },
    });
    expect(service.updater.progress().message).toMatch(
      /interrupted \(restart or power loss\) before the switch/,
    );
    expect((await getHealth(device.port))?.version).toBe('0.9.0');
    expect(await readdir(join(device.dataDir, 'downloads'))).toEqual([]);
  });

  // Crash point: a rollback restored the factory, saved the deploy phase `rolled_back` (onPhase in
  // updater.ts keeps the stage at rolling_back for that phase) and was killed before deploy()
  // wrote the stage rolled_back (removeVersion and pruneVersions run in between). resumeDeploy
  // (deploy.ts) throws CONFLICT "already ended as rolled_back; nothing to resume" for that phase,
  // and deploy() in updater.ts turns it into stage failed with error CONFLICT. The device is fine
  // (factory current and healthy), but the device API and GET /progress say the update failed
  // with a code that means "busy", not that it was rolled back after HEALTH_CHECK_FAILED. The same
  // happens to phase `failed` (reported CONFLICT instead of ROLLBACK_FAILED).
  it('a rollback killed after saving its last phase is reported rolled_back with its cause', async () => {
    const device = await reproDevice();
    await rollbackKilledAfterLastPhase(device);

    const service = await device.start();
    const final = await settled(service, ['rolling_back']);
    expect((await getHealth(device.port))?.version).toBe('0.9.0');
    expect(final).toMatchObject({ stage: 'rolled_back', error: { code: 'HEALTH_CHECK_FAILED' } });
  });
});

describe('crash points the power-loss harness found (fixed; kept as regression tests): rollback clean-up', () => {
  // Crash point: as above (phase rolled_back saved, stage not yet), but the kill fell in what
  // rollBack() (deploy.ts) does after saving that phase: removeVersion() renames
  // versions/<failed version> to versions/.trash-<version>-<hex>, fsyncs, then rm -rf's it.
  // recover() (updater.ts) reported rolled_back at once and skipped resumeDeploy(), then the only
  // caller of cleanupStaleFiles(): a half-deleted .trash- directory (kill during the rm) stayed
  // under versions/ for good, and a kill before the rename left the failed version itself, listed
  // in GET /versions `others`. recover() now runs finishEndedDeploy() (deploy.ts) first, so the
  // device ends as an uninterrupted rollback leaves it. Harness: `leftover versions/.trash-... in
  // stage rolled_back`, `stray versions/ in stage rolled_back: 1.1.0`.
  it('a rollback killed while deleting the failed version finishes the deletion on restart', async () => {
    const device = await reproDevice();
    const pkg = await rollbackKilledAfterLastPhase(device);
    await unpackPackage(
      pkg.path,
      join(device.root, 'versions', '.trash-1.1.0-0badf00d'),
      DEFAULT_UNPACK_LIMITS,
      {
        version: '1.1.0',
      },
    );

    const service = await device.start();
    expect(await settled(service, ['rolling_back'])).toMatchObject({ stage: 'rolled_back' });
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0']);
  });

  it('a deploy killed after saving its phase failed removes crash leftovers and keeps the version, as without a restart', async () => {
    const device = await reproDevice();
    const pkg = await rollbackKilledAfterLastPhase(device, 'failed');
    for (const name of ['1.1.0', '.unpack-1.2.0-0badf00d'])
      await unpackPackage(pkg.path, join(device.root, 'versions', name), DEFAULT_UNPACK_LIMITS, {
        version: '1.1.0',
      });

    const service = await device.start();
    expect(await settled(service, ['rolling_back'])).toMatchObject({
      stage: 'failed',
      error: { code: 'ROLLBACK_FAILED' },
    });
    // An uninterrupted deploy ending in `failed` leaves the failed version for the technician.
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0', '1.1.0']);
  });

  it('a rollback killed before deleting the failed version deletes it on restart', async () => {
    const device = await reproDevice();
    const pkg = await rollbackKilledAfterLastPhase(device);
    await unpackPackage(pkg.path, join(device.root, 'versions', '1.1.0'), DEFAULT_UNPACK_LIMITS, {
      version: '1.1.0',
    });

    const service = await device.start();
    expect(await settled(service, ['rolling_back'])).toMatchObject({ stage: 'rolled_back' });
    expect(await service.updater.versions()).toMatchObject({ current: 'factory', others: [] });
    expect(await versionDirsOf(device.root)).toEqual(['0.9.0']);
  });
});

/**
 * The state a rollback of 1.1.0 (unhealthy) to the factory leaves when killed right after saving
 * its phase `rolled_back`: state.json at stage rolling_back, `current` already back on the factory,
 * the package still downloaded. Returns the package.
 */
async function rollbackKilledAfterLastPhase(
  device: ReproDevice,
  phase: 'rolled_back' | 'failed' = 'rolled_back',
): Promise<{ path: string; size: number }> {
  const pkg = await writeAppPackage(device.base, {
    version: '1.1.0',
    unit: UNIT,
    port: device.port,
    failHealth: true,
  });
  const zip = join(device.dataDir, 'downloads', '1.1.0.zip');
  await copyFile(pkg.path, zip);
  const cause = { code: 'HEALTH_CHECK_FAILED', message: 'version 1.1.0 is unhealthy: HTTP 503' };
  await writeFile(
    join(device.dataDir, 'state.json'),
    JSON.stringify({
      stage: 'rolling_back',
      progress: 100,
      message: 'rolled back to the factory version',
      error: cause,
      version: '1.1.0',
      download: null,
      downloaded: { version: '1.1.0', path: zip, size: pkg.size, md5: '', sha256: '' },
      deploy: {
        version: '1.1.0',
        phase,
        from: 'factory',
        previousBefore: null,
        error: cause,
        startedAt: Date.now() - 5_000,
      },
      updatedAt: Date.now(),
    }),
  );
  return pkg;
}
