// visiona-api's tables. Deleted models and devices are kept (soft delete, `deleted_at`) so their
// history survives; every index that serves the API covers live rows only.
import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import type { OnlineStatus, PairingStatus } from '../ports.js';

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Accounts; the email is unique whatever its case. */
export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    createdAt: timestamptz('created_at').notNull(),
  },
  (t) => [uniqueIndex('users_email_lower_unique').on(sql`lower(${t.email})`)],
);

/** AI models users publish to their devices. */
export const models = pgTable(
  'models',
  {
    id: uuid('id').primaryKey(),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id),
    name: text('name').notNull(),
    chip: text('chip').notNull(),
    source: text('source').notNull(),
    labels: text('labels')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    inputShape: integer('input_shape').array().notNull(),
    faaObjectKey: text('faa_object_key'),
    createdAt: timestamptz('created_at').notNull(),
    updatedAt: timestamptz('updated_at').notNull(),
    deletedAt: timestamptz('deleted_at'),
  },
  (t) => [
    // Listings are per owner, newest first; the chip / source filters narrow an owner's few rows.
    index('models_live_owner_idx')
      .on(t.ownerId, t.createdAt, t.id)
      .where(sql`${t.deletedAt} is null`),
    // Catalogue-wide listings filter by chip (and source) without an owner.
    index('models_live_chip_source_idx')
      .on(t.chip, t.source)
      .where(sql`${t.deletedAt} is null`),
  ],
);

/** Edge devices paired to a user. */
export const devices = pgTable(
  'devices',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id),
    serial: text('serial').notNull(),
    name: text('name').notNull(),
    pairingStatus: text('pairing_status').$type<PairingStatus>().notNull(),
    onlineStatus: text('online_status').$type<OnlineStatus>().notNull().default('offline'),
    agentLastSeenAt: timestamptz('agent_last_seen_at'),
    createdAt: timestamptz('created_at').notNull(),
    updatedAt: timestamptz('updated_at').notNull(),
    deletedAt: timestamptz('deleted_at'),
  },
  (t) => [
    // Live devices only: a device unpaired and sold on registers again with the same serial.
    uniqueIndex('devices_serial_live')
      .on(t.serial)
      .where(sql`${t.deletedAt} is null`),
    index('devices_live_owner_idx')
      .on(t.ownerId, t.createdAt, t.id)
      .where(sql`${t.deletedAt} is null`),
    check('devices_pairing_status_check', sql`${t.pairingStatus} in ('pending', 'paired', 'unpaired')`),
    check('devices_online_status_check', sql`${t.onlineStatus} in ('online', 'offline')`),
    // Unpairing is the deletion: the two fields cannot disagree.
    check(
      'devices_unpaired_deleted_check',
      sql`(${t.pairingStatus} = 'unpaired') = (${t.deletedAt} is not null)`,
    ),
  ],
);

/** One-time pairing codes, by the SHA-256 of the code; `used_at` set on redeem. */
export const pairingTokens = pgTable(
  'pairing_tokens',
  {
    tokenHash: text('token_hash').primaryKey(),
    ownerId: uuid('owner_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: timestamptz('created_at').notNull(),
    expiresAt: timestamptz('expires_at').notNull(),
    usedAt: timestamptz('used_at'),
  },
  (t) => [check('pairing_tokens_hash_check', sql`${t.tokenHash} ~ '^[0-9a-f]{64}$'`)],
);

/** Agents' session tokens, by the SHA-256 of the token; revoking deletes the row. */
export const sessionTokens = pgTable(
  'session_tokens',
  {
    tokenHash: text('token_hash').primaryKey(),
    deviceId: uuid('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    createdAt: timestamptz('created_at').notNull(),
    expiresAt: timestamptz('expires_at'),
  },
  (t) => [
    // Unpairing revokes by device.
    index('session_tokens_device_idx').on(t.deviceId),
    check('session_tokens_hash_check', sql`${t.tokenHash} ~ '^[0-9a-f]{64}$'`),
  ],
);
