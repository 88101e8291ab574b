// The whole API with the real rolling upgrade and restore, on PostgreSQL, against the in-process
// fake pair: trigger -> progress until COMPLETE -> history -> logs -> rollback -> cancel refused;
// a failing upgrade rolled back by the flow; a cancel in the middle of a run.
import { systemClock } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import { restoreFromBackup } from '../src/restore.js';
import { runRollingUpgrade } from '../src/rolling-upgrade.js';
import { createFakeCluster, type FakeCluster } from './fakes/fake-cluster.js';
import {
  AUTH,
  buildPackage,
  buildTestApp,
  signPackage,
  signingKeys,
  triggerBody,
  type TestApp,
} from './helpers.js';

const testDb = useTestDatabase();
let handle: DatabaseHandle<typeof schema>;
const keys = signingKeys();
let t: TestApp;
let fake: FakeCluster;

/** Every node operation takes a few milliseconds instead of seconds. */
const FAST = {
  latencyMs: {
    'backup.create': 5,
    'backup.restore': 5,
    'backup.verify': 2,
    'service.stop': 2,
    'service.start': 2,
    'jar.install': 2,
    'schema.apply': 2,
    putFile: 2,
  },
  vipMoveDelayMs: 30,
  replicationCatchUpMs: 20,
  rsyncIntervalMs: 20,
};

beforeAll(async () => {
  handle = await openDatabase({ url: testDb.url, schema });
  await migrate(handle, migrationsFolder);
});
afterAll(async () => {
  await handle?.close();
});

async function setup(latencyMs: Record<string, number> = {}): Promise<void> {
  await handle.execute('TRUNCATE upgrade_task, upgrade_config, api_request_log CASCADE');
  const configStore = createPgUpgradeConfigStore(handle.db);
  await configStore.set({
    healthRetryIntervalMs: 20,
    healthCheckTimeoutMs: 1_000,
    vipSwitchTimeoutMs: 2_000,
    replicationTimeoutMs: 2_000,
    upgradeTimeoutMs: 60_000,
  });
  fake = createFakeCluster({
    clock: systemClock,
    version: '2.3.0',
    ...FAST,
    latencyMs: { ...FAST.latencyMs, ...latencyMs },
  });
  t = await buildTestApp({
    tasks: createPgTaskStore(handle.db),
    audit: createPgAuditTrail(handle.db),
    configStore,
    requestLog: createPgApiRequestLog(handle.db),
    database: handle.healthCheck('database'),
    cluster: fake.cluster,
    run: runRollingUpgrade,
    restore: restoreFromBackup,
    keys: [keys.publicKey],
  });
}
afterEach(async () => {
  await t?.close();
});

interface Progress {
  task_id: string;
  state: string;
  percent: number;
  final: boolean;
  finished_steps: { step: string; status: string }[];
  error: { code: string; message: string } | null;
  primary_before: string | null;
  primary_after: string | null;
  from_version: string | null;
}

const get = (url: string) => t.app.inject({ method: 'GET', url, headers: AUTH });
const post = (url: string, payload?: object) =>
  t.app.inject({ method: 'POST', url, headers: AUTH, ...(payload === undefined ? {} : { payload }) });

async function trigger(version: string): Promise<string> {
  const zip = await buildPackage({ version });
  const body = triggerBody(zip, signPackage(zip, keys.privateKey));
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/upgrade/trigger',
    payload: body.payload,
    headers: { ...body.headers, ...AUTH },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ task_id: string }>().task_id;
}

async function untilFinal(id: string, seen: number[] = []): Promise<Progress> {
  let last: Progress | undefined;
  await waitFor(
    async () => {
      last = (await get(`/api/v1/upgrade/progress/${id}`)).json<Progress>();
      seen.push(last.percent);
      return last.final;
    },
    { timeoutMs: 20_000, intervalMs: 20, what: `task ${id} final` },
  );
  return last as Progress;
}

describe('the API with the real flow', () => {
  it('upgrades the pair, then rolls it back from the backups', async () => {
    await setup();
    const id = await trigger('2.4.0');
    const percents: number[] = [];
    const done = await untilFinal(id, percents);
    expect(done, JSON.stringify(done.error)).toMatchObject({
      state: 'COMPLETE',
      percent: 100,
      from_version: '2.3.0',
      primary_before: 'node-a',
      primary_after: 'node-b',
    });
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(done.finished_steps.length).toBeGreaterThan(10);
    expect(fake.node('node-a').jarVersion).toBe('2.4.0');
    expect(fake.node('node-b').jarVersion).toBe('2.4.0');
    expect(fake.vipHolder()).toBe('node-b');

    const history = (await get('/api/v1/upgrade/history')).json<{
      items: { task_id: string; state: string }[];
      total: number;
    }>();
    expect(history).toMatchObject({ total: 1, items: [{ task_id: id, state: 'COMPLETE' }] });

    const logs = (await get(`/api/v1/upgrade/logs/${id}?page_size=5`)).json<{
      items: { at: string; to_state: string | null }[];
      total: number;
    }>();
    expect(logs.total).toBeGreaterThan(5);
    expect(logs.items).toHaveLength(5);
    expect(logs.items[0]?.to_state).toBe('COMPLETE');
    const ats = logs.items.map((l) => Date.parse(l.at));
    expect(ats).toEqual([...ats].sort((a, b) => b - a));
    const page2 = (await get(`/api/v1/upgrade/logs/${id}?page=2&page_size=5`)).json<{ items: unknown[] }>();
    expect(page2.items.length).toBeGreaterThan(0);
    expect(page2.items).not.toEqual(logs.items);
    const errors = (await get(`/api/v1/upgrade/logs/${id}?level=ERROR`)).json<{ total: number }>();
    expect(errors.total).toBe(0);

    const rollback = await post(`/api/v1/upgrade/rollback/${id}`);
    expect(rollback.statusCode, rollback.body).toBe(200);
    expect(rollback.json()).toMatchObject({ task_id: id, state: 'COMPLETE' });
    expect(fake.node('node-a').jarVersion).toBe('2.3.0');
    expect(fake.node('node-b').jarVersion).toBe('2.3.0');

    const cancel = await post(`/api/v1/upgrade/cancel/${id}`, { reason: 'changed my mind' });
    expect(cancel.statusCode).toBe(409);
    expect(cancel.json()).toMatchObject({ error: { code: 'CONFLICT' } });

    const audit = await handle.execute<{ n: number; t: string }>(
      `SELECT 'backup' AS t, count(*)::int AS n FROM backup_record UNION ALL
       SELECT 'vip', count(*)::int FROM vip_switch_record UNION ALL
       SELECT 'health', count(*)::int FROM health_check_record UNION ALL
       SELECT 'rsync', count(*)::int FROM rsync_status_record UNION ALL
       SELECT 'config', count(*)::int FROM config_sync_record`,
    );
    for (const row of audit) expect(row.n, `${row.t} records`).toBeGreaterThan(0);
  });

  it('rolls back a failing upgrade by itself and ends FAILED, and a new trigger is accepted', async () => {
    await setup();
    fake.failHealthOn('2.4.0');
    const id = await trigger('2.4.0');
    const done = await untilFinal(id);
    expect(done.state).toBe('FAILED');
    expect(done.error?.code).toEqual(expect.any(String));
    expect(fake.node('node-a').jarVersion).toBe('2.3.0');
    expect(fake.node('node-b').jarVersion).toBe('2.3.0');
    expect(fake.vipHolder()).toBe('node-a');
    const errors = (await get(`/api/v1/upgrade/logs/${id}?level=ERROR`)).json<{ total: number }>();
    expect(errors.total).toBeGreaterThan(0);

    const again = await trigger('2.4.1');
    expect(again).not.toBe(id);
    await untilFinal(again);
  });

  it('cancels a running upgrade at a safe point', async () => {
    // Backups take long enough for the cancel to arrive while they run.
    await setup({ 'backup.create': 1_000 });
    const id = await trigger('2.4.0');
    await waitFor(
      async () => (await get(`/api/v1/upgrade/progress/${id}`)).json<Progress>().state === 'BACKUP',
      {
        timeoutMs: 10_000,
      },
    );
    const res = await post(`/api/v1/upgrade/cancel/${id}`, { reason: 'operator stop' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ task_id: id, cancel_reason: 'operator stop' });
    const done = await untilFinal(id);
    expect(done.state).toBe('CANCELLED');
    expect(fake.node('node-a').rsyncPaused).toBe(false);
    expect(fake.node('node-b').rsyncPaused).toBe(false);
  });
});
