// deploy/install.sh in fresh directory trees (temporary prefixes): a new install gets the seed's
// snapshot layout; an install of the old layout is migrated in place; then the service, started
// the way the installed unit starts it, runs a download + update + rollback through the migrated
// layout, and the service links follow `current`.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFakeSystemd, freePort, getHealth, waitFor, type FakeSystemd } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import type { WireProgress } from '../src/progress-wire.js';
import { readLinks } from '../src/snapshots.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { versionDirsOf, writeAppPackage } from './package-fixtures.js';
import { APP_DIR, isBuildFresh, startServiceProcess, type ServiceProcess } from './service-process.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';
import { publishPackage, startPackageServer, type PackageServer } from './simulators/package-server.js';

const execFileAsync = promisify(execFile);
const INSTALL = join(APP_DIR, 'deploy', 'install.sh');
const UNIT = 'ota-test-app.service';

describe('deploy/install.sh under a temporary prefix', () => {
  let base: string;
  let port: number;
  let fake: FakeSystemd;
  let packages: PackageServer;
  let deviceApi: DeviceApiSimulator;
  let service: ServiceProcess | undefined;

  /** A package of the app with the `bin/device-api` its service link runs. */
  const appPackage = (version: string, failHealth = false) =>
    writeAppPackage(base, {
      version,
      unit: UNIT,
      port,
      failHealth,
      extra: [{ name: 'bin/device-api', data: `device-api ${version}\n` }],
    });
  /** A version as a package would install it. */
  const stage = async (version: string, failHealth = false): Promise<string> => {
    const pkg = await appPackage(version, failHealth);
    const dir = join(base, 'staging', `${version}-${Math.random().toString(36).slice(2, 8)}`);
    await unpackPackage(pkg.path, dir, DEFAULT_UNPACK_LIMITS, { version });
    return dir;
  };
  const install = async (prefix: string, ...args: string[]): Promise<string> =>
    (
      await execFileAsync(INSTALL, [
        '--prefix',
        prefix,
        '--log-dir',
        join(base, 'logs'),
        '--no-enable',
        ...args,
      ])
    ).stdout;

  beforeAll(async () => {
    if (!(await isBuildFresh())) await execFileAsync('pnpm', ['exec', 'tsup'], { cwd: APP_DIR });
    base = await mkdtemp(join(tmpdir(), 'ota-install-'));
    port = await freePort();
    fake = await createFakeSystemd(base);
    packages = await startPackageServer({ packages: {} });
    deviceApi = await startDeviceApiSimulator();
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await fake?.stopAll();
    await packages?.close();
    await deviceApi?.close();
    await rm(base, { recursive: true, force: true });
  }, 30_000);

  it('lays out a fresh prefix as the seed does: versions/<v>, current, factory, service links', async () => {
    const prefix = join(base, 'fresh');
    const root = join(prefix, 'opt', 'tope');
    const first = await install(prefix, '--factory', await stage('0.9.0'));
    expect(first).toContain('install: done');

    expect(await readdir(root)).toEqual(expect.arrayContaining(['versions', 'services']));
    expect(await readlink(join(root, 'versions', 'factory'))).toBe('0.9.0');
    expect(await readlink(join(root, 'versions', 'current'))).toBe('factory');
    expect(await readLinks(root)).toEqual({ current: 'factory', previous: null, factory: true, others: [] });
    expect((await stat(join(root, 'versions', '0.9.0'))).mode & 0o777).toBe(0o555);
    expect((await stat(join(root, 'versions', '0.9.0', 'manifest.json'))).mode & 0o777).toBe(0o444);
    expect(await readlink(join(prefix, 'usr', 'local', 'bin', 'device-api'))).toBe(
      `${root}/versions/current/bin/device-api`,
    );
    expect(await readlink(join(root, 'services', 'device-api'))).toBe(
      `${root}/versions/current/services/device-api`,
    );
    // The link runs what current holds (the factory here).
    expect(await readFile(join(prefix, 'usr', 'local', 'bin', 'device-api'), 'utf8')).toBe(
      'device-api 0.9.0\n',
    );

    const env = await readFile(join(prefix, 'etc', 'tope-updater.env'), 'utf8');
    expect(env).toContain(`OTA_ROOT=${root}\n`);
    expect(env).toContain(`LOG_FILE=${join(base, 'logs', 'updater.log')}\n`);
    const unit = await readFile(join(prefix, 'etc', 'systemd', 'system', 'tope-updater.service'), 'utf8');
    expect(unit).toContain(`WorkingDirectory=${APP_DIR.replace(/\/$/, '')}\n`);
    expect(unit).toContain(`EnvironmentFile=-${join(prefix, 'etc', 'tope-updater.env')}\n`);
    expect(unit).toMatch(
      new RegExp(`^ExecStart=\\S+ .*${APP_DIR.replace(/\/$/, '')}/dist/cli.js serve$`, 'm'),
    );

    // Again: nothing is replaced, the configuration is kept.
    const again = await install(prefix);
    expect(again).toContain('tope-updater.env exists; left as it is');
    expect(again).toContain('already uses the versions/ layout');
    expect(await readLinks(root)).toEqual({ current: 'factory', previous: null, factory: true, others: [] });
    expect(await versionDirsOf(root)).toEqual(['0.9.0']);
  }, 60_000);

  it('migrates an install of the old layout in place, and again changes nothing', async () => {
    const prefix = join(base, 'old');
    const root = join(prefix, 'opt', 'tope');
    const bin = join(prefix, 'usr', 'local', 'bin');
    // The old layout: <root>/factory a read-only copy, current and previous in the root.
    await mkdir(join(root, 'versions'), { recursive: true });
    await execFileAsync('cp', ['-R', await stage('0.9.0'), join(root, 'factory')]);
    await execFileAsync('find', [join(root, 'factory'), '-type', 'f', '-exec', 'chmod', '0444', '{}', '+']);
    await execFileAsync('find', [
      join(root, 'factory'),
      '-depth',
      '-type',
      'd',
      '-exec',
      'chmod',
      '0555',
      '{}',
      '+',
    ]);
    await execFileAsync('cp', ['-R', await stage('1.0.0'), join(root, 'versions', '1.0.0')]);
    await symlink('versions/1.0.0', join(root, 'current'));
    await symlink('factory', join(root, 'previous'));
    await mkdir(bin, { recursive: true });
    await symlink(`${root}/current/bin/device-api`, join(bin, 'device-api'));

    const out = await install(prefix);
    expect(out).toContain(`moved ${root}/factory to ${root}/versions/0.9.0`);
    expect(out).toContain('install: done');
    expect(await readLinks(root)).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: [],
    });
    expect(await readlink(join(root, 'versions', 'factory'))).toBe('0.9.0');
    expect((await stat(join(root, 'versions', '0.9.0'))).mode & 0o777).toBe(0o555);
    expect(await versionDirsOf(root)).toEqual(['0.9.0', '1.0.0']);
    // No copy: the factory is the old directory, renamed; the old links are gone or follow the new.
    expect(await readdir(root)).not.toContain('factory');
    expect(await readdir(root)).not.toContain('previous');
    expect(await readlink(join(root, 'current'))).toBe('versions/current');
    expect(await readlink(join(bin, 'device-api'))).toBe(`${root}/versions/current/bin/device-api`);
    expect(await readFile(join(bin, 'device-api'), 'utf8')).toBe('device-api 1.0.0\n');

    const again = await install(prefix);
    expect(again).toContain('already uses the versions/ layout');
    expect(await readLinks(root)).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: [],
    });
  }, 60_000);

  it('runs a download, an update and a rollback through the migrated layout', async () => {
    const prefix = join(base, 'old');
    const root = join(prefix, 'opt', 'tope');
    await fake.addAppUnit(UNIT, join(root, 'versions'), port); // runs versions/current/app
    await createSystemdServiceManager({ env: fake.env }).start([UNIT]);
    await waitFor(async () => (await getHealth(port))?.version === '1.0.0', {
      timeoutMs: 10_000,
      intervalMs: 50,
    });

    // The environment the unit gives the service: its EnvironmentFile, less LOG_FILE (this test
    // reads the service's log lines on stdout), plus the fake systemctl and loopback addresses.
    const fileEnv = Object.fromEntries(
      (await readFile(join(prefix, 'etc', 'tope-updater.env'), 'utf8'))
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    delete fileEnv.LOG_FILE;
    await mkdir(join(base, 'cwd'), { recursive: true });
    service = await startServiceProcess({
      cwd: join(base, 'cwd'),
      env: {
        ...fileEnv,
        ...fake.env,
        PORT: '0',
        HOST: '127.0.0.1',
        DEVICE_API_URL: deviceApi.url,
        HEALTH_TIMEOUT_MS: '3000',
        HEALTH_INTERVAL_MS: '250',
        HEALTH_CONSECUTIVE_OK: '1',
      },
    });
    const address = service.address;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${address}${path}`, {
        method,
        ...(body === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      return {
        status: res.status,
        body: (await res.json()) as { data: WireProgress & Record<string, unknown> },
      };
    };
    const until = async (stages: string[]): Promise<WireProgress> => {
      let last = {} as WireProgress;
      await waitFor(
        async () => {
          last = (await call('GET', '/api/v1.0/progress')).body.data;
          return stages.includes(last.stage);
        },
        { timeoutMs: 30_000, intervalMs: 50, what: `stage ${stages.join(' or ')}` },
      );
      return last;
    };
    const publish = async (version: string, failHealth = false) => {
      const pkg = await appPackage(version, failHealth);
      return publishPackage(packages, version, await readFile(pkg.path));
    };
    const deviceApiBin = join(prefix, 'usr', 'local', 'bin', 'device-api');

    expect((await call('POST', '/api/v1.0/download', await publish('1.1.0'))).status).toBe(202);
    await until(['downloaded']);
    expect((await call('POST', '/api/v1.0/update', { version: '1.1.0' })).status).toBe(202);
    expect(await until(['success', 'rolled_back', 'failed'])).toMatchObject({ stage: 'success' });
    expect((await getHealth(port))?.version).toBe('1.1.0');
    expect(await readlink(join(root, 'versions', 'current'))).toBe('1.1.0');
    expect(await readlink(join(root, 'versions', 'previous'))).toBe('1.0.0');
    expect(await readFile(deviceApiBin, 'utf8')).toBe('device-api 1.1.0\n');

    expect((await call('POST', '/api/v1.0/download', await publish('1.2.0', true))).status).toBe(202);
    await until(['downloaded']);
    expect((await call('POST', '/api/v1.0/update', { version: '1.2.0' })).status).toBe(202);
    expect(await until(['success', 'rolled_back', 'failed'])).toMatchObject({
      stage: 'rolled_back',
      error_code: 'HEALTH_CHECK_FAILED',
    });
    expect((await getHealth(port))?.version).toBe('1.1.0');
    expect(await readLinks(root)).toMatchObject({ current: '1.1.0', previous: '1.0.0', factory: true });
    expect(await readFile(deviceApiBin, 'utf8')).toBe('device-api 1.1.0\n');
    // The old path a unit may still use follows the new current.
    expect(await readFile(join(root, 'current', 'bin', 'device-api'), 'utf8')).toBe('device-api 1.1.0\n');
    expect(await versionDirsOf(root)).toEqual(['0.9.0', '1.0.0', '1.1.0']);
    expect(service.alive).toBe(true);
  }, 120_000);
});
