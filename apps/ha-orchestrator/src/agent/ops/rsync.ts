// Config sync (rsync from the primary, run by a systemd unit, usually a timer): pause = stop the
// unit, resume = start it. The sync job writes {"lastSyncAt": ISO, "lastResult": "ok"|"failed"}
// to the status file after each run.
import { readFile } from 'node:fs/promises';
import type { AgentContext } from '../context.js';
import type { ResultOf } from '../protocol.js';
import { systemctlChange, systemctlIsActive } from '../systemctl.js';

export async function pauseRsync(ctx: AgentContext): Promise<ResultOf<'rsync.pause'>> {
  await systemctlChange(ctx, 'stop', ctx.config.rsync.unit);
  return { paused: true };
}

export async function resumeRsync(ctx: AgentContext): Promise<ResultOf<'rsync.resume'>> {
  await systemctlChange(ctx, 'start', ctx.config.rsync.unit);
  return { paused: false };
}

export async function rsyncStatus(ctx: AgentContext): Promise<ResultOf<'rsync.status'>> {
  const active = await systemctlIsActive(ctx, ctx.config.rsync.unit);
  const status = await readStatusFile(ctx.config.rsync.statusFile);
  return { paused: !active, ...status };
}

async function readStatusFile(
  path: string,
): Promise<{ lastSyncAt: string | null; lastResult: 'ok' | 'failed' | null }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return { lastSyncAt: null, lastResult: null };
  }
  const record = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const at = record.lastSyncAt;
  const result = record.lastResult;
  return {
    lastSyncAt: typeof at === 'string' && !Number.isNaN(Date.parse(at)) ? new Date(at).toISOString() : null,
    lastResult: result === 'ok' || result === 'failed' ? result : null,
  };
}
