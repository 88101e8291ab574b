// Power-loss harness, shared by test/power-loss.test.ts (CI) and bench/power-loss.bench.ts.
//
// A run: a fresh device (temp root copied from a template laid out by the real scripts, factory
// 0.9.0 running under the fake systemctl), the built service started as a process, a download and
// an update of the next version requested over its API, and a SIGKILL at a random moment of the
// download or of the deploy. Right after the kill, before anything restarts: `current` (and
// `previous`) must resolve to a complete version and state.json must parse. Then the service is
// started again (sometimes killed once more while it recovers), driven to a final stage, and the
// device is checked as a user would: the expected version current, its unit active and answering
// /health with that version, state.json matching the API, no crash leftovers, no stray processes.
//
// Two kinds of kill (both SIGKILL):
// - service: the service process only. Its in-flight `systemctl` calls run to their end before the
//   restart, as systemd finishes jobs whose client died (and restarts the unit after RestartSec=5).
// - power: the service, its commands and every unit process at once; then a "boot" starts the unit
//   from whatever `current` points at, as systemd does, before the service starts.
// What a SIGKILL cannot show: data the kernel had not written yet. The service's fsync discipline is
// what covers that; here the page cache survives.
//
// Every run is planned from its own seed (printed with any failure): replay one with
// POWER_LOSS_REPLAY=<run seed>. Kill times are fractions of windows measured by two unkilled
// calibration runs, so a replay lands at the same point of the flow, give or take the machine's
// timing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OTA_STAGES, type OtaProgress, type OtaStage } from '../src/ports.js';
import type { WireProgress } from '../src/progress-wire.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { createFakeSystemd, freePort, getHealth, type FakeSystemd } from '@upgrade/testkit';
import { writeAppPackage } from './package-fixtures.js';
import {
  killAllServiceProcessesSync,
  startServiceProcess,
  waitForProcessGroupExit,
  type ServiceProcess,
} from './service-process.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';
import { packageDigest, startPackageServer, type PackageServer } from './simulators/package-server.js';

const execFileAsync = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const UNIT = 'ota-power-app.service';
const FACTORY_VERSION = '0.9.0';
const GOOD_VERSION = '1.0.0';
const BAD_VERSION = '1.1.0';
const MiB = 1024 * 1024;
const START_CHECK_MS = '100';
const RESUMING_DOWNLOAD = 'resuming a download interrupted by a restart';
const RESUMING_DEPLOY = 'resuming a deploy interrupted by a restart';
/** GET /progress interval while following a run. */
const POLL_MS = 60;
const FINAL_STAGES: ReadonlySet<OtaStage> = new Set(['idle', 'success', 'rolled_back', 'failed']);
const BUSY_STAGES: ReadonlySet<OtaStage> = new Set([
  'downloading',
  'verifying',
  'deploying',
  'health_check',
  'rolling_back',
]);

// ---------------------------------------------------------------------------------------------
// Seeds and plans

/** mulberry32: a tiny PRNG that gives the same numbers for the same seed everywhere. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The seed of run `index` of a session seeded with `sessionSeed`. */
export function runSeedOf(sessionSeed: number, index: number): number {
  return Math.floor(seededRandom((sessionSeed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0)() * 4_294_967_296);
}

/** What a run does, all drawn from its seed. */
export interface RunPlan {
  seed: number;
  /** good: the new version is healthy (ends in success); bad: its /health answers 503 (ends rolled back). */
  variant: 'good' | 'bad';
  /** Which half the first kill falls in: the download or the deploy, timed from the 202 of its request. */
  target: 'download' | 'deploy';
  mode: 'service' | 'power';
  /** The first kill's moment as a fraction of the target's calibrated window. */
  killFraction: number;
  /** When set, the restarted service is killed again at this fraction of the recovery window. */
  secondKillFraction: number | null;
  /**
   * When the interruption left the device short of the end the package deserves (idle, failed, or
   * rolled back although healthy), ask for the update again and expect that end: the service is
   * not stuck. Not every run, to keep the CI test short.
   */
  retry: boolean;
}

export function planRun(seed: number): RunPlan {
  const next = seededRandom(seed);
  const variant = next() < 0.2 ? 'bad' : 'good';
  const target = next() < 0.5 ? 'download' : 'deploy';
  const mode = next() < 0.3 ? 'power' : 'service';
  const killFraction = next();
  const secondKill = next();
  const secondKillFraction = secondKill < 0.15 ? secondKill / 0.15 : null;
  const retry = next() < 0.3;
  return { seed, variant, target, mode, killFraction, secondKillFraction, retry };
}

// ---------------------------------------------------------------------------------------------
// Results

/** Where a kill landed, as the service had persisted it (what recovery sees) and as the API showed it. */
export interface KillPoint {
  life: number;
  afterMs: number;
  /** From state.json: stage, deploy phase or download checkpoint. */
  persisted: string;
  /** The last GET /progress answer before the kill. */
  live: string;
}

export interface RunResult {
  index: number;
  seed: number;
  plan: RunPlan;
  kills: KillPoint[];
  /** What the restarted service did by itself: resumed a download and/or a deploy (from its logs). */
  resumed: ('download' | 'deploy')[];
  /** The stage the device settled in after the last restart, e.g. `success` or `idle`. */
  settled: string;
  /** How the run ended, e.g. `success after a resumed download` or `idle, then success on retry`. */
  outcome: string;
  /** Broken invariants: each one is a bug (in the service, or in this harness). */
  violations: string[];
  /** Violations that are known service bugs (KNOWN_ISSUES), kept apart so they do not hide new ones. */
  known: string[];
  durationMs: number;
  /** How long each service life took from spawn to `listening`. */
  startMs: number[];
  /** Milliseconds since the run started at each step, for finding where the time goes. */
  marks: [string, number][];
  /** Output of the service lives, when something went wrong. */
  logs?: string;
}

/** Measured durations the kill windows are built from. */
export interface Windows {
  downloadMs: number;
  deployGoodMs: number;
  deployBadMs: number;
}

export interface PowerLossReport {
  sessionSeed: number;
  runs: RunResult[];
  windows: Windows;
  durationMs: number;
}

// ---------------------------------------------------------------------------------------------
// Known service bugs: reproduced deterministically in power-loss.test.ts (`it.fails`); counted
// apart here so that a run hitting one still fails on anything else. Remove an entry with its fix.

export interface KnownIssue {
  id: string;
  /** Matches the violation text the harness writes for it. */
  match: RegExp;
  summary: string;
}

// None is open: the last one (rollback-cleanup-skipped: a restart after a rollback saved its last
// phase did not finish deleting the failed version) is fixed by finishEndedDeploy() in recover().
export const KNOWN_ISSUES: readonly KnownIssue[] = [];

function knownIssueOf(violation: string): KnownIssue | null {
  return KNOWN_ISSUES.find((issue) => issue.match.test(violation)) ?? null;
}

// ---------------------------------------------------------------------------------------------
// The harness

export interface HarnessOptions {
  /** Devices run side by side; each has its own unit port, fake systemd and roots. Default 2. */
  concurrency?: number;
  /**
   * Size of the update packages (random bytes, so the ZIP does not shrink them). Default 6 MiB: the
   * service runs with a checkpoint at 0 and every 4 MiB (DOWNLOAD_CHECKPOINT_BYTES), so a third of the download window finds one
   * above 0 (resumed with Range).
   */
  packageBytes?: number;
  /** Package server speed per response. Default 12 MiB/s. */
  throttleBytesPerSec?: number;
  /** Progress lines (one per run, calibration), for a terminal. */
  log?: (line: string) => void;
}

export interface PowerLossHarness {
  /** Runs two unkilled updates (good and bad) to measure the kill windows. */
  calibrate(): Promise<Windows>;
  /** Runs `count` runs (or the one seed in `replay`) on the lanes, calibrating first when needed. */
  runMany(options: {
    count: number;
    sessionSeed: number;
    replay?: number;
    onRun?: (result: RunResult) => void;
  }): Promise<PowerLossReport>;
  close(): Promise<void>;
}

interface PublishedPackage {
  version: string;
  /** The body of POST /api/v1.0/download. */
  request: Record<string, unknown>;
  /** Path on the package server. */
  path: string;
}

interface Lane {
  index: number;
  dir: string;
  fake: FakeSystemd;
  unitPort: number;
  /** A root laid out by the scripts, copied for every run. */
  template: string;
  /** Working directory of the service: empty, so no stray .env is read. */
  cwd: string;
  /** Where the service posts progress (the shared device API simulator). */
  deviceApiUrl: string;
  /** Size of app/bulk.bin in the update packages. */
  bulkBytes: number;
  packages: Record<RunPlan['variant'], PublishedPackage>;
}

interface Shared {
  base: string;
  packageServer: PackageServer;
  deviceApi: DeviceApiSimulator;
  options: Required<Omit<HarnessOptions, 'log'>> & Pick<HarnessOptions, 'log'>;
}

export async function createPowerLossHarness(options: HarnessOptions = {}): Promise<PowerLossHarness> {
  const settings = {
    concurrency: Math.min(16, Math.max(1, options.concurrency ?? 2)),
    packageBytes: options.packageBytes ?? 6 * MiB,
    throttleBytesPerSec: options.throttleBytesPerSec ?? 12 * MiB,
    log: options.log,
  };
  const base = await mkdtemp(join(tmpdir(), 'ota-power-loss-'));
  const packageServer = await startPackageServer({
    packages: {},
    faults: { throttleBytesPerSec: settings.throttleBytesPerSec },
  });
  const deviceApi = await startDeviceApiSimulator();
  const shared: Shared = { base, packageServer, deviceApi, options: settings };
  const lanes: Lane[] = [];
  let windows: Windows | null = null;
  let closing = false;
  let inFlight: Promise<unknown> = Promise.resolve();

  // The services run in their own process groups and the units are detached: if this process ends
  // before close() (runner timeout, Ctrl-C), nothing must stay behind.
  const killEverythingSync = (): void => {
    killAllServiceProcessesSync();
    killTaggedSync(`--fake-systemd-tag=${base}/`);
  };
  const onSignal = (name: NodeJS.Signals): void => {
    killEverythingSync();
    removeHooks();
    try {
      rmSync(base, { recursive: true, force: true });
    } catch {
      // read-only factory copies when not root: left in the temp dir
    }
    // Nobody else handles it: end the way the signal would have.
    if (process.listenerCount(name) === 0) process.kill(process.pid, name);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const removeHooks = (): void => {
    process.off('exit', killEverythingSync);
    for (const name of signals) process.off(name, onSignal);
  };
  process.on('exit', killEverythingSync);
  for (const name of signals) process.on(name, onSignal);

  const close = async (): Promise<void> => {
    // Runs still going (a test that timed out) end at once: their services die, no new run starts.
    closing = true;
    killAllServiceProcessesSync();
    await Promise.race([inFlight.catch(() => undefined), sleep(30_000)]);
    for (const lane of lanes) await lane.fake.stopAll();
    killEverythingSync();
    removeHooks();
    await packageServer.close();
    await deviceApi.close();
    await removeTree(base);
  };

  try {
    for (let i = 0; i < settings.concurrency; i++) lanes.push(await createLane(shared, i));
  } catch (error) {
    await close();
    throw error;
  }

  const calibrate = async (): Promise<Windows> => {
    const [first, second = first] = lanes;
    if (first === undefined || second === undefined) throw new Error('no lane');
    const [good, bad] =
      first === second
        ? [await calibrationRun(shared, first, 'good'), await calibrationRun(shared, first, 'bad')]
        : await Promise.all([calibrationRun(shared, first, 'good'), calibrationRun(shared, second, 'bad')]);
    windows = {
      downloadMs: Math.round((good.downloadMs + bad.downloadMs) / 2),
      deployGoodMs: good.deployMs,
      deployBadMs: bad.deployMs,
    };
    settings.log?.(
      `calibration: download ${windows.downloadMs} ms, deploy ${windows.deployGoodMs} ms (healthy) / ${windows.deployBadMs} ms (rolled back)`,
    );
    return windows;
  };

  return {
    calibrate,
    async runMany({ count, sessionSeed, replay, onRun }) {
      const started = Date.now();
      const measured = windows ?? (await calibrate());
      if (closing) throw new Error('the harness is closed');
      const seeds =
        replay === undefined
          ? Array.from({ length: count }, (_, i) => runSeedOf(sessionSeed, i))
          : [replay >>> 0];
      const results: RunResult[] = [];
      let nextIndex = 0;
      const all = Promise.all(
        lanes.map(async (lane) => {
          for (;;) {
            const index = nextIndex++;
            const seed = seeds[index];
            if (seed === undefined || closing) return;
            const result = await runOne(shared, lane, index, planRun(seed), measured);
            results.push(result);
            onRun?.(result);
          }
        }),
      );
      inFlight = all;
      await all;
      results.sort((a, b) => a.index - b.index);
      return { sessionSeed, runs: results, windows: measured, durationMs: Date.now() - started };
    },
    close,
  };
}

async function createLane(shared: Shared, index: number): Promise<Lane> {
  // Two digits: the fake's tag is matched as a prefix, lane-1 must not match lane-10.
  const dir = join(shared.base, `lane-${String(index).padStart(2, '0')}`);
  const fake = await createFakeSystemd(dir);
  const unitPort = await freePort();
  const template = join(dir, 'template');
  const cwd = join(dir, 'cwd');
  await mkdir(cwd, { recursive: true });

  // The factory is made the way a device is: unpacked version -> create_factory_version.sh -> setup_symlinks.sh.
  const factory = await writeAppPackage(dir, { version: FACTORY_VERSION, unit: UNIT, port: unitPort });
  const staged = join(dir, 'staging', FACTORY_VERSION);
  await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: FACTORY_VERSION });
  await execFileAsync(join(SCRIPTS, 'create_factory_version.sh'), [template, staged]);
  await execFileAsync(join(SCRIPTS, 'setup_symlinks.sh'), [template]);

  const publish = async (version: string, failHealth: boolean): Promise<PublishedPackage> => {
    const pkg = await writeAppPackage(dir, {
      version,
      unit: UNIT,
      port: unitPort,
      failHealth,
      // Stored, not deflated: random bytes do not shrink, and neither side should pay for trying.
      extra: [{ name: 'app/bulk.bin', data: randomBytes(shared.options.packageBytes), compress: false }],
    });
    const data = await readFile(pkg.path);
    const path = `/${basename(dir)}/${version}.zip`;
    shared.packageServer.setPackage(path, { data });
    const digest = packageDigest({ data });
    return {
      version,
      path,
      request: {
        version,
        package_url: shared.packageServer.urlOf(path),
        package_name: `${version}.zip`,
        package_size: digest.size,
        package_md5: digest.md5,
        package_sha256: digest.sha256,
      },
    };
  };
  return {
    index,
    dir,
    fake,
    unitPort,
    template,
    cwd,
    deviceApiUrl: shared.deviceApi.url,
    bulkBytes: shared.options.packageBytes,
    packages: { good: await publish(GOOD_VERSION, false), bad: await publish(BAD_VERSION, true) },
  };
}

// ---------------------------------------------------------------------------------------------
// One device per run

interface Device {
  lane: Lane;
  runDir: string;
  root: string;
  pkg: PublishedPackage;
  variant: RunPlan['variant'];
}

/** A fresh root from the lane's template; the factory unit is not started yet (see startUnit). */
async function freshDevice(lane: Lane, name: string, variant: RunPlan['variant']): Promise<Device> {
  const runDir = join(lane.dir, 'runs', name);
  const root = join(runDir, 'root');
  await mkdir(runDir, { recursive: true });
  // cp -a keeps the relative links (versions/current -> factory -> 0.9.0) and the factory's read-only modes.
  await execFileAsync('cp', ['-a', lane.template, root]);
  await lane.fake.addAppUnit(UNIT, join(root, 'versions'), lane.unitPort); // runs versions/current/app
  return { lane, runDir, root, pkg: lane.packages[variant], variant };
}

/** The fake systemctl, with the short start check the service gets too. */
async function systemctl(
  lane: Lane,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('systemctl', args, {
      env: { ...lane.fake.env, FAKE_SYSTEMD_START_CHECK_MS: START_CHECK_MS },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function startUnit(lane: Lane): Promise<void> {
  const started = await systemctl(lane, 'start', UNIT);
  if (started.code !== 0) throw new Error(`${UNIT} did not start: ${started.stderr}`);
}

/** SIGKILLs every unit process of the lane; the pids still alive a second later. */
async function killUnits(lane: Lane): Promise<number[]> {
  for (const pid of await lane.fake.livePids()) signal(pid, 'SIGKILL');
  const deadline = Date.now() + 1_000;
  for (;;) {
    const alive = await lane.fake.livePids();
    if (alive.length === 0 || Date.now() >= deadline) return alive;
    await sleep(10);
  }
}

function serviceEnv(device: Device): NodeJS.ProcessEnv {
  return {
    PATH: device.lane.fake.env.PATH,
    FAKE_SYSTEMD_DIR: device.lane.fake.dir,
    FAKE_SYSTEMD_START_CHECK_MS: START_CHECK_MS,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    OTA_ROOT: device.root,
    DEVICE_API_URL: device.lane.deviceApiUrl,
    DEVICE_API_TIMEOUT_MS: '500',
    // A healthy unit answers within ~0.2 s; 2 s leaves room for a loaded CI machine.
    HEALTH_TIMEOUT_MS: '2000',
    HEALTH_INTERVAL_MS: '400',
    HEALTH_CONSECUTIVE_OK: '1',
    SYSTEMCTL_TIMEOUT_MS: '10000',
    DOWNLOAD_RETRY_DELAY_MS: '50',
    DOWNLOAD_STALL_TIMEOUT_MS: '2000',
    // The default (64 MiB) would put no checkpoint inside these small packages: every 4 MiB keeps
    // kills that find one above 0 (resumed with Range) in the mix.
    DOWNLOAD_CHECKPOINT_BYTES: String(4 * MiB),
    SHUTDOWN_TIMEOUT_MS: '1000',
  };
}

async function startService(device: Device): Promise<ServiceProcess> {
  return startServiceProcess({ env: serviceEnv(device), cwd: device.lane.cwd, startTimeoutMs: 30_000 });
}

async function calibrationRun(
  shared: Shared,
  lane: Lane,
  variant: RunPlan['variant'],
): Promise<{ downloadMs: number; deployMs: number }> {
  const device = await freshDevice(lane, `calibration-${variant}`, variant);
  let service: ServiceProcess | undefined;
  try {
    [service] = await Promise.all([startService(device), startUnit(lane)]);
    const running = service;
    await postOk(running, '/api/v1.0/download', device.pkg.request);
    const t0 = Date.now();
    const downloaded = await waitForStage(running, ['downloaded', 'failed'], 60_000);
    if (downloaded.stage !== 'downloaded') throw new Error(`calibration download ended ${show(downloaded)}`);
    const downloadMs = Date.now() - t0;
    await postOk(running, '/api/v1.0/update', { version: device.pkg.version });
    const t1 = Date.now();
    const final = await waitForStage(running, ['success', 'rolled_back', 'failed'], 60_000);
    const t2 = Date.now();
    const expected = variant === 'good' ? 'success' : 'rolled_back';
    if (final.stage !== expected)
      throw new Error(`calibration ${variant} ended ${show(final)}, not ${expected}`);
    const problems = await settle(() => checkSettled(device, running, final));
    if (problems.length > 0) throw new Error(`calibration ${variant}: ${problems.join('; ')}`);
    return { downloadMs, deployMs: t2 - t1 };
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${service?.tail() ?? ''}`, { cause: error });
  } finally {
    await service?.killGroup();
    await killUnits(lane);
    await removeTree(device.runDir);
  }
}

// ---------------------------------------------------------------------------------------------
// A run: kill, check, restart, (kill again, check, restart), settle, check

async function runOne(
  shared: Shared,
  lane: Lane,
  index: number,
  plan: RunPlan,
  windows: Windows,
): Promise<RunResult> {
  const started = Date.now();
  const result: RunResult = {
    index,
    seed: plan.seed,
    plan,
    kills: [],
    resumed: [],
    settled: '',
    outcome: '',
    violations: [],
    known: [],
    durationMs: 0,
    startMs: [],
    marks: [],
  };
  const mark = (what: string): void => void result.marks.push([what, Date.now() - started]);
  const lives: ServiceProcess[] = [];
  const killers: Killer[] = [];
  const start = async (): Promise<ServiceProcess> => {
    const t = Date.now();
    const service = await startService(device);
    lives.push(service);
    result.startMs.push(Date.now() - t);
    return service;
  };
  const device = await freshDevice(lane, `run-${index}`, plan.variant);
  mark('root');
  try {
    // Life 1: request the download, then the update; kill at the planned moment of one of them.
    const deployWindow = plan.variant === 'good' ? windows.deployGoodMs : windows.deployBadMs;
    const window = plan.target === 'download' ? windows.downloadMs : deployWindow;
    const killAfterMs = Math.round(plan.killFraction * window);
    const [first] = await Promise.all([start(), startUnit(lane)]);
    mark('life 1 listening');
    const killer = new Killer(first, lane, plan.mode);
    killers.push(killer);
    // Both windows start when the service accepted the request (202): the stage is persisted by then.
    const posted = await post(first, '/api/v1.0/download', device.pkg.request);
    if (posted.status !== 202)
      throw new Error(`POST /download answered ${posted.status}: ${JSON.stringify(posted.body)}`);
    if (plan.target === 'download') killer.armIn(killAfterMs);
    await drive(first, device, killer, {
      onUpdateAccepted: () => {
        if (plan.target === 'deploy') killer.armIn(killAfterMs);
      },
    });
    await killer.done();
    mark('kill 1');
    const afterFirst = await afterKill(shared, device, first, killer, 1, killAfterMs);
    result.kills.push(afterFirst.point);
    result.violations.push(...afterFirst.violations);
    let resume = afterFirst.resume;
    mark('after kill 1');

    // Life 2 (some runs): kill the recovering service too.
    if (plan.secondKillFraction !== null) {
      const secondAfterMs = Math.round(plan.secondKillFraction * (windows.downloadMs / 2 + deployWindow));
      const second = await start();
      const killer2 = new Killer(second, lane, plan.mode);
      killers.push(killer2);
      killer2.armIn(secondAfterMs);
      await drive(second, device, killer2, {});
      await killer2.done();
      const afterSecond = await afterKill(shared, device, second, killer2, 2, secondAfterMs);
      result.kills.push(afterSecond.point);
      result.violations.push(
        ...afterSecond.violations,
        ...checkRange(shared, device, resume, afterSecond.requestsAt),
      );
      resume = afterSecond.resume;
    }

    // Last life: recover and settle.
    const last = await start();
    mark('last life listening');
    const settled = await drive(last, device, null, {});
    mark('settled');
    result.violations.push(...checkRange(shared, device, resume, shared.packageServer.requests.length));
    for (const life of lives) {
      // The download line is logged also when there is no checkpoint and the service goes idle.
      if (life.logs.some((l) => l.msg === RESUMING_DOWNLOAD && typeof l.offset === 'number'))
        result.resumed.push('download');
      if (life.logs.some((l) => l.msg === RESUMING_DEPLOY)) result.resumed.push('deploy');
    }
    if (settled === null) {
      result.settled = 'stuck';
      result.outcome = 'stuck';
      result.violations.push(`the restarted service did not settle: ${await progressText(last)}`);
    } else {
      result.settled = describeSettled(settled);
      result.violations.push(...checkSettledOutcome(plan, settled, result.kills));
      result.violations.push(...(await settle(() => checkSettled(device, last, settled))));
      mark('checked');
      const expected = plan.variant === 'good' ? 'success' : 'rolled_back';
      if (settled.stage !== expected && plan.retry) {
        const { final, how } = await retry(last, device);
        mark('retried');
        result.outcome = `${result.settled}, then ${final === null ? 'stuck' : describeSettled(final)} on retry (${how})`;
        if (final === null || final.stage !== expected)
          result.violations.push(
            `asked again after ${result.settled}, the update ended ${final === null ? 'stuck' : show(final)}; expected ${expected}`,
          );
        else result.violations.push(...(await settle(() => checkSettled(device, last, final))));
        mark('checked again');
      } else {
        result.outcome = `${result.settled}${resumedText(result.resumed)}`;
      }
    }
  } catch (error) {
    result.violations.push(`harness error: ${(error as Error).stack ?? String(error)}`);
    result.outcome ||= 'harness error';
  } finally {
    // A kill still pending after a harness error must not hit the lane's next run.
    for (const killer of killers) killer.cancel();
    for (const life of lives) await life.killGroup();
    for (const life of lives) {
      const stragglers = await waitForProcessGroupExit(life.pid, 10_000);
      if (stragglers.length > 0)
        result.violations.push(`processes of service ${life.pid} still alive: ${stragglers.join(' ')}`);
    }
    const units = await killUnits(lane);
    if (units.length > 0) result.violations.push(`unit processes survive SIGKILL: ${units.join(' ')}`);
    result.known = result.violations.filter((v) => knownIssueOf(v) !== null);
    result.violations = result.violations.filter((v) => knownIssueOf(v) === null);
    if (result.violations.length > 0)
      result.logs = lives.map((l, i) => `--- service life ${i + 1} (pid ${l.pid})\n${l.tail(40)}`).join('\n');
    await removeTree(device.runDir);
    mark('cleaned');
  }
  result.durationMs = Date.now() - started;
  return result;
}

/** Kills one service life at a planned moment, the way the plan's mode says. */
class Killer {
  /** The last GET /progress answer seen before the kill. */
  lastSeen: OtaProgress | null = null;
  private fired = false;
  private timer: NodeJS.Timeout | null = null;
  private resolveDone!: () => void;
  private readonly finished = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly service: ServiceProcess,
    private readonly lane: Lane,
    readonly mode: RunPlan['mode'],
  ) {}

  /** A method, not a field: it changes while the caller awaits. */
  hasFired(): boolean {
    return this.fired;
  }

  armIn(ms: number): void {
    if (this.timer !== null || this.fired) return;
    this.timer = setTimeout(() => void this.fire(), ms);
  }

  cancel(): void {
    if (this.timer !== null && !this.fired) clearTimeout(this.timer);
  }

  /** Resolves once the kill happened and the process is gone. */
  async done(): Promise<void> {
    if (this.timer === null && !this.fired) throw new Error('the kill was never armed');
    await this.finished;
  }

  private async fire(): Promise<void> {
    this.fired = true;
    if (this.mode === 'service') {
      await this.service.kill();
    } else {
      // The service and the commands it runs go first (nothing changes on disk after that), then
      // every unit.
      const exited = this.service.killGroup();
      await killUnits(this.lane);
      await exited;
    }
    this.resolveDone();
  }
}

/** A download checkpoint a restart should resume with `Range: bytes=<offset>-`. */
interface PendingResume {
  offset: number;
  /** Index in the package server's request log where the next life's requests start. */
  from: number;
}

/** After a kill: check the invariants, note where it landed, settle the processes ("boot"). */
async function afterKill(
  shared: Shared,
  device: Device,
  service: ServiceProcess,
  killer: Killer,
  life: number,
  afterMs: number,
): Promise<{ point: KillPoint; violations: string[]; resume: PendingResume | null; requestsAt: number }> {
  const violations: string[] = [];
  const requestsAt = shared.packageServer.requests.length;
  // Checked before anything else runs: this is what the next start (or a technician) finds.
  const state = await readState(device);
  const point: KillPoint = {
    life,
    afterMs,
    persisted: describePersisted(state),
    live: killer.lastSeen === null ? 'none' : `${killer.lastSeen.stage} ${bucket(killer.lastSeen.progress)}`,
  };
  for (const problem of await checkLinks(device))
    violations.push(`after kill ${life} (${point.persisted}): ${problem}`);
  if (state.problem !== null) violations.push(`after kill ${life} (${point.persisted}): ${state.problem}`);
  const resume = await pendingResume(state, requestsAt);

  // Let the jobs the dead service handed to "systemd" finish, as real systemd would.
  const stragglers = await waitForProcessGroupExit(service.pid, 15_000);
  if (stragglers.length > 0)
    violations.push(
      `after kill ${life}: commands of the dead service still running: ${stragglers.join(' ')}`,
    );
  // Boot: systemd starts the enabled unit from whatever `current` is, before the updater runs.
  if (killer.mode === 'power') await systemctl(device.lane, 'start', UNIT);
  return { point, violations, resume, requestsAt };
}

/** The checkpoint to resume from, when the partial file really holds it (see checkRange). */
async function pendingResume(state: StateRead, from: number): Promise<PendingResume | null> {
  const download = state.raw?.download as { offset?: unknown; partialPath?: unknown } | null | undefined;
  if (state.stage !== 'downloading' || typeof download?.offset !== 'number' || download.offset === 0)
    return null;
  if (typeof download.partialPath !== 'string') return null;
  // The last chunk may have been verified and renamed before the state said so: nothing to resume.
  const size = (await stat(download.partialPath).catch(() => null))?.size ?? -1;
  return size >= download.offset ? { offset: download.offset, from } : null;
}

/** The first package request after a kill that left a checkpoint must ask for the rest only. */
function checkRange(shared: Shared, device: Device, resume: PendingResume | null, until: number): string[] {
  if (resume === null) return [];
  const request = shared.packageServer.requests
    .slice(resume.from, until)
    .find((r) => r.path === device.pkg.path);
  if (request === undefined) return [];
  const range = request.headers.range;
  const want = `bytes=${resume.offset}-`;
  return range === want ? [] : [`resumed download asked for ${range ?? 'the whole package'}, not ${want}`];
}

/**
 * Follows GET /progress; POSTs the update when the package is downloaded. Returns the progress at
 * a final stage, or null when the killer fired (or, without a killer, after 60 s).
 */
async function drive(
  service: ServiceProcess,
  device: Device,
  killer: Killer | null,
  hooks: { onUpdateAccepted?: () => void },
): Promise<OtaProgress | null> {
  const deadline = Date.now() + 60_000;
  let updateRequested = false;
  while (Date.now() < deadline) {
    if (killer?.hasFired() === true) return null;
    let progress: OtaProgress;
    try {
      progress = await getProgress(service);
    } catch (error) {
      if (killer?.hasFired() === true || !service.alive) return null;
      throw error;
    }
    if (killer !== null) killer.lastSeen = progress;
    if (progress.stage === 'downloaded' && !updateRequested) {
      updateRequested = true;
      const answer = await post(service, '/api/v1.0/update', { version: device.pkg.version }).catch(
        () => null,
      );
      if (answer?.status === 202) hooks.onUpdateAccepted?.();
      else if (answer !== null && killer?.hasFired() !== true)
        throw new Error(
          `POST /update in stage downloaded answered ${answer.status}: ${JSON.stringify(answer.body)}`,
        );
    } else if (FINAL_STAGES.has(progress.stage) && killer === null) {
      return progress;
    } else if (FINAL_STAGES.has(progress.stage) && killer !== null) {
      // Finished before the kill: the kill still comes, at its time, on a settled service.
      await killer.done();
      return null;
    }
    await sleep(POLL_MS);
  }
  return null;
}

/**
 * After an interruption left the device idle, failed or rolled back: ask again, once. The update
 * first (the verified package may still be there), a new download when that is refused. Returns
 * the final progress and how the request was taken.
 */
async function retry(
  service: ServiceProcess,
  device: Device,
): Promise<{ final: OtaProgress | null; how: string }> {
  const update = await post(service, '/api/v1.0/update', { version: device.pkg.version });
  let how = 'update';
  if (update.status !== 202) {
    how = `update refused (${update.status} ${update.body.error_code ?? update.body.code}), downloaded again`;
    const download = await post(service, '/api/v1.0/download', device.pkg.request);
    if (download.status !== 202)
      return {
        final: null,
        how: `${how}: download refused too (${download.status} ${download.body.error_code ?? download.body.code})`,
      };
  }
  return { final: await drive(service, device, null, {}), how };
}

// ---------------------------------------------------------------------------------------------
// Checks

interface StateRead {
  stage: string | null;
  raw: Record<string, unknown> | null;
  problem: string | null;
}

async function readState(device: Device): Promise<StateRead> {
  const path = join(device.root, '.ota', 'state.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { stage: null, raw: null, problem: null };
  }
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const stage = typeof raw.stage === 'string' ? raw.stage : null;
    if (stage === null || !(OTA_STAGES as readonly string[]).includes(stage))
      return { stage, raw, problem: `state.json has no known stage: ${text.slice(0, 200)}` };
    return { stage, raw, problem: null };
  } catch (error) {
    return { stage: null, raw: null, problem: `state.json does not parse: ${(error as Error).message}` };
  }
}

function describePersisted(state: StateRead): string {
  if (state.problem !== null) return 'unreadable state';
  if (state.raw === null) return 'no state.json';
  const { stage } = state;
  const download = state.raw.download as { offset?: number } | null | undefined;
  const deploy = state.raw.deploy as { phase?: string } | null | undefined;
  switch (stage) {
    case 'downloading':
    case 'verifying':
      if (download === null || download === undefined) return `${stage}, no checkpoint`;
      return `${stage}, checkpoint ${download.offset === 0 ? 'at 0' : '> 0'}`;
    case 'deploying':
    case 'health_check':
    case 'rolling_back':
      return deploy === null || deploy === undefined
        ? `${stage}, no phase`
        : `${stage}/${deploy.phase ?? '?'}`;
    default:
      return stage ?? 'unknown';
  }
}

/**
 * `versions/current` must resolve to a complete snapshot; `versions/previous`, when present, too;
 * `versions/factory` must still point at the factory's directory, complete.
 */
async function checkLinks(device: Device): Promise<string[]> {
  const problems: string[] = [];
  const current = await checkSnapshotLink(device, 'current');
  if (current.problem !== null) problems.push(current.problem);
  if (await exists(join(device.root, 'versions', 'previous'), true)) {
    const previous = await checkSnapshotLink(device, 'previous');
    if (previous.problem !== null) problems.push(previous.problem);
  }
  const factory = await checkSnapshotLink(device, 'factory');
  if (factory.problem !== null) problems.push(factory.problem);
  else if (factory.target !== FACTORY_VERSION)
    problems.push(`factory -> ${factory.target ?? '?'}, expected ${FACTORY_VERSION}`);
  return problems;
}

/**
 * Where `<root>/versions/<link>` points (a version, or `factory` through the factory link) when
 * that is a complete snapshot: a directory in versions/ with manifest.json naming that version,
 * every file the manifest lists present, app/VERSION saying the same version, and for an installed
 * version its bulk file whole.
 */
async function checkSnapshotLink(
  device: Device,
  link: string,
): Promise<{ target: string | null; version: string | null; problem: string | null }> {
  const { root } = device;
  const fail = (problem: string) => ({ target: null, version: null, problem: `${link}: ${problem}` });
  let text: string;
  const versions = resolve(root, 'versions');
  try {
    text = await readlink(join(versions, link));
  } catch (error) {
    return fail(`not a symlink (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let dir = resolve(versions, text);
  const target: string | null = dir.startsWith(`${versions}/`) ? dir.slice(versions.length + 1) : null;
  if (link !== 'factory' && target === 'factory') {
    // current/previous -> factory -> <the factory's directory>
    const factoryText = await readlink(join(versions, 'factory')).catch(() => '');
    dir = resolve(versions, factoryText);
    if (dir.slice(versions.length + 1) !== FACTORY_VERSION)
      return fail(`-> factory -> ${factoryText}, not the factory's directory ${FACTORY_VERSION}`);
  }
  if (target === null || target === '' || target.includes('/'))
    return fail(`points outside versions/: ${text}`);
  if (!(await stat(dir).catch(() => null))?.isDirectory()) return fail(`-> ${text} is not a directory`);
  let manifest: { version?: unknown; modules?: { files?: { path?: unknown }[] }[] };
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as typeof manifest;
  } catch (error) {
    return fail(`-> ${text} has no readable manifest.json (${(error as Error).message})`);
  }
  const version = typeof manifest.version === 'string' ? manifest.version : null;
  if (version === null) return fail(`-> ${text}: manifest.json has no version`);
  if (target !== 'factory' && version !== target)
    return fail(`-> ${text}: manifest.json says ${version}, the directory is ${target}`);
  for (const module of manifest.modules ?? []) {
    for (const file of module.files ?? []) {
      if (typeof file.path !== 'string') continue;
      if (!(await stat(join(dir, file.path)).catch(() => null))?.isFile())
        return fail(`-> ${text}: ${file.path} listed in the manifest is missing`);
    }
  }
  const shipped = (await readFile(join(dir, 'app', 'VERSION'), 'utf8').catch(() => '')).trim();
  if (shipped !== version) return fail(`-> ${text}: app/VERSION says "${shipped}", the manifest ${version}`);
  if (dir !== join(versions, FACTORY_VERSION)) {
    const bulk = (await stat(join(dir, 'app', 'bulk.bin')).catch(() => null))?.size ?? -1;
    if (bulk !== device.lane.bulkBytes)
      return fail(`-> ${text}: app/bulk.bin holds ${bulk} bytes, the package ${device.lane.bulkBytes}`);
  }
  return { target, version, problem: null };
}

/** Crash leftovers, and package files that should not be there in this stage. */
async function checkLeftovers(device: Device, stage: OtaStage): Promise<string[]> {
  const problems: string[] = [];
  const { root } = device;
  const temp = (name: string): boolean =>
    [
      '.unpack-',
      '.trash-',
      '.current.tmp',
      '.previous.tmp',
      '.factory.tmp',
      '.factory-copy',
      'state.json.tmp',
    ].some((p) => name.startsWith(p));
  for (const dir of [root, join(root, 'versions'), join(root, '.ota'), join(root, '.ota', 'downloads')]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (temp(name)) problems.push(`leftover ${join(dir, name).slice(root.length + 1)} in stage ${stage}`);
      if (name.endsWith('.zip.part') && !BUSY_STAGES.has(stage))
        problems.push(`leftover partial download ${name} in stage ${stage}`);
    }
  }
  return problems;
}

/**
 * Stages a restart may leave a run in before any retry, and the error codes they may carry: the
 * README's table of end states. A deploy cut anywhere before the switch ends `rolled_back` with
 * DEPLOYMENT_FAILED (never `idle` or `failed`), so `idle` is only the end of a cut download.
 */
function checkSettledOutcome(plan: RunPlan, settled: OtaProgress, kills: readonly KillPoint[]): string[] {
  const code = settled.error?.code ?? null;
  const cutDeploy = kills.some((k) => /^(deploying|health_check|rolling_back)/.test(k.persisted));
  const fine =
    settled.stage === 'success' ||
    (settled.stage === 'idle' && !cutDeploy) ||
    (settled.stage === 'rolled_back' &&
      (code === 'DEPLOYMENT_FAILED' || (plan.variant === 'bad' && code === 'HEALTH_CHECK_FAILED')));
  if (plan.variant === 'bad' && settled.stage === 'success')
    return [`the unhealthy package ended ${show(settled)}`];
  return fine ? [] : [`the restarted service settled in ${show(settled)}`];
}

/**
 * The device in a final stage, as a user or technician would look at it: the new version current
 * after a success, the factory otherwise (each run starts from a fresh factory root), its unit
 * active and answering /health with that version, state.json agreeing with the API, the links as
 * GET /versions reports them, no stray versions, no crash leftovers, no package after a success.
 */
async function checkSettled(device: Device, service: ServiceProcess, final: OtaProgress): Promise<string[]> {
  const problems: string[] = [];
  const success = final.stage === 'success';
  const wantCurrent = success ? device.pkg.version : 'factory';
  const wantVersion = success ? device.pkg.version : FACTORY_VERSION;
  const wantPrevious = success ? 'factory' : null;
  const current = await checkSnapshotLink(device, 'current');
  if (current.problem !== null) problems.push(current.problem);
  else if (current.target !== wantCurrent)
    problems.push(`current -> ${current.target}, expected ${wantCurrent}`);
  problems.push(...(await checkLinks(device)).filter((p) => p.startsWith('previous')));

  const active = await systemctl(device.lane, 'is-active', UNIT);
  if (active.code !== 0) problems.push(`${UNIT} is ${active.stdout.trim() || 'not active'}`);
  const health = await getHealth(device.lane.unitPort);
  if (health === null) problems.push(`${UNIT} does not answer /health`);
  else if (health.version !== wantVersion || health.status !== 200)
    problems.push(
      `${UNIT} /health answers HTTP ${health.status} for ${health.version}; current holds ${current.version ?? '?'}`,
    );

  const state = await readState(device);
  if (state.problem !== null) problems.push(state.problem);
  else if (state.stage !== final.stage)
    problems.push(`state.json says ${state.stage}, the API ${final.stage}`);

  const versions = await get<{ current: string | null; previous: string | null; others: string[] }>(
    service,
    '/api/v1.0/versions',
  ).catch((error: unknown) => ({ current: null, previous: null, others: [`(${String(error)})`] }));
  if (versions.current !== wantCurrent || versions.previous !== wantPrevious || versions.others.length > 0)
    problems.push(`GET /versions in stage ${final.stage}: ${JSON.stringify(versions)}`);
  const links = new Set(['current', 'previous', 'factory', FACTORY_VERSION]);
  const stray = (await readdir(join(device.root, 'versions'))).filter(
    (name) => name !== current.target && !links.has(name) && !name.startsWith('.'),
  );
  if (stray.length > 0) problems.push(`stray versions/ in stage ${final.stage}: ${stray.join(' ')}`);
  problems.push(...(await checkLeftovers(device, final.stage)));
  if (success) {
    const downloads = await readdir(join(device.root, '.ota', 'downloads')).catch(() => []);
    if (downloads.length > 0) problems.push(`downloads/ not empty after success: ${downloads.join(' ')}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface Envelope<T> {
  code: number;
  error_code?: string;
  msg: string;
  data: T;
}

/** GET /progress, its wire record (seed 004) read back into the internal shape the checks use. */
async function getProgress(service: ServiceProcess): Promise<OtaProgress> {
  const wire = await get<WireProgress>(service, '/api/v1.0/progress');
  return {
    stage: wire.stage,
    progress: wire.progress,
    message: wire.message,
    error: wire.error_code === null ? null : { code: wire.error_code, message: wire.error ?? '' },
  };
}

async function get<T>(service: ServiceProcess, path: string): Promise<T> {
  const response = await fetch(`${service.address}${path}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as Envelope<T>;
  if (response.status !== 200)
    throw new Error(`GET ${path}: HTTP ${response.status} ${JSON.stringify(body)}`);
  return body.data;
}

async function post(
  service: ServiceProcess,
  path: string,
  body: unknown,
): Promise<{ status: number; body: Envelope<unknown> }> {
  const response = await fetch(`${service.address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: response.status, body: (await response.json()) as Envelope<unknown> };
}

async function postOk(service: ServiceProcess, path: string, body: unknown): Promise<void> {
  const answer = await post(service, path, body);
  if (answer.status !== 202)
    throw new Error(`POST ${path}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
}

async function waitForStage(
  service: ServiceProcess,
  stages: OtaStage[],
  timeoutMs: number,
): Promise<OtaProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await getProgress(service);
    if (stages.includes(progress.stage)) return progress;
    if (Date.now() > deadline) throw new Error(`still ${show(progress)} after ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

async function progressText(service: ServiceProcess): Promise<string> {
  return getProgress(service).then(show, (error: unknown) => `no progress (${String(error)})`);
}

// ---------------------------------------------------------------------------------------------
// Report

/** The report the test prints and the bench prints. */
export function formatReport(report: PowerLossReport): string {
  const { runs } = report;
  const count = (keys: string[]): string =>
    [...tally(keys)]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([k, n]) => `    ${String(n).padStart(4)}  ${k}`)
      .join('\n');
  const durations = runs.map((r) => r.durationMs).sort((a, b) => a - b);
  const pct = (p: number): number =>
    durations[Math.min(durations.length - 1, Math.floor(p * durations.length))] ?? 0;
  const mean = meanOf(durations);
  const violations = runs.filter((r) => r.violations.length > 0);
  const known = runs.flatMap((r) => r.known.map((v) => knownIssueOf(v)?.id ?? v));
  const kills = runs.flatMap((r) => r.kills);
  const lines = [
    `power-loss: ${runs.length} runs, ${kills.length} kills, session seed ${report.sessionSeed}, ${(report.durationMs / 1000).toFixed(1)} s`,
    `  windows: download ${report.windows.downloadMs} ms, deploy ${report.windows.deployGoodMs} ms (healthy) / ${report.windows.deployBadMs} ms (rolled back)`,
    `  plans: ${tallyText(runs.map((r) => r.plan.variant))}; first kill in ${tallyText(runs.map((r) => r.plan.target))}; ${tallyText(runs.map((r) => `${r.plan.mode} kill`))}; ${runs.filter((r) => r.plan.secondKillFraction !== null).length} killed again while recovering`,
    '  kill points (persisted state the restart found):',
    count(kills.map((k) => k.persisted)),
    '  kill points (last progress seen):',
    count(kills.map((k) => k.live.replace(/ \d+-\d+%$/, ''))),
    '  outcomes:',
    count(runs.map((r) => r.outcome)),
    `  time per run: mean ${mean.toFixed(0)} ms, p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${pct(1)} ms; service start (spawn to listening): mean ${meanOf(runs.flatMap((r) => r.startMs)).toFixed(0)} ms`,
    `  invariant violations: ${violations.reduce((n, r) => n + r.violations.length, 0)} in ${violations.length} runs`,
    `  known service bugs hit: ${known.length === 0 ? 'none' : tallyText(known)}`,
    ...KNOWN_ISSUES.filter((i) => known.includes(i.id)).map((i) => `    ${i.id}: ${i.summary}`),
  ];
  for (const r of violations) lines.push(describeFailure(r));
  return lines.join('\n');
}

/** One failed run, with everything needed to replay it. */
export function describeFailure(r: RunResult): string {
  return [
    `  run ${r.index} seed ${r.seed} (replay: POWER_LOSS_REPLAY=${r.seed}): ${JSON.stringify(r.plan)}`,
    `    kills: ${r.kills.map((k) => `life ${k.life} +${k.afterMs} ms at ${k.persisted} (seen ${k.live})`).join('; ')}`,
    `    outcome: ${r.outcome}`,
    ...r.violations.map((v) => `    VIOLATION ${v}`),
    ...(r.logs === undefined ? [] : [r.logs.replace(/^/gm, '      ')]),
  ].join('\n');
}

/** One line per run, for a terminal. */
export function describeRun(r: RunResult): string {
  const kills = r.kills.map((k) => k.persisted).join(' + ');
  const flag = r.violations.length > 0 ? `  VIOLATIONS: ${r.violations.length}` : '';
  const marks =
    process.env.POWER_LOSS_DEBUG === '1' ? `\n    ${r.marks.map(([m, t]) => `${m} ${t}`).join(', ')}` : '';
  return `run ${String(r.index).padStart(3)} ${r.plan.variant} ${r.plan.mode} kill at ${kills} -> ${r.outcome} (${r.durationMs} ms)${flag}${marks}`;
}

function meanOf(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

function tally(keys: string[]): Map<string, number> {
  const map = new Map<string, number>();
  for (const k of keys) map.set(k, (map.get(k) ?? 0) + 1);
  return map;
}

function tallyText(keys: string[]): string {
  return [...tally(keys)].map(([k, n]) => `${n} ${k}`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function show(p: OtaProgress): string {
  return `${p.stage}${p.error === null ? '' : ` (${p.error.code}: ${p.error.message})`}`;
}

function describeSettled(p: OtaProgress): string {
  return p.error === null ? p.stage : `${p.stage} ${p.error.code}`;
}

function resumedText(resumed: RunResult['resumed']): string {
  if (resumed.length === 0) return '';
  return ` (the restart resumed the ${[...new Set(resumed)].join(' and the ')})`;
}

function bucket(progress: number): string {
  const low = Math.min(75, Math.floor(progress / 25) * 25);
  return `${low}-${low + 25}%`;
}

/**
 * Re-runs a check until it passes, for a short while: the API shows a new stage before the
 * service has finished writing state.json or removing the package, so a first look may be early.
 */
async function settle(check: () => Promise<string[]>, timeoutMs = 2_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problems = await check();
    if (problems.length === 0 || Date.now() >= deadline) return problems;
    await sleep(50);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function exists(path: string, noFollow = false): Promise<boolean> {
  return (await (noFollow ? lstat(path) : stat(path)).catch(() => null)) !== null;
}

/** SIGKILLs every process with an argument starting with `prefix`, synchronously (for exit hooks). */
function killTaggedSync(prefix: string): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/cmdline`, 'utf8')
          .split('\0')
          .some((arg) => arg.startsWith(prefix))
      )
        process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/** rm -rf that also gets through the factory's read-only directories when not root. */
async function removeTree(path: string): Promise<void> {
  const makeWritable = async (dir: string): Promise<void> => {
    await chmod(dir, 0o755).catch(() => undefined);
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await makeWritable(join(dir, entry.name));
    }
  };
  if (process.getuid?.() !== 0) await makeWritable(path);
  await rm(path, { recursive: true, force: true });
}
