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

/** Runs statements on the maintenance database, each `-c` in its own transaction, stopping at the first error. */
async function onMaintenance(
  ctx: AgentContext,
  statements: readonly string[],
  what: string,
  code: ErrorCode,
): Promise<RunResult> {
  const db = ctx.config.database;
  const args = [...db.client, ...connection(db), '-d', MAINTENANCE_DB, '-X', '-q', '-A', '-t'];
  args.push('-v', 'ON_ERROR_STOP=1', ...statements.flatMap((sql) => ['-c', sql]));
  return check(await ctx.run(args, { env: db.env }), what, code);
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** The live database's properties a dump restored without `--create` does not carry. */
interface DatabaseProperties {
  encoding: string;
  collate: string;
  ctype: string;
  owner: string;
  /** datlocprovider (PostgreSQL 15+; null on 14): 'i' = ICU. */
  provider: string | null;
  icuLocale: string | null;
  /** null: the default privileges (datacl is NULL). */
  acl: { grantee: string | null; privilege: string; grantable: boolean }[] | null;
  settings: { role: string | null; config: string[] }[];
}

async function readProperties(ctx: AgentContext, dbname: string): Promise<DatabaseProperties | null> {
  // One JSON row: names and settings may hold any character. to_jsonb(d) reads columns that only
  // PostgreSQL 15 has without failing on 14.
  const sql =
    `select json_build_object('encoding', pg_encoding_to_char(d.encoding), 'collate', d.datcollate, ` +
    `'ctype', d.datctype, 'owner', pg_get_userbyid(d.datdba), ` +
    `'provider', to_jsonb(d)->>'datlocprovider', 'icuLocale', to_jsonb(d)->>'daticulocale', ` +
    `'acl', case when d.datacl is null then null else coalesce((select json_agg(json_build_object(` +
    `'grantee', case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end, ` +
    `'privilege', a.privilege_type, 'grantable', a.is_grantable)) from aclexplode(d.datacl) a), '[]') end, ` +
    `'settings', coalesce((select json_agg(json_build_object('role', case when s.setrole = 0 then null ` +
    `else pg_get_userbyid(s.setrole) end, 'config', s.setconfig)) from pg_db_role_setting s ` +
    `where s.setdatabase = d.oid), '[]')) from pg_database d where d.datname = ${quoteLiteral(dbname)}`;
  const result = await onMaintenance(ctx, [sql], `reading the properties of ${dbname}`, 'ROLLBACK_FAILED');
  const line = result.stdout.trim();
  return line === '' ? null : (JSON.parse(line) as DatabaseProperties);
}

/** Settings whose value is a list, quoted element by element (as pg_dump's makeAlterConfigCommand does). */
const LIST_SETTINGS = new Set([
  'local_preload_libraries',
  'search_path',
  'session_preload_libraries',
  'shared_preload_libraries',
  'temp_tablespaces',
  'unix_socket_directories',
]);

/** `name=value` of pg_db_role_setting as the value part of `SET name TO ...`. */
function settingValue(name: string, value: string): string {
  if (!LIST_SETTINGS.has(name.toLowerCase())) return quoteLiteral(value);
  // The stored list is already in SET syntax: elements separated by commas, quoted with "" when needed.
  const elements: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quoted) {
      if (c === '"' && value[i + 1] === '"') {
        current += '"';
        i++;
      } else if (c === '"') quoted = false;
      else current += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      elements.push(current.trim());
      current = '';
    } else current += c;
  }
  elements.push(current.trim());
  return elements.map(quoteLiteral).join(', ');
}

/** GRANTs and settings that make `target` carry what `props` describe. */
function propertyStatements(target: string, props: DatabaseProperties): string[] {
  const name = quoteIdent(target);
  const statements: string[] = [];
  if (props.acl !== null) {
    statements.push(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC`);
    statements.push(`REVOKE ALL ON DATABASE ${name} FROM ${quoteIdent(props.owner)}`);
    for (const entry of props.acl) {
      const grantee = entry.grantee === null ? 'PUBLIC' : quoteIdent(entry.grantee);
      statements.push(
        `GRANT ${entry.privilege} ON DATABASE ${name} TO ${grantee}${entry.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
  for (const { role, config } of props.settings)
    for (const item of config) {
      const at = item.indexOf('=');
      if (at <= 0) continue;
      const setting = item.slice(0, at);
      const scope = role === null ? '' : `ROLE ${quoteIdent(role)} IN `;
      statements.push(
        `ALTER ${scope}DATABASE ${name} SET ${quoteIdent(setting)} TO ${settingValue(setting, item.slice(at + 1))}`,
      );
    }
  return statements;
}

/** The side database a restore loads into: the live name + a suffix, within the 63-byte limit. */
export function restoringName(dbname: string): string {
  const suffix = '__restoring';
  let base = dbname;
  while (Buffer.byteLength(base + suffix) > 63) base = base.slice(0, -1);
  return base + suffix;
}

/**
 * Puts the database back exactly as dumped, so objects a schema change added (tables, functions,
 * indexes) are gone too, which restoring over it with `--clean` would leave behind.
 *
 * PostgreSQL: the dump is loaded into a side database created like the live one (encoding,
 * collation, owner), which no client knows the name of; only once it is complete are the live
 * database's grants and settings copied to it, the live database dropped `WITH (FORCE)` (ending its
 * sessions) and the side one renamed in its place, in one psql call. Clients still connected keep
 * writing into the live database until that moment and can never write into a half-restored one;
 * a restore that fails leaves the live database as it was. Without a live database, the dump is
 * restored with `--create`.
 *
 * GaussDB (no FORCE, no rename of a database with sessions): `DROP DATABASE`, then `gs_restore -C`,
 * with the services stopped.
 */
export async function restoreDatabase(ctx: AgentContext, file: string): Promise<void> {
  const db = ctx.config.database;
  const live = quoteIdent(db.dbname);
  const props = db.kind === 'postgresql' ? await readProperties(ctx, db.dbname) : null;
  if (props === null) {
    const force = db.kind === 'postgresql' ? ' WITH (FORCE)' : '';
    await onMaintenance(
      ctx,
      [`DROP DATABASE IF EXISTS ${live}${force}`],
      `dropping ${db.dbname} before its restore`,
      'ROLLBACK_FAILED',
    );
    const flags = db.kind === 'postgresql' ? ['--create', '--exit-on-error'] : ['-C', '-e'];
    const args = [...db.restore, ...connection(db), '-d', MAINTENANCE_DB, ...flags, file];
    check(await ctx.run(args, { env: db.env }), `restore of ${db.dbname}`, 'ROLLBACK_FAILED');
    return;
  }
  const sideName = restoringName(db.dbname);
  const side = quoteIdent(sideName);
  const locale =
    props.provider === 'i' && props.icuLocale !== null
      ? ` LOCALE_PROVIDER icu ICU_LOCALE ${quoteLiteral(props.icuLocale)}`
      : '';
  // A side database left by an earlier restore that stopped half-way is dropped first.
  await onMaintenance(
    ctx,
    [
      `DROP DATABASE IF EXISTS ${side} WITH (FORCE)`,
      `CREATE DATABASE ${side} WITH TEMPLATE template0 ENCODING ${quoteLiteral(props.encoding)} ` +
        `LC_COLLATE ${quoteLiteral(props.collate)} LC_CTYPE ${quoteLiteral(props.ctype)}${locale} ` +
        `OWNER ${quoteIdent(props.owner)}`,
    ],
    `creating ${sideName} to restore ${db.dbname} into`,
    'ROLLBACK_FAILED',
  );
  const restore = await ctx.run([...db.restore, ...connection(db), '-d', sideName, '--exit-on-error', file], {
    env: db.env,
  });
  if (restore.code !== 0) {
    await onMaintenance(
      ctx,
      [`DROP DATABASE IF EXISTS ${side} WITH (FORCE)`],
      `dropping ${sideName}`,
      'ROLLBACK_FAILED',
    ).catch(() => undefined);
    check(restore, `restore of ${db.dbname} (the live database is unchanged)`, 'ROLLBACK_FAILED');
  }
  await onMaintenance(
    ctx,
    [
      ...propertyStatements(sideName, props),
      `DROP DATABASE ${live} WITH (FORCE)`,
      `ALTER DATABASE ${side} RENAME TO ${live}`,
    ],
    `putting the restored ${db.dbname} in place`,
    'ROLLBACK_FAILED',
  );
}

/** pg_is_in_recovery(): true on a standby. */
export async function isInRecovery(ctx: AgentContext): Promise<boolean> {
  const rows = await queryRows(ctx, 'select 1, pg_is_in_recovery()');
  const row = rows[0];
  if (row?.[0] !== '1') throw new UpgradeError('UNAVAILABLE', 'database answered select 1 unexpectedly');
  return row[1] === 't';
}
