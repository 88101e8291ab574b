// The rcu-scheduler's tables. `upgrade_log` keeps the column names the operators' existing reports
// read (start_time, roomtype_id, host_str, ...); the round tables are ours and exist so that a
// round in flight survives a crash and its results are written exactly once.
import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { FinalHostStatus, RoundStatus, RoundTrigger } from '../ports.js';

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** One round: recorded before its first vendor call, marked finished when its results are logged. */
export const upgradeRound = pgTable(
  'upgrade_round',
  {
    id: uuid('id').primaryKey(),
    /** Start of the schedule interval; null for manual and recovery rounds, which never collide. */
    slot: timestamptz('slot'),
    trigger: text('trigger').$type<RoundTrigger>().notNull(),
    filename: text('filename').notNull(),
    fileType: integer('file_type').notNull(),
    /** The rotation to persist when this round finishes: kept here so a recovery after a crash knows it. */
    rotationIndexAfter: integer('rotation_index_after').notNull(),
    rotationUsedAfter: integer('rotation_used_after').notNull(),
    status: text('status').$type<RoundStatus>().notNull().default('running'),
    startedAt: timestamptz('started_at').notNull(),
    finishedAt: timestamptz('finished_at'),
  },
  (t) => [
    // Several instances may try the same tick: the second insert fails and that instance stands down.
    uniqueIndex('upgrade_round_slot_unique').on(t.slot),
    // Ascending on purpose: scanned backwards it serves `ORDER BY started_at DESC, id DESC` as written
    // (a DESC index would be DESC NULLS LAST, which that ORDER BY does not match).
    index('upgrade_round_started_at_idx').on(t.startedAt, t.id),
    // Start-up asks for the few running rounds among many finished ones.
    index('upgrade_round_running_idx')
      .on(t.startedAt)
      .where(sql`${t.status} = 'running'`),
    check('upgrade_round_status_check', sql`${t.status} in ('running', 'finished')`),
    check('upgrade_round_trigger_check', sql`${t.trigger} in ('schedule', 'manual', 'recovery')`),
    check('upgrade_round_finished_at_check', sql`(${t.status} = 'finished') = (${t.finishedAt} is not null)`),
  ],
);

/** One vendor call of a round: which hosts it covered and what the trigger answered. */
export const upgradeRoundGroup = pgTable(
  'upgrade_round_group',
  {
    roundId: uuid('round_id')
      .notNull()
      .references(() => upgradeRound.id, { onDelete: 'cascade' }),
    roomTypeId: integer('roomtype_id').notNull(),
    hosts: text('hosts').array().notNull(),
    /** The vendor's upgrade uuid, once `Upgrade_V2` answered. */
    uuid: text('uuid'),
    triggerError: text('trigger_error'),
  },
  (t) => [
    primaryKey({ name: 'upgrade_round_group_pk', columns: [t.roundId, t.roomTypeId] }),
    // Operators look rounds up by the uuid the vendor portal shows them.
    index('upgrade_round_group_uuid_idx').on(t.uuid),
  ],
);

/** One row per host that reached a final state, in the layout the existing reports read. */
export const upgradeLog = pgTable(
  'upgrade_log',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    startTime: timestamptz('start_time').notNull(),
    roomTypeId: integer('roomtype_id').notNull(),
    hostStr: text('host_str').notNull(),
    filename: text('filename').notNull(),
    status: text('status').$type<FinalHostStatus>().notNull(),
    endTime: timestamptz('end_time').notNull(),
    fileType: integer('file_type').notNull(),
    configVersion: text('config_version'),
    firmwareVersion: text('firmware_version'),
    /** The trigger's vendor uuid; null when the trigger itself failed and the hosts never started. */
    uuid: text('uuid'),
    roundId: uuid('round_id')
      .notNull()
      .references(() => upgradeRound.id),
    detail: text('detail'),
  },
  (t) => [
    // A retried finish inserts the same rows again; ON CONFLICT on this key drops them.
    uniqueIndex('upgrade_log_round_host_unique').on(t.roundId, t.roomTypeId, t.hostStr),
    index('upgrade_log_start_time_idx').on(t.startTime),
    index('upgrade_log_filename_start_time_idx').on(t.filename, t.startTime),
    index('upgrade_log_host_start_time_idx').on(t.hostStr, t.startTime),
    check('upgrade_log_status_check', sql`${t.status} in ('completed', 'failed', 'timeout')`),
  ],
);

/** The rotation (A, A, B, B, ...): a single row, moved only by a finished round. */
export const upgradeState = pgTable(
  'upgrade_state',
  {
    id: smallint('id').primaryKey().default(1),
    rotationIndex: integer('rotation_index').notNull(),
    rotationUsed: integer('rotation_used').notNull(),
    updatedAt: timestamptz('updated_at').notNull(),
  },
  (t) => [check('upgrade_state_single_row', sql`${t.id} = 1`)],
);
