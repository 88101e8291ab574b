import { sql, type SQLWrapper } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { translatePgErrors } from './errors.js';
import type { DbLogger, PostgresHandle, Schema } from './handle.js';
import { pingHealthCheck, pingWith } from './ping.js';

/** Pool limits; every wait is bounded so a down server answers in seconds, not never. */
export interface PoolOptions {
  /** Connections at most. Default 10. */
  max?: number;
  /** How long to wait for a connection (TCP + auth, or a free slot). Default 5000 ms. */
  connectionTimeoutMillis?: number;
  /** Idle connections are closed after this. Default 30000 ms. */
  idleTimeoutMillis?: number;
  /** Server-side `statement_timeout` for every connection; unset keeps the server's default. */
  statementTimeoutMillis?: number;
  /**
   * Client-side deadline of each query, from the call to its answer; unset: none (the default).
   * A server that is frozen or cut off mid-query never answers, and `statement_timeout` cannot
   * fire there. Past the deadline the query fails with TIMEOUT and its connection is destroyed, so
   * the pool never hands out a connection still waiting for the lost answer.
   */
  queryTimeoutMillis?: number;
  /** Shown in `pg_stat_activity`, to tell the services apart. */
  applicationName?: string;
}

/** Options of `openPostgres`; `openDatabase` passes its own through. */
export interface OpenPostgresOptions<TSchema extends Schema> {
  url: string;
  pool?: PoolOptions;
  logger?: DbLogger;
  schema?: TSchema;
}

/** A handle over a lazily connecting pool: opening never touches the network, `ping` does. */
export function openPostgres<TSchema extends Schema = Record<string, never>>(
  options: OpenPostgresOptions<TSchema>,
): PostgresHandle<TSchema> {
  const { url, pool: limits = {}, logger, schema } = options;
  const pool = new pg.Pool({
    connectionString: url,
    max: limits.max ?? 10,
    connectionTimeoutMillis: limits.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: limits.idleTimeoutMillis ?? 30_000,
    statement_timeout: limits.statementTimeoutMillis,
    application_name: limits.applicationName,
    keepAlive: true,
    ...(limits.queryTimeoutMillis === undefined ? {} : { query_timeout: limits.queryTimeoutMillis }),
  });
  // An idle connection dropped by the server (restart, failover) is reported here; without a
  // listener Node treats it as an uncaught error and the whole service exits.
  pool.on('error', (error) => {
    logger?.warn({ err: error, target: redactUrl(url) }, 'idle database connection failed');
  });
  // A connection checked out of the pool (a transaction between two statements, a held lock)
  // has no pool listener: when the server drops it, pg emits 'error' on the client and Node would
  // exit. The pending or next query fails with the mapped error, which its caller reports; an idle
  // connection's failure is logged by the pool listener above. So this listener only keeps the
  // process alive.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    if (limits.queryTimeoutMillis !== undefined) dropOnQueryTimeout(client);
  });
  const db = drizzle<TSchema>({ client: pool, schema });
  const execute = <Row extends Record<string, unknown>>(query: SQLWrapper | string): Promise<Row[]> =>
    translatePgErrors(
      async () => (await db.execute(typeof query === 'string' ? sql.raw(query) : query)).rows as Row[],
    );
  const ping = (signal?: AbortSignal): Promise<void> => pingWith(() => pool.query('SELECT 1'), signal);
  let closing: Promise<void> | undefined;

  return {
    kind: 'postgres',
    db,
    client: pool,
    target: redactUrl(url),
    execute,
    ping,
    healthCheck: (name = 'database') => pingHealthCheck(name, 'postgres', ping),
    close: () => (closing ??= pool.end()),
  };
}

const READ_TIMEOUT_MESSAGE = 'Query read timeout';

/**
 * Makes a pooled client destroy its connection when a query misses pg's `query_timeout`. pg only
 * rejects the late query: the connection keeps waiting for the answer, and every later query on
 * it (the pool hands it out again; a transaction's ROLLBACK) queues behind that answer. Destroyed,
 * the connection fails what is queued on it at once and the pool removes it on release.
 */
function dropOnQueryTimeout(client: pg.PoolClient): void {
  const destroy = (error: unknown): void => {
    if (error instanceof Error && error.message === READ_TIMEOUT_MESSAGE) {
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    }
  };
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const bounded = (...args: unknown[]): unknown => {
    const last = args.at(-1);
    if (typeof last === 'function') {
      const callback = last as (error: unknown, result?: unknown) => void;
      args[args.length - 1] = (error: unknown, result?: unknown): void => {
        destroy(error);
        callback(error, result);
      };
    }
    const result = query(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      destroy(error);
      throw error;
    });
  };
  (client as unknown as { query: typeof bounded }).query = bounded;
}

/** The URL without its password, for logs and status output. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable database url>';
  }
}
