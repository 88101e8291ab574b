// `pnpm demo`: the real service on a demo device: an install root under ./data/ota-updater-demo
// laid out by the real scripts (factory 0.9.0 running), units run by the fake systemctl, a package
// server on loopback (throttled so the download is visible) and the device-API simulator.
// One update to 1.0.0 with its progress in the terminal. --once: exit when it has ended.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createSystemdServiceManager } from '../src/adapters/systemd.js';
import { loadOtaConfig } from '../src/config.js';
import { startOtaUpdater } from '../src/main.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { watchProgress } from '../src/watch.js';
import { createFakeSystemd, freePort, getHealth } from '@upgrade/testkit';
import { writeAppPackage } from '../test/package-fixtures.js';
import { startDeviceApiSimulator } from '../test/simulators/device-api.js';
import { packageDigest, startPackageServer } from '../test/simulators/package-server.js';

const run = promisify(execFile);
const once = process.argv.includes('--once');
const base = resolve(process.env.DEMO_DIR ?? './data/ota-updater-demo');
const scripts = fileURLToPath(new URL('../scripts', import.meta.url));
const unit = 'printer-ui.service';

// A fresh demo device each run.
await rm(base, { recursive: true, force: true });
await mkdir(base, { recursive: true });
const root = join(base, 'opt-tope');
const appPort = await freePort();
const systemd = await createFakeSystemd(base);
const factory = await writeAppPackage(base, { version: '0.9.0', unit, port: appPort });
await unpackPackage(factory.path, join(base, 'staging', '0.9.0'), DEFAULT_UNPACK_LIMITS, {
  version: '0.9.0',
});
await run(join(scripts, 'create_factory_version.sh'), [root, join(base, 'staging', '0.9.0')]);
await run(join(scripts, 'setup_symlinks.sh'), [root]);
await systemd.addAppUnit(unit, join(root, 'versions'), appPort); // runs versions/current/app
await createSystemdServiceManager({ env: systemd.env }).start([unit]);
console.log(
  `demo device: ${root} (factory 0.9.0 running; ${unit} answers ${(await getHealth(appPort))?.version ?? '?'})`,
);

const release = await writeAppPackage(base, {
  version: '1.0.0',
  unit,
  port: appPort,
  extra: [{ name: 'app/assets.bin', data: randomBytes(4 << 20) }],
});
const data = await readFile(release.path);
const packages = await startPackageServer({
  packages: { '/releases/1.0.0.zip': { data } },
  faults: { throttleBytesPerSec: 1 << 20 },
});
const deviceApi = await startDeviceApiSimulator();

const service = await startOtaUpdater(
  loadOtaConfig({
    PORT: process.env.PORT ?? '12315',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    OTA_ROOT: root,
    DEVICE_API_URL: deviceApi.url,
    HEALTH_INTERVAL_MS: '300',
    HEALTH_TIMEOUT_MS: '10000',
  }),
  { handleSignals: false, env: systemd.env },
);
console.log(`ota-updater demo: API ${service.address}, docs ${service.address}/docs`);

const digest = packageDigest({ data });
const post = (path: string, body: unknown) =>
  fetch(`${service.address}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
console.log(`POST /api/v1.0/download 1.0.0 (${(digest.size / 1048576).toFixed(1)} MiB, served at 1 MiB/s)`);
await post('/api/v1.0/download', {
  version: '1.0.0',
  package_url: packages.urlOf('/releases/1.0.0.zip'),
  package_name: '1.0.0.zip',
  package_size: digest.size,
  package_md5: digest.md5,
});
const out = { write: (t: string) => process.stdout.write(t), isTTY: false };
let code = await watchProgress({ url: service.address, intervalMs: 250, out });
if (code === 0) {
  console.log('POST /api/v1.0/update 1.0.0');
  await post('/api/v1.0/update', { version: '1.0.0' });
  code = await watchProgress({ url: service.address, intervalMs: 250, out });
}
const versions = (await (await fetch(`${service.address}/api/v1.0/versions`)).json()) as { data: unknown };
console.log(
  `versions: ${JSON.stringify(versions.data)}; ${unit} answers ${(await getHealth(appPort))?.version ?? '?'}`,
);
console.log(`device API received ${deviceApi.accepted.length} progress reports; the first and the last:`);
for (const report of [deviceApi.accepted[0], deviceApi.accepted.at(-1)])
  console.log(`  POST ${new URL(deviceApi.url).pathname} ${JSON.stringify(report)}`);

const stop = async (): Promise<void> => {
  await service.stop();
  await systemd.stopAll();
  await packages.close();
  await deviceApi.close();
  process.exit(code);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
if (once) await stop();
else console.log('serving; Ctrl-C to stop');
