import { UpgradeError } from '@upgrade/core';
import type { DatabaseHandle, DbLogger, Schema } from './handle.js';
import { openPglite } from './pglite.js';
import { openPostgres, type PoolOptions } from './postgres.js';

/** Where the database is and how to reach it; `url` wins over `dataDir`. */
export interface OpenDatabaseOptions<TSchema extends Schema> {
  /** A PostgreSQL URL (`DATABASE_URL`); when set, the pg pool is used and `dataDir` is ignored. */
  url?: string;
  /** Where the embedded PGlite keeps its files when no `url` is given, e.g. `./data/rcu-scheduler`. */
  dataDir?: string;
  /** pg only: PGlite has one in-process connection and nothing to bound. */
  pool?: PoolOptions;
  logger?: DbLogger;
  /** The app's drizzle schema, for `db.query.<table>` relational queries. */
  schema?: TSchema;
}

/**
 * Opens the app's database: PostgreSQL when `url` is set, else an embedded PGlite in `dataDir`.
 *
 * @example const handle = await openDatabase({ url: env.DATABASE_URL, dataDir: './data/rcu', schema })
 */
export async function openDatabase<TSchema extends Schema = Record<string, never>>(
  options: OpenDatabaseOptions<TSchema>,
): Promise<DatabaseHandle<TSchema>> {
  if (options.url !== undefined && options.url !== '') {
    return openPostgres({
      url: options.url,
      pool: options.pool,
      logger: options.logger,
      schema: options.schema,
    });
  }
  if (options.dataDir !== undefined && options.dataDir !== '') {
    return openPglite({ dataDir: options.dataDir, schema: options.schema });
  }
  throw new UpgradeError(
    'CONFIG_INVALID',
    'openDatabase needs a url (PostgreSQL) or a dataDir (embedded PGlite)',
  );
}
