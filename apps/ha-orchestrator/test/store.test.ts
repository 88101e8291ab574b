// The store contract on memory, PostgreSQL and PGlite, plus what only the database does.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '@upgrade/core';
import { migrate, migrationStatus, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { rejectionOf, useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import { createMemoryStores } from '../src/stores/memory.js';
import type { Cluster } from '../src/ports.js';
import { createTaskRunner, type TaskRunner } from '../src/task-runner.js';
import { drive } from './fakes/upgrade-harness.js';
import { describeStoreContract, type StoreTarget } from './store-contract.js';

const testDb = useTestDatabase();

const TRUNCATE =
  'TRUNCATE upgrade_history, upgrade_progress, backup_record, vip_switch_record, health_check_record, ' +
  'rsync_status_record, config_sync_record, api_request_log, upgrade_config, upgrade_task';

async function databaseTarget(handle: DatabaseHandle<typeof schema>): Promise<StoreTarget> {
  await migrate(handle, migrationsFolder);
  return {
    fresh: async (clock) => {
      await handle.execute(TRUNCATE);
      const now = (): Date => new Date(clock.now());
      return {
        tasks: createPgTaskStore(handle.db, now),
        audit: createPgAuditTrail(handle.db),
        config: createPgUpgradeConfigStore(handle.db, now),
      };
    },
    close: () => handle.close(),
  };
}

describeStoreContract('memory', async () => ({
  fresh: async (clock) => createMemoryStores({ clock }),
  close: async () => undefined,
}));

describeStoreContract('PostgreSQL', async () =>
  databaseTarget(await openDatabase({ url: testDb.url, schema })),
);

let pgliteRoot: string | undefined;
afterAll(async () => {
  if (pgliteRoot !== undefined) await rm(pgliteRoot, { recursive: true, force: true });
});

// One PGlite for the whole file: each instance costs seconds and hundreds of MB.
describeStoreContract('PGlite', async () => {
  pgliteRoot = await mkdtemp(join(tmpdir(), 'ha-store-'));
  return databaseTarget(await openDatabase({ dataDir: join(pgliteRoot, 'data'), schema }));
});

describe('PostgreSQL only', () => {
  let handle: DatabaseHandle<typeof schema>;
  beforeAll(async () => {
    handle = await openDatabase({ url: testDb.url, schema });
    await migrate(handle, migrationsFolder);
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('has every migration applied', async () => {
    const status = await migrationStatus(handle, migrationsFolder);
    expect(status.pending).toEqual([]);
    expect(status.applied.map((m) => m.tag)).toContain('0000_init');
  });

  it('lets exactly one of many racing triggers create its task', async () => {
    await handle.execute(TRUNCATE);
    const tasks = createPgTaskStore(handle.db);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        tasks.create({
          id: randomUUID(),
          toVersion: '2.4.0',
          packageSha256: 'a'.repeat(64),
          requestedBy: null,
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect(r.reason).toMatchObject({ code: 'CONFLICT' });
    const rows = await handle.execute<{ n: number }>(
      "SELECT count(*)::int AS n FROM upgrade_task WHERE state = 'IDLE'",
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('lets exactly one of two instances on separate connections recover a crashed task', async () => {
    await handle.execute(TRUNCATE);
    const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
    const now = (): Date => new Date(clock.now());
    const other = await openDatabase({ url: testDb.url, schema });
    try {
      const runners = [handle, other].map((h, i) =>
        createTaskRunner({
          tasks: createPgTaskStore(h.db, now),
          audit: createPgAuditTrail(h.db),
          configStore: createPgUpgradeConfigStore(h.db, now),
          cluster: { nodes: [], vip: '10.0.0.1' } as unknown as Cluster,
          clock,
          run: async () => {
            throw new Error('no task is started here');
          },
          instanceId: `instance-${i}`,
        }),
      );
      const tasks = createPgTaskStore(handle.db, now);
      const task = await tasks.create({
        id: randomUUID(),
        toVersion: '2.4.0',
        packageSha256: 'a'.repeat(64),
        requestedBy: null,
        lease: { owner: 'crashed', ttlMs: 30_000 },
      });
      await tasks.update(task.id, { state: 'UPGRADE_BACKUP' });
      const [first, second] = runners as [TaskRunner, TaskRunner];
      await clock.advance(30_000);
      const both = Promise.all([first.recover(), second.recover()]);
      // The loser waits for the winner's lease; the clock moves only once the task is final, so
      // the winner's lease cannot expire under it.
      await waitFor(async () => (await tasks.get(task.id))?.state === 'FAILED');
      const results = await drive(clock, both);
      expect(results.flatMap((r) => r.recovered).map((t) => t.id)).toEqual([task.id]);
      const rows = await handle.execute<{ n: number }>(
        `SELECT count(*)::int AS n FROM upgrade_history WHERE task_id = '${task.id}' AND to_state = 'FAILED'`,
      );
      expect(rows[0]?.n).toBe(1);
      const [lease] = await handle.execute<{ lease_owner: string | null }>(
        `SELECT lease_owner FROM upgrade_task WHERE id = '${task.id}'`,
      );
      expect(lease?.lease_owner).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('refuses audit rows of a task that does not exist', async () => {
    const audit = createPgAuditTrail(handle.db);
    const error = await rejectionOf(
      audit.log({
        taskId: randomUUID(),
        level: 'INFO',
        message: 'x',
        fromState: null,
        toState: null,
        at: new Date(),
      }),
    );
    expect(error.code).toBe('CONFLICT');
  });

  it('refuses a negative or fractional upgrade parameter', async () => {
    const config = createPgUpgradeConfigStore(handle.db);
    expect((await rejectionOf(config.set({ vipSwitchTimeoutMs: -1 }))).code).toBe('VALIDATION_FAILED');
    expect((await rejectionOf(config.set({ healthRetries: 1.5 }))).code).toBe('VALIDATION_FAILED');
  });

  it('writes one api_request_log row per record', async () => {
    await handle.execute(TRUNCATE);
    await createPgApiRequestLog(handle.db).record({
      at: new Date('2030-01-01T00:00:00Z'),
      requestId: 'req-1',
      method: 'GET',
      route: '/api/v1/upgrade/history',
      path: '/api/v1/upgrade/history',
      status: 200,
      durationMs: 3.7,
      clientIp: '127.0.0.1',
      caller: 'ops',
      userAgent: 'curl/8',
      requestBody: null,
      responseBody: { items: [], page: 1, page_size: 20, total: 0 },
    });
    const rows = await handle.execute(
      'SELECT method, route, status, duration_ms, caller, request_body, response_body FROM api_request_log',
    );
    expect(rows).toEqual([
      {
        method: 'GET',
        route: '/api/v1/upgrade/history',
        status: 200,
        duration_ms: 4,
        caller: 'ops',
        request_body: null,
        response_body: { items: [], page: 1, page_size: 20, total: 0 },
      },
    ]);
  });
});
