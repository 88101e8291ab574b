// Moving the VIP: keepalived gives it to the running node with the highest priority, so the flow
// sets one node's priority, reloads keepalived through the agent, and watches keepalived.status on
// both nodes until the VIP is where it should be. An attempt that does not see the move within
// vipSwitchTimeoutMs is retried (the priority set and keepalived reloaded again) up to
// vipSwitchRetries times; every attempt lands in vip_switch_record.
import { UpgradeError, poll } from '@upgrade/core';
import type { NodeClient, ResultOf } from '../ports.js';
import type { FlowContext } from './context.js';

/** How often keepalived.status is read while waiting for the VIP: the downtime's resolution. */
export const VIP_POLL_INTERVAL_MS = 500;

/** keepalived accepts 1..254 (255 is reserved for the address owner). */
export const MAX_PRIORITY = 254;

/** How far above the primary's priority the standby is raised. */
export const PRIORITY_STEP = 10;

export type KeepalivedStatus = ResultOf<'keepalived.status'>;

export interface MoveVipOptions {
  /** Node holding the VIP now, and the node that must hold it afterwards. */
  from: NodeClient;
  to: NodeClient;
  /** Node whose priority is set (the one raised, or the one lowered back), and to what. */
  setOn: NodeClient;
  priority: number;
  /** Read keepalived on `to` only (when `from` cannot be reached): done once `to` holds the VIP. */
  targetOnly?: boolean;
}

/** Moves the VIP; resolves with the attempts it took, throws TIMEOUT when it never moved. */
export async function moveVip(ctx: FlowContext, options: MoveVipOptions): Promise<number> {
  const { from, to, setOn, priority } = options;
  const attempts = 1 + Math.max(0, ctx.config.vipSwitchRetries);
  let last: string = 'not observed';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const started = ctx.clock.now();
    await ctx.nodes.call(setOn, 'keepalived.set_priority', { priority }, ctx.signal);
    const result = await poll({
      probe: async () => readPair(ctx, options.targetOnly === true ? null : from, to),
      done: (s) => s.to.holdsVip && !(s.from?.holdsVip ?? false),
      interval: Math.min(VIP_POLL_INTERVAL_MS, ctx.config.vipSwitchTimeoutMs),
      timeout: ctx.config.vipSwitchTimeoutMs,
      signal: ctx.signal,
      clock: ctx.clock,
    });
    const durationMs = ctx.clock.now() - started;
    const moved = result.status === 'done';
    last = result.observation === undefined ? 'not observed' : describePair(from, to, result.observation);
    const message = moved
      ? `VIP ${ctx.cluster.vip} moved from ${from.id} to ${to.id} in ${durationMs} ms`
      : `VIP ${ctx.cluster.vip} did not move from ${from.id} to ${to.id} within ${ctx.config.vipSwitchTimeoutMs} ms (${last})`;
    await ctx.rec.write('VIP switch', () =>
      ctx.audit.vipSwitch({
        taskId: ctx.rec.task.id,
        fromNode: from.id,
        toNode: to.id,
        attempt,
        ok: moved,
        durationMs,
        message,
        at: new Date(ctx.clock.now()),
      }),
    );
    await ctx.rec.log(moved ? 'INFO' : 'WARNING', `VIP switch attempt ${attempt}/${attempts}: ${message}`, {
      attempt,
      fromNode: from.id,
      toNode: to.id,
      priority,
      durationMs,
    });
    if (moved) return attempt;
  }
  throw new UpgradeError(
    'TIMEOUT',
    `VIP ${ctx.cluster.vip} did not move from ${from.id} to ${to.id} in ${attempts} attempts of ${ctx.config.vipSwitchTimeoutMs} ms (${last}); check keepalived on both nodes`,
    { details: { attempts, timeoutMs: ctx.config.vipSwitchTimeoutMs } },
  );
}

interface PairStatus {
  from: KeepalivedStatus | null;
  to: KeepalivedStatus;
}

async function readPair(ctx: FlowContext, from: NodeClient | null, to: NodeClient): Promise<PairStatus> {
  const fromStatus = from === null ? null : await ctx.nodes.call(from, 'keepalived.status', {}, ctx.signal);
  const toStatus = await ctx.nodes.call(to, 'keepalived.status', {}, ctx.signal);
  return { from: fromStatus, to: toStatus };
}

function describePair(from: NodeClient, to: NodeClient, s: PairStatus): string {
  const one = (node: NodeClient, k: KeepalivedStatus | null): string =>
    k === null
      ? `${node.id} not read`
      : `${node.id} ${k.state} priority ${k.priority}${k.holdsVip ? ' holds VIP' : ''}`;
  return `${one(from, s.from)}, ${one(to, s.to)}`;
}
