// Config sync (rsync from the VIP holder to its peer): pausing and resuming it on a node, and
// checking that both nodes hold the same config once it runs again. Each action and comparison
// lands in rsync_status_record / config_sync_record.
import { UpgradeError, describeError, poll } from '@upgrade/core';
import type { NodeClient } from '../ports.js';
import type { FlowContext } from './context.js';

/** How often config checksums are compared after rsync resumed. */
export const CONFIG_POLL_INTERVAL_MS = 1000;

/** Pauses or resumes config sync on `node`, recording the outcome either way. */
export async function setRsync(
  ctx: FlowContext,
  node: NodeClient,
  action: 'pause' | 'resume',
): Promise<void> {
  // On failure the state is unknown; the record keeps the one before.
  let paused = action === 'resume';
  let ok = false;
  let message = '';
  try {
    const op = action === 'pause' ? 'rsync.pause' : 'rsync.resume';
    paused = (await ctx.nodes.call(node, op, {}, ctx.signal)).paused;
    ok = true;
    message = `config sync ${action === 'pause' ? 'paused' : 'resumed'} on ${node.id}`;
  } catch (error) {
    message = describeError(error);
    throw error;
  } finally {
    await ctx.rec.write('rsync status', () =>
      ctx.audit.rsync({
        taskId: ctx.rec.task.id,
        nodeId: node.id,
        action,
        paused,
        ok,
        message,
        at: ctx.rec.now(),
      }),
    );
  }
}

/**
 * Polls config.checksums on both nodes until their digests agree, within replicationTimeoutMs;
 * records the last comparison. Throws CHECKSUM_MISMATCH naming the files that differ.
 */
export async function awaitConfigInSync(ctx: FlowContext): Promise<void> {
  const result = await poll({
    probe: async () => {
      const all = [];
      for (const node of ctx.cluster.nodes)
        all.push({ node, sums: await ctx.nodes.call(node, 'config.checksums', {}, ctx.signal) });
      return all;
    },
    done: (all) => new Set(all.map((a) => a.sums.digest)).size === 1,
    interval: Math.min(CONFIG_POLL_INTERVAL_MS, ctx.config.replicationTimeoutMs),
    timeout: ctx.config.replicationTimeoutMs,
    signal: ctx.signal,
    clock: ctx.clock,
  });
  const all = result.observation ?? [];
  const inSync = result.status === 'done';
  await ctx.rec.write('config sync', () =>
    ctx.audit.configSync({
      taskId: ctx.rec.task.id,
      digests: Object.fromEntries(all.map((a) => [a.node.id, a.sums.digest])),
      inSync,
      at: ctx.rec.now(),
    }),
  );
  if (!inSync) {
    const [a, b] = all;
    const names = new Set([...Object.keys(a?.sums.files ?? {}), ...Object.keys(b?.sums.files ?? {})]);
    const differing = [...names].filter((f) => a?.sums.files[f] !== b?.sums.files[f]).sort();
    throw new UpgradeError(
      'CHECKSUM_MISMATCH',
      `config differs between the nodes ${ctx.config.replicationTimeoutMs} ms after rsync resumed: ${differing.join(', ') || 'digest'}`,
      { details: { files: differing } },
    );
  }
}
