// The console's aggregations (trends per round and per day, failing hosts ranked) on PostgreSQL and
// PGlite: the same seeded history must give the same figures on both.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { rejectionOf, useTestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgStore } from '../src/adapters/pg-store.js';
import { createPgTrends } from '../src/adapters/pg-trends.js';
import * as schema from '../src/db/schema.js';
import type { FinalHostStatus, TrendQueries } from '../src/ports.js';

const MIGRATIONS = fileURLToPath(new URL('../drizzle', import.meta.url));
const testDb = useTestDatabase();

const T0 = Date.parse('2030-03-01T08:00:00.000Z');
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

type Result = [host: string, roomTypeId: number, status: FinalHostStatus, durationMs: number];

/** Three finished rounds over two days (A, A, B) and one still running, which no trend counts. */
const HISTORY: { at: number; filename: string; results: Result[] }[] = [
  {
    at: T0,
    filename: 'RCU_A.bin',
    results: [
      ['h1', 10, 'completed', 60_000],
      ['h2', 10, 'failed', 5_000],
      ['h3', 20, 'completed', 120_000],
    ],
  },
  {
    at: T0 + 10 * MIN,
    filename: 'RCU_A.bin',
    results: [
      ['h1', 10, 'completed', 30_000],
      ['h2', 10, 'timeout', 300_000],
      ['h3', 20, 'completed', 90_000],
    ],
  },
  {
    at: T0 + DAY,
    filename: 'RCU_B.bin',
    results: [
      ['h1', 10, 'completed', 60_000],
      ['h2', 10, 'failed', 7_000],
      ['h3', 20, 'failed', 8_000],
    ],
  },
];

async function seed(handle: DatabaseHandle<typeof schema>): Promise<string[]> {
  await migrate(handle, MIGRATIONS);
  const store = createPgStore(handle.db);
  const ids: string[] = [];
  for (const round of [...HISTORY, { at: T0 + DAY + 5 * MIN, filename: 'RCU_B.bin', results: [] }]) {
    const id = randomUUID();
    ids.push(id);
    await store.startRound({
      id,
      slot: null,
      trigger: 'schedule',
      filename: round.filename,
      fileType: 1,
      rotationAfter: { index: 0, used: 1 },
      status: 'running',
      startedAt: new Date(round.at),
      finishedAt: null,
      groups: [
        { roomTypeId: 10, hosts: ['h1', 'h2'], uuid: 'u10', triggerError: null },
        { roomTypeId: 20, hosts: ['h3'], uuid: 'u20', triggerError: null },
      ],
    });
    if (round.results.length === 0) continue; // left running
    await store.finishRound(
      id,
      round.results.map(([host, roomTypeId, status, durationMs]) => ({
        roundId: id,
        uuid: `u${roomTypeId}`,
        roomTypeId,
        host,
        filename: round.filename,
        fileType: 1,
        status,
        startTime: new Date(round.at),
        endTime: new Date(round.at + durationMs),
        configVersion: null,
        firmwareVersion: null,
        detail: status === 'completed' ? null : `${host} ${status} at ${new Date(round.at).toISOString()}`,
      })),
      new Date(round.at + 5 * MIN),
    );
  }
  return ids;
}

function describeTrends(name: string, open: () => Promise<DatabaseHandle<typeof schema>>): void {
  describe(`console trends on ${name}`, () => {
    let handle: DatabaseHandle<typeof schema> | undefined;
    let trends: TrendQueries;
    let rounds: string[] = [];

    beforeAll(async () => {
      handle = await open();
      rounds = await seed(handle);
      trends = createPgTrends(handle.db);
    }, 60_000);
    afterAll(async () => {
      await handle?.close();
    });

    it('gives one point per finished round, oldest first, with success rate and duration percentiles', async () => {
      const t = await trends.trends({ bucket: 'round', limit: 10, now: new Date(T0 + 2 * DAY) });
      expect(t.bucket).toBe('round');
      expect(t.overall.map((p) => [p.at.getTime(), p.roundId, p.attempts, p.completed])).toEqual([
        [T0, rounds[0], 3, 2],
        [T0 + 10 * MIN, rounds[1], 3, 2],
        [T0 + DAY, rounds[2], 3, 1],
      ]);
      // Completed durations of the first round: 60 s and 120 s, interpolated like percentile_cont.
      expect(t.overall[0]).toMatchObject({
        successRate: 2 / 3,
        p50DurationMs: 90_000,
        p90DurationMs: 114_000,
        p99DurationMs: 119_400,
      });
      expect(t.overall[2]).toMatchObject({ p50DurationMs: 60_000, p99DurationMs: 60_000 });
      expect(t.byFirmware.map((s) => [s.at.getTime(), s.key, s.attempts, s.completed])).toEqual([
        [T0, 'RCU_A.bin', 3, 2],
        [T0 + 10 * MIN, 'RCU_A.bin', 3, 2],
        [T0 + DAY, 'RCU_B.bin', 3, 1],
      ]);
      expect(t.byRoomType.map((s) => [s.at.getTime(), s.key, s.attempts, s.completed])).toEqual([
        [T0, '10', 2, 1],
        [T0, '20', 1, 1],
        [T0 + 10 * MIN, '10', 2, 1],
        [T0 + 10 * MIN, '20', 1, 1],
        [T0 + DAY, '10', 2, 1],
        [T0 + DAY, '20', 1, 0],
      ]);
    });

    it('keeps only the newest rounds up to the limit', async () => {
      const t = await trends.trends({ bucket: 'round', limit: 2, now: new Date(T0 + 2 * DAY) });
      expect(t.overall.map((p) => p.roundId)).toEqual([rounds[1], rounds[2]]);
      expect(t.byRoomType).toHaveLength(4);
    });

    it('gives one point per UTC day over the last days', async () => {
      const now = new Date(T0 + DAY + 60 * MIN);
      const day0 = Date.parse('2030-03-01T00:00:00.000Z');
      const two = await trends.trends({ bucket: 'day', limit: 2, now });
      expect(two.overall.map((p) => [p.at.getTime(), p.roundId, p.attempts, p.completed])).toEqual([
        [day0, null, 6, 4],
        [day0 + DAY, null, 3, 1],
      ]);
      // Completed durations of the first day: 30, 60, 90, 120 s.
      expect(two.overall[0]).toMatchObject({ p50DurationMs: 75_000, p90DurationMs: 111_000 });
      expect(two.byFirmware.map((s) => [s.key, s.attempts])).toEqual([
        ['RCU_A.bin', 6],
        ['RCU_B.bin', 3],
      ]);
      const one = await trends.trends({ bucket: 'day', limit: 1, now });
      expect(one.overall.map((p) => p.at.getTime())).toEqual([day0 + DAY]);
    });

    it('ranks failing hosts by failures, then failure rate, with their latest failure', async () => {
      const hosts = await trends.failingHosts({ since: new Date(T0 - DAY), limit: 10 });
      expect(hosts.map((h) => [h.host, h.roomTypeId, h.attempts, h.failed, h.timeout])).toEqual([
        ['h2', 10, 3, 2, 1],
        ['h3', 20, 3, 1, 0],
      ]);
      expect(hosts[0]).toMatchObject({
        failureRate: 1,
        lastDetail: `h2 failed at ${new Date(T0 + DAY).toISOString()}`,
      });
      expect(hosts[0]?.lastFailureAt.getTime()).toBe(T0 + DAY + 7_000);
      expect(hosts[1]?.failureRate).toBeCloseTo(1 / 3);
      expect(await trends.failingHosts({ since: new Date(T0 - DAY), limit: 1 })).toHaveLength(1);
      expect(await trends.failingHosts({ since: new Date(T0 + 2 * DAY), limit: 10 })).toEqual([]);
    });

    it('refuses limits out of range with VALIDATION_FAILED', async () => {
      for (const attempt of [
        trends.trends({ bucket: 'round', limit: 0, now: new Date() }),
        trends.trends({ bucket: 'day', limit: 400, now: new Date() }),
        trends.failingHosts({ since: new Date(), limit: 101 }),
      ]) {
        expect(await rejectionOf(attempt)).toMatchObject({ code: 'VALIDATION_FAILED' });
      }
    });
  });
}

describeTrends('PostgreSQL', () => openDatabase({ url: testDb.url, schema }));

let pgliteRoot: string | undefined;
afterAll(async () => {
  if (pgliteRoot !== undefined) await rm(pgliteRoot, { recursive: true, force: true });
});
describeTrends('PGlite', async () => {
  pgliteRoot = await mkdtemp(join(tmpdir(), 'rcu-trends-'));
  return openDatabase({ dataDir: join(pgliteRoot, 'data'), schema });
});
