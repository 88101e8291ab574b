import { createHash } from 'node:crypto';
import type { PGlite } from '@electric-sql/pglite';
import { UpgradeError } from '@upgrade/core';
import type pg from 'pg';
import { mapPgError } from './errors.js';
import type { DatabaseHandle, Schema } from './handle.js';

/** Releases the lock (idempotent); `lost` aborts if the lock's connection dies while it is held. */
export type ReleaseLock = (() => Promise<void>) & { readonly lost: AbortSignal };

/**
 * Takes a session-level advisory lock without waiting: the release function when taken, `null`
 * when another holder has it. On PostgreSQL the lock lives on a dedicated pool connection kept
 * for the lock's lifetime (count it when sizing the pool), so other processes and other callers
 * in this one are excluded.
 * Check `lost` before committing to work that must not run twice.
 *
 * @example const release = await tryAdvisoryLock(handle, 'rcu:round'); if (!release) return; try { ... } finally { await release() }
 */
export async function tryAdvisoryLock<TSchema extends Schema>(
  handle: DatabaseHandle<TSchema>,
  key: string | bigint,
): Promise<ReleaseLock | null> {
  const id = advisoryLockKey(key);
  switch (handle.kind) {
    case 'postgres':
      return lockOnPool(handle.client, id);
    case 'pglite':
      return lockOnPglite(handle.client, id);
  }
}

/** The int8 PostgreSQL locks on: bigints as they are, strings by the first 8 bytes of their SHA-256. */
export function advisoryLockKey(key: string | bigint): bigint {
  if (typeof key === 'string') return createHash('sha256').update(key).digest().readBigInt64BE(0);
  if (BigInt.asIntN(64, key) !== key) {
    throw new UpgradeError('VALIDATION_FAILED', `advisory lock key ${key} is outside the int8 range`);
  }
  return key;
}

async function lockOnPool(pool: pg.Pool, id: bigint): Promise<ReleaseLock | null> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw mapPgError(error);
  }
  const lost = new AbortController();
  // A checked-out client that errors with no listener crashes the process; here it means the lock is gone.
  const onError = (error: Error): void => lost.abort(mapPgError(error));
  client.on('error', onError);
  let locked: boolean;
  try {
    const result = await client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS locked',
      [id.toString()],
    );
    locked = result.rows[0]?.locked === true;
  } catch (error) {
    client.off('error', onError);
    client.release(error as Error);
    throw mapPgError(error);
  }
  if (!locked) {
    client.off('error', onError);
    client.release();
    return null;
  }
  return releaseOnce(lost.signal, async () => {
    try {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [id.toString()]);
      client.release();
    } catch (error) {
      // Destroying the connection ends its session, which drops the lock just the same.
      client.release(error as Error);
    } finally {
      client.off('error', onError);
    }
  });
}

/**
 * PGlite has one session, and a session may take its own advisory lock again, so exclusion
 * between callers comes from this in-process registry; the SQL lock still shows in pg_locks.
 */
const pgliteHeld = new WeakMap<PGlite, Set<bigint>>();

async function lockOnPglite(client: PGlite, id: bigint): Promise<ReleaseLock | null> {
  const held = pgliteHeld.get(client) ?? new Set<bigint>();
  pgliteHeld.set(client, held);
  if (held.has(id)) return null;
  held.add(id);
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [id.toString()]);
  } catch (error) {
    held.delete(id);
    throw mapPgError(error);
  }
  return releaseOnce(new AbortController().signal, async () => {
    held.delete(id);
    // A closed instance has no session left to hold the lock; releasing must not throw from a finally.
    if (!client.closed)
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [id.toString()]).catch(() => undefined);
  });
}

function releaseOnce(lost: AbortSignal, release: () => Promise<void>): ReleaseLock {
  let released: Promise<void> | undefined;
  return Object.assign(() => (released ??= release()), { lost });
}
