// The database side of a planned switchover, the way Patroni does one: the old primary is stopped
// cleanly (its WAL senders ship everything up to the shutdown checkpoint before they exit, so a
// caught-up standby has every acknowledged commit), the standby is promoted, and the old primary
// comes back as a standby of the new one, rewound with pg_rewind when its history diverged.
// PostgreSQL only: GaussDB does its own switchover (gs_ctl switchover), configure the pair as
// managed elsewhere there.
import { chown, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError, systemClock } from '@upgrade/core';
import type { DatabaseConfig } from '../config.js';
import type { AgentContext } from '../context.js';
import { isInRecovery, queryRows } from '../database.js';
import { excerpt, type RunResult } from '../exec.js';
import type { ResultOf } from '../protocol.js';

interface SwitchoverTools {
  db: DatabaseConfig;
  ctl: readonly string[];
  dataDir: string;
  controldata: readonly string[];
}

function tools(ctx: AgentContext): SwitchoverTools {
  const db = ctx.config.database;
  if (db.kind !== 'postgresql')
    throw new UpgradeError(
      'CONFIG_INVALID',
      `a switchover by the orchestrator needs PostgreSQL; ${db.kind} switches over with its own tools (set databaseSwitchover=0)`,
    );
  const missing = [
    db.ctl === undefined ? 'database.ctl' : null,
    db.dataDir === undefined ? 'database.dataDir' : null,
    db.controldata === undefined ? 'database.controldata' : null,
  ].filter((m) => m !== null);
  if (db.ctl === undefined || db.dataDir === undefined || db.controldata === undefined)
    throw new UpgradeError(
      'CONFIG_INVALID',
      `agent config on ${ctx.config.nodeId} lacks ${missing.join(', ')}, needed for a switchover (or set databaseSwitchover=0)`,
      { details: { field: missing[0] } },
    );
  return { db, ctl: db.ctl, dataDir: db.dataDir, controldata: db.controldata };
}

function checked(result: RunResult, what: string, code: 'UNAVAILABLE' | 'DEPLOYMENT_FAILED'): RunResult {
  if (result.code !== 0)
    throw new UpgradeError(code, `${what} failed (exit ${result.code}): ${excerpt(result)}`, {
      details: { exitCode: result.code },
    });
  return result;
}

const seconds = (ctx: AgentContext): string => String(Math.max(1, Math.floor(ctx.remaining() / 1000) - 1));

/** pg_ctl status: exit 0 running, 3 not running. */
async function running(ctx: AgentContext, t: SwitchoverTools): Promise<boolean> {
  const result = await ctx.run([...t.ctl, 'status'], { env: t.db.env });
  if (result.code === 0) return true;
  if (result.code === 3) return false;
  throw new UpgradeError('UNAVAILABLE', `pg_ctl status failed (exit ${result.code}): ${excerpt(result)}`);
}

async function stopClean(ctx: AgentContext, t: SwitchoverTools): Promise<boolean> {
  if (!(await running(ctx, t))) return false;
  checked(
    await ctx.run([...t.ctl, 'stop', '-m', 'fast', '-w', '-t', seconds(ctx)], { env: t.db.env }),
    'stopping the database',
    'UNAVAILABLE',
  );
  return true;
}

async function start(ctx: AgentContext, t: SwitchoverTools): Promise<void> {
  checked(
    await ctx.run([...t.ctl, 'start', '-w', '-t', seconds(ctx)], { env: t.db.env }),
    'starting the database',
    'UNAVAILABLE',
  );
}

/** pg_controldata of a stopped cluster: its state and the last checkpoint's LSN. */
async function controlData(
  ctx: AgentContext,
  t: SwitchoverTools,
): Promise<{ state: string; checkpoint: string }> {
  const result = checked(
    await ctx.run([...t.controldata, '-D', t.dataDir], { env: { ...t.db.env, LC_ALL: 'C' } }),
    'pg_controldata',
    'UNAVAILABLE',
  );
  const field = (name: string): string | undefined =>
    new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(result.stdout)?.[1]?.trim();
  const state = field('Database cluster state') ?? 'unknown';
  const checkpoint = field('Latest checkpoint location');
  if (checkpoint === undefined || !/^[0-9A-F]+\/[0-9A-F]+$/i.test(checkpoint))
    throw new UpgradeError('UNAVAILABLE', 'pg_controldata gave no latest checkpoint location');
  return { state, checkpoint };
}

export async function fenceDatabase(ctx: AgentContext): Promise<ResultOf<'database.fence'>> {
  const t = tools(ctx);
  const wasRunning = await stopClean(ctx, t);
  const control = await controlData(ctx, t);
  if (control.state !== 'shut down' && control.state !== 'shut down in recovery')
    throw new UpgradeError(
      'UNAVAILABLE',
      `the database on ${ctx.config.nodeId} did not shut down cleanly (cluster state: ${control.state})`,
    );
  return { lastLsn: control.checkpoint, wasRunning };
}

export async function unfenceDatabase(ctx: AgentContext): Promise<ResultOf<'database.unfence'>> {
  const t = tools(ctx);
  if (await running(ctx, t)) return { started: false };
  await start(ctx, t);
  return { started: true };
}

export async function promoteDatabase(ctx: AgentContext): Promise<ResultOf<'database.promote'>> {
  const t = tools(ctx);
  let promoted = false;
  if (await isInRecovery(ctx)) {
    checked(
      await ctx.run([...t.ctl, 'promote', '-w', '-t', seconds(ctx)], { env: t.db.env }),
      'promoting the standby',
      'DEPLOYMENT_FAILED',
    );
    promoted = true;
  }
  if (await isInRecovery(ctx))
    throw new UpgradeError(
      'DEPLOYMENT_FAILED',
      `the database on ${ctx.config.nodeId} is still in recovery after promote`,
    );
  // The new timeline reaches pg_control only with a checkpoint; pg_rewind against this server
  // reads it from there.
  const rows = await queryRows(ctx, 'checkpoint; select pg_current_wal_lsn()');
  return { promoted, lsn: rows.at(-1)?.[0] ?? '' };
}

const RECOVERY_LINE = /^\s*(primary_conninfo|primary_slot_name|recovery_target_timeline)\s*=.*$/gm;

/** standby.signal and primary_conninfo (in postgresql.auto.conf), owned like the data dir. */
async function writeStandbyConfig(
  ctx: AgentContext,
  t: SwitchoverTools,
  primary: { primaryHost: string; primaryPort: number },
): Promise<void> {
  const owner = await stat(t.dataDir);
  const autoConf = join(t.dataDir, 'postgresql.auto.conf');
  let text = '';
  try {
    text = await readFile(autoConf, 'utf8');
  } catch {
    text = '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n';
  }
  const conninfo = `host=${primary.primaryHost} port=${primary.primaryPort} user=${t.db.user} application_name=${ctx.config.nodeId}`;
  const updated =
    `${text
      .replace(RECOVERY_LINE, '')
      .replace(/\n{2,}/g, '\n')
      .replace(/\n?$/, '\n')}` +
    `primary_conninfo = '${conninfo.replaceAll("'", "''")}'\nrecovery_target_timeline = 'latest'\n`;
  const temp = `${autoConf}.ha-tmp`;
  await writeFile(temp, updated, { mode: 0o600 });
  await chown(temp, owner.uid, owner.gid);
  await rename(temp, autoConf);
  const signal = join(t.dataDir, 'standby.signal');
  await writeFile(signal, '', { mode: 0o600 });
  await chown(signal, owner.uid, owner.gid);
}

async function receiverStreaming(ctx: AgentContext): Promise<boolean> {
  try {
    const rows = await queryRows(
      ctx,
      "select coalesce((select status from pg_stat_wal_receiver limit 1), 'stopped')",
    );
    return rows[0]?.[0] === 'streaming';
  } catch {
    return false;
  }
}

/** How long a started standby gets to reach the primary before follow reports it not streaming. */
const STREAM_WAIT_MS = 15_000;

export async function followPrimary(
  ctx: AgentContext,
  args: { primaryHost: string; primaryPort: number },
): Promise<ResultOf<'database.follow'>> {
  const t = tools(ctx);
  if ((await running(ctx, t)) && (await isInRecovery(ctx)) && (await receiverStreaming(ctx))) {
    const rows = await queryRows(ctx, 'select conninfo from pg_stat_wal_receiver');
    if ((rows[0]?.[0] ?? '').includes(`host=${args.primaryHost}`))
      return { rewound: false, streaming: true, detail: `already streaming from ${args.primaryHost}` };
  }
  await stopClean(ctx, t);
  let rewound = false;
  let detail = 'no pg_rewind configured';
  const rewind = t.db.rewind;
  if (rewind !== undefined) {
    const source = `host=${args.primaryHost} port=${args.primaryPort} user=${t.db.user} dbname=postgres`;
    const result = checked(
      await ctx.run([...rewind, '--target-pgdata', t.dataDir, '--source-server', source], { env: t.db.env }),
      'pg_rewind',
      'DEPLOYMENT_FAILED',
    );
    const output = `${result.stdout}\n${result.stderr}`;
    rewound = !/no rewind required/i.test(output);
    detail = rewound ? 'history diverged: rewound with pg_rewind' : 'no rewind required';
  }
  await writeStandbyConfig(ctx, t, args);
  await start(ctx, t);
  const until = Date.now() + Math.min(STREAM_WAIT_MS, ctx.remaining());
  let streaming = await receiverStreaming(ctx);
  while (!streaming && Date.now() < until) {
    await systemClock.sleep(200, ctx.signal);
    streaming = await receiverStreaming(ctx);
  }
  return {
    rewound,
    streaming,
    detail: `${detail}; ${streaming ? `streaming from ${args.primaryHost}` : `not streaming from ${args.primaryHost} yet`}`,
  };
}
