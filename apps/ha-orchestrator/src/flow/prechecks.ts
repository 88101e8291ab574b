// The pre-checks: read-only, before anything on the pair changes (no rsync pause, no backup, no
// schema change). Each has a name; the first that fails ends the task with "pre-check <name>
// failed: <reason>" (details.check = the name) and nothing changed.
//
//   health                  both nodes answer healthy
//   versions                both nodes run the same version, and not already the package's
//   vip                     exactly one node holds the VIP
//   keepalived.priorities   the VIP holder's priority is above its peer's, both within 1..254: the
//                           switch swaps the two values, so they never drift
//   database.primary        exactly one database primary; on the VIP holder when the orchestrator
//                           moves the primary with the VIP (databaseSwitchover=1)
//   replication.*           a standby streams from the primary, seen on the primary and confirmed
//                           from the standby (replication.connected), replay within the byte and
//                           millisecond bounds (replication.lag)
//   backup.space            each node's backup dir has room for the backup plus the margin
import { UpgradeError, describeError, isUpgradeError, type ErrorCode } from '@upgrade/core';
import type { NodeClient, UpgradePackage } from '../ports.js';
import { peerOf, type FlowContext } from './context.js';
import { awaitHealthy, type HealthAnswer } from './health.js';
import { servicesOf } from './node-steps.js';
import { judgeReplication, readReplication } from './replication.js';
import { MAX_PRIORITY } from './vip.js';

export type PreCheck =
  | 'health'
  | 'versions'
  | 'vip'
  | 'keepalived.priorities'
  | 'database.primary'
  | 'replication.roles'
  | 'replication.connected'
  | 'replication.lag'
  | 'backup.space';

export interface PairFacts {
  primary: NodeClient;
  standby: NodeClient;
  databasePrimary: NodeClient;
  fromVersion: string | null;
  priorities: Map<string, number>;
}

/** A pre-check that failed: the task's error names it. */
export function preCheckFailed(check: PreCheck, code: ErrorCode, reason: string): UpgradeError {
  return new UpgradeError(code, `pre-check ${check} failed: ${reason}`, { details: { check } });
}

const MiB = 1024 * 1024;

export async function runPreChecks(ctx: FlowContext, pkg: UpgradePackage): Promise<PairFacts> {
  const passed: string[] = [];

  const health = new Map<string, HealthAnswer>();
  for (const node of ctx.cluster.nodes) {
    try {
      health.set(node.id, await awaitHealthy(ctx, node, { required: 1, version: null }));
    } catch (error) {
      if (!isUpgradeError(error) || error.code === 'ABORTED') throw error;
      throw preCheckFailed('health', error.code, `${node.id}: ${describeError(error)}`);
    }
  }
  passed.push('health');

  const holders: NodeClient[] = [];
  const priorities = new Map<string, number>();
  for (const node of ctx.cluster.nodes) {
    const k = await ctx.nodes.call(node, 'keepalived.status', {}, ctx.signal);
    priorities.set(node.id, k.priority);
    if (k.holdsVip) holders.push(node);
  }
  const [primary] = holders;
  if (holders.length !== 1 || primary === undefined)
    throw preCheckFailed(
      'vip',
      'UNAVAILABLE',
      holders.length === 0
        ? `no node holds VIP ${ctx.cluster.vip}; fix keepalived before upgrading`
        : `both nodes claim VIP ${ctx.cluster.vip}; fix keepalived before upgrading`,
    );
  const standby = peerOf(ctx.cluster, primary);
  passed.push('vip');

  const fromVersion = health.get(primary.id)?.version ?? null;
  const standbyVersion = health.get(standby.id)?.version ?? null;
  if (fromVersion === pkg.version && standbyVersion === pkg.version)
    throw preCheckFailed('versions', 'CONFLICT', `both nodes already run ${pkg.version}; nothing to upgrade`);
  if (standbyVersion !== fromVersion)
    throw preCheckFailed(
      'versions',
      'CONFLICT',
      `nodes run different versions (${primary.id} ${fromVersion ?? 'unknown'}, ${standby.id} ${standbyVersion ?? 'unknown'}); bring both to one version first (restore or finish the earlier upgrade)`,
    );
  passed.push('versions');

  const high = priorities.get(primary.id) ?? 0;
  const low = priorities.get(standby.id) ?? 0;
  if (!(high > low && low >= 1 && high <= MAX_PRIORITY))
    throw preCheckFailed(
      'keepalived.priorities',
      'CONFIG_INVALID',
      `VIP holder ${primary.id} has priority ${high}, ${standby.id} has ${low}; the switch swaps the two, so the holder's must be the higher and both within 1..${MAX_PRIORITY}`,
    );
  passed.push('keepalived.priorities');

  const views = await readReplication(ctx, ctx.cluster.nodes);
  const dbPrimaries = views.filter((v) => v.status.role === 'primary').map((v) => v.node);
  const [databasePrimary] = dbPrimaries;
  if (dbPrimaries.length !== 1 || databasePrimary === undefined)
    throw preCheckFailed(
      'database.primary',
      'UNAVAILABLE',
      `expected one database primary, found ${dbPrimaries.length}; fix replication before upgrading`,
    );
  if (ctx.config.databaseSwitchover === 1 && databasePrimary !== primary)
    throw preCheckFailed(
      'database.primary',
      'CONFLICT',
      `the database primary is ${databasePrimary.id} but the VIP is on ${primary.id}; clients writing through the VIP would reach a standby. Move one of them first`,
    );
  passed.push('database.primary');

  const verdict = judgeReplication(views, ctx.config);
  if (!verdict.ok) throw preCheckFailed(verdict.check, 'UNAVAILABLE', verdict.reason);
  passed.push('replication');

  const space: Record<string, { freeBytes: number; neededBytes: number }> = {};
  for (const node of ctx.cluster.nodes) {
    const s = await ctx.nodes.call(node, 'backup.space', {}, ctx.signal);
    space[node.id] = { freeBytes: s.freeBytes, neededBytes: s.neededBytes };
    if (s.freeBytes < s.neededBytes + ctx.config.backupSpaceMarginBytes)
      throw preCheckFailed(
        'backup.space',
        'UNAVAILABLE',
        `${node.id} has ${(s.freeBytes / MiB).toFixed(0)} MiB free in ${s.dir}; the backup needs about ${(s.neededBytes / MiB).toFixed(0)} MiB plus the ${(ctx.config.backupSpaceMarginBytes / MiB).toFixed(0)} MiB margin`,
      );
  }
  passed.push('backup.space');

  if (ctx.services.length === 0) {
    const answer = health.get(primary.id);
    if (answer !== undefined) ctx.services = servicesOf(answer);
  }
  if (ctx.services.length === 0)
    throw new UpgradeError('CONFIG_INVALID', `the agent on ${primary.id} reports no services to upgrade`);

  await ctx.rec.log('INFO', `pre-checks passed: ${passed.join(', ')}; ${verdict.summary}`, {
    checks: passed,
    priorities: Object.fromEntries(priorities),
    replication: Object.fromEntries(views.map((v) => [v.node.id, v.status])),
    space,
  });
  return { primary, standby, databasePrimary, fromVersion, priorities };
}
