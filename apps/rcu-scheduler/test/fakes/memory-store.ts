// An in-memory RoundStore + RoundQueries for the domain's unit tests. The store contract suite
// (test/store.test.ts) runs it beside the PostgreSQL store, so it answers, orders and fails the
// same way: constraint violations go through @upgrade/db's mapPgError exactly like real ones.
import type { RotationState, UpgradeError } from '@upgrade/core';
import { mapPgError } from '@upgrade/db';
import {
  assertEntriesOf,
  assertPage,
  assertRoundId,
  assertSince,
  groupNotFound,
  isUuid,
  roundDurationMs,
  roundNotFound,
} from '../../src/db/store-rules.js';
import type {
  RoundDetail,
  RoundQueries,
  RoundRecord,
  RoundStore,
  RoundView,
  Stats,
  StatsRow,
  UpgradeLogEntry,
} from '../../src/ports.js';

/** The memory store, plus a switch to make it fail like a database that is down. */
export interface MemoryRoundStore extends RoundStore, RoundQueries {
  /**
   * While true, every call rejects with the UNAVAILABLE (retryable, 503) error the PostgreSQL
   * store gives when the server refuses connections; nothing is read or written.
   */
  setUnavailable(down: boolean): void;
}

/** A fresh, empty memory store. */
export function createMemoryRoundStore(): MemoryRoundStore {
  let rotation: RotationState | null = null;
  const rounds = new Map<string, RoundRecord>();
  const log = new Map<string, UpgradeLogEntry>();
  let unavailable = false;

  /** What a round's rows in `upgrade_log` are keyed by (the unique index). */
  const logKey = (e: Pick<UpgradeLogEntry, 'roundId' | 'roomTypeId' | 'host'>): string =>
    JSON.stringify([e.roundId.toLowerCase(), e.roomTypeId, e.host]);

  // Every call is async and copies in and out, as a database would: a caller mutating what it
  // passed or got back must not change what is stored.
  const call = async <T>(fn: () => T): Promise<T> => {
    await Promise.resolve();
    if (unavailable)
      throw mapPgError(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      );
    return structuredClone(fn());
  };

  const viewOf = (round: RoundRecord): RoundView => {
    const summary = { total: 0, completed: 0, failed: 0, timeout: 0 };
    for (const e of log.values()) {
      if (e.roundId !== round.id) continue;
      summary.total++;
      summary[e.status]++;
    }
    return {
      id: round.id,
      trigger: round.trigger,
      status: round.status,
      filename: round.filename,
      fileType: round.fileType,
      startedAt: round.startedAt,
      finishedAt: round.finishedAt,
      groups: round.groups.map((g) => ({
        roomTypeId: g.roomTypeId,
        uuid: g.uuid,
        hosts: g.hosts.length,
        triggerError: g.triggerError,
      })),
      summary,
    };
  };

  const newestFirst = (): RoundRecord[] =>
    [...rounds.values()].sort(
      (a, b) => b.startedAt.getTime() - a.startedAt.getTime() || compareCodePoints(b.id, a.id),
    );

  return {
    setUnavailable: (down) => {
      unavailable = down;
    },

    loadRotation: () => call(() => rotation),

    startRound: (input) =>
      call(() => {
        assertRoundId(input.id);
        const round: RoundRecord = structuredClone({ ...input, id: input.id.toLowerCase() });
        if ((round.status === 'finished') !== (round.finishedAt !== null))
          throw constraintViolation('23514', 'upgrade_round_finished_at_check');
        if (rounds.has(round.id)) throw constraintViolation('23505', 'upgrade_round_pkey');
        if (round.slot !== null && [...rounds.values()].some((r) => r.slot === round.slot))
          throw constraintViolation('23505', 'upgrade_round_slot_unique');
        const roomTypes = new Set(round.groups.map((g) => g.roomTypeId));
        if (roomTypes.size !== round.groups.length)
          throw constraintViolation('23505', 'upgrade_round_group_pk');
        round.groups.sort((a, b) => a.roomTypeId - b.roomTypeId);
        rounds.set(round.id, round);
      }),

    recordTrigger: (roundId, roomTypeId, outcome) =>
      call(() => {
        const group = rounds.get(roundId.toLowerCase())?.groups.find((g) => g.roomTypeId === roomTypeId);
        if (!isUuid(roundId) || group === undefined) throw groupNotFound(roundId, roomTypeId);
        if ('uuid' in outcome) {
          group.uuid = outcome.uuid;
          group.triggerError = null;
        } else {
          group.uuid = null;
          group.triggerError = outcome.error;
        }
      }),

    finishRound: (roundId, entries, finishedAt) =>
      call(() => {
        if (!isUuid(roundId)) throw roundNotFound(roundId);
        assertEntriesOf(roundId, entries);
        const round = rounds.get(roundId.toLowerCase());
        if (round === undefined) throw roundNotFound(roundId);
        if (round.status === 'running') {
          round.status = 'finished';
          round.finishedAt = new Date(finishedAt);
          rotation = { ...round.rotationAfter };
        }
        for (const e of entries) {
          const key = logKey(e);
          if (!log.has(key)) log.set(key, { ...structuredClone(e), roundId: round.id });
        }
      }),

    unfinishedRounds: () =>
      call(() =>
        newestFirst()
          .filter((r) => r.status === 'running')
          .reverse(),
      ),

    listRounds: ({ page, pageSize }) =>
      call(() => {
        assertPage(page, pageSize);
        const all = newestFirst();
        const offset = (page - 1) * pageSize;
        return { items: all.slice(offset, offset + pageSize).map(viewOf), total: all.length };
      }),

    getRound: (idOrUuid) =>
      call((): RoundDetail | null => {
        const id = isUuid(idOrUuid) ? idOrUuid.toLowerCase() : undefined;
        const round = newestFirst().find((r) => r.id === id || r.groups.some((g) => g.uuid === idOrUuid));
        if (round === undefined) return null;
        const results = [...log.values()]
          .filter((e) => e.roundId === round.id)
          .sort((a, b) => a.roomTypeId - b.roomTypeId || compareCodePoints(a.host, b.host));
        return { ...viewOf(round), results };
      }),

    stats: (since) =>
      call((): Stats => {
        assertSince(since);
        const window = [...log.values()].filter((e) => e.startTime.getTime() >= since.getTime());
        return {
          since,
          byFirmware: statsBy(window, (e) => e.filename),
          byHost: statsBy(window, (e) => e.host),
        };
      }),
  };
}

/** The error @upgrade/db makes of a PostgreSQL constraint violation with this SQLSTATE. */
function constraintViolation(code: '23505' | '23514', constraint: string): UpgradeError {
  return mapPgError({ code, severity: 'ERROR', constraint });
}

/** `collate "C"` order, which the PostgreSQL store sorts hosts and filenames by. */
function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function statsBy(entries: UpgradeLogEntry[], keyOf: (e: UpgradeLogEntry) => string): StatsRow[] {
  const groups = new Map<string, UpgradeLogEntry[]>();
  for (const e of entries) {
    const key = keyOf(e);
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [e]);
    else list.push(e);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => compareCodePoints(a, b))
    .map(([key, list]) => {
      const count = (status: UpgradeLogEntry['status']): number =>
        list.filter((e) => e.status === status).length;
      const durations = list
        .filter((e) => e.status === 'completed')
        .map((e) => e.endTime.getTime() - e.startTime.getTime())
        .sort((a, b) => a - b);
      const completed = count('completed');
      return {
        key,
        attempts: list.length,
        completed,
        failed: count('failed'),
        timeout: count('timeout'),
        successRate: completed / list.length,
        p50DurationMs: roundDurationMs(percentileCont(durations, 0.5)),
        p95DurationMs: roundDurationMs(percentileCont(durations, 0.95)),
      };
    });
}

/** PostgreSQL's `percentile_cont` over sorted values: linear interpolation between neighbours. */
function percentileCont(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const position = p * (sorted.length - 1);
  const lower = Math.floor(position);
  const low = sorted[lower] ?? 0;
  const high = sorted[Math.ceil(position)] ?? low;
  return low + (high - low) * (position - lower);
}
