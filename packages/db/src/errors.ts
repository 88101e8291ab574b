import { UpgradeError, type UpgradeErrorOptions } from '@upgrade/core';

/**
 * The fields PostgreSQL reports with an error. `pg` (DatabaseError) and PGlite carry the same
 * ones; only these are read, and only identifiers (constraint, column) reach the message: the
 * server's own text and `detail` can hold row values such as emails.
 */
interface PgErrorFields {
  code: string;
  severity?: string;
  constraint?: string;
  column?: string;
}

/** Socket-level failures of the TCP connection to the server. */
const SOCKET_ERRORS: ReadonlyMap<string, string> = new Map([
  ['ECONNREFUSED', 'connection refused'],
  ['ECONNRESET', 'connection reset'],
  ['ENOTFOUND', 'host not found'],
  ['EAI_AGAIN', 'host lookup failed'],
  ['ETIMEDOUT', 'connection timed out'],
  ['EHOSTUNREACH', 'host unreachable'],
  ['ENETUNREACH', 'network unreachable'],
  ['EPIPE', 'connection closed'],
  ['ECONNABORTED', 'connection aborted'],
]);

/** pg and pg-pool report these states only through their message text, with no code. */
const DRIVER_MESSAGES: readonly (readonly [RegExp, string])[] = [
  [/timeout exceeded when trying to connect/i, 'no connection within the connect timeout'],
  [/connection terminated/i, 'connection terminated'],
  [/connection error and is not queryable/i, 'connection broken'],
];
const CLOSED_HANDLE = /after calling end on the pool|pglite is closed/i;
const READ_TIMEOUT = /query read timeout/i;

/** How far down `cause` / `errors` chains to look: drizzle wraps once, AggregateError once more. */
const MAX_DEPTH = 4;

/**
 * Turns anything a pg or PGlite call threw into an UpgradeError. The one place the platform
 * translates database errors; `cause` keeps the original for logs.
 *
 * - 23505 unique, 23P01 exclusion -> CONFLICT (409), message names the constraint
 * - 23503 foreign key -> CONFLICT (409): a missing parent and a still-referenced child are both
 *   "the request conflicts with other rows", and PostgreSQL gives both the same code
 * - 23502 not null, 23514 check, class 22 (bad value: 22P02 syntax, 22001 too long...) -> VALIDATION_FAILED
 * - 40001 serialization, 40P01 deadlock, 55P03 lock not available -> CONFLICT, retryable
 * - 57014 statement timeout / cancel -> TIMEOUT
 * - 57P01-57P03 shutdown, class 08 connection, class 53 resources, 25006 read-only (a failed-over
 *   standby), socket errors, pool connect timeout, terminated connections -> UNAVAILABLE, retryable
 * - 3D000 missing database, class 28 bad credentials -> UNAVAILABLE, not retryable (configuration)
 * - anything else -> INTERNAL with a generic message
 */
export function mapPgError(error: unknown): UpgradeError {
  if (error instanceof UpgradeError) return error;
  // A server error anywhere in the chain is the most precise answer, then the socket, then the text.
  return (
    findInChain(error, (e) => fromServerError(e, error)) ??
    findInChain(error, (e) => fromSocketError(e, error)) ??
    findInChain(error, (e) => fromDriverMessage(e, error)) ??
    new UpgradeError('INTERNAL', 'database operation failed', { cause: error })
  );
}

/**
 * Runs `fn` and rethrows whatever it throws through `mapPgError`.
 *
 * @example const rows = await translatePgErrors(() => db.select().from(devices))
 */
export async function translatePgErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw mapPgError(error);
  }
}

function fromServerError(candidate: unknown, original: unknown): UpgradeError | undefined {
  const pgError = asPgError(candidate);
  if (pgError === undefined) return undefined;
  const { code } = pgError;
  const opts = (extra: UpgradeErrorOptions = {}): UpgradeErrorOptions => ({
    cause: original,
    ...extra,
    details: { sqlState: code, ...extra.details },
  });
  const constraint = pgError.constraint === undefined ? 'a constraint' : `constraint "${pgError.constraint}"`;
  const withConstraint = pgError.constraint === undefined ? {} : { constraint: pgError.constraint };

  switch (code) {
    case '23505':
      return new UpgradeError(
        'CONFLICT',
        `unique ${constraint} violated: a row with this value already exists`,
        opts({ details: withConstraint }),
      );
    case '23P01':
      return new UpgradeError(
        'CONFLICT',
        `exclusion ${constraint} violated: it overlaps an existing row`,
        opts({ details: withConstraint }),
      );
    case '23503':
      return new UpgradeError(
        'CONFLICT',
        `foreign key ${constraint} violated: the referenced row is missing or still referenced`,
        opts({ details: withConstraint }),
      );
    case '23502': {
      const column = pgError.column === undefined ? 'a required column' : `column "${pgError.column}"`;
      return new UpgradeError(
        'VALIDATION_FAILED',
        `${column} must not be null`,
        opts({ details: pgError.column === undefined ? {} : { column: pgError.column } }),
      );
    }
    case '23514':
      return new UpgradeError(
        'VALIDATION_FAILED',
        `check ${constraint} violated`,
        opts({ details: withConstraint }),
      );
    case '40001':
    case '40P01':
      return new UpgradeError(
        'CONFLICT',
        'transaction conflicted with a concurrent one; retry it',
        opts({ retryable: true }),
      );
    case '55P03':
      return new UpgradeError(
        'CONFLICT',
        'the rows are locked by another transaction; retry later',
        opts({ retryable: true }),
      );
    case '57014':
      return new UpgradeError('TIMEOUT', 'database statement timed out or was cancelled', opts());
    case '57P01':
    case '57P02':
    case '57P03':
      return unavailable('server is shutting down or starting up', original, true, code);
    case '25006':
      return unavailable('server is read-only (a standby)', original, true, code);
    case '3D000':
      return unavailable('database does not exist', original, false, code);
    case '42P01':
      return new UpgradeError('INTERNAL', 'a table is missing: are the migrations applied?', opts());
  }
  switch (code.slice(0, 2)) {
    case '08':
      return unavailable('connection failure', original, true, code);
    case '53':
      return unavailable('server out of resources (connections, memory or disk)', original, true, code);
    case '28':
      return unavailable('server rejected the credentials', original, false, code);
    case '22':
      return new UpgradeError('VALIDATION_FAILED', 'a value has the wrong format or is out of range', opts());
  }
  return new UpgradeError('INTERNAL', 'database operation failed', opts());
}

function unavailable(reason: string, cause: unknown, retryable: boolean, sqlState?: string): UpgradeError {
  return new UpgradeError('UNAVAILABLE', `database unavailable: ${reason}`, {
    cause,
    retryable,
    details: sqlState === undefined ? undefined : { sqlState },
  });
}

/** A server error has a five-character SQLSTATE and a severity; Node's EPIPE has five characters too. */
function asPgError(error: unknown): PgErrorFields | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || typeof severity !== 'string')
    return undefined;
  return error as PgErrorFields;
}

function fromSocketError(candidate: unknown, original: unknown): UpgradeError | undefined {
  const code = (candidate as { code?: unknown } | null)?.code;
  const reason = typeof code === 'string' ? SOCKET_ERRORS.get(code) : undefined;
  return reason === undefined ? undefined : unavailable(reason, original, true);
}

function fromDriverMessage(candidate: unknown, original: unknown): UpgradeError | undefined {
  if (!(candidate instanceof Error)) return undefined;
  const { message } = candidate;
  if (READ_TIMEOUT.test(message))
    return new UpgradeError('TIMEOUT', 'database query read timeout', { cause: original });
  if (CLOSED_HANDLE.test(message)) return unavailable('database handle is closed', original, false);
  const rule = DRIVER_MESSAGES.find(([pattern]) => pattern.test(message));
  return rule === undefined ? undefined : unavailable(rule[1], original, true);
}

/** Walks `cause` (DrizzleQueryError, our own wrappers) and `errors` (AggregateError) breadth-first. */
function findInChain<T>(error: unknown, pick: (e: unknown) => T | undefined): T | undefined {
  let level: unknown[] = [error];
  for (let depth = 0; depth <= MAX_DEPTH && level.length > 0; depth++) {
    const next: unknown[] = [];
    for (const e of level) {
      const found = pick(e);
      if (found !== undefined) return found;
      if (typeof e !== 'object' || e === null) continue;
      const { cause, errors } = e as { cause?: unknown; errors?: unknown };
      if (cause !== undefined) next.push(cause);
      if (Array.isArray(errors)) next.push(...(errors as unknown[]));
    }
    level = next;
  }
  return undefined;
}
