// A node for the agent tests, built in a temp dir: staging and backup dirs, an installed jar and
// version, a config dir and root key, units on the fake systemctl (an app answering /health and an
// rsync job), a process standing in for keepalived (takes SIGHUP), and the test's database.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FAKES_DIR, createFakeSystemd, freePort, type FakeSystemd } from '@upgrade/testkit';
import type { AgentConfig } from '../../src/agent/config.js';
import type { AgentResponse } from '../../src/agent/protocol.js';

export const APP_DIR = fileURLToPath(new URL('../..', import.meta.url));

/**
 * How to start the agent: the built `dist/agent.js` when it is newer than the sources, else the
 * TypeScript entry through tsx (so a stale build is never what a test exercises).
 */
export function agentArgv(): string[] {
  const dist = join(APP_DIR, 'dist', 'agent.js');
  if (existsSync(dist) && statSync(dist).mtimeMs >= newestSource(join(APP_DIR, 'src', 'agent')))
    return [process.execPath, dist];
  const tsx = pathToFileURL(join(APP_DIR, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  return [process.execPath, '--import', tsx, join(APP_DIR, 'src', 'agent', 'cli.ts')];
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export interface AgentRun {
  code: number | null;
  stdout: string;
  stderr: string;
  response: AgentResponse;
}

/** Runs the agent once as a process with `input` on stdin. */
export async function runAgent(
  configPath: string,
  input: string | object,
  env: NodeJS.ProcessEnv = {},
): Promise<AgentRun> {
  const [command = process.execPath, ...args] = agentArgv();
  const child = spawn(command, [...args, '--config', configPath], {
    cwd: APP_DIR,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(typeof input === 'string' ? input : `${JSON.stringify(input)}\n`);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const lines = stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== 1)
    throw new Error(`agent wrote ${lines.length} lines (exit ${code}): ${stdout}\n${stderr}`);
  return { code, stdout, stderr, response: JSON.parse(lines[0] ?? '') as AgentResponse };
}

export interface TestNode {
  root: string;
  configPath: string;
  config: AgentConfig;
  systemd: FakeSystemd;
  appPort: number;
  keepalived: ChildProcess;
  /** Rewrites the config file with `patch` applied (shallow per top-level key). */
  writeConfig(patch?: Partial<AgentConfig>): Promise<string>;
  request(
    op: string,
    args?: unknown,
    options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv; config?: string },
  ): Promise<AgentRun>;
  cleanup(): Promise<void>;
}

/** A script that stands in for keepalived: records every SIGHUP (reload) in `<file>`. */
const RELOAD_COUNTER = `
const fs = require('node:fs');
const file = process.argv[1];
fs.writeFileSync(file, '0');
let n = 0;
process.on('SIGHUP', () => fs.writeFileSync(file, String(++n)));
setInterval(() => {}, 1 << 30);
`;

export async function createTestNode(databaseUrl: string): Promise<TestNode> {
  const root = await mkdtemp(join(tmpdir(), 'ha-agent-'));
  const systemd = await createFakeSystemd(root);
  const appPort = await freePort();
  const appRoot = join(root, 'app');
  await mkdir(join(appRoot, 'current', 'app'), { recursive: true });
  await writeFile(join(appRoot, 'current', 'app', 'VERSION'), '1.0.0\n');
  await systemd.addAppUnit('app.service', appRoot, appPort);
  await systemd.addUnit('config-sync.service', {
    exec: [process.execPath, '-e', 'setInterval(() => {}, 1 << 30)', '--', systemd.tag],
  });

  for (const dir of ['staging', 'backups', 'conf/sub', 'opt', 'keys'])
    await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'opt', 'app.jar'), 'jar version 1.0.0');
  await writeFile(join(root, 'opt', 'VERSION'), '1.0.0\n');
  await writeFile(join(root, 'conf', 'app.properties'), 'mode=ha\n');
  await writeFile(join(root, 'conf', 'sub', 'peers.json'), '["node-a","node-b"]\n');
  await writeFile(join(root, 'keys', 'id_ed25519'), 'PRIVATE KEY 1\n', { mode: 0o600 });
  await writeFile(
    join(root, 'keepalived.conf'),
    'vrrp_instance VI_1 {\n    state BACKUP\n    interface lo\n    virtual_router_id 51\n    priority 100\n    advert_int 1\n}\n',
  );

  const keepalived = spawn(process.execPath, ['-e', RELOAD_COUNTER, join(root, 'reloads'), systemd.tag], {
    stdio: 'ignore',
  });
  await writeFile(join(root, 'keepalived.pid'), `${keepalived.pid}\n`);

  const db = new URL(databaseUrl);
  const base: AgentConfig = {
    nodeId: 'node-a',
    allowedCallers: ['127.0.0.1', '10.99.0.0/24'],
    allowLocal: true,
    stagingDir: join(root, 'staging'),
    backupDir: join(root, 'backups'),
    jar: { path: join(root, 'opt', 'app.jar'), versionFile: join(root, 'opt', 'VERSION') },
    configDir: join(root, 'conf'),
    rootKeyPath: join(root, 'keys', 'id_ed25519'),
    services: [
      { name: 'app', unit: 'app.service', port: appPort, healthUrl: `http://127.0.0.1:${appPort}/health` },
    ],
    systemctl: { command: join(FAKES_DIR, 'systemctl'), env: { FAKE_SYSTEMD_DIR: systemd.dir } },
    keepalived: {
      configFile: join(root, 'keepalived.conf'),
      pidFile: join(root, 'keepalived.pid'),
      vip: '127.0.0.1',
      interface: 'lo',
    },
    rsync: { unit: 'config-sync.service', statusFile: join(root, 'rsync-status.json') },
    database: {
      kind: 'postgresql',
      client: ['psql'],
      dump: ['pg_dump'],
      restore: ['pg_restore'],
      host: db.hostname,
      port: Number(db.port || 5432),
      user: decodeURIComponent(db.username || 'postgres'),
      dbname: db.pathname.slice(1),
    },
    http: { healthUrl: `http://127.0.0.1:${appPort}/health` },
    timeouts: { defaultMs: 60_000 },
  };
  const configPath = join(root, 'agent.json');
  let config = base;
  const writeConfig = async (patch: Partial<AgentConfig> = {}, path = configPath): Promise<string> => {
    config = { ...base, ...patch };
    await writeFile(path, JSON.stringify(config, null, 2));
    return path;
  };
  await writeConfig();
  let counter = 0;
  return {
    root,
    configPath,
    get config() {
      return config;
    },
    systemd,
    appPort,
    keepalived,
    writeConfig,
    request: (op, args = {}, options = {}) =>
      runAgent(
        options.config ?? configPath,
        { op, args, timeoutMs: options.timeoutMs ?? 30_000, requestId: `t-${++counter}` },
        options.env,
      ),
    async cleanup() {
      keepalived.kill('SIGKILL');
      await systemd.stopAll();
      await rm(root, { recursive: true, force: true });
    },
  };
}
