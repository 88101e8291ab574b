// Moving the database primary with the VIP, as a planned switchover: the old primary is fenced
// (stopped cleanly: clients are refused, and its WAL senders ship everything up to the shutdown
// checkpoint), the standby must have replayed past that checkpoint (so it holds every
// acknowledged commit), it is promoted, and once the VIP has moved the old primary follows it as
// a standby (pg_rewind when its history diverged); replication is verified the other way.
// The calls are here; recording, ordering with the VIP and undo live in rolling-upgrade.ts.
import { UpgradeError, poll } from '@upgrade/core';
import type { NodeClient } from '../ports.js';
import type { FlowContext } from './context.js';
import { REPLICATION_POLL_INTERVAL_MS, parseLsn } from './replication.js';

/** Stops writes on `node`; returns the LSN a standby must have replayed past. */
export async function fenceWrites(ctx: FlowContext, node: NodeClient): Promise<string> {
  const r = await ctx.nodes.call(node, 'database.fence', {}, ctx.signal);
  await ctx.rec.log(
    'INFO',
    `${node.id}: database stopped for the switchover, last checkpoint at ${r.lastLsn}`,
    {
      lastLsn: r.lastLsn,
      wasRunning: r.wasRunning,
    },
  );
  return r.lastLsn;
}

/** Waits until `standby` has replayed past `lastLsn`; TIMEOUT after replicationTimeoutMs. */
export async function awaitCaughtUp(ctx: FlowContext, standby: NodeClient, lastLsn: string): Promise<string> {
  const target = parseLsn(lastLsn);
  const result = await poll({
    probe: () => ctx.nodes.call(standby, 'replication.status', {}, ctx.signal),
    done: (s) => s.role === 'standby' && s.lsn !== null && parseLsn(s.lsn) > target,
    interval: Math.min(REPLICATION_POLL_INTERVAL_MS / 5, ctx.config.replicationTimeoutMs),
    timeout: ctx.config.replicationTimeoutMs,
    signal: ctx.signal,
    clock: ctx.clock,
  });
  if (result.status === 'done') return result.observation.lsn ?? '';
  throw new UpgradeError(
    'TIMEOUT',
    `standby ${standby.id} did not replay past ${lastLsn} within ${ctx.config.replicationTimeoutMs} ms (at ${result.observation?.lsn ?? 'unknown'}); it was not promoted`,
    { details: { lastLsn, timeoutMs: ctx.config.replicationTimeoutMs } },
  );
}

export async function promote(ctx: FlowContext, node: NodeClient): Promise<void> {
  const r = await ctx.nodes.call(node, 'database.promote', {}, ctx.signal);
  await ctx.rec.log(
    'INFO',
    `${node.id}: database ${r.promoted ? 'promoted' : 'already primary'} at ${r.lsn}`,
  );
}

/** `node` becomes a standby of `primary` (its address from the primary's own agent). */
export async function follow(ctx: FlowContext, node: NodeClient, primary: NodeClient): Promise<void> {
  const { endpoint } = await ctx.nodes.call(primary, 'replication.status', {}, ctx.signal);
  const r = await ctx.nodes.call(
    node,
    'database.follow',
    { primaryHost: endpoint.host, primaryPort: endpoint.port },
    ctx.signal,
  );
  await ctx.rec.log('INFO', `${node.id}: database follows ${primary.id} (${r.detail})`, {
    rewound: r.rewound,
    streaming: r.streaming,
  });
}

export async function unfence(ctx: FlowContext, node: NodeClient): Promise<void> {
  const r = await ctx.nodes.call(node, 'database.unfence', {}, ctx.signal);
  await ctx.rec.log('INFO', `${node.id}: database ${r.started ? 'started again' : 'was running'}`);
}
