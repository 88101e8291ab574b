// POST /rollback/{id}: an operator's explicit restore of the pair to what a task backed up.
//
// By default it is the rolling rollback (rolling-rollback.ts): software restored node by node with
// the VIP moved to the restored node first, the schema change undone by its rollback scripts, no
// row lost, clients served throughout. With `restore_database` it is the full restore below.
//
// The full restore is the only place the live database is replaced from its dump, which loses every write made since
// the backup; so writes are fenced on both nodes first: the services are stopped on both (the node
// without the VIP first), and the agent loads the dump into a side database, swapped in (DROP ...
// WITH (FORCE), which ends any other session, and a rename) only once it is complete. Nothing is touched before every node's backup has
// been re-hashed on its node against the checksums recorded at backup time. Then, with config
// sync paused: fence both, restore jar + config + root key on each (+ the database on the database
// primary), start each (the node without the VIP first) with `healthyChecksRequired` healthy
// checks. Every step is recorded under the task; the task's state does not change (it is final).
import { UpgradeError, describeError, isUpgradeError } from '@upgrade/core';
import type { BackupKind } from './agent/protocol.js';
import type { BackupRecord, NodeClient, UpgradeTask } from './ports.js';
import { createFlowContext, peerOf, startDeadline, type FlowContext } from './flow/context.js';
import { awaitHealthy } from './flow/health.js';
import {
  SOFTWARE_KINDS,
  awaitReplicationInSync,
  latestBackups,
  servicesOf,
  startServices,
  stopServices,
  verifyBackup,
} from './flow/node-steps.js';
import { TaskRecorder } from './flow/recorder.js';
import { setRsync } from './flow/sync.js';
import { rollBackRolling, schemaUndoProblem } from './rolling-rollback.js';
import type { UpgradeDeps } from './rolling-upgrade.js';

/** Task stores with a restore running, so two requests never restore the same pair at once. */
const restoring = new WeakSet<object>();

/** Options of `restoreFromBackup`. */
export interface RestoreOptions {
  /**
   * Also replace the database from the backup's dump: both nodes are stopped first (writes made
   * since the backup are lost). Default false: the rolling rollback, clients served throughout.
   */
  restoreDatabase?: boolean;
}

/**
 * Restores both nodes from the backups of task `taskId`. Throws UpgradeError: NOT_FOUND (no such
 * task), CONFLICT (a task or another restore is running), VALIDATION_FAILED (no backups, a node
 * without one, a backup that no longer matches its checksums, or a schema change the rolling
 * rollback cannot undo; nothing was changed), ROLLBACK_FAILED (a restore step failed or a node is
 * unhealthy afterwards), UNREACHABLE.
 */
export async function restoreFromBackup(
  deps: UpgradeDeps,
  taskId: string,
  options: RestoreOptions = {},
): Promise<UpgradeTask> {
  const task = await deps.tasks.get(taskId);
  if (task === null) throw new UpgradeError('NOT_FOUND', `task ${taskId} does not exist`);
  const active = await deps.tasks.active();
  if (active !== null)
    throw new UpgradeError(
      'CONFLICT',
      `task ${active.id} is ${active.state}; wait for it to end or cancel it first`,
      {
        details: { activeTaskId: active.id },
      },
    );
  if (restoring.has(deps.tasks))
    throw new UpgradeError('CONFLICT', 'a restore from backup is already running');
  const backups = latestBackups(await deps.audit.backups(taskId));
  if (backups.size === 0)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `task ${taskId} has no backups (it stopped before its backup step); nothing to restore from`,
    );
  const missing = deps.cluster.nodes.filter((n) => !backups.has(n.id)).map((n) => n.id);
  if (missing.length > 0)
    throw new UpgradeError('VALIDATION_FAILED', `task ${taskId} has no backup of ${missing.join(', ')}`);
  const rolling = options.restoreDatabase !== true;
  const journal = rolling ? await deps.tasks.readJournal(taskId) : null;
  const schemaProblem = rolling && task.state === 'COMPLETE' ? schemaUndoProblem(journal) : null;
  if (schemaProblem !== null)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `${schemaProblem}; nothing was changed. Restore the database from the backup instead (POST /api/v1/upgrade/rollback/{id}?restore_database=true: writes made since the backup are lost)`,
    );

  restoring.add(deps.tasks);
  const deadline = startDeadline(
    deps.clock,
    deps.config.upgradeTimeoutMs,
    `restore from the backups of ${taskId}`,
  );
  const rec = new TaskRecorder(deps, task, null);
  const ctx = createFlowContext(deps, rec, deadline.signal);
  try {
    await rec.log('WARNING', `restore from the backups of task ${taskId} requested`, {
      backups: [...backups.values()].map((b) => ({ nodeId: b.nodeId, backupId: b.backupId })),
    });
    await verifyAll(ctx, backups);
    const { first, second, databasePrimary } = await inspect(ctx);
    const restored = `restored ${deps.cluster.nodes.map((n) => n.id).join(' and ')} from the backups of task ${taskId}${
      task.fromVersion === null ? '' : ` (version ${task.fromVersion})`
    }`;
    let message: string;
    if (rolling) {
      if (ctx.config.databaseSwitchover === 1 && databasePrimary !== second)
        throw new UpgradeError(
          'VALIDATION_FAILED',
          `the database primary (${databasePrimary?.id ?? 'none'}) is not on the VIP holder ${second.id}; nothing was changed`,
        );
      await withRsyncPaused(ctx, [first, second], () => rollBackRolling(ctx, task, backups, second, journal));
      message = `${restored} node by node: ${first.id} first, then the VIP${
        ctx.config.databaseSwitchover === 1 ? ' and the database primary' : ''
      } moved to it, then ${second.id}${
        task.state === 'COMPLETE' && (journal?.changes.some((c) => c.kind === 'schema') ?? false)
          ? '; the schema change undone by its rollback scripts'
          : ''
      }; the database was not replaced, no row written meanwhile is lost; downtime ${ctx.meter.totalMs} ms`;
    } else {
      await restorePair(ctx, task, backups, [first, second], databasePrimary);
      message = `${restored}; writes were fenced on both nodes (services stopped) before the database was replaced from its dump, so writes made after the backup are gone; downtime ${ctx.meter.totalMs} ms`;
    }
    await rec.patch({ currentStep: 'restore.done', lastMessage: message });
    await rec.log('INFO', message, { downtimeMs: ctx.meter.totalMs });
    return rec.task;
  } catch (error) {
    rec.bestEffort = true;
    await rec.log('ERROR', `restore from backup failed: ${describeError(error)}`);
    throw error;
  } finally {
    deadline.stop();
    restoring.delete(deps.tasks);
  }
}

async function verifyAll(ctx: FlowContext, backups: Map<string, BackupRecord>): Promise<void> {
  for (const node of ctx.cluster.nodes) {
    const backup = backups.get(node.id) as BackupRecord;
    await ctx.rec.step(
      {
        name: 'restore.verify',
        nodeId: node.id,
        message: `verifying backup ${backup.backupId} on ${node.id}`,
      },
      async () => {
        try {
          await verifyBackup(ctx, node, backup.backupId, backup.files);
        } catch (error) {
          if (!isUpgradeError(error, 'CHECKSUM_MISMATCH')) throw error;
          throw new UpgradeError('VALIDATION_FAILED', `${error.message}; nothing was restored`, {
            ...(error.details === undefined ? {} : { details: error.details }),
          });
        }
      },
    );
  }
}

/** Which node holds the VIP (restored last) and which holds the database primary. */
async function inspect(
  ctx: FlowContext,
): Promise<{ first: NodeClient; second: NodeClient; databasePrimary: NodeClient | null }> {
  return ctx.rec.step(
    { name: 'restore.check', message: 'reading the VIP, replication and services' },
    async () => {
      let holder: NodeClient | null = null;
      let databasePrimary: NodeClient | null = null;
      for (const node of ctx.cluster.nodes) {
        if ((await ctx.nodes.call(node, 'keepalived.status', {}, ctx.signal)).holdsVip) holder ??= node;
        if ((await ctx.nodes.call(node, 'replication.status', {}, ctx.signal)).role === 'primary')
          databasePrimary ??= node;
        if (ctx.services.length === 0)
          ctx.services = servicesOf(await ctx.nodes.call(node, 'health', {}, ctx.signal));
      }
      if (ctx.services.length === 0)
        throw new UpgradeError('CONFIG_INVALID', 'the agents report no services to stop and start');
      const second = holder ?? ctx.cluster.nodes[0];
      return { first: peerOf(ctx.cluster, second), second, databasePrimary };
    },
  );
}

/** Runs `fn` with config sync paused on both nodes, resumed afterwards whatever happened. */
async function withRsyncPaused(
  ctx: FlowContext,
  order: readonly NodeClient[],
  fn: () => Promise<void>,
): Promise<void> {
  const { rec } = ctx;
  try {
    await rec.step(
      { name: 'restore.rsync_pause', message: 'pausing config sync on both nodes' },
      async () => {
        for (const node of order) await setRsync(ctx, node, 'pause');
      },
    );
    await fn();
  } finally {
    rec.bestEffort = true;
    await rec
      .step({ name: 'restore.rsync_resume', message: 'resuming config sync on both nodes' }, async () => {
        for (const node of order) await setRsync(ctx, node, 'resume');
      })
      .catch(async (error: unknown) => {
        await rec.log('ERROR', `config sync not resumed: ${describeError(error)}; resume it by hand`);
      });
  }
}

async function restorePair(
  ctx: FlowContext,
  task: UpgradeTask,
  backups: Map<string, BackupRecord>,
  order: readonly [NodeClient, NodeClient],
  databasePrimary: NodeClient | null,
): Promise<void> {
  const { rec } = ctx;
  await withRsyncPaused(ctx, order, async () => {
    const kindsOf = (node: NodeClient): BackupKind[] => [
      ...SOFTWARE_KINDS,
      ...(node === databasePrimary ? (['database'] as const) : []),
    ];
    const failure = (node: NodeClient, error: unknown): UpgradeError => {
      const backupId = (backups.get(node.id) as BackupRecord).backupId;
      return new UpgradeError(
        'ROLLBACK_FAILED',
        `restore of ${node.id} from ${backupId} failed: ${describeError(error)}`,
        {
          cause: error,
          details: { nodeId: node.id, backupId },
        },
      );
    };
    // Writes fenced on both nodes before anything is restored: no client writes into a database
    // that is about to be replaced.
    ctx.meter.open('services stopped on both nodes for the restore');
    for (const node of order) {
      try {
        await rec.step(
          {
            name: 'restore.fence',
            nodeId: node.id,
            message: `fencing writes: stopping ${ctx.services.join(', ')} on ${node.id}`,
          },
          () => stopServices(ctx, node),
        );
      } catch (error) {
        throw failure(node, error);
      }
    }
    for (const node of order) {
      const backupId = (backups.get(node.id) as BackupRecord).backupId;
      const kinds = kindsOf(node);
      try {
        await rec.step(
          {
            name: 'restore.restore',
            nodeId: node.id,
            message: `restoring ${kinds.join(', ')} on ${node.id} from ${backupId}`,
          },
          async () => {
            const r = await ctx.nodes.call(node, 'backup.restore', { backupId, kinds }, ctx.signal);
            await rec.log('INFO', `${node.id}: restored ${r.restored.join(', ')} from ${backupId}`);
          },
        );
      } catch (error) {
        throw failure(node, error);
      }
    }
    // Both are started even when the first does not come back healthy: the pair is fenced, so a
    // node left stopped would only lengthen the outage.
    const problems: UpgradeError[] = [];
    for (const node of order) {
      try {
        await rec.step(
          {
            name: 'restore.start',
            nodeId: node.id,
            message: `starting ${ctx.services.join(', ')} on ${node.id}`,
          },
          () => startServices(ctx, node),
        );
        await rec.step({ name: 'restore.health', nodeId: node.id, message: `checking ${node.id}` }, () =>
          awaitHealthy(ctx, node, {
            required: ctx.config.healthyChecksRequired,
            version: task.fromVersion,
            onHealthy: () => ctx.meter.close(),
          }),
        );
      } catch (error) {
        if (ctx.signal.aborted) throw failure(node, error);
        problems.push(failure(node, error));
      }
    }
    const [first] = problems;
    if (first !== undefined) throw first;
    await rec.step(
      { name: 'restore.replication', message: 'waiting for database replication in sync' },
      async () => {
        try {
          await awaitReplicationInSync(ctx, ctx.cluster.nodes);
        } catch (error) {
          throw new UpgradeError('ROLLBACK_FAILED', `restored, but ${describeError(error)}`, {
            cause: error,
          });
        }
      },
    );
  });
}
