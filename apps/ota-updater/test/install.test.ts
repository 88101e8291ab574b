// deploy/install.sh in a fresh directory tree (a temporary prefix), then the service started the
// way the installed unit starts it, and a download + update + rollback through that layout.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFakeSystemd, freePort, getHealth, waitFor, type FakeSystemd } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import type { WireProgress } from '../src/progress-wire.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { writeAppPackage } from './package-fixtures.js';
import { APP_DIR, isBuildFresh, startServiceProcess, type ServiceProcess } from './service-process.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';
import { publishPackage, startPackageServer, type PackageServer } from './simulators/package-server.js';

const execFileAsync = promisify(execFile);
const INSTALL = join(APP_DIR, 'deploy', 'install.sh');
const UNIT = 'ota-test-app.service';

describe('deploy/install.sh under a temporary prefix', () => {
  let base: string;
  let prefix: string;
  let root: string;
  let port: number;
  let fake: FakeSystemd;
  let packages: PackageServer;
  let deviceApi: DeviceApiSimulator;
  let service: ServiceProcess | undefined;
  let firstRun = '';

  beforeAll(async () => {
    if (!(await isBuildFresh())) await execFileAsync('pnpm', ['exec', 'tsup'], { cwd: APP_DIR });
    base = await mkdtemp(join(tmpdir(), 'ota-install-'));
    prefix = join(base, 'prefix');
    root = join(prefix, 'opt', 'tope');
    port = await freePort();
    fake = await createFakeSystemd(base);
    const factory = await writeAppPackage(base, { version: '0.9.0', unit: UNIT, port });
    const staged = join(base, 'staging', '0.9.0');
    await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
    const args = ['--prefix', prefix, '--factory', staged, '--log-dir', join(base, 'logs'), '--no-enable'];
    firstRun = (await execFileAsync(INSTALL, args)).stdout;
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

  it('lays out the root, a read-only factory, the configuration and the unit', async () => {
    expect(firstRun).toContain('install: done');
    expect(await readlink(join(root, 'current'))).toBe('factory');
    expect((await stat(join(root, 'versions'))).isDirectory()).toBe(true);
    expect((await stat(join(root, 'factory'))).mode & 0o777).toBe(0o555);
    expect((await stat(join(root, 'factory', 'manifest.json'))).mode & 0o777).toBe(0o444);

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
    const again = await execFileAsync(INSTALL, [
      '--prefix',
      prefix,
      '--log-dir',
      join(base, 'logs'),
      '--no-enable',
    ]);
    expect(again.stdout).toContain('tope-updater.env exists; left as it is');
    expect(await readlink(join(root, 'current'))).toBe('factory');
  });

  it('runs a download, an update and a rollback through the installed layout', async () => {
    await fake.addAppUnit(UNIT, root, port);
    await createSystemdServiceManager({ env: fake.env }).start([UNIT]);
    await waitFor(async () => (await getHealth(port))?.version === '0.9.0', {
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
      const pkg = await writeAppPackage(base, { version, unit: UNIT, port, failHealth });
      return publishPackage(packages, version, await readFile(pkg.path));
    };

    expect((await call('POST', '/api/v1.0/download', await publish('1.0.0'))).status).toBe(202);
    await until(['downloaded']);
    expect((await call('POST', '/api/v1.0/update', { version: '1.0.0' })).status).toBe(202);
    expect(await until(['success', 'rolled_back', 'failed'])).toMatchObject({ stage: 'success' });
    expect((await getHealth(port))?.version).toBe('1.0.0');
    expect(await readlink(join(root, 'current'))).toBe('versions/1.0.0');

    expect((await call('POST', '/api/v1.0/download', await publish('1.1.0', true))).status).toBe(202);
    await until(['downloaded']);
    expect((await call('POST', '/api/v1.0/update', { version: '1.1.0' })).status).toBe(202);
    expect(await until(['success', 'rolled_back', 'failed'])).toMatchObject({
      stage: 'rolled_back',
      error_code: 'HEALTH_CHECK_FAILED',
    });
    expect((await getHealth(port))?.version).toBe('1.0.0');
    expect(await readlink(join(root, 'current'))).toBe('versions/1.0.0');
    expect(service.alive).toBe(true);
  }, 120_000);
});
