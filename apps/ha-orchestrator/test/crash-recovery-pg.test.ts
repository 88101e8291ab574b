// Recovery at start on PostgreSQL: a task left in UPGRADE_BACKUP by a killed orchestrator, its
// journal and its lease in upgrade_task, is rolled back by a new runner in real time on the fake
// pair (the changes journalled up to there are quick undos: config unlock, rsync resume, staging).
import { randomUUID } from 'node:crypto';
import { systemClock } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import type { TaskJournal } from '../src/ports.js';
import { rollBackInterrupted, runRollingUpgrade } from '../src/rolling-upgrade.js';
import { INTERRUPTED, createTaskRunner } from '../src/task-runner.js';
import { createFakeCluster } from './fakes/fake-cluster.js';

const testDb = useTestDatabase();
let handle: DatabaseHandle<typeof schema>;
beforeAll(async () => {
  handle = await openDatabase({ url: testDb.url, schema });
  await migrate(handle, migrationsFolder);
}, 60_000);
afterAll(async () => {
  await handle?.close();
});

describe('recovery at start on PostgreSQL', () => {
  it('rolls back the journal a killed run left in upgrade_task once its lease has expired', async () => {
    const fake = createFakeCluster({ clock: systemClock, version: '1.0.0' });
    for (const node of fake.cluster.nodes) {
      await node.call('rsync.pause', {});
      await node.call('config.lock', { owner: 'dead-run' });
    }
    const tasks = createPgTaskStore(handle.db);
    const audit = createPgAuditTrail(handle.db);
    // Leased by the dead process until a moment ago.
    const task = await tasks.create({
      id: randomUUID(),
      toVersion: '2.0.0',
      packageSha256: 'a'.repeat(64),
      requestedBy: 'test',
      lease: { owner: 'dead-process', ttlMs: 0 },
    });
    await tasks.update(task.id, {
      state: 'UPGRADE_BACKUP',
      currentStep: 'standby.schema_stage',
      percent: 16,
    });
    const journal: TaskJournal = {
      fromVersion: '1.0.0',
      primary: 'node-a',
      databasePrimary: 'node-a',
      vipHolder: 'node-a',
      priorities: { 'node-a': 150, 'node-b': 100 },
      backups: {},
      staged: ['node-a', 'node-b'],
      services: ['app', 'worker'],
      changes: [
        { kind: 'rsync', node: 'node-b' },
        { kind: 'rsync', node: 'node-a' },
        { kind: 'config_lock', node: 'node-b' },
        { kind: 'config_lock', node: 'node-a' },
      ],
    };
    await tasks.writeJournal(task.id, journal);

    const runner = createTaskRunner({
      tasks,
      audit,
      configStore: createPgUpgradeConfigStore(handle.db),
      cluster: fake.cluster,
      clock: systemClock,
      run: runRollingUpgrade,
      reconcile: rollBackInterrupted,
    });
    const result = await runner.recover();
    expect(result.rolledBack).toEqual([task.id]);

    const final = await tasks.get(task.id);
    expect(final).toMatchObject({
      state: 'FAILED',
      error: { code: INTERRUPTED, step: 'standby.schema_stage' },
    });
    expect(final?.error?.message).toContain('rolled back after the restart');
    for (const id of ['node-a', 'node-b']) {
      expect(fake.node(id).rsyncPaused, `${id} rsync paused`).toBe(false);
      expect(fake.node(id).configLocked, `${id} config locked`).toBe(false);
    }
    const transitions = await handle.execute<{ source: string; from_state: string; to_state: string }>(
      `SELECT source, from_state, to_state FROM upgrade_history
        WHERE task_id = '${task.id}' AND to_state IS NOT NULL ORDER BY id`,
    );
    expect(transitions).toEqual([
      { source: 'recovery', from_state: 'UPGRADE_BACKUP', to_state: 'ROLLBACK' },
      { source: 'recovery', from_state: 'ROLLBACK', to_state: 'FAILED' },
    ]);
    const steps = await handle.execute<{ step: string; node_id: string }>(
      `SELECT step, node_id FROM upgrade_progress WHERE task_id = '${task.id}' AND status = 'succeeded' ORDER BY id`,
    );
    expect(steps.map((s) => `${s.step}@${s.node_id}`)).toEqual([
      'rollback.config_unlock@node-a',
      'rollback.config_unlock@node-b',
      'rollback.rsync_resume@node-a',
      'rollback.rsync_resume@node-b',
      'cleanup.staging@node-a',
      'cleanup.staging@node-b',
    ]);
    const [row] = await handle.execute<{ lease_owner: string | null }>(
      `SELECT lease_owner FROM upgrade_task WHERE id = '${task.id}'`,
    );
    expect(row?.lease_owner).toBeNull();
  });
});
