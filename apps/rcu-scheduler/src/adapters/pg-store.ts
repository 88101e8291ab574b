// RoundStore on PostgreSQL or PGlite (the same drizzle code on both drivers). The read side lives
// in pg-queries.ts; this file only writes, plus the start-up read of unfinished rounds.
import type { RotationState } from '@upgrade/core';
import { translatePgErrors, withTx } from '@upgrade/db';
import { and, asc, eq, sql, type SQL } from 'drizzle-orm';
import type { RcuDatabase } from '../db/database.js';
import { assertEntriesOf, assertRoundId, groupNotFound, isUuid, roundNotFound } from '../db/store-rules.js';
import { upgradeLog, upgradeRound, upgradeRoundGroup, upgradeState } from '../db/schema.js';
import type { RoundGroup, RoundQueries, RoundRecord, RoundStore, UpgradeLogEntry } from '../ports.js';
import { createPgQueries } from './pg-queries.js';

/** Rows per INSERT of `finishRound`: a round of 10,000 hosts is ten statements in one transaction. */
export const LOG_INSERT_BATCH = 1000;

/**
 * `upgrade_log`'s written columns with their SQL types, read off the schema so a renamed column
 * cannot drift from the statement below.
 */
const LOG_COLUMNS = [
  upgradeLog.startTime,
  upgradeLog.roomTypeId,
  upgradeLog.hostStr,
  upgradeLog.filename,
  upgradeLog.status,
  upgradeLog.endTime,
  upgradeLog.fileType,
  upgradeLog.configVersion,
  upgradeLog.firmwareVersion,
  upgradeLog.uuid,
  upgradeLog.roundId,
  upgradeLog.detail,
] as const;
const LOG_COLUMN_LIST = sql.join(
  LOG_COLUMNS.map((c) => sql.identifier(c.name)),
  sql`, `,
);
const LOG_RECORD_TYPE = sql.join(
  LOG_COLUMNS.map((c) => sql`${sql.identifier(c.name)} ${sql.raw(c.getSQLType())}`),
  sql`, `,
);

/** The single row of `upgrade_state`. */
const STATE_ROW = 1;

/**
 * The round store and its read side over one drizzle database (pg pool or PGlite).
 *
 * @example const store = createPgStore(handle.db) // handle = await openDatabase({ url, dataDir, schema })
 */
export function createPgStore(db: RcuDatabase): RoundStore & RoundQueries {
  return {
    ...createPgQueries(db),

    loadRotation: () =>
      translatePgErrors(async () => {
        const [row] = await db
          .select({ index: upgradeState.rotationIndex, used: upgradeState.rotationUsed })
          .from(upgradeState)
          .where(eq(upgradeState.id, STATE_ROW));
        return row ?? null;
      }),

    startRound: async (round) => {
      assertRoundId(round.id);
      await withTx(db, async (tx) => {
        // A slot already taken fails here with CONFLICT (upgrade_round_slot_unique), before any
        // vendor call: the instance that loses the race stands down.
        await tx.insert(upgradeRound).values({
          id: round.id,
          slot: round.slot === null ? null : new Date(round.slot),
          trigger: round.trigger,
          filename: round.filename,
          fileType: round.fileType,
          rotationIndexAfter: round.rotationAfter.index,
          rotationUsedAfter: round.rotationAfter.used,
          status: round.status,
          startedAt: round.startedAt,
          finishedAt: round.finishedAt,
        });
        if (round.groups.length === 0) return;
        await tx.insert(upgradeRoundGroup).values(
          round.groups.map((g) => ({
            roundId: round.id,
            roomTypeId: g.roomTypeId,
            hosts: g.hosts,
            uuid: g.uuid,
            triggerError: g.triggerError,
          })),
        );
      });
    },

    recordTrigger: (roundId, roomTypeId, outcome) =>
      translatePgErrors(async () => {
        if (!isUuid(roundId)) throw groupNotFound(roundId, roomTypeId);
        const set =
          'uuid' in outcome
            ? { uuid: outcome.uuid, triggerError: null }
            : { uuid: null, triggerError: outcome.error };
        const updated = await db
          .update(upgradeRoundGroup)
          .set(set)
          .where(and(eq(upgradeRoundGroup.roundId, roundId), eq(upgradeRoundGroup.roomTypeId, roomTypeId)))
          .returning({ roomTypeId: upgradeRoundGroup.roomTypeId });
        if (updated.length === 0) throw groupNotFound(roundId, roomTypeId);
      }),

    finishRound: async (roundId, entries, finishedAt) => {
      if (!isUuid(roundId)) throw roundNotFound(roundId);
      assertEntriesOf(roundId, entries);
      await withTx(db, async (tx) => {
        // First, so the row lock serialises two finishes of one round: the second one waits,
        // then sees `finished` and leaves the rotation alone.
        const [moved] = await tx
          .update(upgradeRound)
          .set({ status: 'finished', finishedAt })
          .where(and(eq(upgradeRound.id, roundId), eq(upgradeRound.status, 'running')))
          .returning({ index: upgradeRound.rotationIndexAfter, used: upgradeRound.rotationUsedAfter });
        if (moved === undefined) {
          const [known] = await tx
            .select({ id: upgradeRound.id })
            .from(upgradeRound)
            .where(eq(upgradeRound.id, roundId));
          if (known === undefined) throw roundNotFound(roundId);
        } else {
          await upsertRotation(tx, moved, finishedAt);
        }
        // Also on a repeated finish: a retry after an unclear commit, or one with rows the first
        // call lacked, lands exactly the rows that are missing.
        for (let i = 0; i < entries.length; i += LOG_INSERT_BATCH)
          await tx.execute(insertLogRows(entries.slice(i, i + LOG_INSERT_BATCH)));
      });
    },

    unfinishedRounds: () =>
      translatePgErrors(async () => {
        const rows = await db
          .select({ round: upgradeRound, group: upgradeRoundGroup })
          .from(upgradeRound)
          .leftJoin(upgradeRoundGroup, eq(upgradeRoundGroup.roundId, upgradeRound.id))
          .where(eq(upgradeRound.status, 'running'))
          .orderBy(asc(upgradeRound.startedAt), asc(upgradeRound.id), asc(upgradeRoundGroup.roomTypeId));
        const rounds = new Map<string, RoundRecord>();
        for (const { round, group } of rows) {
          let record = rounds.get(round.id);
          if (record === undefined) {
            record = toRoundRecord(round, []);
            rounds.set(round.id, record);
          }
          if (group !== null) record.groups.push(toRoundGroup(group));
        }
        return [...rounds.values()];
      }),
  };
}

async function upsertRotation(
  tx: Pick<RcuDatabase, 'insert'>,
  rotation: RotationState,
  at: Date,
): Promise<void> {
  const values = { rotationIndex: rotation.index, rotationUsed: rotation.used, updatedAt: at };
  await tx
    .insert(upgradeState)
    .values({ id: STATE_ROW, ...values })
    .onConflictDoUpdate({ target: upgradeState.id, set: values });
}

/**
 * One INSERT of a batch, its rows handed over as a single JSON parameter. drizzle's
 * `insert().values()` builds 12,000 parameter objects for 1,000 rows, which took longer (55-165 ms)
 * than PostgreSQL took to store them; this statement writes at the speed of a hand-written
 * multi-row INSERT on both drivers. ON CONFLICT on the unique key makes a repeated finish a no-op.
 */
function insertLogRows(entries: readonly UpgradeLogEntry[]): SQL {
  const rows = JSON.stringify(entries.map(toLogRecord));
  return sql`insert into ${upgradeLog} (${LOG_COLUMN_LIST})
    select ${LOG_COLUMN_LIST} from json_to_recordset(${rows}::json) as r(${LOG_RECORD_TYPE})
    on conflict (${sql.identifier(upgradeLog.roundId.name)}, ${sql.identifier(upgradeLog.roomTypeId.name)}, ${sql.identifier(upgradeLog.hostStr.name)}) do nothing`;
}

/** An entry keyed by column name for `json_to_recordset`; Dates become ISO text, exact to the ms. */
function toLogRecord(e: UpgradeLogEntry): Record<(typeof LOG_COLUMNS)[number]['name'], unknown> {
  return {
    start_time: e.startTime,
    roomtype_id: e.roomTypeId,
    host_str: e.host,
    filename: e.filename,
    status: e.status,
    end_time: e.endTime,
    file_type: e.fileType,
    config_version: e.configVersion,
    firmware_version: e.firmwareVersion,
    uuid: e.uuid,
    round_id: e.roundId,
    detail: e.detail,
  };
}

function toRoundRecord(row: typeof upgradeRound.$inferSelect, groups: RoundGroup[]): RoundRecord {
  return {
    id: row.id,
    slot: row.slot === null ? null : row.slot.getTime(),
    trigger: row.trigger,
    filename: row.filename,
    fileType: row.fileType,
    rotationAfter: { index: row.rotationIndexAfter, used: row.rotationUsedAfter },
    status: row.status,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    groups,
  };
}

function toRoundGroup(row: typeof upgradeRoundGroup.$inferSelect): RoundGroup {
  return { roomTypeId: row.roomTypeId, hosts: row.hosts, uuid: row.uuid, triggerError: row.triggerError };
}
