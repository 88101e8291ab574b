import type { PgTransactionConfig } from 'drizzle-orm/pg-core';
import { translatePgErrors } from './errors.js';
import type { Database, DatabaseHandle, Schema, Transaction } from './handle.js';

/**
 * Runs `fn` in one transaction: it commits when `fn` resolves and rolls back when it throws.
 * Whatever escapes is an UpgradeError (pg errors mapped, the app's own UpgradeErrors unchanged).
 * Passing a `Transaction` as `target` nests a savepoint.
 *
 * @example await withTx(handle, async (tx) => { await tx.delete(devices)...; await tx.update(tokens)... })
 */
export function withTx<TSchema extends Schema, T>(
  target: DatabaseHandle<TSchema> | Database<TSchema>,
  fn: (tx: Transaction<TSchema>) => Promise<T>,
  config?: PgTransactionConfig,
): Promise<T> {
  const db = isHandle(target) ? target.db : target;
  return translatePgErrors(() => db.transaction(fn, config));
}

function isHandle<TSchema extends Schema>(
  target: DatabaseHandle<TSchema> | Database<TSchema>,
): target is DatabaseHandle<TSchema> {
  return 'kind' in target && 'ping' in target;
}
