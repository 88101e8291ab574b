// The task runner on the memory stores: background runs, cancel rules, crash recovery at start-up.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { FakeClock, type UpgradeError } from '@upgrade/core';
import { rejectionOf, waitFor } from '@upgrade/testkit';
import { describe, expect, it } from 'vitest';
import type { Cluster, UpgradePackage, UpgradeTask } from '../src/ports.js';
import { createMemoryStores } from '../src/stores/memory.js';
import { INTERRUPTED, cleanWorkDir, createTaskRunner, type RunUpgrade } from '../src/task-runner.js';
import { drive } from './fakes/upgrade-harness.js';

const cluster = { nodes: [], vip: '10.0.0.1' } as unknown as Cluster;

function setup(run: RunUpgrade) {
  const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
  const stores = createMemoryStores({ clock });
  const runner = createTaskRunner({
    tasks: stores.tasks,
    audit: stores.audit,
    configStore: stores.config,
    cluster,
    clock,
    run,
  });
  return { clock, ...stores, runner };
}

function pkgIn(dir: string): UpgradePackage {
  return {
    version: '2.4.0',
    jarPath: join(dir, 'app.jar'),
    jarSha256: 'a'.repeat(64),
    schemaScripts: [],
    packageSha256: 'b'.repeat(64),
    workDir: dir,
  };
}

const newTask = () => ({
  id: randomUUID(),
  toVersion: '2.4.0',
  packageSha256: 'b'.repeat(64),
  requestedBy: 'ops',
});

/** A flow that waits for its signal and then ends CANCELLED with the abort reason. */
const waitForCancel: RunUpgrade = async (deps, task, _pkg, signal) => {
  await deps.tasks.update(task.id, { state: 'PREPARE' });
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  const reason = signal.reason as UpgradeError;
  return deps.tasks.update(task.id, {
    state: 'CANCELLED',
    lastMessage: reason.message,
    finishedAt: new Date(),
  });
};

describe('task runner', () => {
  it('runs the flow in the background with the stored upgrade config and removes the work dir', async () => {
    let seenTimeout = 0;
    const s = setup(async (deps, task) => {
      seenTimeout = deps.config.vipSwitchTimeoutMs;
      return deps.tasks.update(task.id, { state: 'COMPLETE', percent: 100 });
    });
    await s.config.set({ vipSwitchTimeoutMs: 45_000 });
    const dir = mkdtempSync(join(tmpdir(), 'ha-runner-'));
    const task = await s.tasks.create(newTask());
    s.runner.start(task, pkgIn(dir));
    expect(s.runner.isRunning(task.id)).toBe(true);
    await s.runner.settled();
    expect(seenTimeout).toBe(45_000);
    expect((await s.tasks.get(task.id))?.state).toBe('COMPLETE');
    expect(existsSync(dir)).toBe(false);
    expect(s.runner.isRunning(task.id)).toBe(false);
  });

  it('fails a task whose flow throws, so the next upgrade can start', async () => {
    const s = setup(async () => {
      throw new Error('boom');
    });
    const task = await s.tasks.create(newTask());
    s.runner.start(task, pkgIn(mkdtempSync(join(tmpdir(), 'ha-runner-'))));
    await s.runner.settled();
    const failed = await s.tasks.get(task.id);
    expect(failed).toMatchObject({ state: 'FAILED', error: { code: 'INTERNAL' } });
    expect(await s.tasks.active()).toBeNull();
  });

  it('passes a cancel to the running flow and keeps the first reason', async () => {
    const s = setup(waitForCancel);
    const task = await s.tasks.create(newTask());
    s.runner.start(task, pkgIn(mkdtempSync(join(tmpdir(), 'ha-runner-'))));
    await waitFor(async () => (await s.tasks.get(task.id))?.state === 'PREPARE');
    const requested = await s.runner.cancel(task.id, 'window closed', 'ops');
    expect(requested).toMatchObject({
      cancelReason: 'window closed',
      cancelRequestedAt: expect.any(Date) as unknown,
    });
    await s.runner.settled();
    const done = await s.tasks.get(task.id);
    expect(done).toMatchObject({
      state: 'CANCELLED',
      lastMessage: 'cancelled: window closed',
      cancelReason: 'window closed',
    });
    const logs = await s.audit.logs(task.id, { level: 'WARNING', limit: 10, offset: 0 });
    expect(logs.items[0]?.message).toBe('cancel requested by ops: window closed');
  });

  it('refuses to cancel an unknown task (NOT_FOUND) or a final one (CONFLICT)', async () => {
    const s = setup(waitForCancel);
    expect((await rejectionOf(s.runner.cancel(randomUUID(), 'x', null))).code).toBe('NOT_FOUND');
    const task = await s.tasks.create(newTask());
    await s.tasks.update(task.id, { state: 'TIMEOUT' });
    expect((await rejectionOf(s.runner.cancel(task.id, 'x', null))).code).toBe('CONFLICT');
  });

  it('cancels an IDLE task that no flow runs yet directly', async () => {
    const s = setup(waitForCancel);
    const task = await s.tasks.create(newTask());
    const cancelled = await s.runner.cancel(task.id, 'wrong package', null);
    expect(cancelled).toMatchObject({ state: 'CANCELLED', finishedAt: expect.any(Date) as unknown });
  });

  it('stops running tasks on shutdown', async () => {
    const s = setup(waitForCancel);
    const task = await s.tasks.create(newTask());
    s.runner.start(task, pkgIn(mkdtempSync(join(tmpdir(), 'ha-runner-'))));
    await waitFor(async () => (await s.tasks.get(task.id))?.state === 'PREPARE');
    await s.runner.stop();
    expect((await s.tasks.get(task.id))?.lastMessage).toBe('cancelled: the orchestrator is shutting down');
  });
});

describe('start-up after a crash', () => {
  it('marks a task left mid-upgrade FAILED with INTERRUPTED and a message saying what to do', async () => {
    const s = setup(waitForCancel);
    const old = await s.tasks.create(newTask());
    await s.tasks.update(old.id, { state: 'COMPLETE' });
    const task = await s.tasks.create(newTask());
    await s.tasks.update(task.id, { state: 'VIP_SWITCH', currentStep: 'vip.switch', percent: 48 });

    const { recovered } = await s.runner.recover();
    expect(recovered.map((t) => t.id)).toEqual([task.id]);
    const failed = (await s.tasks.get(task.id)) as UpgradeTask;
    expect(failed).toMatchObject({
      state: 'FAILED',
      error: { code: INTERRUPTED, step: 'vip.switch' },
      finishedAt: expect.any(Date) as unknown,
    });
    expect(failed.error?.message).toContain('state VIP_SWITCH (step vip.switch)');
    expect(failed.error?.message).toContain(`/api/v1/upgrade/rollback/${task.id}`);
    const logs = await s.audit.logs(task.id, { limit: 10, offset: 0 });
    expect(logs.items[0]).toMatchObject({
      level: 'ERROR',
      source: 'recovery',
      fromState: 'VIP_SWITCH',
      toState: 'FAILED',
    });
    expect((await s.tasks.get(old.id))?.state).toBe('COMPLETE');
    expect(await s.tasks.active()).toBeNull();
    expect(await s.runner.recover()).toEqual({
      recovered: [],
      leftAlone: [],
      rolledBack: [],
      finishedForward: [],
    });
  });

  it('leaves a task alone while the instance running it renews its lease, and takes it over once that instance is gone', async () => {
    const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
    const stores = createMemoryStores({ clock });
    const runnerOn = (runnerClock: FakeClock, instanceId: string) =>
      createTaskRunner({
        tasks: stores.tasks,
        audit: stores.audit,
        configStore: stores.config,
        cluster,
        clock: runnerClock,
        run: waitForCancel,
        instanceId,
      });
    // A runs the task; B is a second instance on the same database, started meanwhile.
    const a = runnerOn(clock, 'instance-a');
    const b = runnerOn(clock, 'instance-b');
    const dir = mkdtempSync(join(tmpdir(), 'ha-runner-'));
    const task = await stores.tasks.create({ ...newTask(), lease: a.lease });
    a.start(task, pkgIn(dir));
    await waitFor(async () => (await stores.tasks.get(task.id))?.state === 'PREPARE');
    await clock.advance(120_000);
    // B waits one lease TTL for the lease; A keeps renewing it meanwhile.
    const running = await drive(clock, b.recover());
    expect(running.recovered).toEqual([]);
    expect(running.leftAlone.map((t) => t.id)).toEqual([task.id]);
    expect(await stores.tasks.get(task.id)).toMatchObject({ state: 'PREPARE', error: null });
    expect(a.isRunning(task.id)).toBe(true);

    // A stops renewing (its process is gone: its clock never moves again); B takes over once the
    // lease expired, and only then.
    await a.stop();
    const frozen = runnerOn(new FakeClock(clock.now()), 'instance-c');
    const second = await stores.tasks.create({ ...newTask(), lease: frozen.lease });
    frozen.start(second, pkgIn(mkdtempSync(join(tmpdir(), 'ha-runner-'))));
    await waitFor(async () => (await stores.tasks.get(second.id))?.state === 'PREPARE');
    const leasedUntil = clock.now() + 30_000;
    // B, started before that lease expired, waits for it to expire and then takes the task.
    const { recovered } = await drive(clock, b.recover());
    expect(recovered.map((t) => t.id)).toEqual([second.id]);
    expect(recovered[0]).toMatchObject({ state: 'FAILED', error: { code: INTERRUPTED } });
    expect(recovered[0]?.finishedAt?.getTime()).toBeGreaterThanOrEqual(leasedUntil);
  });

  it('lets exactly one of two instances starting together recover a crashed task', async () => {
    const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
    const stores = createMemoryStores({ clock });
    const runners = ['instance-a', 'instance-b'].map((instanceId) =>
      createTaskRunner({
        tasks: stores.tasks,
        audit: stores.audit,
        configStore: stores.config,
        cluster,
        clock,
        run: waitForCancel,
        instanceId,
      }),
    );
    const task = await stores.tasks.create({ ...newTask(), lease: { owner: 'crashed', ttlMs: 30_000 } });
    await stores.tasks.update(task.id, { state: 'BACKUP' });
    await clock.advance(30_000);
    const both = Promise.all(runners.map((r) => r.recover()));
    // The loser waits for the winner's lease; the clock moves only once the task is final, so the
    // winner's lease cannot expire under it.
    await waitFor(async () => (await stores.tasks.get(task.id))?.state === 'FAILED');
    const results = await drive(clock, both);
    expect(results.flatMap((r) => r.recovered).map((t) => t.id)).toEqual([task.id]);
    const logs = await stores.audit.logs(task.id, { limit: 10, offset: 0 });
    expect(logs.items.filter((l) => l.toState === 'FAILED')).toHaveLength(1);
  });

  it('removes upload directories a crash left in the work dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ha-work-'));
    const stale = join(dir, 'pkg-123');
    mkdtempSync(join(dir, 'pkg-'));
    mkdirSync(stale);
    mkdirSync(join(dir, 'keep-me'));
    const removed = await cleanWorkDir(dir);
    expect(removed).toHaveLength(2);
    expect(existsSync(join(dir, 'keep-me'))).toBe(true);
  });
});
