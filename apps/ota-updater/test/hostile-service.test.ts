// The built service as a process against a hostile package server (issue: "no server behaviour can
// end the process"): short 200 bodies x 20 and bodies ended by FIN then RST x 50, each a POST
// /download over real HTTP; the process stays alive throughout, every attempt ends in `failed`
// with the code that names the problem, and the device API hears that code.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitFor } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { writeAppPackage } from './package-fixtures.js';
import { APP_DIR, isBuildFresh, startServiceProcess, type ServiceProcess } from './service-process.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';
import { startHostileServer, type HostileServer } from './simulators/hostile-server.js';

const execFileAsync = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const SIZE = 4 * 1024 * 1024;

/** What GET /api/v1.0/progress answers, loosely typed: the test reads only stage and error code. */
interface ProgressBody {
  data: { stage: string; error: unknown; error_code?: string | null };
}

/** The stable error name of a progress body or report. */
function errorCodeOf(data: { error: unknown; error_code?: string | null }): string | null {
  if (data.error_code !== undefined) return data.error_code;
  const error = data.error as { code?: string } | null;
  return error?.code ?? null;
}

describe('the built service against a hostile package server', () => {
  let base: string;
  let service: ServiceProcess;
  let hostile: HostileServer;
  let deviceApi: DeviceApiSimulator;

  beforeAll(async () => {
    if (!(await isBuildFresh())) await execFileAsync('pnpm', ['exec', 'tsup'], { cwd: APP_DIR });
    base = await mkdtemp(join(tmpdir(), 'ota-hostile-service-'));
    const root = join(base, 'root');
    const factory = await writeAppPackage(base, { version: '0.9.0', unit: 'ota-test-app.service', port: 1 });
    const staged = join(base, 'staging', '0.9.0');
    await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
    await execFileAsync(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
    await execFileAsync(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
    await mkdir(join(base, 'cwd'));
    hostile = await startHostileServer({
      '/short.zip': { kind: 'short' },
      '/cut.zip': { kind: 'fin-rst', size: SIZE, sendBytes: 1024 * 1024 },
    });
    deviceApi = await startDeviceApiSimulator();
    service = await startServiceProcess({
      cwd: join(base, 'cwd'),
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        HOST: '127.0.0.1',
        OTA_ROOT: root,
        DEVICE_API_URL: deviceApi.url,
        DEVICE_API_TIMEOUT_MS: '1000',
        DOWNLOAD_RETRIES: '0',
        DOWNLOAD_RETRY_DELAY_MS: '1',
      },
    });
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await hostile?.close();
    await deviceApi?.close();
    await rm(base, { recursive: true, force: true });
  }, 30_000);

  async function progress(): Promise<ProgressBody> {
    const response = await fetch(`${service.address}/api/v1.0/progress`);
    return (await response.json()) as ProgressBody;
  }

  /** POSTs a download of `path` and returns the error code it ended with. */
  async function downloadFails(path: string, version: string): Promise<string | null> {
    const response = await fetch(`${service.address}/api/v1.0/download`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        version,
        package_url: hostile.urlOf(path),
        package_name: `tope-${version}.zip`,
        package_size: SIZE,
        package_md5: '0'.repeat(32),
      }),
    });
    expect(response.status).toBe(202);
    let last: ProgressBody | undefined;
    await waitFor(
      async () => {
        last = await progress();
        return last.data.stage === 'failed';
      },
      { timeoutMs: 10_000, what: `download of ${path} to fail` },
    );
    return last === undefined ? null : errorCodeOf(last.data);
  }

  it('ends 20 short 200 bodies in failed PACKAGE_SIZE_MISMATCH, alive, and tells the device API', async () => {
    for (let i = 0; i < 20; i++) {
      expect(await downloadFails('/short.zip', `1.0.${i}`)).toBe('PACKAGE_SIZE_MISMATCH');
      expect(service.alive).toBe(true);
    }
    await waitFor(
      () => deviceApi.accepted.filter((r) => errorCodeOf(r) === 'PACKAGE_SIZE_MISMATCH').length >= 20,
      { timeoutMs: 5_000, what: 'the device API to receive 20 PACKAGE_SIZE_MISMATCH reports' },
    );
  }, 120_000);

  it('ends 50 bodies cut by FIN then RST in failed DOWNLOAD_FAILED, alive, and tells the device API', async () => {
    for (let i = 0; i < 50; i++) {
      expect(await downloadFails('/cut.zip', `2.0.${i}`)).toBe('DOWNLOAD_FAILED');
      expect(service.alive).toBe(true);
    }
    expect(hostile.hits.get('/cut.zip')).toBe(50);
    await waitFor(() => deviceApi.accepted.filter((r) => errorCodeOf(r) === 'DOWNLOAD_FAILED').length >= 50, {
      timeoutMs: 5_000,
      what: 'the device API to receive 50 DOWNLOAD_FAILED reports',
    });
    // Nothing unhandled reached the process's output.
    expect(service.otherOutput.filter((l) => /Unhandled|AssertionError|uncaught/i.test(l))).toEqual([]);
  }, 180_000);
});
