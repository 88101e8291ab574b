// The RoundStore + RoundQueries contract, run against the memory fake, PostgreSQL and PGlite:
// what the domain's unit tests rely on is what production does.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { migrate, migrationStatus, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { createTestDatabase, rejectionOf, useTestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPgStore } from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import type {
  FinalHostStatus,
  RoundGroup,
  RoundQueries,
  RoundRecord,
  RoundStore,
  UpgradeLogEntry,
} from '../src/ports.js';
import { createMemoryRoundStore } from './fakes/memory-store.js';

const MIGRATIONS = fileURLToPath(new URL('../drizzle', import.meta.url));

type Store = RoundStore & RoundQueries;

/** One implementation under test: `fresh` hands an empty store, `close` ends the suite. */
interface StoreTarget {
  fresh(): Promise<Store>;
  close(): Promise<void>;
}

const testDb = useTestDatabase();

/** The tables emptied between tests on a real database, children first. */
const TRUNCATE = 'TRUNCATE upgrade_log, upgrade_round_group, upgrade_round, upgrade_state';

async function databaseTarget(handle: DatabaseHandle<typeof schema>): Promise<StoreTarget> {
  await migrate(handle, MIGRATIONS);
  const store = createPgStore(handle.db);
  return {
    fresh: async () => {
      await handle.execute(TRUNCATE);
      return store;
    },
    close: () => handle.close(),
  };
}

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (minutes: number, ms = 0): Date => new Date(T0 + minutes * 60_000 + ms);

function group(roomTypeId: number, hosts: string[], over: Partial<RoundGroup> = {}): RoundGroup {
  return { roomTypeId, hosts, uuid: null, triggerError: null, ...over };
}

function roundRecord(over: Partial<RoundRecord> = {}): RoundRecord {
  return {
    id: randomUUID(),
    slot: null,
    trigger: 'manual',
    filename: 'RCU_A.bin',
    fileType: 1,
    rotationAfter: { index: 0, used: 1 },
    status: 'running',
    startedAt: at(0),
    finishedAt: null,
    groups: [group(10, ['10.0.0.1', '10.0.0.2']), group(20, ['10.0.1.1'])],
    ...over,
  };
}

function entry(
  round: Pick<RoundRecord, 'id' | 'filename' | 'fileType'>,
  host: string,
  status: FinalHostStatus,
  over: Partial<UpgradeLogEntry> = {},
): UpgradeLogEntry {
  return {
    roundId: round.id,
    uuid: 'vendor-uuid',
    roomTypeId: 10,
    host,
    filename: round.filename,
    fileType: round.fileType,
    status,
    startTime: at(1),
    endTime: at(2),
    configVersion: status === 'completed' ? 'cfg-7' : null,
    firmwareVersion: status === 'completed' ? '2.3.1' : null,
    detail: status === 'completed' ? null : `host ${status}`,
    ...over,
  };
}

function describeStoreContract(name: string, open: () => Promise<StoreTarget>): void {
  describe(`round store contract on ${name}`, () => {
    let target: StoreTarget | undefined;
    let store: Store;

    beforeAll(async () => {
      target = await open();
    }, 60_000);
    afterAll(async () => {
      await target?.close();
    });
    beforeEach(async () => {
      if (target === undefined) throw new Error('store target did not open');
      store = await target.fresh();
    });

    describe('rounds in flight', () => {
      it('has no rotation and no unfinished round before the first round', async () => {
        expect(await store.loadRotation()).toBeNull();
        expect(await store.unfinishedRounds()).toEqual([]);
      });

      it('gives back a started round, groups and all, as unfinished', async () => {
        const round = roundRecord({ slot: at(10).getTime(), trigger: 'schedule', startedAt: at(10, 250) });
        await store.startRound(round);
        expect(await store.unfinishedRounds()).toEqual([round]);
      });

      it('lists unfinished rounds oldest first, groups by room type', async () => {
        const later = roundRecord({ startedAt: at(5), groups: [group(30, ['c']), group(7, ['a', 'b'])] });
        const earlier = roundRecord({ startedAt: at(1), groups: [] });
        await store.startRound(later);
        await store.startRound(earlier);
        const rounds = await store.unfinishedRounds();
        expect(rounds.map((r) => r.id)).toEqual([earlier.id, later.id]);
        expect(rounds[1]?.groups.map((g) => g.roomTypeId)).toEqual([7, 30]);
        expect(rounds[0]?.groups).toEqual([]);
      });

      it('records trigger outcomes per group', async () => {
        const round = roundRecord();
        await store.startRound(round);
        await store.recordTrigger(round.id, 10, { uuid: 'u-10' });
        await store.recordTrigger(round.id, 20, { error: 'VENDOR_CONTRACT_VIOLATION: no uuid in answer' });
        const [recorded] = await store.unfinishedRounds();
        expect(recorded?.groups).toEqual([
          group(10, ['10.0.0.1', '10.0.0.2'], { uuid: 'u-10' }),
          group(20, ['10.0.1.1'], { triggerError: 'VENDOR_CONTRACT_VIOLATION: no uuid in answer' }),
        ]);
        // A retried trigger that now succeeded replaces the error.
        await store.recordTrigger(round.id, 20, { uuid: 'u-20' });
        const [again] = await store.unfinishedRounds();
        expect(again?.groups[1]).toEqual(group(20, ['10.0.1.1'], { uuid: 'u-20' }));
      });

      it('refuses a trigger outcome for a group or round it never recorded with NOT_FOUND', async () => {
        const round = roundRecord();
        await store.startRound(round);
        for (const [roundId, roomTypeId] of [
          [round.id, 99],
          [randomUUID(), 10],
          ['not-a-uuid', 10],
        ] as const) {
          const error = await rejectionOf(store.recordTrigger(roundId, roomTypeId, { uuid: 'x' }));
          expect(error.code).toBe('NOT_FOUND');
          expect(error.status).toBe(404);
        }
      });

      it('gives a second round of the same slot CONFLICT (409) and records nothing of it', async () => {
        const slot = at(20).getTime();
        const first = roundRecord({ slot, trigger: 'schedule' });
        await store.startRound(first);
        const error = await rejectionOf(
          store.startRound(roundRecord({ slot, trigger: 'schedule', groups: [group(99, ['x'])] })),
        );
        expect(error.code).toBe('CONFLICT');
        expect(error.status).toBe(409);
        expect(error.details).toMatchObject({ constraint: 'upgrade_round_slot_unique', sqlState: '23505' });
        expect((await store.unfinishedRounds()).map((r) => r.id)).toEqual([first.id]);
        expect((await store.listRounds({ page: 1, pageSize: 10 })).total).toBe(1);
      });

      it('lets any number of rounds without a slot run', async () => {
        await store.startRound(roundRecord({ startedAt: at(1) }));
        await store.startRound(roundRecord({ startedAt: at(2), trigger: 'recovery' }));
        expect(await store.unfinishedRounds()).toHaveLength(2);
      });

      it('refuses a round id that is not a uuid and a round recorded twice', async () => {
        expect((await rejectionOf(store.startRound(roundRecord({ id: 'round-1' })))).code).toBe(
          'VALIDATION_FAILED',
        );
        const round = roundRecord();
        await store.startRound(round);
        const twice = await rejectionOf(store.startRound(round));
        expect(twice.code).toBe('CONFLICT');
        expect(twice.details).toMatchObject({ constraint: 'upgrade_round_pkey' });
      });
    });

    describe('finishing a round', () => {
      it('writes the log rows, marks the round finished and persists its rotation', async () => {
        const round = roundRecord({ rotationAfter: { index: 1, used: 0 } });
        await store.startRound(round);
        const entries = [
          entry(round, '10.0.0.1', 'completed'),
          entry(round, '10.0.0.2', 'failed'),
          entry(round, '10.0.1.1', 'timeout', { roomTypeId: 20, uuid: null }),
        ];
        await store.finishRound(round.id, entries, at(7));

        expect(await store.loadRotation()).toEqual({ index: 1, used: 0 });
        expect(await store.unfinishedRounds()).toEqual([]);
        const detail = await store.getRound(round.id);
        expect(detail).toMatchObject({
          status: 'finished',
          finishedAt: at(7),
          summary: { total: 3, completed: 1, failed: 1, timeout: 1 },
        });
        expect(detail?.results).toEqual(entries);
      });

      it('is idempotent: a repeated finish neither doubles rows nor moves the rotation again', async () => {
        const first = roundRecord({ startedAt: at(0), rotationAfter: { index: 0, used: 1 } });
        const second = roundRecord({ startedAt: at(10), rotationAfter: { index: 0, used: 2 } });
        const entries = [entry(first, 'h1', 'completed'), entry(first, 'h2', 'completed')];
        await store.startRound(first);
        await store.finishRound(first.id, entries, at(5));
        await store.startRound(second);
        await store.finishRound(second.id, [entry(second, 'h1', 'completed')], at(15));

        // A late retry of the first finish, e.g. after a commit whose answer was lost.
        await store.finishRound(first.id, entries, at(30));

        expect(await store.loadRotation()).toEqual({ index: 0, used: 2 });
        const detail = await store.getRound(first.id);
        expect(detail?.summary.total).toBe(2);
        expect(detail?.finishedAt).toEqual(at(5));
      });

      it('lands only the missing rows when a retry carries more than the first finish', async () => {
        const round = roundRecord();
        await store.startRound(round);
        const h1 = entry(round, 'h1', 'completed');
        await store.finishRound(round.id, [h1], at(5));
        await store.finishRound(
          round.id,
          [{ ...h1, status: 'failed' }, entry(round, 'h2', 'timeout')],
          at(6),
        );
        await store.finishRound(
          round.id,
          [entry(round, 'h3', 'completed'), entry(round, 'h3', 'failed')],
          at(7),
        );
        const detail = await store.getRound(round.id);
        // The first row of a host wins: results are never rewritten, also within one call.
        expect(detail?.results.map((r) => [r.host, r.status])).toEqual([
          ['h1', 'completed'],
          ['h2', 'timeout'],
          ['h3', 'completed'],
        ]);
      });

      it('keeps one set of rows and one rotation step under concurrent finishes', async () => {
        const round = roundRecord({ rotationAfter: { index: 1, used: 1 } });
        await store.startRound(round);
        const entries = Array.from({ length: 50 }, (_, i) => entry(round, `h${i}`, 'completed'));
        await Promise.all([1, 2, 3].map((n) => store.finishRound(round.id, entries, at(5 + n))));
        const detail = await store.getRound(round.id);
        expect(detail?.summary.total).toBe(50);
        expect(await store.loadRotation()).toEqual({ index: 1, used: 1 });
      });

      it('writes a round of thousands of hosts, more than one INSERT batch', async () => {
        const hosts = Array.from({ length: 2500 }, (_, i) => `10.${Math.floor(i / 250)}.${i % 250}.1`);
        const round = roundRecord({ groups: [group(1, hosts)] });
        await store.startRound(round);
        const statuses: FinalHostStatus[] = ['completed', 'completed', 'failed', 'timeout'];
        const entries = hosts.map((h, i) =>
          entry(round, h, statuses[i % statuses.length] ?? 'completed', { roomTypeId: 1 }),
        );
        await store.finishRound(round.id, entries, at(9));
        expect((await store.getRound(round.id))?.summary).toEqual({
          total: 2500,
          completed: 1250,
          failed: 625,
          timeout: 625,
        });
      });

      it('stores text exactly: quotes, backslashes, braces, unicode, the word NULL and nulls', async () => {
        const odd = ['a"b', 'c\\d', '{e,f}', 'NULL', 'ホスト-1', "it's", 'line\nbreak', ' padded '];
        const round = roundRecord({ groups: [group(10, odd)] });
        await store.startRound(round);
        const entries = odd.map((host, i) =>
          entry(round, host, i % 2 === 0 ? 'completed' : 'failed', {
            detail: i % 2 === 0 ? null : `vendor said: ${host}`,
            configVersion: host,
            uuid: i === 3 ? null : `u-${host}`,
            startTime: at(1, 1),
            endTime: at(1, 999),
          }),
        );
        await store.finishRound(round.id, entries, at(2));
        const detail = await store.getRound(round.id);
        const byHost = (list: UpgradeLogEntry[]) => [...list].sort((a, b) => (a.host < b.host ? -1 : 1));
        expect(byHost(detail?.results ?? [])).toEqual(byHost(entries));
        expect((await store.listRounds({ page: 1, pageSize: 1 })).items[0]?.groups[0]?.hosts).toBe(
          odd.length,
        );
      });

      it('accepts a round finished with no results (every trigger failed before logging)', async () => {
        const round = roundRecord({ rotationAfter: { index: 1, used: 2 } });
        await store.startRound(round);
        await store.finishRound(round.id, [], at(3));
        expect(await store.loadRotation()).toEqual({ index: 1, used: 2 });
        expect((await store.getRound(round.id))?.status).toBe('finished');
      });

      it('refuses an unknown round with NOT_FOUND and results of another round with VALIDATION_FAILED', async () => {
        const round = roundRecord();
        await store.startRound(round);
        const unknown = randomUUID();
        expect((await rejectionOf(store.finishRound(unknown, [], at(1)))).code).toBe('NOT_FOUND');
        expect((await rejectionOf(store.finishRound('nope', [], at(1)))).code).toBe('NOT_FOUND');
        const stray = await rejectionOf(
          store.finishRound(round.id, [entry({ ...round, id: unknown }, 'h1', 'completed')], at(1)),
        );
        expect(stray.code).toBe('VALIDATION_FAILED');
        // Nothing of the refused calls was written.
        expect(await store.unfinishedRounds()).toHaveLength(1);
        expect(await store.loadRotation()).toBeNull();
      });
    });

    describe('queries', () => {
      /** Five rounds a minute apart (r0 oldest); r1 and r3 finished with results. */
      async function fiveRounds(): Promise<RoundRecord[]> {
        const rounds = Array.from({ length: 5 }, (_, i) =>
          roundRecord({
            startedAt: at(i),
            filename: i % 2 === 0 ? 'RCU_A.bin' : 'RCU_B.bin',
            groups: [group(10, ['h1', 'h2']), group(20, ['h3'], { uuid: `vendor-${i}` })],
          }),
        );
        for (const r of rounds) await store.startRound(r);
        for (const i of [1, 3]) {
          const r = rounds[i] as RoundRecord;
          await store.finishRound(
            r.id,
            [
              entry(r, 'h1', 'completed'),
              entry(r, 'h2', i === 1 ? 'failed' : 'completed'),
              entry(r, 'h3', 'timeout', { roomTypeId: 20 }),
            ],
            at(i, 30_000),
          );
        }
        return rounds;
      }

      it('pages rounds newest first with the total and per-round summaries', async () => {
        const rounds = await fiveRounds();
        const ids = (items: { id: string }[]) => items.map((r) => r.id);
        const idOf = (i: number) => (rounds[i] as RoundRecord).id;

        const page1 = await store.listRounds({ page: 1, pageSize: 2 });
        expect(page1.total).toBe(5);
        expect(ids(page1.items)).toEqual([idOf(4), idOf(3)]);
        expect(page1.items[1]).toEqual({
          id: idOf(3),
          trigger: 'manual',
          status: 'finished',
          filename: 'RCU_B.bin',
          fileType: 1,
          startedAt: at(3),
          finishedAt: at(3, 30_000),
          groups: [
            { roomTypeId: 10, uuid: null, hosts: 2, triggerError: null },
            { roomTypeId: 20, uuid: 'vendor-3', hosts: 1, triggerError: null },
          ],
          summary: { total: 3, completed: 2, failed: 0, timeout: 1 },
        });
        expect(page1.items[0]?.summary).toEqual({ total: 0, completed: 0, failed: 0, timeout: 0 });

        const page2 = await store.listRounds({ page: 2, pageSize: 2 });
        expect(ids(page2.items)).toEqual([idOf(2), idOf(1)]);
        expect(page2.items[1]?.summary).toEqual({ total: 3, completed: 1, failed: 1, timeout: 1 });
        expect(ids((await store.listRounds({ page: 3, pageSize: 2 })).items)).toEqual([idOf(0)]);
        expect(await store.listRounds({ page: 4, pageSize: 2 })).toEqual({ items: [], total: 5 });
      });

      it('lists nothing on an empty store and refuses pages below 1', async () => {
        expect(await store.listRounds({ page: 1, pageSize: 20 })).toEqual({ items: [], total: 0 });
        expect((await rejectionOf(store.listRounds({ page: 0, pageSize: 20 }))).code).toBe(
          'VALIDATION_FAILED',
        );
        expect((await rejectionOf(store.listRounds({ page: 1, pageSize: 0 }))).code).toBe(
          'VALIDATION_FAILED',
        );
      });

      it('orders rounds started at the same instant by id, the same way every time', async () => {
        const same = [roundRecord(), roundRecord(), roundRecord()];
        for (const r of same) await store.startRound(r);
        const listed = (await store.listRounds({ page: 1, pageSize: 10 })).items.map((r) => r.id);
        expect(listed).toEqual(
          same
            .map((r) => r.id)
            .sort()
            .reverse(),
        );
      });

      it('finds a round by its id and by a vendor uuid of one of its groups', async () => {
        const rounds = await fiveRounds();
        const r3 = rounds[3] as RoundRecord;
        const byId = await store.getRound(r3.id);
        expect(byId?.id).toBe(r3.id);
        expect(byId?.results.map((r) => r.host)).toEqual(['h1', 'h2', 'h3']);
        expect(await store.getRound('vendor-3')).toEqual(byId);
        expect((await store.getRound(r3.id.toUpperCase()))?.id).toBe(r3.id);
      });

      it('finds a round by a vendor uuid that is itself a uuid', async () => {
        const vendorUuid = randomUUID();
        const round = roundRecord({ groups: [group(10, ['h1'], { uuid: vendorUuid })] });
        await store.startRound(round);
        expect((await store.getRound(vendorUuid))?.id).toBe(round.id);
      });

      it('answers null for an unknown id, an unknown vendor uuid and text that is no uuid', async () => {
        await fiveRounds();
        for (const key of [randomUUID(), 'vendor-9', "'; drop table upgrade_log; --", '', 'ü'])
          expect(await store.getRound(key)).toBeNull();
      });

      it('orders results by room type, then host by code point whatever the collation', async () => {
        const round = roundRecord({ groups: [group(2, ['b', 'B', '10.0.0.10']), group(1, ['z', 'a'])] });
        await store.startRound(round);
        const hosts: [number, string][] = [
          [2, 'b'],
          [1, 'z'],
          [2, '10.0.0.10'],
          [2, 'B'],
          [1, 'a'],
        ];
        await store.finishRound(
          round.id,
          hosts.map(([roomTypeId, host]) => entry(round, host, 'completed', { roomTypeId })),
          at(3),
        );
        const results = (await store.getRound(round.id))?.results ?? [];
        expect(results.map((r) => [r.roomTypeId, r.host])).toEqual([
          [1, 'a'],
          [1, 'z'],
          [2, '10.0.0.10'],
          [2, 'B'],
          [2, 'b'],
        ]);
      });

      it('computes attempts, outcomes, success rate and p50/p95 durations per firmware and host', async () => {
        const a = roundRecord({ filename: 'RCU_A.bin', startedAt: at(0) });
        const b = roundRecord({ filename: 'RCU_B.bin', startedAt: at(60) });
        const old = roundRecord({ filename: 'RCU_OLD.bin', startedAt: at(-600) });
        for (const r of [a, b, old]) await store.startRound(r);
        const run = (r: RoundRecord, host: string, status: FinalHostStatus, startMin: number, ms: number) =>
          entry(r, host, status, { startTime: at(startMin), endTime: at(startMin, ms) });
        await store.finishRound(
          a.id,
          [
            run(a, 'h1', 'completed', 1, 1000),
            run(a, 'h2', 'completed', 1, 2000),
            run(a, 'h3', 'completed', 1, 3000),
            run(a, 'h4', 'completed', 1, 4000),
            run(a, 'h5', 'failed', 1, 300_000),
            run(a, 'h6', 'timeout', 1, 300_000),
          ],
          at(10),
        );
        await store.finishRound(
          b.id,
          [run(b, 'h1', 'completed', 61, 500), run(b, 'h2', 'failed', 61, 700)],
          at(70),
        );
        // Before the window: must not count.
        await store.finishRound(old.id, [run(old, 'h1', 'completed', -599, 99_000)], at(-590));

        const since = at(0);
        const stats = await store.stats(since);
        expect(stats.since).toEqual(since);
        expect(stats.byFirmware).toEqual([
          {
            key: 'RCU_A.bin',
            attempts: 6,
            completed: 4,
            failed: 1,
            timeout: 1,
            successRate: 4 / 6,
            p50DurationMs: 2500,
            p95DurationMs: 3850,
          },
          {
            key: 'RCU_B.bin',
            attempts: 2,
            completed: 1,
            failed: 1,
            timeout: 0,
            successRate: 0.5,
            p50DurationMs: 500,
            p95DurationMs: 500,
          },
        ]);
        expect(stats.byHost.map((r) => r.key)).toEqual(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
        expect(stats.byHost[0]).toEqual({
          key: 'h1',
          attempts: 2,
          completed: 2,
          failed: 0,
          timeout: 0,
          successRate: 1,
          p50DurationMs: 750,
          p95DurationMs: 975,
        });
        expect(stats.byHost[1]).toMatchObject({ key: 'h2', attempts: 2, completed: 1, successRate: 0.5 });
        expect(stats.byHost[4]).toMatchObject({
          key: 'h5',
          attempts: 1,
          completed: 0,
          successRate: 0,
          p50DurationMs: null,
          p95DurationMs: null,
        });
      });

      it('has empty stats for a window without results and refuses an invalid date', async () => {
        await fiveRounds();
        expect(await store.stats(at(1000))).toEqual({ since: at(1000), byFirmware: [], byHost: [] });
        expect((await rejectionOf(store.stats(new Date('yesterday')))).code).toBe('VALIDATION_FAILED');
      });
    });
  });
}

describeStoreContract('the memory fake', () =>
  Promise.resolve({
    fresh: () => Promise.resolve(createMemoryRoundStore()),
    close: () => Promise.resolve(),
  }),
);

describeStoreContract('PostgreSQL', async () =>
  databaseTarget(await openDatabase({ url: testDb.url, schema })),
);

let pgliteRoot: string | undefined;
afterAll(async () => {
  if (pgliteRoot !== undefined) await rm(pgliteRoot, { recursive: true, force: true });
});

// One PGlite for the whole file: each instance costs ~2 s and ~800 MB.
describeStoreContract('PGlite', async () => {
  pgliteRoot = await mkdtemp(join(tmpdir(), 'rcu-store-'));
  return databaseTarget(await openDatabase({ dataDir: join(pgliteRoot, 'data'), schema }));
});

/** A database of its own for a PostgreSQL-only test, dropped afterwards. */
async function withOwnDatabase(
  hint: string,
  fn: (handle: DatabaseHandle<typeof schema>) => Promise<void>,
): Promise<void> {
  const database = await createTestDatabase({ hint });
  const handle = await openDatabase({ url: database.url, schema });
  try {
    await fn(handle);
  } finally {
    await handle.close();
    await database.drop();
  }
}

describe('PostgreSQL only', () => {
  it('shows the init migration pending, applies it, then shows it applied', () =>
    withOwnDatabase('rcu_migrations', async (handle) => {
      const before = await migrationStatus(handle, MIGRATIONS);
      expect(before.applied).toEqual([]);
      expect(before.pending.map((m) => m.tag)).toEqual(['0000_init']);

      expect((await migrate(handle, MIGRATIONS)).map((m) => m.tag)).toEqual(['0000_init']);
      const after = await migrationStatus(handle, MIGRATIONS);
      expect(after.applied.map((m) => m.tag)).toEqual(['0000_init']);
      expect(after.pending).toEqual([]);
      expect(await migrate(handle, MIGRATIONS)).toEqual([]);

      const tables = await handle.execute<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
      );
      expect(tables.map((t) => t.name)).toEqual([
        'upgrade_log',
        'upgrade_round',
        'upgrade_round_group',
        'upgrade_state',
      ]);
    }));

  // The test server sorts by code point (C.UTF-8), which would hide a missing `collate "C"`;
  // production servers are often en_US or a Windows locale, where 'a' sorts before 'B'.
  it('sorts hosts and filenames by code point on a server with a linguistic collation', () =>
    withOwnDatabase('rcu_collation', async (handle) => {
      await migrate(handle, MIGRATIONS);
      await handle.execute(
        'ALTER TABLE upgrade_log ALTER COLUMN host_str TYPE text COLLATE "en-x-icu", ALTER COLUMN filename TYPE text COLLATE "en-x-icu"',
      );
      const store = createPgStore(handle.db);
      const round = roundRecord({ groups: [group(1, ['b', 'B', 'a'])] });
      await store.startRound(round);
      await store.finishRound(
        round.id,
        ['b', 'B', 'a'].map((host) =>
          entry(round, host, 'completed', { roomTypeId: 1, filename: `f-${host}` }),
        ),
        at(3),
      );
      expect((await store.getRound(round.id))?.results.map((r) => r.host)).toEqual(['B', 'a', 'b']);
      const stats = await store.stats(at(0));
      expect(stats.byHost.map((r) => r.key)).toEqual(['B', 'a', 'b']);
      expect(stats.byFirmware.map((r) => r.key)).toEqual(['f-B', 'f-a', 'f-b']);
    }));
});

describe('the memory fake, beyond the contract', () => {
  it('fails every call like a database that is down while told to, and recovers', async () => {
    const store = createMemoryRoundStore();
    const round = roundRecord();
    store.setUnavailable(true);
    const error = await rejectionOf(store.startRound(round));
    expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable: true });
    store.setUnavailable(false);
    expect(await store.unfinishedRounds()).toEqual([]);
    await store.startRound(round);
    expect(await store.unfinishedRounds()).toHaveLength(1);
  });

  it('keeps what it stored when a caller mutates its arguments or answers', async () => {
    const store = createMemoryRoundStore();
    const round = roundRecord();
    await store.startRound(round);
    round.groups[0]?.hosts.push('intruder');
    const [copy] = await store.unfinishedRounds();
    copy?.groups.pop();
    expect((await store.unfinishedRounds())[0]?.groups[0]?.hosts).toEqual(['10.0.0.1', '10.0.0.2']);
    expect((await store.unfinishedRounds())[0]?.groups).toHaveLength(2);
  });
});
