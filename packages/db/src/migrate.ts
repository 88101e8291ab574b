import { UpgradeError } from '@upgrade/core';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type pg from 'pg';
import { advisoryLockKey } from './advisory-lock.js';
import { mapPgError } from './errors.js';
import type { DatabaseHandle, PgliteHandle, PostgresHandle, Schema } from './handle.js';
import { readMigrationsFolder, type MigrationInfo } from './migrations-folder.js';

/** Where drizzle's migrator records what it applied (its defaults; apps do not change them). */
const MIGRATIONS_TABLE = 'drizzle.__drizzle_migrations';
/** Serialises migrations of instances starting at once; all apps share it, which costs nothing. */
const MIGRATION_LOCK = advisoryLockKey('upgrade-platform:drizzle-migrations').toString();
/** How long a starting instance waits for another one's migrations before giving up. */
const MIGRATION_LOCK_WAIT_MS = 60_000;

/** Where a database stands against a migrations folder. */
export interface MigrationStatus {
  /** In the folder and recorded as applied. */
  applied: MigrationInfo[];
  /** In the folder and newer than the last applied one: `migrate` applies these, in order. */
  pending: MigrationInfo[];
  /** In the folder, not applied, but older than the last applied one: drizzle never applies these. */
  skipped: MigrationInfo[];
  /** Recorded in the database but not in the folder: the database is ahead of this build. */
  unknown: { hash: string; createdAt: Date }[];
}

type Query = (text: string) => Promise<Record<string, unknown>[]>;

/** Reads `meta/_journal.json` of the folder and the migrations table, without changing anything. */
export async function migrationStatus<TSchema extends Schema>(
  handle: DatabaseHandle<TSchema>,
  migrationsFolder: string,
): Promise<MigrationStatus> {
  const files = readMigrationsFolder(migrationsFolder);
  return classify(files, await readRecorded((text) => handle.execute(text)));
}

/**
 * Applies the folder's pending migrations in one transaction and returns them; a no-op when
 * none are pending. On PostgreSQL it holds an advisory lock meanwhile, so instances starting
 * together migrate one after the other, and lifts the statement timeout for long DDL.
 */
export async function migrate<TSchema extends Schema>(
  handle: DatabaseHandle<TSchema>,
  migrationsFolder: string,
): Promise<MigrationInfo[]> {
  const files = readMigrationsFolder(migrationsFolder);
  try {
    switch (handle.kind) {
      case 'postgres':
        return await migrateOnPool(handle, migrationsFolder, files);
      case 'pglite':
        return await migrateOnPglite(handle, migrationsFolder, files);
    }
  } catch (error) {
    throw migrationFailed(error, migrationsFolder);
  }
}

async function migrateOnPool<TSchema extends Schema>(
  handle: PostgresHandle<TSchema>,
  folder: string,
  files: MigrationInfo[],
): Promise<MigrationInfo[]> {
  const client = await handle.client.connect();
  const onError = (): void => undefined; // the failing query rejects too; that is where it is handled
  client.on('error', onError);
  let broken: Error | undefined;
  try {
    await client.query(`SET lock_timeout = ${MIGRATION_LOCK_WAIT_MS}`);
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
    await client.query('RESET lock_timeout; SET statement_timeout = 0');
    const query: Query = async (text) => (await client.query<Record<string, unknown>>(text)).rows;
    const { pending } = classify(files, await readRecorded(query));
    if (pending.length > 0) await migratePg(drizzlePg({ client }), { migrationsFolder: folder });
    return pending;
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    await resetSession(client).catch((error: unknown) => (broken ??= error as Error));
    client.off('error', onError);
    // A connection in an unknown state is destroyed rather than handed to the next caller.
    client.release(broken);
  }
}

async function resetSession(client: pg.PoolClient): Promise<void> {
  // One simple-protocol round trip; the key is our own integer, safe to inline.
  await client.query(
    `SELECT pg_advisory_unlock(${MIGRATION_LOCK}); RESET statement_timeout; RESET lock_timeout`,
  );
}

async function migrateOnPglite<TSchema extends Schema>(
  handle: PgliteHandle<TSchema>,
  folder: string,
  files: MigrationInfo[],
): Promise<MigrationInfo[]> {
  const { pending } = classify(files, await readRecorded((text) => handle.execute(text)));
  if (pending.length > 0)
    await migratePglite(drizzlePglite({ client: handle.client }), { migrationsFolder: folder });
  return pending;
}

interface Recorded {
  hash: string;
  createdAt: number;
}

async function readRecorded(query: Query): Promise<Recorded[]> {
  const [exists] = await query(`SELECT to_regclass('${MIGRATIONS_TABLE}') IS NOT NULL AS "exists"`);
  if (exists?.exists !== true) return [];
  const rows = await query(`SELECT hash, created_at FROM ${MIGRATIONS_TABLE} ORDER BY created_at`);
  // created_at is int8: pg returns it as a string, PGlite as a number or bigint.
  return rows.map((r) => ({ hash: String(r.hash), createdAt: Number(r.created_at) }));
}

/** Mirrors drizzle's rule: a migration is applied iff it is newer than the newest recorded one. */
function classify(files: MigrationInfo[], recorded: Recorded[]): MigrationStatus {
  const recordedAt = new Set(recorded.map((r) => r.createdAt));
  const last = Math.max(Number.NEGATIVE_INFINITY, ...recorded.map((r) => r.createdAt));
  const fileAt = new Set(files.map((f) => f.createdAt.getTime()));
  return {
    applied: files.filter((f) => recordedAt.has(f.createdAt.getTime())),
    pending: files.filter((f) => f.createdAt.getTime() > last),
    skipped: files.filter((f) => !recordedAt.has(f.createdAt.getTime()) && f.createdAt.getTime() <= last),
    unknown: recorded
      .filter((r) => !fileAt.has(r.createdAt))
      .map((r) => ({ hash: r.hash, createdAt: new Date(r.createdAt) })),
  };
}

/** Connection trouble keeps its code; a failing statement says which folder, and that it rolled back. */
function migrationFailed(error: unknown, folder: string): UpgradeError {
  const mapped = mapPgError(error);
  if (mapped.code !== 'INTERNAL' && mapped.code !== 'VALIDATION_FAILED' && mapped.code !== 'CONFLICT')
    return mapped;
  return new UpgradeError(
    'INTERNAL',
    `applying migrations from ${folder} failed; their transaction rolled back (see cause)`,
    { cause: error, details: mapped.details },
  );
}
