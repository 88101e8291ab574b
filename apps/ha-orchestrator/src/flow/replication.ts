// What "replication in sync" means everywhere in the flow: exactly one primary; on the primary, a
// standby streaming from it whose replay is within the lag bounds (bytes and milliseconds); and the
// same confirmed from the standby: its WAL receiver streams and its replay is within the bounds. A
// disconnected standby is never in sync, however little it has left to replay.
import { UpgradeError, poll } from '@upgrade/core';
import type { FlowConfig, NodeClient, ResultOf } from '../ports.js';
import type { FlowContext } from './context.js';

/** How often replication.status is read while waiting for the standby to catch up. */
export const REPLICATION_POLL_INTERVAL_MS = 1000;

export type ReplicationStatus = ResultOf<'replication.status'>;

export interface ReplicationView {
  node: NodeClient;
  status: ReplicationStatus;
}

export type ReplicationVerdict =
  | { ok: true; primary: NodeClient; standby: NodeClient | null; summary: string }
  | { ok: false; check: 'replication.roles' | 'replication.connected' | 'replication.lag'; reason: string };

const MiB = 1024 * 1024;
const bytes = (n: number): string => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} B`);

function overBound(s: ReplicationStatus, config: FlowConfig): string | null {
  if (s.lagBytes === null) return 'lag unknown';
  if (s.lagBytes > config.replicationMaxLagBytes)
    return `${bytes(s.lagBytes)} behind (bound ${bytes(config.replicationMaxLagBytes)})`;
  if (s.lagMs !== null && s.lagMs > config.replicationMaxLagMs)
    return `${s.lagMs} ms behind (bound ${config.replicationMaxLagMs} ms)`;
  return null;
}

/**
 * Judges the pair from each node's replication.status. With one node only (the other cannot be
 * reached), only its role is judged: nothing can confirm a standby.
 */
export function judgeReplication(views: readonly ReplicationView[], config: FlowConfig): ReplicationVerdict {
  const primaries = views.filter((v) => v.status.role === 'primary');
  const [primary] = primaries;
  if (primaries.length !== 1 || primary === undefined)
    return {
      ok: false,
      check: 'replication.roles',
      reason: `expected one database primary, found ${primaries.length} (${views.map((v) => `${v.node.id} ${v.status.role}`).join(', ')})`,
    };
  if (views.length < 2)
    return { ok: true, primary: primary.node, standby: null, summary: `${primary.node.id} primary` };
  const standbys = views.filter((v) => v !== primary);
  const [standby] = standbys;
  if (standby === undefined || standby.status.role !== 'standby')
    return {
      ok: false,
      check: 'replication.roles',
      reason: `${standby?.node.id ?? 'the peer'} is not a standby (${standby?.status.role ?? 'unknown'})`,
    };
  if (!primary.status.connected)
    return {
      ok: false,
      check: 'replication.connected',
      reason: `no standby streams from primary ${primary.node.id} (${primary.status.detail})`,
    };
  if (!standby.status.connected)
    return {
      ok: false,
      check: 'replication.connected',
      reason: `standby ${standby.node.id} does not stream from ${primary.node.id} (${standby.status.detail})`,
    };
  const onPrimary = overBound(primary.status, config);
  if (onPrimary !== null)
    return {
      ok: false,
      check: 'replication.lag',
      reason: `standby ${standby.node.id} is ${onPrimary} as seen on primary ${primary.node.id}`,
    };
  const onStandby = overBound(standby.status, config);
  if (onStandby !== null)
    return {
      ok: false,
      check: 'replication.lag',
      reason: `standby ${standby.node.id} replay is ${onStandby}`,
    };
  return {
    ok: true,
    primary: primary.node,
    standby: standby.node,
    summary: `${standby.node.id} streams from ${primary.node.id}, ${primary.status.lagBytes ?? 0} B / ${primary.status.lagMs ?? 0} ms behind`,
  };
}

export async function readReplication(
  ctx: FlowContext,
  nodes: readonly NodeClient[],
): Promise<ReplicationView[]> {
  const views: ReplicationView[] = [];
  for (const node of nodes)
    views.push({ node, status: await ctx.nodes.call(node, 'replication.status', {}, ctx.signal) });
  return views;
}

/**
 * Waits until the pair is in sync as judgeReplication says, and the standby has replayed up to
 * where the primary was at the first look (so a change made just before, such as a schema script,
 * is on the standby too); throws TIMEOUT after replicationTimeoutMs naming what was still wrong.
 * `expectPrimary`: the node that must be primary.
 */
export async function awaitReplicationInSync(
  ctx: FlowContext,
  nodes: readonly NodeClient[],
  expectPrimary?: NodeClient,
): Promise<ReplicationView[]> {
  let last = 'not read';
  let target: bigint | null = null;
  const result = await poll({
    probe: () => readReplication(ctx, nodes),
    done: (views) => {
      const verdict = judgeReplication(views, ctx.config);
      if (!verdict.ok) last = verdict.reason;
      else if (expectPrimary !== undefined && verdict.primary !== expectPrimary)
        last = `the database primary is ${verdict.primary.id}, expected ${expectPrimary.id}`;
      else {
        if (verdict.standby === null) return true;
        const primaryLsn = views.find((v) => v.node === verdict.primary)?.status.lsn ?? null;
        const standbyLsn = views.find((v) => v.node === verdict.standby)?.status.lsn ?? null;
        if (primaryLsn === null || standbyLsn === null) return true;
        target ??= parseLsn(primaryLsn);
        if (parseLsn(standbyLsn) >= target) return true;
        last = `standby ${verdict.standby.id} has replayed up to ${standbyLsn}, not yet ${primaryLsn}`;
      }
      return false;
    },
    interval: Math.min(REPLICATION_POLL_INTERVAL_MS, ctx.config.replicationTimeoutMs),
    timeout: ctx.config.replicationTimeoutMs,
    signal: ctx.signal,
    clock: ctx.clock,
  });
  if (result.status === 'done') return result.observation;
  throw new UpgradeError(
    'TIMEOUT',
    `database replication not in sync on ${nodes.map((n) => n.id).join(', ')} within ${ctx.config.replicationTimeoutMs} ms: ${last}`,
    { details: { timeoutMs: ctx.config.replicationTimeoutMs } },
  );
}

/** `X/Y` as PostgreSQL prints a WAL position, as a number that compares. */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (match === null) throw new UpgradeError('UNAVAILABLE', `"${lsn}" is not a WAL position`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}
