import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQLWrapper } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/pglite';
import { mapPgError, translatePgErrors } from './errors.js';
import type { PgliteHandle, Schema } from './handle.js';
import { pingHealthCheck, pingWith } from './ping.js';

/** Options of `openPglite`. */
export interface OpenPgliteOptions<TSchema extends Schema> {
  /** Created if missing. Only one process may open a data directory at a time. */
  dataDir: string;
  schema?: TSchema;
}

/**
 * An embedded PostgreSQL in `dataDir`. The first start runs initdb (~2 s, ~800 MB RSS);
 * later starts reopen the files (~0.3 s), so open one per process and keep it.
 */
export async function openPglite<TSchema extends Schema = Record<string, never>>(
  options: OpenPgliteOptions<TSchema>,
): Promise<PgliteHandle<TSchema>> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  let client: PGlite;
  try {
    client = await PGlite.create(dataDir);
  } catch (error) {
    throw mapPgError(error);
  }
  const db = drizzle<TSchema>({ client, schema: options.schema });
  const execute = <Row extends Record<string, unknown>>(query: SQLWrapper | string): Promise<Row[]> =>
    translatePgErrors(
      async () => (await db.execute(typeof query === 'string' ? sql.raw(query) : query)).rows as Row[],
    );
  const ping = (signal?: AbortSignal): Promise<void> => pingWith(() => client.query('SELECT 1'), signal);
  let closing: Promise<void> | undefined;

  return {
    kind: 'pglite',
    db,
    client,
    target: dataDir,
    execute,
    ping,
    healthCheck: (name = 'database') => pingHealthCheck(name, 'pglite', ping),
    close: () => (closing ??= client.closed ? Promise.resolve() : client.close()),
  };
}
