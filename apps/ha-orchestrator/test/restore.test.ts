// POST /rollback/{id}: restore the pair from a finished task's backups, on the fake pair.
import { isUpgradeError, type UpgradeError } from '@upgrade/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpgradeTask } from '../src/ports.js';
import { restoreFromBackup, type RestoreOptions } from '../src/restore.js';
import { FROM_VERSION, TO_VERSION, createHarness, drive, type Harness } from './fakes/upgrade-harness.js';

let h: Harness;
afterEach(() => h.cleanup());

async function rejection(promise: Promise<unknown>): Promise<UpgradeError> {
  try {
    await promise;
  } catch (error) {
    if (isUpgradeError(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

const restore = (taskId: string, options: RestoreOptions = {}): Promise<UpgradeTask> =>
  drive(h.clock, restoreFromBackup(h.deps, taskId, options));
const restoreDatabase = (taskId: string): Promise<UpgradeTask> => restore(taskId, { restoreDatabase: true });

const succeededSteps = async (taskId: string, prefix: string): Promise<string[]> =>
  (await h.deps.audit.steps(taskId))
    .filter((s) => s.step.startsWith(prefix) && s.status === 'succeeded')
    .map((s) => (s.nodeId === null ? s.step : `${s.step}@${s.nodeId}`));

describe('restoreFromBackup, rolling (the default)', () => {
  it('restores the node without the VIP first, moves the VIP and the database primary to it, then the other; the schema change undone by its script', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    expect(upgraded.state).toBe('COMPLETE');
    expect(h.fake.vipHolder()).toBe('node-b');

    const task = await restore(upgraded.id);

    expect(task.state).toBe('COMPLETE');
    expect(task.currentStep).toBe('restore.done');
    expect(task.lastMessage).toMatch(
      /^restored node-a and node-b from the backups of task t1 \(version 1\.0\.0\) node by node: node-a first, then the VIP and the database primary moved to it, then node-b; the schema change undone by its rollback scripts; the database was not replaced, no row written meanwhile is lost/,
    );
    for (const id of ['node-a', 'node-b']) {
      const node = h.fake.node(id);
      expect(node.jarVersion).toBe(FROM_VERSION);
      expect(node.running).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
      expect(node.schema).toEqual(['0001-initial']);
      expect(node.rsyncPaused).toBe(false);
      expect(node.staged).toEqual([]);
    }
    // Back where it was before the upgrade: VIP, priorities and database primary on node-a.
    expect(h.fake.vipHolder()).toBe('node-a');
    expect(h.fake.node('node-a').priority).toBe(150);
    expect(h.fake.node('node-b').priority).toBe(100);
    expect(h.fake.node('node-a').databaseRole).toBe('primary');
    expect(h.fake.node('node-b').databaseRole).toBe('standby');
    expect(await succeededSteps(task.id, 'restore.')).toEqual([
      'restore.verify@node-a',
      'restore.verify@node-b',
      'restore.check',
      'restore.rsync_pause',
      // node-a, without the VIP, first: nothing clients use is stopped.
      'restore.stop@node-a',
      'restore.restore@node-a',
      'restore.start@node-a',
      'restore.health@node-a',
      'restore.database_replication',
      'restore.database_fence@node-b',
      'restore.database_catch_up@node-a',
      'restore.database_promote@node-a',
      'restore.vip@node-a',
      'restore.vip_health@node-a',
      'restore.database_follow@node-b',
      'restore.database_replication',
      // node-b once the VIP has left it.
      'restore.stop@node-b',
      'restore.restore@node-b',
      'restore.start@node-b',
      'restore.health@node-b',
      'restore.schema@node-a',
      'restore.staging',
      'restore.replication',
      'restore.rsync_resume',
    ]);
    // Software only: the live database is never replaced.
    const restores = h.fake.calls.filter((c) => c.op === 'backup.restore').map((c) => [c.node, c.args]);
    expect(restores).toEqual([
      ['node-a', { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] }],
      ['node-b', { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] }],
    ]);
  });

  it('answers ROLLBACK_FAILED when the first restored node stays unhealthy, with the VIP never moved off the serving node', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    h.fake.failHealthOn(FROM_VERSION, 'node-a');
    const error = await rejection(restore(upgraded.id));
    expect(error.code).toBe('ROLLBACK_FAILED');
    expect(error.message).toMatch(/restore of node-a from task-t1 failed: HEALTH_CHECK_FAILED/);
    expect(h.fake.vipHolder()).toBe('node-b');
    expect(h.fake.node('node-b').jarVersion).toBe(TO_VERSION);
    expect(h.fake.node('node-b').servicesActive).toBe(true);
    expect(h.fake.node('node-a').rsyncPaused).toBe(false);
    expect(h.fake.node('node-b').rsyncPaused).toBe(false);
  });

  it('refuses with VALIDATION_FAILED, changing nothing, when the journal holds no copy of a rollback script', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    const journal = await h.deps.tasks.readJournal(upgraded.id);
    if (journal === null) throw new Error('no journal');
    await h.deps.tasks.writeJournal(upgraded.id, {
      ...journal,
      changes: journal.changes.map((c) => (c.kind === 'schema' ? { ...c, content: undefined } : c)),
    });
    const error = await rejection(restore(upgraded.id));
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toContain('restore_database');
    expect(h.fake.calls.filter((c) => c.op === 'backup.restore')).toEqual([]);
  });
});

describe('restoreFromBackup, restore_database (the full restore)', () => {
  it('brings both nodes back to the backed-up version, database included, and records every step', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    expect(upgraded.state).toBe('COMPLETE');
    expect(h.fake.node('node-a').jarVersion).toBe(TO_VERSION);

    const task = await restoreDatabase(upgraded.id);

    expect(task.state).toBe('COMPLETE');
    expect(task.currentStep).toBe('restore.done');
    expect(task.lastMessage).toMatch(
      /^restored node-a and node-b from the backups of task t1 \(version 1\.0\.0\); writes were fenced on both nodes \(services stopped\) before the database was replaced from its dump/,
    );
    for (const id of ['node-a', 'node-b']) {
      const node = h.fake.node(id);
      expect(node.jarVersion).toBe(FROM_VERSION);
      expect(node.running).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
      expect(node.schema).toEqual(['0001-initial']);
      expect(node.rsyncPaused).toBe(false);
    }
    // The VIP holder (node-b after the upgrade) was restored last and kept the VIP.
    expect(h.fake.vipHolder()).toBe('node-b');
    const restoreSteps = (await h.deps.audit.steps(task.id))
      .filter((s) => s.step.startsWith('restore.') && s.status === 'succeeded')
      .map((s) => (s.nodeId === null ? s.step : `${s.step}@${s.nodeId}`));
    expect(restoreSteps).toEqual([
      'restore.verify@node-a',
      'restore.verify@node-b',
      'restore.check',
      'restore.rsync_pause',
      // Writes fenced on both nodes before any database is replaced.
      'restore.fence@node-a',
      'restore.fence@node-b',
      'restore.restore@node-a',
      'restore.restore@node-b',
      'restore.start@node-a',
      'restore.health@node-a',
      'restore.start@node-b',
      'restore.health@node-b',
      'restore.replication',
      'restore.rsync_resume',
    ]);
    // The database comes back on the database primary only: node-b, where it moved with the VIP.
    const restores = h.fake.calls.filter((c) => c.op === 'backup.restore').map((c) => [c.node, c.args]);
    expect(restores).toEqual([
      ['node-a', { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] }],
      ['node-b', { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key', 'database'] }],
    ]);
  });

  it('refuses a backup whose checksum no longer matches with VALIDATION_FAILED and changes nothing', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    h.fake.corruptBackup('node-b', 'task-t1', 'root_key');
    const callsBefore = h.fake.calls.length;

    const error = await rejection(restore(upgraded.id));

    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.status).toBe(400);
    expect(error.message).toMatch(
      /backup task-t1 on node-b does not match its checksums: root_key .*root\.key \(md5 differs\)/,
    );
    expect(h.fake.calls.slice(callsBefore).map((c) => c.op)).toEqual(['backup.verify', 'backup.verify']);
    expect(h.fake.node('node-a').jarVersion).toBe(TO_VERSION);
    const logs = (await h.deps.audit.logs(upgraded.id, { level: 'ERROR', limit: 10, offset: 0 })).items;
    expect(logs[0]?.message).toMatch(/^restore from backup failed: VALIDATION_FAILED/);
  });

  it('refuses a backup removed by retention (a later task backed up again) with VALIDATION_FAILED', async () => {
    h = createHarness();
    const first = await h.upgrade();
    h.fake.deleteBackup('node-a', `task-${first.id}`);
    const error = await rejection(restore(first.id));
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toMatch(/missing/);
  });

  it('answers NOT_FOUND for an unknown task and VALIDATION_FAILED for a task that never backed up', async () => {
    h = createHarness();
    expect((await rejection(restore('nope'))).code).toBe('NOT_FOUND');

    h.fake.inject({ node: 'node-b', op: 'health', effect: { type: 'fail', code: 'UNAVAILABLE' } });
    const failed = await h.upgrade();
    expect(failed.state).toBe('FAILED');
    const error = await rejection(restore(failed.id));
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toMatch(/has no backups/);
  });

  it('answers CONFLICT while a task is running', async () => {
    h = createHarness();
    const done = await h.upgrade();
    await h.newTask();
    expect((await rejection(restore(done.id))).code).toBe('CONFLICT');
  });

  it('answers ROLLBACK_FAILED when a restored node stays unhealthy, and still brings the VIP holder back', async () => {
    h = createHarness();
    const upgraded = await h.upgrade();
    h.fake.failHealthOn(FROM_VERSION, 'node-a');
    const error = await rejection(restoreDatabase(upgraded.id));
    expect(error.code).toBe('ROLLBACK_FAILED');
    expect(error.status).toBe(500);
    expect(error.message).toMatch(/restore of node-a from task-t1 failed: HEALTH_CHECK_FAILED/);
    // Both were fenced and restored; node-b, holding the VIP, serves the restored version.
    expect(h.fake.node('node-b').jarVersion).toBe(FROM_VERSION);
    expect(h.fake.node('node-b').servicesActive).toBe(true);
    expect(h.fake.node('node-a').rsyncPaused).toBe(false);
    expect(h.fake.node('node-b').rsyncPaused).toBe(false);
  });
});
