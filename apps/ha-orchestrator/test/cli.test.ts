// The built CLI as a process (turbo builds dist/ before the tests; run `pnpm build` first by hand):
// migrate status / up on a fresh database, config show / set, exit 2 on bad configuration, and
// `serve` answering /health and stopping cleanly on SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, waitFor, type TestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConfigEnv } from './config-env.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ha-cli-'));
let database: TestDatabase;

beforeAll(async () => {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run \`pnpm --filter @upgrade/ha-orchestrator build\``);
  database = await createTestDatabase({ hint: 'ha_cli' });
});
afterAll(async () => {
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: dir,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('ha-orchestrator CLI', () => {
  it('lists pending migrations on a fresh database, applies them, then lists them applied', async () => {
    const env = { DATABASE_URL: database.url };
    const before = await runCli(['migrate', 'status'], env);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toContain('pending  0000_init');
    const up = await runCli(['migrate', 'up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('applied 0000_init');
    const again = await runCli(['migrate', 'up'], env);
    expect(again.stdout.trim()).toBe('up to date');
    const after = await runCli(['migrate', 'status'], env);
    expect(after.stdout).toContain('applied  0000_init');
    expect(after.stdout).not.toContain('pending');
  });

  it('shows and changes the upgrade parameters', async () => {
    const env = { DATABASE_URL: database.url };
    const set = await runCli(['config', 'set', 'vip_switch_timeout_ms=45000', 'healthRetries=5'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/vipSwitchTimeoutMs\s+45000\n/);
    expect(set.stdout).toMatch(/upgradeTimeoutMs\s+900000\s+\(default\)/);
    const show = await runCli(['config', 'show'], env);
    expect(show.stdout).toMatch(/healthRetries\s+5\n/);
    const bad = await runCli(['config', 'set', 'nonsense=1'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('known key');
  });

  it('sets and shows the replication bounds and the switchover, refusing a bad value by its key', async () => {
    const env = { DATABASE_URL: database.url };
    const set = await runCli(
      ['config', 'set', 'replication_max_lag_ms=2500', 'databaseSwitchover=false'],
      env,
    );
    expect(set.code, set.stderr).toBe(0);
    const show = await runCli(['config', 'show'], env);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/replicationMaxLagMs\s+2500\n/);
    expect(show.stdout).toMatch(/databaseSwitchover\s+0\n/);
    expect(show.stdout).toMatch(/replicationMaxLagBytes\s+16777216\s+\(default\)/);
    const zero = await runCli(['config', 'set', 'backup_space_margin_bytes=0'], env);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('backupSpaceMarginBytes must be a whole number > 0');
    const notBoolean = await runCli(['config', 'set', 'database_switchover=maybe'], env);
    expect(notBoolean.code).toBe(2);
    expect(notBoolean.stderr).toContain('databaseSwitchover must be 1, 0, true or false, got "maybe"');
    const unchanged = await runCli(['config', 'show'], env);
    expect(unchanged.stdout).toBe(show.stdout);
  });

  it('exits 2 naming every problem when the configuration is bad', async () => {
    const result = await runCli(['serve'], { DATABASE_URL: database.url, PORT: 'eighty' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('PORT');
    expect(result.stderr).toContain('API_TOKENS');
    expect(result.stderr).toContain('HA_NODES');
    expect(result.stderr).not.toContain('    at ');
    expect((await runCli(['frobnicate'], {})).code).toBe(2);
  });

  it('serves /health (degraded while the nodes are unreachable) and stops on SIGTERM', async () => {
    const env = {
      ...writeConfigEnv(dir),
      DATABASE_URL: database.url,
      PORT: '0',
      HOST: '127.0.0.1',
      HEALTH_NODE_TIMEOUT_MS: '1500',
      HA_NODES: JSON.stringify(
        ['node-a', 'node-b'].map((id) => ({
          id,
          host: '127.0.0.1',
          port: 1,
          username: 'ha',
          privateKeyFile: join(dir, 'id_ed25519'),
          agentCommand: 'ha-node-agent',
        })),
      ),
    };
    const child = spawn(process.execPath, [CLI, 'serve'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: dir,
    });
    const lines: Record<string, unknown>[] = [];
    child.stdout.on('data', (c: Buffer) => {
      for (const line of c.toString().split('\n').filter(Boolean)) {
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ msg: line });
        }
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => lines.some((l) => l.msg === 'ha-orchestrator listening'), { timeoutMs: 20_000 });
      const docs = String(lines.find((l) => l.msg === 'ha-orchestrator listening')?.docs);
      const base = docs.replace(/\/docs$/, '');
      const res = await fetch(`${base}/health`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        status: string;
        checks: { name: string; status: string }[];
        nodes: { id: string; reachable: boolean }[];
      };
      expect(body.status).toBe('degraded');
      // Nothing is known about the pair while neither node answers: only the nodes' checks fail.
      expect(body.checks.map((c) => [c.name, c.status])).toEqual([
        ['database', 'ok'],
        ['node:node-a', 'down'],
        ['node:node-b', 'down'],
        ['versions', 'ok'],
        ['rsync', 'ok'],
        ['replication', 'ok'],
        ['vip', 'ok'],
        ['upgrade_task', 'ok'],
      ]);
      expect(body.nodes.map((n) => [n.id, n.reachable])).toEqual([
        ['node-a', false],
        ['node-b', false],
      ]);
      expect((await fetch(`${base}/api/v1/upgrade/history`)).status).toBe(401);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
