// Config files locked for the length of an upgrade (seed 2.5.4): once the backups are taken, the
// synced config dir and the root key are made read-only on both nodes (config.lock), and every way
// out of the run unlocks them (config.unlock): VERIFY before rsync resumes, the rollback before it
// resumes rsync. Unlock names files whose content changed while locked; that is logged as a warning.
import type { NodeClient } from '../ports.js';
import type { FlowContext } from './context.js';

/** Locks `node`'s config files for the current task. */
export async function lockConfig(ctx: FlowContext, node: NodeClient): Promise<void> {
  const result = await ctx.nodes.call(node, 'config.lock', { owner: ctx.rec.task.id }, ctx.signal);
  await ctx.rec.log(
    'INFO',
    `config files locked on ${node.id} (${result.files} files read-only until the upgrade ends)`,
    result.alreadyLocked ? { alreadyLocked: true } : undefined,
    node.id,
  );
}

/** Unlocks `node`'s config files; a file changed while locked is a warning, never a failure. */
export async function unlockConfig(ctx: FlowContext, node: NodeClient): Promise<void> {
  const result = await ctx.nodes.call(node, 'config.unlock', {}, ctx.signal);
  if (result.changed.length > 0)
    await ctx.rec.log(
      'WARNING',
      `config files changed on ${node.id} while locked: ${result.changed.join(', ')}`,
      { changed: result.changed },
      node.id,
    );
  else
    await ctx.rec.log(
      'INFO',
      result.wasLocked ? `config files unlocked on ${node.id}` : `config files on ${node.id} were not locked`,
      undefined,
      node.id,
    );
}
