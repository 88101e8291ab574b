import { UpgradeError } from '@upgrade/core';
import pg from 'pg';
import { mapPgError } from './errors.js';

/** Options of `ensureDatabase`. */
export interface EnsureDatabaseOptions {
  /** The database to connect to while creating the target. Default `postgres`. */
  maintenanceDatabase?: string;
  /** Default 5000 ms, as for the pool. */
  connectionTimeoutMillis?: number;
}

/**
 * Creates the database a PostgreSQL URL names when it does not exist yet (services have default
 * names such as `test_upgrade`); returns whether it created it. Needs the CREATEDB privilege only
 * when the database is missing. Safe when several instances race to create it.
 */
export async function ensureDatabase(
  url: string,
  options: EnsureDatabaseOptions = {},
): Promise<{ created: boolean }> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (name === '') throw new UpgradeError('CONFIG_INVALID', 'the database URL names no database');
  target.pathname = `/${encodeURIComponent(options.maintenanceDatabase ?? 'postgres')}`;
  const client = new pg.Client({
    connectionString: target.toString(),
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
  });
  client.on('error', () => undefined); // a dropped connection also rejects the pending query
  try {
    await client.connect();
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount !== 0) return { created: false };
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    return { created: true };
  } catch (error) {
    // 42P04 duplicate_database, or 23505 on pg_database's unique index: another instance won the race.
    const code = (error as { code?: unknown }).code;
    if (code === '42P04' || code === '23505') return { created: false };
    throw mapPgError(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}
