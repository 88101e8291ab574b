// Pre-checks that refuse before anything changes, replication that means what it says, schema
// rollback scripts instead of a restore, the database primary moving with the VIP, and keepalived
// priorities that never drift; on the fake pair under a fake clock.
import { afterEach, describe, expect, it } from 'vitest';
import {
  FROM_VERSION,
  TO_VERSION,
  createHarness,
  drive,
  writePackage,
  type Harness,
} from './fakes/upgrade-harness.js';
import { runRollingUpgrade } from '../src/rolling-upgrade.js';

let h: Harness;
afterEach(() => h.cleanup());

/** Calls that change something on a node (everything but reads). */
const CHANGING = new Set([
  'rsync.pause',
  'backup.create',
  'schema.apply',
  'service.stop',
  'jar.install',
  'keepalived.set_priority',
  'database.fence',
  'database.promote',
  'database.follow',
  'putFile',
]);

async function expectRefused(h: Harness, check: string, message: RegExp): Promise<void> {
  const task = await h.upgrade();
  expect(task.state).toBe('FAILED');
  expect(task.error?.message).toMatch(new RegExp(`^pre-check ${check.replace('.', '\\.')} failed: `));
  expect(task.error?.message).toMatch(message);
  expect(task.lastMessage).toMatch(/nothing was changed/);
  expect(h.fake.calls.filter((c) => CHANGING.has(c.op)).map((c) => `${c.node} ${c.op}`)).toEqual([]);
  const steps = await h.deps.audit.steps(task.id);
  expect(steps.filter((s) => s.status !== 'started').map((s) => `${s.step} ${s.status}`)).toEqual([
    'prepare.check failed',
  ]);
}

describe('pre-checks: refused before anything changes, naming the check', () => {
  it('a standby that does not stream (primary_conninfo emptied)', async () => {
    h = createHarness();
    h.fake.disconnectStandby();
    await expectRefused(h, 'replication.connected', /no standby streams from primary node-a/);
  });

  it('a standby lagging beyond the byte bound', async () => {
    h = createHarness();
    h.fake.stallReplication();
    await expectRefused(h, 'replication.lag', /standby node-b is 20\.0 MiB behind \(bound 16\.0 MiB\)/);
  });

  it('a standby lagging beyond the time bound', async () => {
    h = createHarness({ config: { replicationMaxLagBytes: 64 * 1024 * 1024 } });
    h.fake.stallReplication();
    await expectRefused(h, 'replication.lag', /60000 ms behind \(bound 10000 ms\)/);
  });

  it('priorities that leave the VIP holder below its peer', async () => {
    h = createHarness({ cluster: { priorities: { primary: 100, standby: 150 } } });
    await expectRefused(h, 'keepalived.priorities', /VIP holder node-a has priority 100, node-b has 150/);
  });

  it('too little space for the backup', async () => {
    h = createHarness();
    h.fake.setFreeSpace('node-b', 100 * 1024 * 1024);
    await expectRefused(h, 'backup.space', /node-b has 100 MiB free/);
  });

  it('nodes on different versions', async () => {
    h = createHarness();
    h.fake.setVersion('node-b', '1.5.0');
    await expectRefused(h, 'versions', /nodes run different versions \(node-a 1\.0\.0, node-b 1\.5\.0\)/);
  });

  it('an unhealthy node', async () => {
    h = createHarness();
    h.fake.failHealthOn(FROM_VERSION, 'node-b');
    await expectRefused(h, 'health', /node-b/);
  });
});

describe('switchover: the database primary moves with the VIP', () => {
  it('fences the old primary, promotes the caught-up standby, and the old primary follows it', async () => {
    h = createHarness();
    const task = await h.upgrade();
    expect(task.state).toBe('COMPLETE');
    expect(h.fake.vipHolder()).toBe('node-b');
    expect(h.fake.node('node-b').databaseRole).toBe('primary');
    expect(h.fake.node('node-a').databaseRole).toBe('standby');
    expect(h.fake.node('node-a').databaseRunning).toBe(true);
    const order = h.fake
      .trace((c) => c.op.startsWith('database.') || c.op === 'keepalived.set_priority')
      .filter((_, i, all) => all.indexOf(_) === i);
    expect(order).toEqual([
      'node-a database.fence',
      'node-b database.promote',
      'node-b keepalived.set_priority',
      'node-a keepalived.set_priority',
      'node-a database.follow',
    ]);
  });

  it('a promote that fails: the old primary starts again, VIP and roles as before', async () => {
    h = createHarness();
    h.fake.inject({
      node: 'node-b',
      op: 'database.promote',
      effect: { type: 'fail', code: 'DEPLOYMENT_FAILED' },
    });
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expect(task.error?.code).toBe('DEPLOYMENT_FAILED');
    expect(h.fake.vipHolder()).toBe('node-a');
    expect(h.fake.node('node-a').databaseRole).toBe('primary');
    expect(h.fake.node('node-a').databaseRunning).toBe(true);
    expect(h.fake.node('node-b').databaseRole).toBe('standby');
    const steps = (await h.deps.audit.steps(task.id))
      .filter((s) => s.status === 'succeeded')
      .map((s) => s.step);
    expect(steps).toContain('rollback.database_unfence');
  });

  it('a failure after the switch moves the database primary back, the VIP right after its promotion', async () => {
    h = createHarness();
    h.fake.failHealthOn(TO_VERSION, 'node-a');
    const task = await h.upgrade();
    expect(task.state).toBe('FAILED');
    expect(h.fake.vipHolder()).toBe('node-a');
    expect(h.fake.node('node-a').databaseRole).toBe('primary');
    expect(h.fake.node('node-b').databaseRole).toBe('standby');
    expect(h.fake.node('node-a').priority).toBe(150);
    expect(h.fake.node('node-b').priority).toBe(100);
    const rollback = (await h.deps.audit.steps(task.id))
      .filter((s) => /^rollback\.(database|vip)/.test(s.step) && s.status === 'succeeded')
      .map((s) => (s.nodeId === null ? s.step : `${s.step}@${s.nodeId}`));
    // The VIP follows the database primary as soon as it is promoted back: clients writing through
    // the VIP never reach a read-only standby or a fenced node while the other one is rewound.
    expect(rollback).toEqual([
      'rollback.database_follow@node-a',
      'rollback.database_replication',
      'rollback.database_fence@node-b',
      'rollback.database_catch_up@node-a',
      'rollback.database_promote@node-a',
      'rollback.vip@node-b',
      'rollback.vip_health@node-a',
      'rollback.database_follow@node-b',
      'rollback.database_replication',
      'rollback.database_unfence@node-a',
    ]);
    // The schema change was undone by its rollback script, not a restore of the live database.
    expect(h.fake.calls.filter((c) => c.op === 'backup.restore').map((c) => c.args)).toEqual([
      { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] },
      { backupId: 'task-t1', kinds: ['jar', 'config', 'root_key'] },
    ]);
    expect(h.fake.node('node-a').schema).toEqual(['0001-initial']);
  });

  it('databaseSwitchover=0: the database is managed elsewhere; only verified', async () => {
    h = createHarness({ config: { databaseSwitchover: 0 } });
    const task = await h.upgrade();
    expect(task.state).toBe('COMPLETE');
    expect(h.fake.trace((c) => c.op.startsWith('database.'))).toEqual([]);
    expect(h.fake.node('node-a').databaseRole).toBe('primary');
    const steps = (await h.deps.audit.steps(task.id))
      .filter((s) => s.status === 'succeeded')
      .map((s) => s.step);
    expect(steps).toContain('database.replication');
  });
});

describe('keepalived priorities', () => {
  it('15 upgrades back and forth never hit a priority limit: the two values are swapped, never raised', async () => {
    h = createHarness({ scripts: 0 });
    const seen: string[] = [];
    for (let i = 0; i < 15; i++) {
      const version = `${i + 2}.0.0`;
      const pkg = writePackage(version, 0);
      try {
        const task = await h.newTask();
        const done = await drive(h.clock, runRollingUpgrade(h.deps, task, pkg, new AbortController().signal));
        expect(done.state, `${version}: ${done.lastMessage}`).toBe('COMPLETE');
      } finally {
        h.cleanup();
      }
      const holder = h.fake.vipHolder() ?? '-';
      seen.push(`${holder} ${h.fake.node('node-a').priority}/${h.fake.node('node-b').priority}`);
      expect(h.fake.node(holder).databaseRole).toBe('primary');
    }
    expect(new Set(seen)).toEqual(new Set(['node-b 100/150', 'node-a 150/100']));
  });
});
