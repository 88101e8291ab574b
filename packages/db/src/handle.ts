import type { PGlite } from '@electric-sql/pglite';
import type { HealthCheck } from '@upgrade/core';
import type { ExtractTablesWithRelations, SQLWrapper } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import type pg from 'pg';

/** An app's drizzle schema module (`import * as schema from './db/schema.js'`). */
export type Schema = Record<string, unknown>;

/** The drizzle database both drivers satisfy; write repositories against this type. */
export type Database<TSchema extends Schema = Record<string, never>> = PgDatabase<PgQueryResultHKT, TSchema>;

/** The transaction handed to `withTx` callbacks. */
export type Transaction<TSchema extends Schema = Record<string, never>> = PgTransaction<
  PgQueryResultHKT,
  TSchema,
  ExtractTablesWithRelations<TSchema>
>;

/** The part of a pino-like logger the database plumbing writes to. */
export interface DbLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
}

interface HandleBase<TSchema extends Schema> {
  readonly db: Database<TSchema>;
  /** Where the data lives, safe for logs: the URL without its password, or the data directory. */
  readonly target: string;
  /** Runs raw SQL and returns its rows; driver errors arrive mapped to UpgradeErrors. */
  execute<Row extends Record<string, unknown> = Record<string, unknown>>(
    query: SQLWrapper | string,
  ): Promise<Row[]>;
  /** Resolves when the database answers `SELECT 1`; rejects with UNAVAILABLE, TIMEOUT or ABORTED. */
  ping(signal?: AbortSignal): Promise<void>;
  /** A `HealthCheck` that pings; its failures carry client-safe messages only. */
  healthCheck(name?: string): HealthCheck;
  /** Ends the pool or closes PGlite; waits for checked-out connections. Safe to call twice. */
  close(): Promise<void>;
}

/** A PostgreSQL server reached through a `pg.Pool`. */
export interface PostgresHandle<TSchema extends Schema = Record<string, never>> extends HandleBase<TSchema> {
  readonly kind: 'postgres';
  /** The pool itself, for the few things drizzle cannot do (dedicated connections). */
  readonly client: pg.Pool;
}

/** An embedded, file-backed PGlite: one connection, one process. */
export interface PgliteHandle<TSchema extends Schema = Record<string, never>> extends HandleBase<TSchema> {
  readonly kind: 'pglite';
  readonly client: PGlite;
}

/** An open database of either kind; switch on `kind` for driver specifics. */
export type DatabaseHandle<TSchema extends Schema = Record<string, never>> =
  PostgresHandle<TSchema> | PgliteHandle<TSchema>;
