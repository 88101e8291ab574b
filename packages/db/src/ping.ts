import { abortError, type HealthCheck } from '@upgrade/core';
import { mapPgError } from './errors.js';

/**
 * Races `SELECT 1` against the signal: neither driver can cancel a query waiting for a pool slot,
 * so an aborted ping stops waiting and the query finishes (or fails) on its own.
 */
export async function pingWith(select1: () => Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw abortError(signal);
  const query = select1().then(
    () => undefined,
    (error: unknown) => {
      throw mapPgError(error);
    },
  );
  if (signal === undefined) return query;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([query, aborted]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
    // The race's loser must not surface as an unhandled rejection.
    query.catch(() => undefined);
  }
}

/** A health check over `ping`, which already rejects with client-safe UpgradeErrors only. */
export function pingHealthCheck(
  name: string,
  kind: string,
  ping: (signal?: AbortSignal) => Promise<void>,
): HealthCheck {
  return {
    name,
    critical: true,
    check: async (signal) => {
      await ping(signal);
      return kind;
    },
  };
}
