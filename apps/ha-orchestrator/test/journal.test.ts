// The run's journal in the task store: each change to the pair is written before the flow makes
// it, with what a restarted orchestrator needs to undo it (nodes by id, backups, priorities).
import { afterEach, describe, expect, it } from 'vitest';
import type { JournalChange, TaskJournal } from '../src/ports.js';
import { FROM_VERSION, createHarness, type Harness } from './fakes/upgrade-harness.js';

let h: Harness;
afterEach(() => h.cleanup());

describe('task journal', () => {
  it('holds each change before the node is asked to make it, and the run state the rollback needs', async () => {
    h = createHarness();
    const seen: { call: string; journal: Promise<TaskJournal | null> }[] = [];
    const watch = new Set([
      'rsync.pause',
      'config.lock',
      'schema.apply',
      'service.stop',
      'keepalived.set_priority',
    ]);
    h.fake.onCall((call) => {
      // The memory store copies the journal as it is when asked, i.e. when the call is made.
      if (watch.has(call.op))
        seen.push({ call: `${call.op}@${call.node}`, journal: h.deps.tasks.readJournal('t1') });
    });
    const task = await h.upgrade();
    expect(task.state).toBe('COMPLETE');

    const lastChange = async (call: string): Promise<JournalChange | undefined> => {
      const entry = seen.find((s) => s.call === call);
      return (await entry?.journal)?.changes.at(-1);
    };
    expect(await lastChange('rsync.pause@node-b')).toEqual({ kind: 'rsync', node: 'node-b' });
    expect(await lastChange('config.lock@node-a')).toEqual({ kind: 'config_lock', node: 'node-a' });
    expect(await lastChange('schema.apply@node-a')).toMatchObject({
      kind: 'schema',
      index: 0,
      stagedName: 't1-schema-001-rollback.sql',
      sha256: h.pkg.schemaScripts[0]?.rollback.sha256,
      localPath: h.pkg.schemaScripts[0]?.rollback.path,
    });
    expect(await lastChange('service.stop@node-b')).toEqual({
      kind: 'software',
      node: 'node-b',
      role: 'standby',
    });
    // Recorded before the database switchover, whose promotion is the last change when it runs.
    const atSwitch = await seen.find((s) => s.call === 'keepalived.set_priority@node-b')?.journal;
    expect(atSwitch?.changes).toContainEqual({
      kind: 'vip',
      from: 'node-a',
      to: 'node-b',
      high: 150,
      low: 100,
    });
    expect(atSwitch?.changes.at(-1)).toEqual({ kind: 'db_promote', from: 'node-a', to: 'node-b' });

    const journal = (await h.deps.tasks.readJournal(task.id)) as TaskJournal;
    expect(journal).toMatchObject({
      fromVersion: FROM_VERSION,
      primary: 'node-a',
      databasePrimary: 'node-b',
      vipHolder: 'node-b',
      priorities: { 'node-a': 150, 'node-b': 100 },
      backups: { 'node-a': 'task-t1', 'node-b': 'task-t1' },
      staged: ['node-a', 'node-b'],
      services: ['app', 'worker'],
    });
    expect(journal.changes.map((c) => c.kind)).toEqual([
      'rsync',
      'rsync',
      'config_lock',
      'config_lock',
      'schema',
      'software',
      'vip',
      'db_fence',
      'db_promote',
      'software',
    ]);
  });

  it('drops a schema script that failed in its transaction from the journal', async () => {
    h = createHarness();
    h.fake.inject({ op: 'schema.apply', effect: { type: 'fail', code: 'DEPLOYMENT_FAILED' }, times: 1 });
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    const journal = (await h.deps.tasks.readJournal(task.id)) as TaskJournal;
    expect(journal.changes.map((c) => c.kind)).toEqual(['rsync', 'rsync', 'config_lock', 'config_lock']);
  });
});
