// The rolling upgrade end to end on the fake pair under a fake clock: what the operator sees (the
// task, its audit trail) and what the nodes end up running.
import { UpgradeError } from '@upgrade/core';
import { afterEach, describe, expect, it } from 'vitest';
import { runRollingUpgrade } from '../src/rolling-upgrade.js';
import { FROM_VERSION, TO_VERSION, createHarness, drive, type Harness } from './fakes/upgrade-harness.js';

let h: Harness;
afterEach(() => h.cleanup());

const transitions = async (h: Harness, taskId: string): Promise<string[]> => {
  const { items } = await h.deps.audit.logs(taskId, { limit: 1000, offset: 0 });
  return items
    .filter((l) => l.fromState !== null)
    .reverse()
    .map((l) => `${l.fromState} -> ${l.toState}`);
};

const stepsOf = async (h: Harness, taskId: string, status = 'succeeded'): Promise<string[]> =>
  (await h.deps.audit.steps(taskId))
    .filter((s) => s.status === status)
    .map((s) => (s.nodeId === null ? s.step : `${s.step}@${s.nodeId}`));

/** Both nodes as they were before the upgrade: old version running, VIP and sync as before. */
function expectPairOnOldVersion(h: Harness): void {
  for (const id of ['node-a', 'node-b']) {
    const node = h.fake.node(id);
    expect(node.jarVersion, `${id} jar`).toBe(FROM_VERSION);
    expect(node.running, `${id} services`).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
    expect(node.rsyncPaused, `${id} rsync paused`).toBe(false);
    expect(node.staged, `${id} staged files`).toEqual([]);
    expect(node.schema, `${id} schema`).toEqual(['0001-initial']);
  }
  expect(h.fake.vipHolder()).toBe('node-a');
  expect(h.fake.node('node-a').priority).toBe(150);
  expect(h.fake.node('node-b').priority).toBe(100);
}

describe('runRollingUpgrade: success', () => {
  it('upgrades standby, moves the VIP, upgrades the former primary and records everything in order', async () => {
    h = createHarness();
    const task = await h.upgrade();

    expect(task).toMatchObject({
      state: 'COMPLETE',
      percent: 100,
      fromVersion: FROM_VERSION,
      toVersion: TO_VERSION,
      primaryBefore: 'node-a',
      primaryAfter: 'node-b',
      error: null,
      currentStep: 'cleanup.staging',
    });
    expect(task.startedAt).toBeInstanceOf(Date);
    expect(task.finishedAt?.getTime()).toBeGreaterThan(task.startedAt?.getTime() ?? Infinity);
    expect(await h.deps.tasks.get(task.id)).toEqual(task);

    for (const id of ['node-a', 'node-b']) {
      const node = h.fake.node(id);
      expect(node.jarVersion).toBe(TO_VERSION);
      expect(node.running).toEqual({ app: TO_VERSION, worker: TO_VERSION });
      expect(node.rsyncPaused).toBe(false);
      expect(node.staged).toEqual([]);
      expect(node.schema).toHaveLength(2);
      expect(node.backups).toEqual([`task-${task.id}`]);
    }
    expect(h.fake.vipHolder()).toBe('node-b');
    // Priorities swapped, never raised: 150 / 100 whatever the number of upgrades.
    expect(h.fake.node('node-b').priority).toBe(150);
    expect(h.fake.node('node-a').priority).toBe(100);
    // The database primary moved with the VIP; node-a streams from node-b.
    expect(h.fake.node('node-b').databaseRole).toBe('primary');
    expect(h.fake.node('node-a').databaseRole).toBe('standby');

    expect(await transitions(h, task.id)).toEqual([
      'IDLE -> PREPARE',
      'PREPARE -> BACKUP',
      'BACKUP -> UPGRADE_BACKUP',
      'UPGRADE_BACKUP -> VIP_SWITCH',
      'VIP_SWITCH -> UPGRADE_MASTER',
      'UPGRADE_MASTER -> VERIFY',
      'VERIFY -> COMPLETE',
    ]);
    expect(await stepsOf(h, task.id)).toEqual([
      'prepare.check',
      'prepare.rsync_pause',
      'backup.create@node-b',
      'backup.verify@node-b',
      'backup.create@node-a',
      'backup.verify@node-a',
      'backup.config_lock',
      'standby.schema_stage@node-a',
      'standby.schema_apply@node-a',
      'standby.replication@node-b',
      'standby.stage@node-b',
      'standby.stop@node-b',
      'standby.install@node-b',
      'standby.start@node-b',
      'standby.health@node-b',
      'database.fence@node-a',
      'database.catch_up@node-b',
      'database.promote@node-b',
      'vip.switch@node-b',
      'vip.health@node-b',
      'database.follow@node-a',
      'database.replication',
      'master.replication@node-a',
      'master.stage@node-a',
      'master.stop@node-a',
      'master.install@node-a',
      'master.start@node-a',
      'master.health@node-a',
      'verify.config_unlock',
      'verify.rsync_resume',
      'verify.config',
      'verify.health',
      'verify.replication',
      'verify.vip',
      'verify.downtime',
      'cleanup.staging@node-a',
      'cleanup.staging@node-b',
    ]);
    const steps = await h.deps.audit.steps(task.id);
    const percents = steps.filter((s) => s.status === 'started').map((s) => s.percent);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(steps.filter((s) => s.status === 'started')).toHaveLength(37);
    expect(steps.every((s) => s.status !== 'failed')).toBe(true);
  });

  it('records backups with real checksums, the VIP switch, health checks, rsync and config sync', async () => {
    h = createHarness();
    const task = await h.upgrade();
    const { audit } = h.deps;

    const backups = await audit.backups(task.id);
    expect(backups.map((b) => [b.nodeId, b.verified])).toEqual([
      ['node-b', true],
      ['node-a', true],
    ]);
    for (const b of backups) {
      expect(b.files.map((f) => f.kind).sort()).toEqual(['config', 'database', 'jar', 'root_key']);
      for (const f of b.files) {
        expect(f.md5).toMatch(/^[0-9a-f]{32}$/);
        expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
        expect(f.sizeBytes).toBeGreaterThan(0);
      }
    }

    const logs = (await audit.logs(task.id, { limit: 1000, offset: 0 })).items;
    expect(
      logs.some((l) =>
        /VIP switch attempt 1\/3: VIP 10\.99\.0\.100 moved from node-a to node-b/.test(l.message),
      ),
    ).toBe(true);
    expect(logs.some((l) => l.level === 'INFO' && /^downtime \d+ ms$/.test(l.message))).toBe(true);
    // Downtime: priority raised -> VIP seen on node-b -> node-b healthy; the fake moves it after 2 s.
    expect(task.downtimeMs).toBeGreaterThanOrEqual(2000);
    expect(task.downtimeMs).toBeLessThan(4000);
  });
});

describe('runRollingUpgrade: failures', () => {
  it('health failing on the upgraded standby: rolled back, both old, the VIP never moved', async () => {
    h = createHarness();
    h.fake.failHealthOn(TO_VERSION, 'node-b');
    const task = await h.upgrade();

    expect(task.state).toBe('FAILED');
    expect(task.error?.code).toBe('HEALTH_CHECK_FAILED');
    expect(task.error?.message).toMatch(/node-b failed 4 health checks \(3 tolerated\): http \/health 503/);
    expectPairOnOldVersion(h);
    expect(h.fake.trace((c) => c.op === 'keepalived.set_priority')).toEqual([]);
    expect(task.primaryAfter).toBe('node-a');
    expect(await transitions(h, task.id)).toEqual([
      'IDLE -> PREPARE',
      'PREPARE -> BACKUP',
      'BACKUP -> UPGRADE_BACKUP',
      'UPGRADE_BACKUP -> ROLLBACK',
      'ROLLBACK -> FAILED',
    ]);
    expect(await stepsOf(h, task.id)).toEqual(
      expect.arrayContaining([
        'rollback.stop@node-b',
        'rollback.restore@node-b',
        'rollback.start@node-b',
        'rollback.health@node-b',
        'rollback.schema@node-a',
        'rollback.replication',
        'rollback.rsync_resume@node-a',
        'rollback.rsync_resume@node-b',
      ]),
    );
  });
});

describe('runRollingUpgrade: rollback details', () => {
  it('restores the database only when the schema changed', async () => {
    h = createHarness({ scripts: 0 });
    h.fake.failHealthOn(TO_VERSION, 'node-b');
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expectPairOnOldVersion(h);
    const steps = await stepsOf(h, task.id, 'skipped');
    expect(steps).toEqual(['standby.schema_apply@node-a']);
    expect(h.fake.calls.filter((c) => c.op === 'backup.restore').map((c) => [c.node, c.args])).toEqual([
      ['node-b', { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] }],
    ]);
    // node-a never stopped: no downtime at all.
    expect(task.downtimeMs).toBe(0);
  });

  it('a node lost after the VIP switch: UNREACHABLE, the rest rolled back and the skips recorded', async () => {
    h = createHarness();
    // node-a's first service.stop is the upgrade of the former primary, after the VIP moved.
    h.fake.inject({ node: 'node-a', op: 'service.stop', effect: { type: 'unreachable' } });
    const task = await h.upgrade();

    expect(task.state).toBe('UNREACHABLE');
    expect(task.error).toEqual({
      code: 'UNREACHABLE',
      message: 'cannot connect to node-a (10.99.0.11:22): connection refused',
      step: 'master.stop',
    });
    expect(task.lastMessage).toMatch(
      /rolled back what could be reached; node-a unreachable, left as it was$/,
    );
    expect(await transitions(h, task.id)).toEqual([
      'IDLE -> PREPARE',
      'PREPARE -> BACKUP',
      'BACKUP -> UPGRADE_BACKUP',
      'UPGRADE_BACKUP -> VIP_SWITCH',
      'VIP_SWITCH -> UPGRADE_MASTER',
      'UPGRADE_MASTER -> ROLLBACK',
      'ROLLBACK -> UNREACHABLE',
    ]);
    const rollback = (await h.deps.audit.steps(task.id))
      .filter((s) => /^(rollback|cleanup)\./.test(s.step) && s.status !== 'started')
      .map((s) => `${s.step}@${s.nodeId ?? '-'} ${s.status}`);
    // The database primary moved to node-b with the VIP: it stays there, and the schema change is
    // undone there by its rollback script.
    expect(rollback).toEqual([
      'rollback.restore@node-a skipped',
      'rollback.database_promote@node-a skipped',
      'rollback.database_unfence@node-a skipped',
      'rollback.vip@node-a skipped',
      'rollback.stop@node-b succeeded',
      'rollback.restore@node-b succeeded',
      'rollback.start@node-b succeeded',
      'rollback.health@node-b succeeded',
      'rollback.schema@node-b succeeded',
      'rollback.replication@- succeeded',
      'rollback.config_unlock@node-a skipped',
      'rollback.config_unlock@node-b succeeded',
      'rollback.rsync_resume@node-a skipped',
      'rollback.rsync_resume@node-b succeeded',
      'cleanup.staging@node-a skipped',
      'cleanup.staging@node-b succeeded',
    ]);
    const warnings = (await h.deps.audit.logs(task.id, { level: 'WARNING', limit: 100, offset: 0 })).items;
    expect(warnings.map((w) => w.message)).toContain(
      'rollback.vip on node-a skipped: node-a is unreachable; the VIP stays on node-b',
    );
    // node-b, the one serving, is back on the old version and keeps the VIP.
    const b = h.fake.node('node-b');
    expect(b.jarVersion).toBe(FROM_VERSION);
    expect(b.running).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
    expect(b.rsyncPaused).toBe(false);
    expect(h.fake.vipHolder()).toBe('node-b');
    expect(task.primaryAfter).toBe('node-b');
  });

  it('the upgraded standby lost while the VIP moves: node-a outbids it and takes the VIP back', async () => {
    h = createHarness();
    h.fake.inject({ node: 'node-b', op: 'keepalived.status', after: 1, effect: { type: 'unreachable' } });
    const task = await h.upgrade();
    expect(task.state).toBe('UNREACHABLE');
    expect(h.fake.vipHolder()).toBe('node-a');
    // node-b keeps the 150 it took in the swap; node-a outbids it by one.
    expect(h.fake.node('node-a').priority).toBe(151);
    expect(h.fake.node('node-a').jarVersion).toBe(FROM_VERSION);
    expect(h.fake.node('node-a').rsyncPaused).toBe(false);
    expect(task.primaryAfter).toBe('node-a');
  });

  it('a rollback step that fails too: the task says ROLLBACK_FAILED with both causes', async () => {
    h = createHarness();
    h.fake.failHealthOn(TO_VERSION, 'node-b');
    h.fake.inject({
      node: 'node-b',
      op: 'backup.restore',
      effect: { type: 'fail', code: 'INTERNAL', message: 'disk full' },
    });
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expect(task.error?.code).toBe('ROLLBACK_FAILED');
    expect(task.error?.message).toMatch(
      /^HEALTH_CHECK_FAILED: node-b failed 4 health checks .*; rollback incomplete: upgrade of node-b: INTERNAL: disk full$/,
    );
    // The rest of the rollback still ran.
    expect(h.fake.node('node-a').schema).toEqual(['0001-initial']);
    expect(h.fake.node('node-a').rsyncPaused).toBe(false);
    expect(h.fake.node('node-b').rsyncPaused).toBe(false);
  });
});

describe('runRollingUpgrade: timeouts', () => {
  it('a jar.install that never answers: TIMEOUT at upgradeTimeoutMs, then the rollback', async () => {
    h = createHarness({ config: { upgradeTimeoutMs: 5 * 60_000 } });
    h.fake.inject({ node: 'node-b', op: 'jar.install', effect: { type: 'hang' } });
    const task = await h.upgrade();
    expect(task.state).toBe('TIMEOUT');
    expect(task.error).toEqual({
      code: 'TIMEOUT',
      message: 'upgrade to 2.0.0 did not finish within 300000 ms',
      step: 'standby.install',
    });
    expect(h.fake.calls.find((c) => c.op === 'jar.install')?.at).toBeLessThan(Date.UTC(2026, 0, 1) + 60_000);
    const failedAt = (await h.deps.audit.steps(task.id)).find((s) => s.status === 'failed');
    expect(failedAt?.step).toBe('standby.install');
    expect(failedAt?.at.getTime()).toBe(Date.UTC(2026, 0, 1) + 5 * 60_000);
    expectPairOnOldVersion(h);
  });

  it('replication that never catches up: FAILED (TIMEOUT of its step) after replicationTimeoutMs, before any service stops', async () => {
    h = createHarness();
    const pending = h.upgrade();
    // Stall right after the schema change, release it once the flow gave up.
    const release = h.fake.onCall((c) => {
      const rollback = JSON.stringify(c.args).includes('-rollback.sql');
      if (c.op === 'schema.apply') h.fake.stallReplication(!rollback);
    });
    const task = await pending;
    release();
    expect(task.state).toBe('FAILED');
    expect(task.error).toMatchObject({ code: 'TIMEOUT', step: 'standby.replication' });
    expect(task.error?.message).toBe(
      'database replication not in sync on node-a, node-b within 60000 ms: standby node-b is 20.0 MiB behind (bound 16.0 MiB) as seen on primary node-a',
    );
    expect(h.fake.calls.some((c) => c.op === 'service.stop' && c.node === 'node-b')).toBe(false);
    expectPairOnOldVersion(h);
  });

  it('a VIP that does not move: 3 attempts recorded, FAILED (TIMEOUT of vip.switch), everything rolled back', async () => {
    h = createHarness();
    h.fake.freezeVip();
    const pending = h.upgrade();
    // keepalived comes back to its senses for the rollback.
    const release = h.fake.onCall((c) => {
      if (c.op === 'backup.restore') h.fake.freezeVip(false);
    });
    const task = await pending;
    release();
    expect(task.state).toBe('FAILED');
    expect(task.error).toMatchObject({ code: 'TIMEOUT', step: 'vip.switch' });
    expect(task.error?.message).toMatch(
      /^VIP 10\.99\.0\.100 did not move from node-a to node-b in 3 attempts of 30000 ms/,
    );
    const attempts = (await h.deps.audit.logs(task.id, { limit: 1000, offset: 0 })).items
      .filter((l) => l.message.startsWith('VIP switch attempt'))
      .reverse()
      .map((l) => `${l.level} ${l.message.slice(0, 22)}`);
    expect(attempts).toEqual([
      'WARNING VIP switch attempt 1/3',
      'WARNING VIP switch attempt 2/3',
      'WARNING VIP switch attempt 3/3',
      'INFO VIP switch attempt 1/3',
    ]);
    expect(
      h.fake.calls.filter((c) => c.op === 'keepalived.set_priority').map((c) => [c.node, c.args]),
    ).toEqual([
      // The swap: node-b takes node-a's 150 (a tie, nothing moves), node-a takes node-b's 100 (each attempt).
      ['node-b', { priority: 150 }],
      ['node-a', { priority: 100 }],
      ['node-a', { priority: 100 }],
      ['node-a', { priority: 100 }],
      // Swapped back by the rollback.
      ['node-a', { priority: 150 }],
      ['node-b', { priority: 100 }],
    ]);
    expectPairOnOldVersion(h);
  });
});

describe('runRollingUpgrade: verification and cancel', () => {
  it('config that differs between the nodes after rsync resumed: CHECKSUM_MISMATCH, all rolled back', async () => {
    h = createHarness();
    h.fake.failSync();
    h.fake.editConfig('node-a', 'app.properties', 'app.name=ha\napp.port=8081\n');
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expect(task.error?.code).toBe('CHECKSUM_MISMATCH');
    expect(task.error?.message).toMatch(
      /^config differs between the nodes 60000 ms after rsync resumed: app\.properties$/,
    );
    expect((await transitions(h, task.id)).slice(-2)).toEqual(['VERIFY -> ROLLBACK', 'ROLLBACK -> FAILED']);
    for (const id of ['node-a', 'node-b']) expect(h.fake.node(id).jarVersion).toBe(FROM_VERSION);
    expect(h.fake.vipHolder()).toBe('node-a');
  });

  it('cancelled before it starts: CANCELLED with nothing called on the nodes', async () => {
    h = createHarness();
    const controller = new AbortController();
    controller.abort('maintenance window closed');
    const task = await h.upgrade(controller.signal);
    expect(task.state).toBe('CANCELLED');
    expect(task.cancelReason).toBe('maintenance window closed');
    expect(h.fake.calls).toEqual([]);
    expect(await transitions(h, task.id)).toEqual(['IDLE -> CANCELLED']);
  });

  it('cancelled during the checks: PREPARE -> CANCELLED directly, nothing changed, no rollback', async () => {
    h = createHarness();
    const controller = new AbortController();
    h.fake.onCall((c) => {
      if (c.op === 'keepalived.status') controller.abort(new Error('operator request'));
    });
    const task = await h.upgrade(controller.signal);
    expect(task.state).toBe('CANCELLED');
    expect(task.cancelReason).toBe('operator request');
    expect(await transitions(h, task.id)).toEqual(['IDLE -> PREPARE', 'PREPARE -> CANCELLED']);
    expect(h.fake.calls.some((c) => c.op === 'rsync.pause')).toBe(false);
  });

  it('cancelled mid-install: finishes the node first (no safe point inside), then rolls back', async () => {
    h = createHarness();
    const controller = new AbortController();
    h.fake.onCall((c) => {
      if (c.op === 'jar.install') controller.abort('stop now');
    });
    const task = await h.upgrade(controller.signal);
    expect(task.state).toBe('CANCELLED');
    const steps = await stepsOf(h, task.id);
    expect(steps.indexOf('standby.health@node-b')).toBeGreaterThan(steps.indexOf('standby.install@node-b'));
    expect(steps).not.toContain('vip.switch@node-b');
    const warnings = (await h.deps.audit.logs(task.id, { level: 'WARNING', limit: 100, offset: 0 })).items;
    expect(warnings.map((w) => w.message)).toContain(
      'cancel requested (stop now); stopped after standby.health',
    );
    expectPairOnOldVersion(h);
  });

  it('keeps the time and reason a cancel request recorded, as the task runner does', async () => {
    h = createHarness();
    const task = await h.newTask();
    const controller = new AbortController();
    const request = { at: new Date(0) };
    h.fake.onCall((c) => {
      if (c.op !== 'backup.create' || controller.signal.aborted) return;
      request.at = new Date(h.clock.now());
      void h.deps.tasks
        .update(task.id, { cancelRequestedAt: request.at, cancelReason: 'change freeze' })
        .then(() => controller.abort(new UpgradeError('ABORTED', 'cancelled: change freeze')));
    });
    const result = await drive(h.clock, runRollingUpgrade(h.deps, task, h.pkg, controller.signal));
    expect(result.state).toBe('CANCELLED');
    expect(result.cancelReason).toBe('change freeze');
    expect(result.cancelRequestedAt).toEqual(request.at);
    expect(result.finishedAt?.getTime()).toBeGreaterThan(request.at.getTime());
    expect(result.lastMessage).toBe('cancelled: change freeze; rolled back');
    expectPairOnOldVersion(h);
  });

  it('runs only IDLE tasks and leaves any other as it is', async () => {
    h = createHarness();
    const done = await h.upgrade();
    const again = await drive(h.clock, runRollingUpgrade(h.deps, done, h.pkg, new AbortController().signal));
    expect(again).toEqual(done);
    const errors = (await h.deps.audit.logs(done.id, { level: 'ERROR', limit: 10, offset: 0 })).items;
    expect(errors[0]?.message).toBe('task is COMPLETE; only an IDLE task can be run');
  });

  it('never throws: a task store that fails mid-run ends the task as FAILED when it can', async () => {
    h = createHarness();
    const task = await h.newTask();
    const tasks = h.deps.tasks;
    let updates = 0;
    const flaky = {
      ...tasks,
      update: async (id: string, patch: Parameters<typeof tasks.update>[1]) => {
        if (++updates === 10) throw new Error('connection reset');
        return tasks.update(id, patch);
      },
    };
    const result = await drive(
      h.clock,
      runRollingUpgrade({ ...h.deps, tasks: flaky }, task, h.pkg, new AbortController().signal),
    );
    expect(result.state).toBe('FAILED');
    expect(result.error?.code).toBe('INTERNAL');
    expect((await tasks.get(task.id))?.state).toBe('FAILED');
    expectPairOnOldVersion(h);
  });
});
