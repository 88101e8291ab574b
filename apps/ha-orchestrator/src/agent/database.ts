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

/** Runs a SQL file (schema change) in the configured database; stops at the first error. */
export async function runSqlFile(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  check(
    await ctx.run([...clientArgs(db), '-f', file], { env: db.env }),
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

/**
 * Restores a custom-format dump over the database: drops what the dump contains first. PostgreSQL:
 * `pg_restore --clean --if-exists --exit-on-error`; GaussDB's gs_restore: `-c -e` (no --if-exists).
 */
export async function restoreDatabase(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  const flags = db.kind === 'postgresql' ? ['--clean', '--if-exists', '--exit-on-error'] : ['-c', '-e'];
  const args = [...db.restore, ...connection(db), '-d', db.dbname, ...flags, file];
  check(await ctx.run(args, { env: db.env }), `restore of ${db.dbname}`, 'ROLLBACK_FAILED');
}

/** pg_is_in_recovery(): true on a standby. */
export async function isInRecovery(ctx: AgentContext): Promise<boolean> {
  const rows = await queryRows(ctx, 'select 1, pg_is_in_recovery()');
  const row = rows[0];
  if (row?.[0] !== '1') throw new UpgradeError('UNAVAILABLE', 'database answered select 1 unexpectedly');
  return row[1] === 't';
}
