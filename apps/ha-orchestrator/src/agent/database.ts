// The node's database through its own command-line tools (psql / pg_dump / pg_restore, or GaussDB's
// gsql / gs_dump / gs_restore): the agent needs no driver, and the SQL it runs is fixed here.
import { UpgradeError, type ErrorCode } from '@upgrade/core';
import type { DatabaseConfig } from './config.js';
import type { AgentContext } from './context.js';
import { excerpt, type RunResult } from './exec.js';

function connection(db: DatabaseConfig): string[] {
  return ['-h', db.host, '-p', String(db.port), '-U', db.user];
}

/** Client flags: no rc file, unaligned tuples only, stop at the first error. gsql accepts the same. */
function clientArgs(db: DatabaseConfig): string[] {
  return [...db.client, ...connection(db), '-d', db.dbname, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'];
}

function check(result: RunResult, what: string, code: ErrorCode): RunResult {
  if (result.code !== 0)
    throw new UpgradeError(code, `${what} failed (exit ${result.code}): ${excerpt(result)}`, {
      details: { exitCode: result.code },
    });
  return result;
}

/** Runs fixed SQL and returns the rows, columns split on `|`. */
export async function queryRows(ctx: AgentContext, sql: string): Promise<string[][]> {
  const db = ctx.config.database;
  const result = check(
    await ctx.run([...clientArgs(db), '-c', sql], { env: db.env }),
    'database query',
    'UNAVAILABLE',
  );
  return result.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split('|'));
}

/**
 * Runs a SQL file (schema change or its rollback) in the configured database as one transaction
 * (`-1`): the first error stops it and nothing of it stays, so a failed script needs no undo.
 */
export async function runSqlFile(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  check(
    await ctx.run([...clientArgs(db), '-1', '-f', file], { env: db.env }),
    'schema script',
    'DEPLOYMENT_FAILED',
  );
}

/** Full dump in the custom format (pg_dump -Fc / gs_dump -F c). */
export async function dumpDatabase(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  const args = [...db.dump, ...connection(db), '-F', 'c', '-f', file, db.dbname];
  check(await ctx.run(args, { env: db.env }), `${db.dump[0] ?? 'dump'} of ${db.dbname}`, 'UNAVAILABLE');
}

/** The database every cluster has, to connect to while the configured one is dropped and recreated. */
const MAINTENANCE_DB = 'postgres';

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Puts the database back exactly as dumped: drops it and recreates it from the dump, so objects a
 * schema change added (tables, functions, indexes) are gone too, which restoring over it with
 * `--clean` would leave behind (it drops only what the dump holds). Services must be stopped.
 * PostgreSQL: `DROP DATABASE ... WITH (FORCE)` (ends stray connections), then `pg_restore --create`
 * from the maintenance database; GaussDB: `DROP DATABASE` (no FORCE), then `gs_restore -C`.
 */
export async function restoreDatabase(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  const force = db.kind === 'postgresql' ? ' WITH (FORCE)' : '';
  const drop = [
    ...db.client,
    ...connection(db),
    '-d',
    MAINTENANCE_DB,
    '-X',
    '-q',
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    `DROP DATABASE IF EXISTS ${quoteIdent(db.dbname)}${force}`,
  ];
  check(await ctx.run(drop, { env: db.env }), `dropping ${db.dbname} before its restore`, 'ROLLBACK_FAILED');
  const flags = db.kind === 'postgresql' ? ['--create', '--exit-on-error'] : ['-C', '-e'];
  const args = [...db.restore, ...connection(db), '-d', MAINTENANCE_DB, ...flags, file];
  check(await ctx.run(args, { env: db.env }), `restore of ${db.dbname}`, 'ROLLBACK_FAILED');
}

/** pg_is_in_recovery(): true on a standby. */
export async function isInRecovery(ctx: AgentContext): Promise<boolean> {
  const rows = await queryRows(ctx, 'select 1, pg_is_in_recovery()');
  const row = rows[0];
  if (row?.[0] !== '1') throw new UpgradeError('UNAVAILABLE', 'database answered select 1 unexpectedly');
  return row[1] === 't';
}
