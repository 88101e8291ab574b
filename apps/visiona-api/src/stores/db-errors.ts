// The database's failures as the API reports them, for every PostgreSQL store: `mapPgError`'s
// codes, except that a database too slow or frozen to answer within its deadline (the statement
// timeout or the client-side query deadline) is UNAVAILABLE (503, retry shortly), like a database
// that cannot be reached, and that no SQLSTATE reaches a response body.
import { UpgradeError } from '@upgrade/core';
import { mapPgError, withTx as withPgTx, type Transaction } from '@upgrade/db';
import type { VisionaDatabase } from '../db/database.js';
import type * as schema from '../db/schema.js';

/** Runs one store call; whatever it throws arrives as the API's UpgradeError. */
export async function translateDbErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw toApiError(error);
  }
}

/** `withTx` of @upgrade/db with the same translation. */
export function withTx<T>(
  db: VisionaDatabase,
  fn: (tx: Transaction<typeof schema>) => Promise<T>,
): Promise<T> {
  return translateDbErrors(() => withPgTx(db, fn));
}

function toApiError(error: unknown): UpgradeError {
  const mapped = mapPgError(error);
  if (mapped.code === 'TIMEOUT') {
    return new UpgradeError('UNAVAILABLE', 'the database did not answer in time; retry shortly', {
      cause: error,
      retryable: true,
    });
  }
  const details = mapped.details;
  if (details === undefined || !('sqlState' in details)) return mapped;
  const { sqlState: _sqlState, ...rest } = details;
  return new UpgradeError(mapped.code, mapped.message, {
    cause: error,
    retryable: mapped.retryable,
    status: mapped.status,
    ...(Object.keys(rest).length === 0 ? {} : { details: rest }),
  });
}
