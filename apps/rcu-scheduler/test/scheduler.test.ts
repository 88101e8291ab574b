// The scheduler over the real PostgreSQL store and advisory lock, the real vendor adapter and the
// simulator: no overlapping rounds in one process, exactly one round per slot across instances.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryAdvisoryLock, type DatabaseHandle } from '@upgrade/db';
import { isUpgradeError } from '@upgrade/core';
import { startTcpProxy, useTestDatabase, waitFor } from '@upgrade/testkit';
import { createPgStore } from '../src/adapters/pg-store.js';
import type { VendorApiClient } from '../src/adapters/vendor-api.js';
import type * as schema from '../src/db/schema.js';
import { openRcuDatabase } from '../src/main.js';
import { createScheduler, slotOf, type Scheduler } from '../src/scheduler.js';
import {
  captureLogger,
  fastSettings,
  roundDeps,
  tempDir,
  vendorFor,
  type CapturingLogger,
} from './helpers.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

const database = useTestDatabase();
let sim: VendorSimulator;
let vendor: VendorApiClient;
const handles: DatabaseHandle<typeof schema>[] = [];
const spool = tempDir('rcu-sched-');

beforeAll(async () => {
  sim = await startVendorSimulator({ hostDurationMs: 150, startSpreadMs: 20 });
  vendor = vendorFor(sim);
});
afterAll(async () => {
  await Promise.all(handles.map((h) => h.close()));
  await vendor.close();
  await sim.close();
  spool.remove();
});

/** One "instance": its own pool, store, lock and scheduler over the shared database. */
async function instance(
  options: { intervalMs?: number; url?: string; logger?: CapturingLogger } = {},
): Promise<Scheduler> {
  const db = await openRcuDatabase({
    DATABASE_URL: options.url ?? database.url,
    DATA_DIR: spool.path,
    MIGRATE_ON_START: true,
  });
  handles.push(db);
  const store = createPgStore(db.db);
  return createScheduler(
    {
      ...roundDeps(vendor, store, spool.path, { logger: options.logger }),
      lock: { tryAcquire: () => tryAdvisoryLock(db, 'rcu-scheduler:rounds') },
    },
    fastSettings(),
    { intervalMs: options.intervalMs ?? 60_000, roundOnStart: false },
  );
}

describe('scheduler', () => {
  it('does not double a round when the next tick comes while it runs', async () => {
    const logger = captureLogger();
    const a = await instance({ logger });
    const slot = slotOf(Date.now(), 60_000);
    const first = a.tick(slot);
    await waitFor(() => a.running !== null);
    expect(await a.tick(slot + 60_000)).toBe('busy');
    expect(await first).toBe('ran');
    expect(logger.lines.filter((l) => l.msg === 'tick skipped')).toEqual([
      {
        level: 'warn',
        msg: 'tick skipped',
        obj: expect.objectContaining({
          slot: new Date(slot + 60_000).toISOString(),
          reason: 'busy',
          detail: 'the previous round is still running',
        }) as unknown,
      },
    ]);
  });

  it('logs a tick skipped while the database is down, with the reason, and runs the next one', async () => {
    const server = new URL(database.url);
    const proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    try {
      const logger = captureLogger();
      const a = await instance({ url: proxy.via(database.url), logger });
      const slot = slotOf(Date.now(), 60_000) + 20 * 60_000;
      proxy.cut();
      expect(await a.tick(slot)).toBe('database-unavailable');
      const line = logger.lines.find((l) => l.msg === 'tick skipped');
      expect(line).toMatchObject({
        level: 'warn',
        obj: { reason: 'database-unavailable', slot: new Date(slot).toISOString() },
      });
      expect((line?.obj as { error: string }).error).toMatch(/^UNAVAILABLE: database unavailable: /);
      expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
      proxy.restore();
      expect(await a.tick(slot + 60_000)).toBe('ran');
    } finally {
      await proxy.close();
    }
  });

  it('logs an idle database connection the server dropped, and the process lives on', async () => {
    const server = new URL(database.url);
    const proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
    const db = await openRcuDatabase(
      { DATABASE_URL: proxy.via(database.url), DATA_DIR: spool.path, MIGRATE_ON_START: false },
      { logger: { warn: (obj, msg) => warnings.push({ obj, msg }) } },
    );
    try {
      proxy.cut(); // the pool's idle connection from the start-up check is reset
      await waitFor(() => warnings.length > 0);
      expect(warnings[0]?.msg).toBe('idle database connection failed');
    } finally {
      await db.close();
      await proxy.close();
    }
  });

  it('lets exactly one of two instances run a slot, even when they tick one after the other', async () => {
    const [a, b] = [await instance(), await instance()];
    const slot = slotOf(Date.now(), 60_000) + 10 * 60_000;
    const results = await Promise.all([a.tick(slot), b.tick(slot)]);
    expect(results.filter((r) => r === 'ran')).toHaveLength(1);
    expect(results.filter((r) => r === 'locked' || r === 'slot-taken')).toHaveLength(1);
    // The loser tries again after the winner released the lock: the slot is taken.
    expect(await b.tick(slot)).toBe('slot-taken');
    expect(await a.tick(slot)).toBe('slot-taken');
  });

  it('refuses a manual round with CONFLICT while another instance holds the round lock', async () => {
    const [a, b] = [await instance(), await instance()];
    const started = await a.startManualRound();
    const refusal = await b.startManualRound().catch((e: unknown) => e);
    expect(isUpgradeError(refusal, 'CONFLICT')).toBe(true);
    expect((refusal as Error).message).toBe(
      'another instance is running a round; try again when it has finished',
    );
    const local = await a.startManualRound().catch((e: unknown) => e);
    expect(isUpgradeError(local, 'CONFLICT')).toBe(true);
    expect((local as Error).message).toContain(started.roundId);
    expect((await started.done)?.summary.completed).toBe(6);
  });

  it('stop waits for a running round even after a later tick found it busy', async () => {
    const a = await instance();
    const slot = slotOf(Date.now(), 60_000);
    let firstEnded = false;
    const first = a.tick(slot).finally(() => (firstEnded = true));
    await waitFor(() => a.running !== null);
    expect(await a.tick(slot + 60_000)).toBe('busy');
    await a.stop();
    expect(firstEnded).toBe(true);
    expect(a.running).toBeNull();
    expect(await first).not.toBe('busy');
  });

  it('ticks at slot boundaries once started, and stops cleanly', async () => {
    const a = await instance({ intervalMs: 300 });
    a.start();
    await waitFor(() => a.nextTickAt !== null);
    const first = a.nextTickAt?.getTime() ?? 0;
    expect(first % 300).toBe(0);
    await waitFor(() => a.running !== null, { timeoutMs: 2_000 });
    await a.stop();
    expect(a.running).toBeNull();
    expect(a.nextTickAt).toBeNull();
  });
});
