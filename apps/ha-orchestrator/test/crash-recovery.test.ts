// A restart after the orchestrator died mid-upgrade: the new process rolls the task back from its
// journal. The dead process is simulated by freezing every call of the first run (to the nodes and
// to the stores) at a chosen point; a new runner on the same stores and the same pair recovers.
import { describe, expect, it, afterEach } from 'vitest';
import type { AuditTrail, Cluster, NodeClient, TaskStore, UpgradeTask } from '../src/ports.js';
import { rmSync } from 'node:fs';
import {
  recoverInterrupted,
  rollBackInterrupted,
  runRollingUpgrade,
  type RecoveryPolicy,
} from '../src/rolling-upgrade.js';
import { createMemoryConfigStore } from '../src/stores/memory.js';
import { INTERRUPTED, createTaskRunner } from '../src/task-runner.js';
import { FROM_VERSION, TO_VERSION, createHarness, drive, type Harness } from './fakes/upgrade-harness.js';

let h: Harness;
afterEach(() => h.cleanup());

interface CrashPoint {
  /** The state the task had last been moved to by the run. */
  state: string;
  /** The first call of this op (on `node`, if given) is never made. */
  op?: string;
  node?: string;
  /** Or: the process dies as the run starts this step (before recording it). */
  step?: string;
}

const never = new Promise<never>(() => undefined);

/** Runs the upgrade until its first node call matching `at`, then freezes it forever. */
async function crashedRun(at: CrashPoint): Promise<UpgradeTask> {
  let state = 'IDLE';
  let crashed = false;
  const matches = (node: string, op: string): boolean =>
    state === at.state && op === at.op && (at.node === undefined || at.node === node);
  const frozen = <T extends object>(target: T, onCall?: (key: string, args: unknown[]) => void): T =>
    new Proxy(target, {
      get(t, key: string) {
        const value = Reflect.get(t, key) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (crashed) return never;
          onCall?.(key, args);
          if (crashed) return never;
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const node = (n: NodeClient): NodeClient => ({
    id: n.id,
    address: n.address,
    call: (op, args, options) => {
      if (crashed || matches(n.id, op)) {
        crashed = true;
        return never;
      }
      return n.call(op, args, options);
    },
    putFile: (localPath, stagedName, options) => {
      if (crashed || matches(n.id, 'putFile')) {
        crashed = true;
        return never;
      }
      return n.putFile(localPath, stagedName, options);
    },
    close: () => n.close(),
  });
  const [a, b] = h.fake.cluster.nodes;
  const cluster: Cluster = { vip: h.fake.cluster.vip, nodes: [node(a), node(b)] };
  const tasks = frozen<TaskStore>(h.deps.tasks, (key, args) => {
    const patch = args[1] as { state?: string; currentStep?: string } | undefined;
    if (key !== 'update') return;
    if (patch?.state !== undefined) state = patch.state;
    if (at.step !== undefined && patch?.currentStep === at.step) crashed = true;
  });
  const audit = frozen<AuditTrail>(h.deps.audit);
  const task = await h.newTask();
  let ended: UpgradeTask | null = null;
  void runRollingUpgrade(
    { ...h.deps, cluster, tasks, audit },
    task,
    h.pkg,
    new AbortController().signal,
  ).then((t) => (ended = t));
  while (!crashed) {
    if (ended !== null) throw new Error(`the run ended ${JSON.stringify(ended)} before the crash point`);
    const fired = await h.clock.tick();
    if (!fired && !crashed) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return (await h.deps.tasks.get(task.id)) as UpgradeTask;
}

/** The restarted process: a new runner on the same stores and pair. */
function restartedRunner(policy: RecoveryPolicy = 'roll-back') {
  return createTaskRunner({
    tasks: h.deps.tasks,
    audit: h.deps.audit,
    configStore: createMemoryConfigStore(h.deps.config),
    cluster: h.fake.cluster,
    clock: h.clock,
    run: runRollingUpgrade,
    reconcile:
      policy === 'roll-back'
        ? rollBackInterrupted
        : (deps, task, journal, message) => recoverInterrupted(deps, task, journal, message, policy),
    instanceId: 'restarted',
  });
}

function expectPairAsBefore(): void {
  for (const id of ['node-a', 'node-b']) {
    const node = h.fake.node(id);
    expect(node.jarVersion, `${id} jar`).toBe(FROM_VERSION);
    expect(node.running, `${id} services`).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
    expect(node.rsyncPaused, `${id} rsync paused`).toBe(false);
    expect(node.configLocked, `${id} config locked`).toBe(false);
    expect(node.staged, `${id} staged files`).toEqual([]);
    expect(node.schema, `${id} schema`).toEqual(['0001-initial']);
  }
  expect(h.fake.vipHolder()).toBe('node-a');
  expect(h.fake.node('node-a').priority).toBe(150);
  expect(h.fake.node('node-b').priority).toBe(100);
  expect(h.fake.node('node-a').databaseRole).toBe('primary');
  expect(h.fake.node('node-b').databaseRole).toBe('standby');
  expect(h.fake.node('node-a').databaseRunning).toBe(true);
}

const CRASH_POINTS: {
  name: string;
  at: CrashPoint;
  state: string;
  /** What the dead run left on the pair. */
  left: () => void;
  undone: string[];
}[] = [
  {
    name: 'after BACKUP',
    at: { state: 'UPGRADE_BACKUP', op: 'putFile' },
    state: 'UPGRADE_BACKUP',
    left: () => {
      expect(h.fake.node('node-a').rsyncPaused).toBe(true);
      expect(h.fake.node('node-b').configLocked).toBe(true);
    },
    undone: ['rollback.config_unlock@node-a', 'rollback.rsync_resume@node-b'],
  },
  {
    name: 'inside UPGRADE_BACKUP (standby stopped for its install)',
    at: { state: 'UPGRADE_BACKUP', op: 'jar.install', node: 'node-b' },
    state: 'UPGRADE_BACKUP',
    left: () => {
      expect(h.fake.node('node-b').servicesActive).toBe(false);
      expect(h.fake.node('node-a').schema).toHaveLength(2);
    },
    undone: ['rollback.restore@node-b', 'rollback.schema@node-a', 'rollback.rsync_resume@node-a'],
  },
  {
    name: 'right after VIP_SWITCH',
    at: { state: 'UPGRADE_MASTER', op: 'replication.status' },
    state: 'UPGRADE_MASTER',
    left: () => {
      expect(h.fake.vipHolder()).toBe('node-b');
      expect(h.fake.node('node-b').databaseRole).toBe('primary');
      expect(h.fake.node('node-b').priority).toBe(150);
    },
    undone: ['rollback.database_promote@node-a', 'rollback.vip@node-b', 'rollback.restore@node-b'],
  },
  {
    name: 'inside UPGRADE_MASTER (former primary stopped for its install)',
    at: { state: 'UPGRADE_MASTER', op: 'jar.install', node: 'node-a' },
    state: 'UPGRADE_MASTER',
    left: () => {
      expect(h.fake.node('node-a').servicesActive).toBe(false);
      expect(h.fake.node('node-b').jarVersion).not.toBe(FROM_VERSION);
    },
    undone: ['rollback.restore@node-a', 'rollback.vip@node-b', 'rollback.restore@node-b'],
  },
];

describe('recovery after a crash mid-upgrade, RECOVERY_POLICY=roll-back', () => {
  for (const point of CRASH_POINTS)
    it(`rolls the pair back from the task's journal when the orchestrator died ${point.name}`, async () => {
      h = createHarness();
      const before = await crashedRun(point.at);
      expect(before.state).toBe(point.state);
      point.left();

      const runner = restartedRunner();
      const result = await drive(h.clock, runner.recover());
      expect(result.recovered.map((t) => t.id)).toEqual([before.id]);
      expect(result.rolledBack).toEqual([before.id]);

      const task = (await h.deps.tasks.get(before.id)) as UpgradeTask;
      expect(task).toMatchObject({ state: 'FAILED', error: { code: INTERRUPTED } });
      expect(task.error?.message).toContain(
        `the orchestrator stopped while this task was in state ${point.state}`,
      );
      expect(task.error?.message).toContain('rolled back after the restart');
      expectPairAsBefore();

      const steps = (await h.deps.audit.steps(before.id))
        .filter((s) => s.status === 'succeeded' && s.step.startsWith('rollback.'))
        .map((s) => `${s.step}@${s.nodeId}`);
      for (const step of point.undone) expect(steps).toContain(step);
      const { items } = await h.deps.audit.logs(before.id, { limit: 1000, offset: 0 });
      const moves = items
        .filter((l) => l.fromState !== null)
        .reverse()
        .slice(-2)
        .map((l) => `${l.source}: ${l.fromState} -> ${l.toState}`);
      expect(moves).toEqual([`recovery: ${point.state} -> ROLLBACK`, 'recovery: ROLLBACK -> FAILED']);
      expect(await h.deps.tasks.active()).toBeNull();
    });

  it('only marks the task failed when its journal holds nothing to undo', async () => {
    h = createHarness();
    const before = await crashedRun({ state: 'PREPARE', op: 'health' });
    expect(before.state).toBe('PREPARE');
    const result = await drive(h.clock, restartedRunner().recover());
    expect(result.rolledBack).toEqual([]);
    expect(result.recovered[0]).toMatchObject({ state: 'FAILED', error: { code: INTERRUPTED } });
  });

  it('only marks the task failed when it stopped after the pre-checks, before its first change', async () => {
    h = createHarness();
    const before = await crashedRun({ state: 'PREPARE', step: 'prepare.rsync_pause' });
    expect((await h.deps.tasks.readJournal(before.id))?.changes).toEqual([]);
    const result = await drive(h.clock, restartedRunner().recover());
    expect(result.rolledBack).toEqual([]);
    expect(result.recovered[0]).toMatchObject({ state: 'FAILED', error: { code: INTERRUPTED } });
    expect(result.recovered[0]?.error?.message).toContain('it was not resumed');
    expect(h.fake.node('node-a').rsyncPaused).toBe(false);
  });
});

function expectPairUpgraded(): void {
  for (const id of ['node-a', 'node-b']) {
    const node = h.fake.node(id);
    expect(node.jarVersion, `${id} jar`).toBe(TO_VERSION);
    expect(node.running, `${id} services`).toEqual({ app: TO_VERSION, worker: TO_VERSION });
    expect(node.rsyncPaused, `${id} rsync paused`).toBe(false);
    expect(node.configLocked, `${id} config locked`).toBe(false);
    expect(node.staged, `${id} staged files`).toEqual([]);
    expect(node.schema, `${id} schema`).toHaveLength(2);
  }
  expect(h.fake.vipHolder()).toBe('node-b');
  expect(h.fake.node('node-b').priority).toBe(150);
  expect(h.fake.node('node-a').priority).toBe(100);
  expect(h.fake.node('node-b').databaseRole).toBe('primary');
  expect(h.fake.node('node-a').databaseRole).toBe('standby');
}

async function stateMoves(taskId: string): Promise<string[]> {
  const { items } = await h.deps.audit.logs(taskId, { limit: 1000, offset: 0 });
  return items
    .filter((l) => l.fromState !== null)
    .reverse()
    .map((l) => `${l.source}: ${l.fromState} -> ${l.toState}`);
}

async function logMessages(taskId: string): Promise<string[]> {
  const { items } = await h.deps.audit.logs(taskId, { limit: 1000, offset: 0 });
  return items.map((l) => l.message);
}

describe('recovery after a crash mid-upgrade, RECOVERY_POLICY=finish-forward (the default)', () => {
  const PAST_THE_SWITCH = CRASH_POINTS.filter((p) => p.state === 'UPGRADE_MASTER');
  for (const point of PAST_THE_SWITCH)
    it(`finishes the upgrade when the orchestrator died ${point.name}`, async () => {
      h = createHarness();
      const before = await crashedRun(point.at);
      point.left();

      const result = await drive(h.clock, restartedRunner('finish-forward').recover());
      expect(result.finishedForward).toEqual([before.id]);
      expect(result.rolledBack).toEqual([]);

      const task = (await h.deps.tasks.get(before.id)) as UpgradeTask;
      expect(task).toMatchObject({ state: 'COMPLETE', error: null, percent: 100, primaryAfter: 'node-b' });
      expect(task.downtimeMs).toEqual(expect.any(Number));
      expectPairUpgraded();

      const steps = (await h.deps.audit.steps(before.id)).map(
        (s) => `${s.step}@${s.nodeId ?? '-'} ${s.status}`,
      );
      expect(steps).toContain('recovery.inspect@- succeeded');
      expect(steps).toContain('master.install@node-a succeeded');
      expect(steps).toContain('verify.rsync_resume@- succeeded');
      expect(steps.filter((s) => s.startsWith('rollback.'))).toEqual([]);
      expect((await stateMoves(before.id)).slice(-2)).toEqual([
        'recovery: UPGRADE_MASTER -> VERIFY',
        'recovery: VERIFY -> COMPLETE',
      ]);
      expect((await logMessages(before.id)).join('\n')).toContain('finishing the upgrade forward');
      expect(await h.deps.tasks.active()).toBeNull();
    });

  for (const point of CRASH_POINTS.filter((p) => p.state === 'UPGRADE_BACKUP'))
    it(`still rolls back when the orchestrator died ${point.name}, before the VIP switch`, async () => {
      h = createHarness();
      const before = await crashedRun(point.at);
      const result = await drive(h.clock, restartedRunner('finish-forward').recover());
      expect(result.rolledBack).toEqual([before.id]);
      expect(await h.deps.tasks.get(before.id)).toMatchObject({
        state: 'FAILED',
        error: { code: INTERRUPTED },
      });
      expectPairAsBefore();
    });

  it('rolls back when it died inside VIP_SWITCH before the VIP moved (database primary already promoted)', async () => {
    h = createHarness();
    const before = await crashedRun({ state: 'VIP_SWITCH', op: 'keepalived.set_priority' });
    expect(h.fake.node('node-b').databaseRole).toBe('primary');
    expect(h.fake.vipHolder()).toBe('node-a');
    const result = await drive(h.clock, restartedRunner('finish-forward').recover());
    expect(result.rolledBack).toEqual([before.id]);
    expect(await h.deps.tasks.get(before.id)).toMatchObject({
      state: 'FAILED',
      error: { code: INTERRUPTED },
    });
    expect((await logMessages(before.id)).join('\n')).toContain(
      'the VIP had not moved to the upgraded node yet',
    );
    expectPairAsBefore();
  });

  it("rolls back when the package's jar is gone from WORK_DIR, saying why", async () => {
    h = createHarness();
    const before = await crashedRun({ state: 'UPGRADE_MASTER', op: 'replication.status' });
    rmSync(h.pkg.jarPath);
    const result = await drive(h.clock, restartedRunner('finish-forward').recover());
    expect(result.rolledBack).toEqual([before.id]);
    expect((await logMessages(before.id)).join('\n')).toContain(
      "cannot finish the upgrade forward: the package's jar is no longer in",
    );
    expectPairAsBefore();
  });

  it('undoes the schema change from the journal when WORK_DIR was lost with the rollback scripts', async () => {
    h = createHarness();
    const before = await crashedRun({ state: 'UPGRADE_BACKUP', op: 'jar.install', node: 'node-b' });
    expect(h.fake.node('node-a').schema).toHaveLength(2);
    rmSync(h.pkg.workDir, { recursive: true, force: true });
    const result = await drive(h.clock, restartedRunner('finish-forward').recover());
    expect(result.rolledBack).toEqual([before.id]);
    expect(await h.deps.tasks.get(before.id)).toMatchObject({
      state: 'FAILED',
      error: { code: INTERRUPTED },
    });
    expect((await logMessages(before.id)).join('\n')).toContain("taken from the task's journal");
    expectPairAsBefore();
  });
});

describe('a run that lost its lease', () => {
  it('stops at its next safe point and leaves the task and the pair to the instance that took it over', async () => {
    h = createHarness();
    // Every renewal finds the lease taken: this process stalled past it and another instance has it.
    const tasks: TaskStore = { ...h.deps.tasks, renewLease: async () => false };
    const runner = createTaskRunner({
      tasks,
      audit: h.deps.audit,
      configStore: createMemoryConfigStore(h.deps.config),
      cluster: h.fake.cluster,
      clock: h.clock,
      run: runRollingUpgrade,
      instanceId: 'stalled',
      leaseRenewMs: 1,
    });
    const task = await h.newTask(runner.lease);
    runner.start(task, h.pkg);
    await drive(h.clock, runner.settled());

    const left = (await h.deps.tasks.get(task.id)) as UpgradeTask;
    // Not finished, not rolled back, not failed: the other instance reconciles it.
    expect(['PREPARE', 'BACKUP']).toContain(left.state);
    const steps = (await h.deps.audit.steps(task.id)).map((s) => s.step);
    expect(steps.filter((s) => s.startsWith('rollback.'))).toEqual([]);
    expect(steps).not.toContain('standby.install');
    expect(h.fake.node('node-a').jarVersion).toBe(FROM_VERSION);
    expect(h.fake.node('node-b').jarVersion).toBe(FROM_VERSION);
  });
});
