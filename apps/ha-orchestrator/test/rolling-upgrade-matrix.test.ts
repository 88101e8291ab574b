// Every node call of a successful upgrade, made to fail, to hang, to lose its node, or to carry a
// cancel request: each run must end in the state the cause says, with the pair back where it was.
// The calls are those a successful run makes, in order; the k-th occurrence of `node op` in that
// run is the one hit, since the runs are identical up to it.
import { beforeAll, describe, expect, it } from 'vitest';
import type { UpgradeTask } from '../src/ports.js';
import type { CallRecord, FaultEffect } from './fakes/fake-cluster.js';
import { FROM_VERSION, TO_VERSION, createHarness, type Harness } from './fakes/upgrade-harness.js';

interface Target {
  index: number;
  node: string;
  op: CallRecord['op'];
  /** Occurrences of the same `node op` before this one. */
  after: number;
  label: string;
}

let targets: Target[] = [];

beforeAll(async () => {
  const h = createHarness();
  try {
    const task = await h.upgrade();
    expect(task.state).toBe('COMPLETE');
    const seen = new Map<string, number>();
    targets = h.fake.calls.map((c, index) => {
      const key = `${c.node} ${c.op}`;
      const after = seen.get(key) ?? 0;
      seen.set(key, after + 1);
      return { index, node: c.node, op: c.op, after, label: `#${index} ${key} (${after + 1})` };
    });
  } finally {
    h.cleanup();
  }
});

/** Calls whose failure the flow tolerates: a health check (retried) and removing staged files. */
const tolerated = (t: Target): boolean => t.op === 'health' || t.op === 'staging.clean';

async function runWith(effect: FaultEffect, t: Target): Promise<{ h: Harness; task: UpgradeTask }> {
  const h = createHarness();
  h.fake.inject({ node: t.node, op: t.op, after: t.after, times: 1, effect });
  try {
    return { h, task: await h.upgrade() };
  } finally {
    h.cleanup();
  }
}

function expectRolledBack(h: Harness, task: UpgradeTask, label: string): void {
  for (const id of ['node-a', 'node-b']) {
    const node = h.fake.node(id);
    expect(node.jarVersion, `${label}: ${id} jar`).toBe(FROM_VERSION);
    expect(node.running, `${label}: ${id} services`).toEqual({ app: FROM_VERSION, worker: FROM_VERSION });
    expect(node.rsyncPaused, `${label}: ${id} rsync`).toBe(false);
    expect(node.staged, `${label}: ${id} staged`).toEqual([]);
    expect(node.schema, `${label}: ${id} schema`).toEqual(['0001-initial']);
  }
  expect(h.fake.vipHolder(), `${label}: VIP`).toBe('node-a');
  expect(h.fake.node('node-b').priority, `${label}: node-b priority`).toBe(100);
  expect(task.primaryAfter ?? 'node-a', `${label}: primaryAfter`).toBe('node-a');
  expect(task.finishedAt, `${label}: finishedAt`).toBeInstanceOf(Date);
}

const each = (run: (t: Target) => Promise<void>) => async () => {
  expect(targets.length).toBeGreaterThan(50);
  for (const t of targets) await run(t);
};

describe('every call of the flow', () => {
  it(
    'failing once: FAILED with the agent code and the pair rolled back (a health check or cleanup is tolerated)',
    each(async (t) => {
      const { h, task } = await runWith(
        { type: 'fail', code: 'DEPLOYMENT_FAILED', message: `injected at ${t.label}` },
        t,
      );
      if (tolerated(t)) {
        expect(task.state, t.label).toBe('COMPLETE');
        return;
      }
      expect(task.state, t.label).toBe('FAILED');
      expect(task.error, t.label).toEqual({
        code: 'DEPLOYMENT_FAILED',
        message: `injected at ${t.label}`,
        step: expect.any(String) as unknown,
      });
      expectRolledBack(h, task, t.label);
    }),
  );

  it(
    'hanging: FAILED with code TIMEOUT and its step (a call timeout) or TIMEOUT (the deadline of the run), the pair rolled back',
    each(async (t) => {
      const { h, task } = await runWith({ type: 'hang' }, t);
      if (tolerated(t)) {
        expect(task.state, t.label).toBe('COMPLETE');
        return;
      }
      const deadline = /^upgrade to \S+ did not finish within \d+ ms$/.test(task.error?.message ?? '');
      expect(task.state, t.label).toBe(deadline ? 'TIMEOUT' : 'FAILED');
      expect(task.error?.code, t.label).toBe('TIMEOUT');
      expect(task.error?.step, t.label).toEqual(expect.any(String));
      expectRolledBack(h, task, t.label);
    }),
  );

  it(
    'losing its node: UNREACHABLE, the other node rolled back and serving, the lost one skipped',
    each(async (t) => {
      const { h, task } = await runWith({ type: 'unreachable' }, t);
      if (t.op === 'staging.clean') {
        expect(task.state, t.label).toBe('COMPLETE');
        return;
      }
      expect(task.state, t.label).toBe('UNREACHABLE');
      expect(task.error?.code, t.label).toBe('UNREACHABLE');
      const other = t.node === 'node-a' ? 'node-b' : 'node-a';
      const node = h.fake.node(other);
      expect(node.jarVersion, `${t.label}: ${other} jar`).toBe(FROM_VERSION);
      expect(node.running, `${t.label}: ${other} services`).toEqual({
        app: FROM_VERSION,
        worker: FROM_VERSION,
      });
      expect(node.rsyncPaused, `${t.label}: ${other} rsync`).toBe(false);
      expect(node.staged, `${t.label}: ${other} staged`).toEqual([]);
      // The VIP goes back to node-a unless node-a is the one lost; then it stays on the node serving.
      const holder = h.fake.vipHolder();
      if (t.node === 'node-b') expect(holder, `${t.label}: VIP`).toBe('node-a');
      const logs = (await h.deps.audit.logs(task.id, { limit: 1000, offset: 0 })).items;
      const changed = (await h.deps.audit.steps(task.id)).some((s) => s.step === 'prepare.rsync_pause');
      if (changed)
        expect(
          logs.some((l) => l.level === 'WARNING' && l.message.includes(`${t.node} is unreachable`)),
          `${t.label}: skip logged`,
        ).toBe(true);
    }),
  );

  it('carrying a cancel request: CANCELLED at the next safe point, rolled back, reason recorded (VERIFY finishes)', async () => {
    const outcomes = new Map<string, number>();
    for (const t of targets) {
      const h = createHarness();
      const controller = new AbortController();
      // The memory store copies the row when get() is called: the state when the cancel came.
      let stateAtCancel: Promise<UpgradeTask | null> = Promise.resolve(null);
      h.fake.onCall((c) => {
        if (c.seq !== t.index) return;
        stateAtCancel = h.deps.tasks.get('t1');
        controller.abort(`operator asked at ${t.label}`);
      });
      let task: UpgradeTask;
      try {
        task = await h.upgrade(controller.signal);
      } finally {
        h.cleanup();
      }
      const before = (await stateAtCancel)?.state;
      const direct = (await h.deps.audit.steps(task.id)).every((s) => s.step !== 'prepare.rsync_pause');
      const outcome = `${task.state}${direct ? ' directly' : ''}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (before === 'VERIFY') {
        expect(task.state, t.label).toBe('COMPLETE');
        continue;
      }
      expect(task.state, t.label).toBe('CANCELLED');
      expect(task.cancelReason, t.label).toBe(`operator asked at ${t.label}`);
      expect(task.cancelRequestedAt, t.label).toBeInstanceOf(Date);
      expect(task.error, t.label).toBeNull();
      expectRolledBack(h, task, t.label);
    }
    // Cancels during the read-only checks end without a rollback; those in VERIFY let it finish.
    expect([...outcomes.keys()].sort()).toEqual(['CANCELLED', 'CANCELLED directly', 'COMPLETE']);
    // 8 calls: health, keepalived.status, replication.status and backup.space on each node.
    expect(outcomes.get('CANCELLED directly')).toBe(8);
  });
});

describe('every call of a full rollback', () => {
  // The former primary never gets healthy on the new version: everything but rsync's resume was
  // changed, so the rollback undoes all of it (former primary, VIP, standby, database, rsync,
  // staged files).
  const failing = (h: Harness): void => void h.fake.failHealthOn(TO_VERSION, 'node-a');
  let rollbackTargets: Target[] = [];

  beforeAll(async () => {
    const h = createHarness();
    failing(h);
    // The memory store copies the row when get() is called: the task's state at each call.
    const stateAt: Promise<UpgradeTask | null>[] = [];
    h.fake.onCall(() => stateAt.push(h.deps.tasks.get('t1')));
    try {
      const task = await h.upgrade();
      expect(task.state).toBe('FAILED');
      const states = (await Promise.all(stateAt)).map((t) => t?.state);
      const seen = new Map<string, number>();
      rollbackTargets = h.fake.calls.flatMap((c, index) => {
        const key = `${c.node} ${c.op}`;
        const after = seen.get(key) ?? 0;
        seen.set(key, after + 1);
        return states[index] === 'ROLLBACK'
          ? [{ index, node: c.node, op: c.op, after, label: `#${index} ${key} (${after + 1})` }]
          : [];
      });
    } finally {
      h.cleanup();
    }
  });

  it('failing or hanging once: the task still ends FAILED and says whether the rollback completed', async () => {
    expect(rollbackTargets.length).toBeGreaterThan(30);
    for (const effect of [
      { type: 'fail', code: 'INTERNAL', message: 'injected' },
      { type: 'hang' },
    ] as const) {
      for (const t of rollbackTargets) {
        const h = createHarness();
        failing(h);
        h.fake.inject({ node: t.node, op: t.op, after: t.after, times: 1, effect });
        let task: UpgradeTask;
        try {
          task = await h.upgrade();
        } finally {
          h.cleanup();
        }
        const label = `${effect.type} ${t.label}`;
        expect(task.state, label).toBe('FAILED');
        expect(task.finishedAt, label).toBeInstanceOf(Date);
        // Whatever failed, the undos after it still ran: config sync runs again on both nodes.
        for (const id of ['node-a', 'node-b'])
          if (t.op !== 'rsync.resume' || t.node !== id)
            expect(h.fake.node(id).rsyncPaused, `${label}: ${id} rsync`).toBe(false);
        if (tolerated(t)) {
          expect(task.error?.code, label).toBe('HEALTH_CHECK_FAILED');
          continue;
        }
        expect(task.error?.code, label).toBe('ROLLBACK_FAILED');
        expect(task.error?.message, label).toMatch(/^HEALTH_CHECK_FAILED: .*; rollback incomplete: /);
      }
    }
  });
});
