// Config files locked during an upgrade (seed 2.5.4): the agent's config.lock / config.unlock on
// real files, and the flow locking both nodes after the backups and unlocking them on every end.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTestDatabase } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LOCK_RECORD } from '../src/agent/ops/config-lock.js';
import { createHarness, type Harness } from './fakes/upgrade-harness.js';
import { createTestNode, type AgentRun, type TestNode } from './support/agent-node.js';

vi.setConfig({ testTimeout: 90_000 });

function ok<T>(run: AgentRun): T {
  if (!run.response.ok) throw new Error(`expected ok, got ${JSON.stringify(run.response)}`);
  return run.response.result as T;
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

describe('config.lock / config.unlock on a node', () => {
  const testDb = useTestDatabase();
  let node: TestNode;
  beforeAll(async () => {
    node = await createTestNode(testDb.url);
  });
  afterAll(async () => {
    await node?.cleanup();
  });

  it('makes the config files and the root key read-only, then puts every mode back and names what changed', async () => {
    const { configDir, rootKeyPath, stagingDir } = node.config;
    const props = join(configDir, 'app.properties');
    const peers = join(configDir, 'sub', 'peers.json');
    expect([await modeOf(props), await modeOf(rootKeyPath)]).toEqual([0o644, 0o600]);

    const locked = ok<{ files: number; alreadyLocked: boolean }>(
      await node.request('config.lock', { owner: 'task-1' }),
    );
    expect(locked).toEqual({ locked: true, files: 3, alreadyLocked: false });
    expect([await modeOf(props), await modeOf(peers), await modeOf(rootKeyPath)]).toEqual([
      0o444, 0o444, 0o400,
    ]);
    const record = JSON.parse(await readFile(join(stagingDir, LOCK_RECORD), 'utf8')) as {
      owner: string;
      files: Record<string, { mode: number }>;
    };
    expect(record.owner).toBe('task-1');
    expect(record.files[props]?.mode).toBe(0o644);

    // A second lock (an orchestrator that died and a new upgrade) keeps the modes from before the first.
    expect(ok(await node.request('config.lock', { owner: 'task-2' }))).toMatchObject({ alreadyLocked: true });

    // Only root writes a read-only file; such a change is reported when the lock ends.
    let refused = false;
    try {
      await writeFile(props, 'mode=edited-during-upgrade\n');
    } catch (error) {
      refused = (error as NodeJS.ErrnoException).code === 'EACCES';
    }
    const unlocked = ok<{ files: number; changed: string[]; wasLocked: boolean }>(
      await node.request('config.unlock'),
    );
    expect(unlocked).toEqual({
      locked: false,
      files: 3,
      changed: refused ? [] : [props],
      wasLocked: true,
    });
    expect([await modeOf(props), await modeOf(peers), await modeOf(rootKeyPath)]).toEqual([
      0o644, 0o644, 0o600,
    ]);
    expect(ok(await node.request('config.unlock'))).toEqual({
      locked: false,
      files: 0,
      changed: [],
      wasLocked: false,
    });
  });

  it('refuses an owner that is not a plain name', async () => {
    const run = await node.request('config.lock', { owner: '../x' });
    expect(run.response).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
  });
});

describe('the rolling upgrade and the config lock', () => {
  let h: Harness;
  afterEach(() => h.cleanup());

  it('locks both nodes after the backups and unlocks them before rsync resumes', async () => {
    h = createHarness();
    const seen: string[] = [];
    h.fake.onCall((c) => {
      if (c.op === 'jar.install' && c.outcome === 'pending')
        seen.push(
          `install on ${c.node}: locked ${h.fake.node('node-a').configLocked}/${h.fake.node('node-b').configLocked}`,
        );
    });
    const task = await h.upgrade();
    expect(task.state).toBe('COMPLETE');
    expect(seen[0]).toBe('install on node-b: locked true/true');
    expect([h.fake.node('node-a').configLocked, h.fake.node('node-b').configLocked]).toEqual([false, false]);
    const ops = h.fake.calls.map((c) => `${c.op}@${c.node}`);
    expect(ops.indexOf('config.lock@node-b')).toBeGreaterThan(ops.lastIndexOf('backup.verify@node-a'));
    expect(ops.indexOf('config.unlock@node-a')).toBeLessThan(ops.indexOf('rsync.resume@node-a'));
    const steps = (await h.deps.audit.steps(task.id)).map((s) => `${s.step} ${s.status}`);
    expect(steps).toEqual(
      expect.arrayContaining(['backup.config_lock succeeded', 'verify.config_unlock succeeded']),
    );
  });

  it('unlocks both nodes when the upgrade fails and rolls back', async () => {
    h = createHarness();
    h.fake.inject({ node: 'node-b', op: 'jar.install', effect: { type: 'fail', code: 'DEPLOYMENT_FAILED' } });
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expect([h.fake.node('node-a').configLocked, h.fake.node('node-b').configLocked]).toEqual([false, false]);
    const logs = (await h.deps.audit.logs(task.id, { limit: 1000, offset: 0 })).items;
    expect(
      logs
        .filter((l) => l.message.startsWith('config files unlocked'))
        .map((l) => l.source)
        .sort(),
    ).toEqual(['node-a', 'node-b']);
  });
});
