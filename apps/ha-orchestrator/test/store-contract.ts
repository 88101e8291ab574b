// The TaskStore + AuditTrail + UpgradeConfigStore contract, run against every implementation
// (memory, PostgreSQL, PGlite): what the flow's fast tests rely on is what production does.
import { randomUUID } from 'node:crypto';
import { FakeClock } from '@upgrade/core';
import { rejectionOf } from '@upgrade/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_FLOW_CONFIG,
  type AuditTrail,
  type LogRecord,
  type StepRecord,
  type TaskStore,
  type UpgradeConfigStore,
} from '../src/ports.js';

export interface Stores {
  tasks: TaskStore;
  audit: AuditTrail;
  config: UpgradeConfigStore;
}

/** One implementation under test: `fresh` hands empty stores stamping time from `clock`. */
export interface StoreTarget {
  fresh(clock: FakeClock): Promise<Stores>;
  close(): Promise<void>;
}

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
export const at = (seconds: number): Date => new Date(T0 + seconds * 1000);

const newTask = (over: { id?: string; toVersion?: string } = {}) => ({
  id: over.id ?? randomUUID(),
  toVersion: over.toVersion ?? '2.4.0',
  packageSha256: 'a'.repeat(64),
  requestedBy: 'ops',
});

function log(taskId: string, seconds: number, level: LogRecord['level'], message: string): LogRecord {
  return { taskId, level, message, fromState: null, toState: null, at: at(seconds) };
}

function step(taskId: string, seconds: number, name: string, status: StepRecord['status']): StepRecord {
  return {
    taskId,
    step: name,
    nodeId: 'node-b',
    status,
    message: `${name} ${status}`,
    percent: seconds,
    at: at(seconds),
    durationMs: status === 'started' ? null : 1500,
  };
}

export function describeStoreContract(name: string, open: () => Promise<StoreTarget>): void {
  describe(`store contract on ${name}`, () => {
    let target: StoreTarget | undefined;
    let stores: Stores;
    let clock: FakeClock;

    beforeAll(async () => {
      target = await open();
    }, 60_000);
    afterAll(async () => {
      await target?.close();
    });
    beforeEach(async () => {
      if (target === undefined) throw new Error('store target did not open');
      clock = new FakeClock(at(0));
      stores = await target.fresh(clock);
    });

    describe('task leases', () => {
      const A = { owner: 'instance-a', ttlMs: 30_000 };
      const B = { owner: 'instance-b', ttlMs: 30_000 };

      it('gives a free lease to the first claimant and refuses another until it expires', async () => {
        const task = await stores.tasks.create(newTask());
        expect(await stores.tasks.claimLease(task.id, A)).toBe(true);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(false);
        expect(await stores.tasks.claimLease(task.id, A)).toBe(true);
        await clock.advance(29_999);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(false);
        await clock.advance(1);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(true);
        expect(await stores.tasks.renewLease(task.id, A)).toBe(false);
        expect(await stores.tasks.claimLease(task.id, A)).toBe(false);
      });

      it('keeps a renewed lease past its first expiry and frees a released one', async () => {
        const task = await stores.tasks.create({ ...newTask(), lease: A });
        expect(await stores.tasks.claimLease(task.id, B)).toBe(false);
        await clock.advance(20_000);
        expect(await stores.tasks.renewLease(task.id, A)).toBe(true);
        await clock.advance(20_000);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(false);
        await stores.tasks.releaseLease(task.id, B.owner);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(false);
        await stores.tasks.releaseLease(task.id, A.owner);
        expect(await stores.tasks.claimLease(task.id, B)).toBe(true);
      });

      it('never leases a final task or one that does not exist', async () => {
        const task = await stores.tasks.create(newTask());
        await stores.tasks.update(task.id, { state: 'FAILED' });
        expect(await stores.tasks.claimLease(task.id, A)).toBe(false);
        expect(await stores.tasks.claimLease(randomUUID(), A)).toBe(false);
        expect(await stores.tasks.renewLease(randomUUID(), A)).toBe(false);
      });

      it('keeps the journal a run writes, replaced on each write', async () => {
        const task = await stores.tasks.create(newTask());
        expect(await stores.tasks.readJournal(task.id)).toBeNull();
        const journal = {
          fromVersion: '2.3.0',
          primary: 'node-a',
          databasePrimary: 'node-a',
          vipHolder: 'node-a',
          priorities: { 'node-a': 150, 'node-b': 100 },
          backups: { 'node-a': 'task-1' },
          staged: ['node-a', 'node-b'],
          services: ['app', 'worker'],
          changes: [{ kind: 'rsync' as const, node: 'node-b' }],
        };
        await stores.tasks.writeJournal(task.id, journal);
        expect(await stores.tasks.readJournal(task.id)).toEqual(journal);
        const more = {
          ...journal,
          changes: [...journal.changes, { kind: 'rsync' as const, node: 'node-a' }],
        };
        await stores.tasks.writeJournal(task.id, more);
        expect(await stores.tasks.readJournal(task.id)).toEqual(more);
        expect((await rejectionOf(stores.tasks.writeJournal(randomUUID(), journal))).code).toBe('NOT_FOUND');
      });

      it('lets exactly one of many racing claimants take an expired lease', async () => {
        const task = await stores.tasks.create({ ...newTask(), lease: A });
        await clock.advance(60_000);
        const owners = Array.from({ length: 8 }, (_, i) => ({ owner: `instance-${i}`, ttlMs: 30_000 }));
        const won = await Promise.all(owners.map((o) => stores.tasks.claimLease(task.id, o)));
        expect(won.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('tasks', () => {
      it('creates a task in IDLE with everything else unset', async () => {
        const input = newTask();
        const task = await stores.tasks.create(input);
        expect(task).toEqual({
          id: input.id,
          state: 'IDLE',
          fromVersion: null,
          toVersion: '2.4.0',
          packageSha256: 'a'.repeat(64),
          primaryBefore: null,
          primaryAfter: null,
          percent: 0,
          currentStep: null,
          lastMessage: null,
          error: null,
          downtimeMs: null,
          createdAt: at(0),
          startedAt: null,
          finishedAt: null,
          cancelRequestedAt: null,
          cancelReason: null,
          requestedBy: 'ops',
        });
        expect(await stores.tasks.get(input.id)).toEqual(task);
        expect(await stores.tasks.active()).toEqual(task);
      });

      it('answers null for an unknown id, whatever its shape', async () => {
        expect(await stores.tasks.get(randomUUID())).toBeNull();
        expect(await stores.tasks.get('not-a-uuid')).toBeNull();
        expect(await stores.tasks.active()).toBeNull();
      });

      it('refuses a second task while one is not final, and accepts one after it ended', async () => {
        const first = await stores.tasks.create(newTask());
        await stores.tasks.update(first.id, { state: 'UPGRADE_BACKUP' });
        const error = await rejectionOf(stores.tasks.create(newTask()));
        expect(error.code).toBe('CONFLICT');
        expect(error.message).toContain(first.id);

        await stores.tasks.update(first.id, { state: 'COMPLETE', finishedAt: at(60) });
        expect(await stores.tasks.active()).toBeNull();
        const second = await stores.tasks.create(newTask({ toVersion: '2.5.0' }));
        expect((await stores.tasks.active())?.id).toBe(second.id);
      });

      it('refuses a task id that exists already', async () => {
        const first = await stores.tasks.create(newTask());
        await stores.tasks.update(first.id, { state: 'FAILED' });
        expect((await rejectionOf(stores.tasks.create(newTask({ id: first.id })))).code).toBe('CONFLICT');
      });

      it('applies a patch field by field and gives the whole task back', async () => {
        const task = await stores.tasks.create(newTask());
        const updated = await stores.tasks.update(task.id, {
          state: 'BACKUP',
          fromVersion: '2.3.0',
          primaryBefore: 'node-a',
          percent: 15,
          currentStep: 'prepare.backup',
          lastMessage: 'backing up node-b',
          startedAt: at(1),
          error: { code: 'TIMEOUT', message: 'slow' },
        });
        expect(updated).toMatchObject({
          state: 'BACKUP',
          fromVersion: '2.3.0',
          primaryBefore: 'node-a',
          percent: 15,
          currentStep: 'prepare.backup',
          lastMessage: 'backing up node-b',
          startedAt: at(1),
          error: { code: 'TIMEOUT', message: 'slow' },
          toVersion: '2.4.0',
        });
        const cleared = await stores.tasks.update(task.id, {
          error: null,
          downtimeMs: 4200,
          cancelReason: 'x',
        });
        expect(cleared.error).toBeNull();
        const failed = await stores.tasks.update(task.id, {
          error: { code: 'TIMEOUT', message: 'replication not in sync', step: 'standby.replication' },
        });
        expect(failed.error).toEqual({
          code: 'TIMEOUT',
          message: 'replication not in sync',
          step: 'standby.replication',
        });
        const noStep = await stores.tasks.update(task.id, { error: { code: 'INTERNAL', message: 'x' } });
        expect(noStep.error).toEqual({ code: 'INTERNAL', message: 'x', step: null });
        await stores.tasks.update(task.id, { error: null });
        expect(cleared.downtimeMs).toBe(4200);
        expect(cleared.state).toBe('BACKUP');
        expect(await stores.tasks.get(task.id)).toEqual(cleared);
      });

      it('answers NOT_FOUND when updating an unknown task', async () => {
        expect((await rejectionOf(stores.tasks.update(randomUUID(), { percent: 5 }))).code).toBe('NOT_FOUND');
      });

      it('lists newest first with the total, page by page', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          if (i > 0) await clock.advance(10_000);
          const task = await stores.tasks.create(newTask({ toVersion: `2.${i}.0` }));
          await stores.tasks.update(task.id, { state: 'COMPLETE' });
          ids.push(task.id);
        }
        const first = await stores.tasks.list({ limit: 2, offset: 0 });
        expect(first.total).toBe(5);
        expect(first.items.map((t) => t.id)).toEqual([ids[4], ids[3]]);
        const last = await stores.tasks.list({ limit: 2, offset: 4 });
        expect(last.items.map((t) => t.id)).toEqual([ids[0]]);
        const beyond = await stores.tasks.list({ limit: 2, offset: 10 });
        expect(beyond).toEqual({ items: [], total: 5 });
        expect(await stores.tasks.list({ limit: 20, offset: 0 })).toMatchObject({ total: 5 });
      });

      it('lists nothing on an empty store', async () => {
        expect(await stores.tasks.list({ limit: 20, offset: 0 })).toEqual({ items: [], total: 0 });
      });
    });

    describe('audit trail', () => {
      it('gives log lines back newest first, filtered by level, paged with a total', async () => {
        const task = await stores.tasks.create(newTask());
        const other = await stores.tasks.create(newTask()).catch(() => null);
        expect(other).toBeNull();
        await stores.audit.log({
          ...log(task.id, 1, 'INFO', 'IDLE -> PREPARE'),
          fromState: 'IDLE',
          toState: 'PREPARE',
        });
        await stores.audit.log({ ...log(task.id, 2, 'WARNING', 'replication lag 2 MB'), source: 'node-b' });
        await stores.audit.log({
          ...log(task.id, 3, 'ERROR', 'health failed'),
          details: { node: 'node-b', tries: 3 },
        });
        await stores.audit.log(log(task.id, 4, 'INFO', 'retrying'));

        const all = await stores.audit.logs(task.id, { limit: 10, offset: 0 });
        expect(all.total).toBe(4);
        expect(all.items.map((l) => l.message)).toEqual([
          'retrying',
          'health failed',
          'replication lag 2 MB',
          'IDLE -> PREPARE',
        ]);
        expect(all.items[1]?.details).toEqual({ node: 'node-b', tries: 3 });
        // Who wrote each line; the flow's own lines default to `orchestrator`.
        expect(all.items.map((l) => l.source)).toEqual([
          'orchestrator',
          'orchestrator',
          'node-b',
          'orchestrator',
        ]);
        expect(all.items[3]).toMatchObject({
          fromState: 'IDLE',
          toState: 'PREPARE',
          level: 'INFO',
          at: at(1),
        });

        const infoPage = await stores.audit.logs(task.id, { level: 'INFO', limit: 1, offset: 1 });
        expect(infoPage.total).toBe(2);
        expect(infoPage.items.map((l) => l.message)).toEqual(['IDLE -> PREPARE']);
        expect((await stores.audit.logs(task.id, { level: 'ERROR', limit: 10, offset: 0 })).total).toBe(1);
        expect(await stores.audit.logs(task.id, { limit: 10, offset: 10 })).toEqual({ items: [], total: 4 });
        expect(await stores.audit.logs(randomUUID(), { limit: 10, offset: 0 })).toEqual({
          items: [],
          total: 0,
        });
      });

      it('gives steps back oldest first', async () => {
        const task = await stores.tasks.create(newTask());
        const records = [
          step(task.id, 1, 'prepare.rsync_pause', 'started'),
          step(task.id, 2, 'prepare.rsync_pause', 'succeeded'),
          step(task.id, 3, 'standby.install', 'started'),
          step(task.id, 9, 'standby.install', 'failed'),
        ];
        for (const r of records) await stores.audit.step(r);
        expect(await stores.audit.steps(task.id)).toEqual(records);
        expect(await stores.audit.steps(randomUUID())).toEqual([]);
      });

      it('keeps backups with their checksums, per task', async () => {
        const task = await stores.tasks.create(newTask());
        const backup = {
          taskId: task.id,
          nodeId: 'node-b',
          backupId: `bk-${task.id.slice(0, 8)}`,
          dir: '/var/backups/ha/bk-1',
          files: [
            {
              kind: 'jar' as const,
              path: '/var/backups/ha/bk-1/app.jar',
              sizeBytes: 1024,
              md5: 'b'.repeat(32),
              sha256: 'c'.repeat(64),
            },
            {
              kind: 'database' as const,
              path: '/var/backups/ha/bk-1/db.dump',
              sizeBytes: 4096,
              md5: 'd'.repeat(32),
              sha256: 'e'.repeat(64),
            },
          ],
          verified: true,
          at: at(5),
        };
        await stores.audit.backup(backup);
        expect(await stores.audit.backups(task.id)).toEqual([backup]);
        expect(await stores.audit.backups(randomUUID())).toEqual([]);
      });

      it('accepts VIP switch, health check, rsync and config sync records', async () => {
        const task = await stores.tasks.create(newTask());
        await stores.audit.vipSwitch({
          taskId: task.id,
          fromNode: 'node-a',
          toNode: 'node-b',
          attempt: 1,
          ok: true,
          durationMs: 2300,
          message: 'moved',
          at: at(1),
        });
        await stores.audit.healthCheck({
          taskId: task.id,
          nodeId: 'node-b',
          ok: true,
          details: { version: '2.4.0' },
          durationMs: 40,
          at: at(2),
        });
        await stores.audit.rsync({
          taskId: task.id,
          nodeId: 'node-a',
          action: 'pause',
          paused: true,
          ok: true,
          message: 'paused',
          at: at(3),
        });
        await stores.audit.configSync({
          taskId: task.id,
          digests: { 'node-a': 'f'.repeat(64), 'node-b': 'f'.repeat(64) },
          inSync: true,
          at: at(4),
        });
      });
    });

    describe('upgrade config', () => {
      it('reads the defaults until something is set, then merges patches', async () => {
        expect(await stores.config.get()).toEqual(DEFAULT_FLOW_CONFIG);
        const first = await stores.config.set({ vipSwitchTimeoutMs: 45_000, backupRetention: 2 });
        expect(first).toEqual({ ...DEFAULT_FLOW_CONFIG, vipSwitchTimeoutMs: 45_000, backupRetention: 2 });
        const second = await stores.config.set({ healthRetries: 5 });
        expect(second).toEqual({ ...first, healthRetries: 5 });
        expect(await stores.config.get()).toEqual(second);
      });

      it('holds the replication bounds, the backup margin and the switchover like the rest', async () => {
        const set = await stores.config.set({
          replicationMaxLagBytes: 64 * 1024 * 1024,
          replicationMaxLagMs: 2_500,
          // Above 2^32: a byte margin is not capped at an int column's size.
          backupSpaceMarginBytes: 8 * 1024 ** 3,
          databaseSwitchover: 0,
        });
        const expected = {
          ...DEFAULT_FLOW_CONFIG,
          replicationMaxLagBytes: 64 * 1024 * 1024,
          replicationMaxLagMs: 2_500,
          backupSpaceMarginBytes: 8 * 1024 ** 3,
          databaseSwitchover: 0,
        };
        expect(set).toEqual(expected);
        expect(await stores.config.get()).toEqual(expected);
        expect(await stores.config.set({ databaseSwitchover: 1 })).toEqual({
          ...expected,
          databaseSwitchover: 1,
        });
      });

      it.each([
        [{ replicationMaxLagBytes: 0 }, 'replicationMaxLagBytes must be a whole number > 0'],
        [{ replicationMaxLagMs: 1.5 }, 'replicationMaxLagMs must be a whole number > 0'],
        [
          { backupSpaceMarginBytes: Number.MAX_SAFE_INTEGER + 1 },
          'backupSpaceMarginBytes must be a whole number > 0',
        ],
        [{ databaseSwitchover: 2 }, 'databaseSwitchover must be 0 or 1'],
        [{ healthRetries: -1 }, 'healthRetries must be a whole number from 0 to 2147483647'],
      ] as const)('refuses %o naming the key, and stores nothing of the patch', async (bad, message) => {
        await stores.config.set({ replicationMaxLagMs: 4_000 });
        const error = await stores.config
          .set({ vipSwitchTimeoutMs: 41_000, ...bad })
          .catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'VALIDATION_FAILED' });
        expect((error as Error).message).toContain(message);
        expect(await stores.config.get()).toEqual({ ...DEFAULT_FLOW_CONFIG, replicationMaxLagMs: 4_000 });
      });
    });
  });
}
