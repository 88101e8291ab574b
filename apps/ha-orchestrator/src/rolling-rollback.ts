// POST /rollback/{id} of a completed upgrade, without clients noticing: the node that does not
// hold the VIP is restored first (jar, config, root key from the task's backup) and checked on the
// old version; then the database primary and the VIP move to it (the planned switchover: fence,
// catch up, promote, keepalived priorities swapped, the other database follows); then the other
// node is restored the same way; last, the release's schema change is undone by its rollback
// scripts (kept in the task's journal) on the database primary, once no node runs the new version.
// No row written meanwhile is lost: the live database is never replaced from its dump (that is
// the full restore, restore.ts, `?restore_database=true`). For a task of the usual shape (VIP moved to
// the upgraded standby) the pair ends with the VIP where it was before the upgrade.
import { UpgradeError, describeError } from '@upgrade/core';
import type { BackupRecord, JournalChange, NodeClient, TaskJournal, UpgradeTask } from './ports.js';
import { peerOf, type FlowContext } from './flow/context.js';
import { awaitHealthy } from './flow/health.js';
import { withRollbackScript } from './flow/journal-files.js';
import { SOFTWARE_KINDS, stageFile, startServices, stopServices } from './flow/node-steps.js';
import { awaitReplicationInSync } from './flow/replication.js';
import { awaitCaughtUp, fenceWrites, follow, promote } from './flow/switchover.js';
import { moveVip } from './flow/vip.js';

type SchemaChange = Extract<JournalChange, { kind: 'schema' }>;

/**
 * Why the rolling rollback cannot undo this task's schema change (null when it can): a rollback
 * script neither in the journal nor on disk. Checked before anything changes.
 */
export function schemaUndoProblem(journal: TaskJournal | null): string | null {
  if (journal === null) return null;
  const missing = journal.changes.filter(
    (c): c is SchemaChange => c.kind === 'schema' && c.content === undefined,
  );
  return missing.length === 0
    ? null
    : `the task's journal holds no copy of rollback script ${missing.map((c) => c.stagedName).join(', ')}`;
}

/**
 * Restores the pair node by node with the VIP always on a serving node, as the head comment says.
 * `holder` holds the VIP (and, with databaseSwitchover=1, the database primary) when it starts.
 */
export async function rollBackRolling(
  ctx: FlowContext,
  task: UpgradeTask,
  backups: Map<string, BackupRecord>,
  holder: NodeClient,
  journal: TaskJournal | null,
): Promise<void> {
  const { rec } = ctx;
  const other = peerOf(ctx.cluster, holder);
  const managed = ctx.config.databaseSwitchover === 1;

  await restoreSoftware(ctx, task, backups, other);
  await switchover(ctx, holder, other, managed, task.fromVersion);
  await restoreSoftware(ctx, task, backups, holder);
  // Only a completed upgrade still has its schema change; a failed one was undone by its own rollback.
  const scripts =
    task.state === 'COMPLETE'
      ? (journal?.changes ?? []).filter((c): c is SchemaChange => c.kind === 'schema')
      : [];
  for (const change of [...scripts].reverse()) {
    await rec.step(
      {
        name: 'restore.schema',
        nodeId: other.id,
        message: `running rollback script ${change.index + 1} of the schema change on database primary ${other.id}`,
      },
      () =>
        withRollbackScript(ctx, change, async (localPath) => {
          const staged = new Set<NodeClient>();
          await stageFile(ctx, staged, other, {
            localPath,
            stagedName: change.stagedName,
            sha256: change.sha256,
          });
          await ctx.nodes.call(
            other,
            'schema.apply',
            { stagedName: change.stagedName, sha256: change.sha256 },
            ctx.signal,
          );
        }),
    );
  }
  if (scripts.length === 0) return;
  await rec.step({ name: 'restore.staging', message: 'removing staged rollback scripts' }, async () => {
    await ctx.nodes.call(other, 'staging.clean', { prefix: task.id }, ctx.signal);
  });
  await rec.step({ name: 'restore.replication', message: 'waiting for database replication in sync' }, () =>
    awaitReplicationInSync(ctx, ctx.cluster.nodes, managed ? other : undefined),
  );
}

/** Stop, restore jar + config + root key, start, healthy on the version from before. */
async function restoreSoftware(
  ctx: FlowContext,
  task: UpgradeTask,
  backups: Map<string, BackupRecord>,
  node: NodeClient,
): Promise<void> {
  const backupId = (backups.get(node.id) as BackupRecord).backupId;
  try {
    await restoreNode(ctx, task, backupId, node);
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    throw new UpgradeError(
      'ROLLBACK_FAILED',
      `restore of ${node.id} from ${backupId} failed: ${describeError(error)}`,
      { cause: error, details: { nodeId: node.id, backupId } },
    );
  }
}

async function restoreNode(
  ctx: FlowContext,
  task: UpgradeTask,
  backupId: string,
  node: NodeClient,
): Promise<void> {
  const { rec } = ctx;
  await rec.step(
    { name: 'restore.stop', nodeId: node.id, message: `stopping ${ctx.services.join(', ')} on ${node.id}` },
    () => stopServices(ctx, node),
  );
  await rec.step(
    {
      name: 'restore.restore',
      nodeId: node.id,
      message: `restoring ${SOFTWARE_KINDS.join(', ')} on ${node.id} from ${backupId}`,
    },
    async () => {
      const r = await ctx.nodes.call(
        node,
        'backup.restore',
        { backupId, kinds: [...SOFTWARE_KINDS] },
        ctx.signal,
      );
      await rec.log('INFO', `${node.id}: restored ${r.restored.join(', ')} from ${backupId}`);
    },
  );
  await rec.step(
    { name: 'restore.start', nodeId: node.id, message: `starting ${ctx.services.join(', ')} on ${node.id}` },
    () => startServices(ctx, node),
  );
  await rec.step(
    {
      name: 'restore.health',
      nodeId: node.id,
      message: `checking ${node.id} on ${task.fromVersion ?? 'its old version'}`,
    },
    () => awaitHealthy(ctx, node, { required: ctx.config.healthyChecksRequired, version: task.fromVersion }),
  );
}

/**
 * Moves the database primary (when managed) and the VIP from `from` to `to`, which is healthy on
 * the restored version: the same planned switchover as the upgrade's, priorities swapped.
 */
async function switchover(
  ctx: FlowContext,
  from: NodeClient,
  to: NodeClient,
  managed: boolean,
  version: string | null,
): Promise<void> {
  const { rec } = ctx;
  const [fromKa, toKa] = await Promise.all(
    [from, to].map((n) => ctx.nodes.call(n, 'keepalived.status', {}, ctx.signal)),
  );
  const high = fromKa?.priority ?? 0;
  const low = toKa?.priority ?? 0;
  if (!(high > low))
    throw new UpgradeError(
      'CONFIG_INVALID',
      `keepalived priorities ${from.id} ${high}, ${to.id} ${low} cannot be swapped; the holder's must be the higher`,
    );
  if (managed) {
    ctx.meter.open(`writes fenced on ${from.id} to move the database primary to ${to.id}`);
    await rec.step(
      {
        name: 'restore.database_replication',
        message: `waiting for ${to.id} to be in sync with ${from.id}`,
      },
      () => awaitReplicationInSync(ctx, ctx.cluster.nodes, from),
    );
    const lastLsn = await rec.step(
      { name: 'restore.database_fence', nodeId: from.id, message: `fencing writes on ${from.id}` },
      () => fenceWrites(ctx, from),
    );
    await rec.step(
      {
        name: 'restore.database_catch_up',
        nodeId: to.id,
        message: `waiting for ${to.id} to replay past ${lastLsn}`,
      },
      () => awaitCaughtUp(ctx, to, lastLsn),
    );
    await rec.step(
      { name: 'restore.database_promote', nodeId: to.id, message: `promoting ${to.id}'s database` },
      () => promote(ctx, to),
    );
  }
  await rec.step(
    {
      name: 'restore.vip',
      nodeId: to.id,
      message: `swapping keepalived priorities: ${to.id} ${low} -> ${high}, ${from.id} ${high} -> ${low}; VIP to ${to.id}`,
    },
    async () => {
      ctx.meter.open(`VIP moving from ${from.id} to ${to.id}`);
      await ctx.nodes.call(to, 'keepalived.set_priority', { priority: high }, ctx.signal);
      await moveVip(ctx, { from, to, setOn: from, priority: low });
    },
  );
  await rec.step(
    { name: 'restore.vip_health', nodeId: to.id, message: `checking ${to.id} behind the VIP` },
    () => awaitHealthy(ctx, to, { required: 1, version, onHealthy: () => ctx.meter.close() }),
  );
  if (managed) {
    await rec.step(
      {
        name: 'restore.database_follow',
        nodeId: from.id,
        message: `${from.id}'s database follows ${to.id}`,
      },
      () => follow(ctx, from, to),
    );
    await rec.step(
      { name: 'restore.database_replication', message: `checking replication from ${to.id} to ${from.id}` },
      () => awaitReplicationInSync(ctx, ctx.cluster.nodes, to),
    );
  }
}
