// Each built service, started as its supervisor starts it (`node dist/cli.js serve` with a minimal
// production-like environment), is made to crash with an unhandled rejection and with an uncaught
// exception. What the operator must see: one JSON crash line naming the service, with the stack,
// and exit code 1 (so systemd / PM2 restart it), nothing else on stderr.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeCrash, useTestDatabase, type ProvokedCrash } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const appCli = (app: string): string =>
  fileURLToPath(new URL(`../../apps/${app}/dist/cli.js`, import.meta.url));
const database = useTestDatabase();
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crash-policy-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id_ed25519')]);
  await writeFile(join(dir, 'known_hosts'), '');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const listening = (service: string) => (line: string) => line.includes(`"msg":"${service} listening"`);

/** The environment each service needs to start, nothing it can reach: a crash is all that happens. */
const services: { name: string; env: () => Record<string, string> }[] = [
  { name: 'visiona-api', env: () => ({}) },
  {
    name: 'ota-updater',
    env: () => ({ OTA_ROOT: join(dir, 'tope'), DEVICE_API_URL: 'http://127.0.0.1:9/progress' }),
  },
  {
    name: 'rcu-scheduler',
    env: () => ({
      DATABASE_URL: database.url,
      VENDOR_BASE_URL: 'http://127.0.0.1:9/api',
      VENDOR_USERNAME: 'ops',
      VENDOR_PASSWORD: 'secret',
      RCU_GROUPS: JSON.stringify([{ roomTypeId: 1, hosts: ['10.0.0.1'] }]),
      FIRMWARE_FILES: JSON.stringify([
        { filename: 'A.bin', fileType: 1 },
        { filename: 'B.bin', fileType: 1 },
      ]),
      ROUND_ON_START: 'false',
    }),
  },
  {
    name: 'ha-orchestrator',
    env: () => ({
      DATABASE_URL: database.url,
      API_TOKENS: 'ops:0123456789abcdef0123456789abcdef',
      VIP: '10.0.0.100',
      SSH_KNOWN_HOSTS_FILE: join(dir, 'known_hosts'),
      SIGNING_PUBLIC_KEYS_DIR: dir,
      HA_NODES: JSON.stringify(
        ['node-a', 'node-b'].map((id, i) => ({
          id,
          host: '127.0.0.1',
          port: 9 + i,
          username: 'ha',
          privateKeyFile: join(dir, 'id_ed25519'),
          agentCommand: 'ha-node-agent',
        })),
      ),
    }),
  },
];

const provocations: [ProvokedCrash, string][] = [
  ['rejection', 'unhandledRejection'],
  ['exception', 'uncaughtException'],
];

describe('the crash policy in every built service', () => {
  for (const service of services) {
    for (const [provoke, kind] of provocations) {
      it(`${service.name}: an ${kind} is one JSON line with the stack, then exit 1`, async () => {
        const result = await probeCrash({
          args: [appCli(service.name), 'serve'],
          cwd: dir,
          env: { PORT: '0', HOST: '127.0.0.1', ...service.env() },
          ready: listening(service.name),
          provoke,
        });
        expect(result.code).toBe(1);
        const crashes = result.jsonLines.filter((line) => line.kind === kind);
        expect(crashes).toHaveLength(1);
        expect(crashes[0]).toMatchObject({ level: 60, service: service.name });
        expect(JSON.stringify(crashes[0])).toContain('provoke-crash.mjs');
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
      });
    }
  }
});
