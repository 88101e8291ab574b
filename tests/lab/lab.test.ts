// Smoke tests of the two-node lab itself: what the end-to-end scenarios of ha-orchestrator rely on.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLab, labResidue, startLab, stopLab, type Lab, type LabOptions } from './lab.js';
import { formatLoadReport, startLoad } from './load.js';
import { runCommand } from './run.js';

const options: LabOptions = {
  dir: process.env.LAB_DIR ?? '/tmp/ha-lab',
  advertInt: process.env.LAB_ADVERT_INT === '0.1' ? 0.1 : 1,
  syncIntervalS: 1,
  fresh: true,
};
const availability = await checkLab(options);
const skipReason = availability.ok ? '' : availability.reason;
if (!availability.ok) console.warn(`two-node lab tests SKIPPED: ${skipReason}`);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe.skipIf(!availability.ok)(
  `two-node lab${skipReason === '' ? '' : ` (skipped: ${skipReason})`}`,
  () => {
    let lab: Lab;

    beforeAll(async () => {
      const started = Date.now();
      lab = await startLab(options);
      console.log(`lab up in ${Date.now() - started} ms (advert_int ${lab.advertInt})`);
    }, 90_000);

    afterAll(async () => {
      await stopLab(options);
    }, 30_000);

    it('reaches both nodes over SSH with the lab key and pinned host keys only', async () => {
      for (const node of lab.nodes) {
        const result = await lab.exec(node.id, 'hostname');
        expect(result, result.stderr).toMatchObject({ code: 0 });
        expect(result.stdout.trim()).toBe(node.id);
        expect(node.hostKey.sha256).toMatch(/^SHA256:/);
      }
      const empty = await mkdtemp(join(tmpdir(), 'ha-lab-known-hosts-'));
      try {
        await writeFile(join(empty, 'known_hosts'), '');
        const args = lab
          .sshArgs('node-a')
          .map((arg) =>
            arg.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${join(empty, 'known_hosts')}` : arg,
          );
        const unpinned = await runCommand('ssh', [...args, 'true'], { timeoutMs: 10_000 });
        expect(unpinned.code).toBe(255);
        expect(unpinned.stderr).toMatch(/host key/i);
      } finally {
        await rm(empty, { recursive: true, force: true });
      }
    });

    it('starts with the VIP on node-a alone', async () => {
      expect(await lab.vipHolders()).toEqual(['node-a']);
      expect(await lab.priorities()).toEqual({ 'node-a': 150, 'node-b': 100 });
    });

    it('streams node-a database to the node-b standby', async () => {
      expect(
        await lab.psql('node-a', "select application_name || ' ' || state from pg_stat_replication"),
      ).toBe('node-b streaming');
      expect(await lab.psql('node-b', 'select pg_is_in_recovery()')).toBe('t');
      const marker = `m${Date.now()}`;
      await lab.psql(
        'node-a',
        `create table if not exists lab_smoke (v text); insert into lab_smoke values ('${marker}')`,
      );
      await eventually('the row on the standby', 5000, async () =>
        (await lab.psql('node-b', `select count(*) from lab_smoke where v = '${marker}'`)) === '1'
          ? true
          : undefined,
      );
    });

    it('serves the application through the VIP and on each node', async () => {
      const viaVip = await getJson(`${lab.vipUrl}/health`);
      expect(viaVip).toMatchObject({
        status: 200,
        body: { status: 'ok', node: 'node-a', version: lab.initialVersion },
      });
      const onB = await getJson(`${lab.node('node-b').appUrl}/`);
      expect(onB).toMatchObject({ status: 200, body: { node: 'node-b', version: lab.initialVersion } });
    });

    it('reports the installed version after a restart through the node systemctl', async () => {
      const b = lab.node('node-b');
      await writeFile(b.versionFile, '1.1.0-lab\n');
      const restart = await lab.systemctl('node-b', 'restart', lab.appUnit);
      expect(restart, restart.stderr).toMatchObject({ code: 0 });
      expect((await getJson(`${b.appUrl}/health`)).body).toMatchObject({ version: '1.1.0-lab' });
      expect((await lab.systemctl('node-b', 'is-active', lab.appUnit)).stdout.trim()).toBe('active');
    });

    it('copies a changed config file from node-a to node-b within a few seconds', async () => {
      const a = lab.node('node-a');
      const b = lab.node('node-b');
      const content = `changed.at=${new Date().toISOString()}\n`;
      const started = Date.now();
      await writeFile(join(a.configDir, 'smoke.properties'), content);
      await eventually('the file on node-b', 8000, async () =>
        (await readFile(join(b.configDir, 'smoke.properties'), 'utf8')) === content ? true : undefined,
      );
      console.log(`config sync copied the file in ${Date.now() - started} ms`);
      const status = JSON.parse(await readFile(b.rsyncStatusFile, 'utf8')) as Record<string, unknown>;
      expect(status).toMatchObject({ lastResult: 'ok' });
      expect(Date.parse(String(status.lastSyncAt))).toBeGreaterThan(started - 5000);
    });

    it('writes agent configs the node agent accepts', async (ctx) => {
      const source = new URL('../../apps/ha-orchestrator/src/agent/config.ts', import.meta.url);
      if (!existsSync(source)) {
        console.warn('agent config check skipped: apps/ha-orchestrator/src/agent/config.ts not found');
        ctx.skip();
      }
      const { parseAgentConfig } = (await import(source.href)) as {
        parseAgentConfig: (value: unknown) => { nodeId: string };
      };
      for (const node of lab.nodes) {
        const config = parseAgentConfig(JSON.parse(await readFile(node.agentConfig, 'utf8')));
        expect(config.nodeId).toBe(node.id);
      }
    });

    it('answers node agent calls over SSH when the agent is built', async (ctx) => {
      if (!existsSync(lab.agentScript)) {
        console.warn(
          `agent calls skipped: ${lab.agentScript} not built (pnpm --filter @upgrade/ha-orchestrator build)`,
        );
        ctx.skip();
      }
      const call = async (id: 'node-a' | 'node-b', op: string): Promise<Record<string, unknown>> => {
        const request = { op, args: {}, timeoutMs: 20_000, requestId: `lab-smoke-${id}-${op}` };
        const result = await lab.exec(id, lab.agentCommand(id), { input: `${JSON.stringify(request)}\n` });
        const answer = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
        expect(answer, result.stderr).toMatchObject({ ok: true, requestId: request.requestId });
        return answer.result as Record<string, unknown>;
      };
      expect(await call('node-a', 'health')).toMatchObject({
        ok: true,
        version: lab.initialVersion,
        database: { role: 'primary' },
        keepalived: { state: 'MASTER', holdsVip: true },
      });
      expect(await call('node-b', 'health')).toMatchObject({
        ok: true,
        database: { role: 'standby' },
        keepalived: { state: 'BACKUP', holdsVip: false },
      });
      expect(await call('node-b', 'rsync.status')).toMatchObject({ paused: false, lastResult: 'ok' });
      expect(await call('node-b', 'replication.status')).toMatchObject({ role: 'standby', inSync: true });
    });

    it('moves the VIP on a planned priority swap with at most 2 failed requests', async () => {
      const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: 20, timeoutMs: 1000 });
      await sleep(500);
      const swapAt = load.elapsed();
      await lab.setPriorities({ 'node-a': 100, 'node-b': 150 });
      const vipMovedMs = await lab.waitForVip('node-b', 15_000);
      const firstFromB = await load.waitForNode('node-b', 5000);
      await sleep(500);
      const report = await load.stop();
      console.log(
        `planned VIP switch at advert_int ${lab.advertInt}: VIP on node-b after ${Math.round(vipMovedMs)} ms, ` +
          `clients on node-b after ${Math.round(firstFromB - swapAt)} ms; ${formatLoadReport(report)}`,
      );
      expect(report.failed).toBeLessThanOrEqual(2);
      expect(report.byNode['node-b']).toBeGreaterThan(0);
      expect(await lab.vipHolders()).toEqual(['node-b']);
    }, 30_000);

    it('down removes namespaces, links, processes and the state dir', async () => {
      const before = await labResidue(lab.dir);
      expect(before.pids.length).toBeGreaterThan(0);
      const started = Date.now();
      await lab.down();
      console.log(`lab down in ${Date.now() - started} ms`);
      expect(await labResidue(lab.dir)).toEqual({
        namespaces: [],
        rootLink: false,
        pids: [],
        stateDir: false,
      });
    }, 30_000);
  },
);
