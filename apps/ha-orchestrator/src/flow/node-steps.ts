// Node-level steps the upgrade, its rollback and the restore share: services, replication,
// backups. Each is one or a few agent calls; recording is left to the caller's step.
import { UpgradeError } from '@upgrade/core';
import type { BackupFile, BackupKind } from '../agent/protocol.js';
import type { BackupRecord, NodeClient, ResultOf } from '../ports.js';
import type { FlowContext } from './context.js';
import type { HealthAnswer } from './health.js';

export {
  REPLICATION_POLL_INTERVAL_MS,
  awaitReplicationInSync,
  type ReplicationStatus,
} from './replication.js';

/** The kinds a node's software restore brings back; the database only when the schema changed. */
export const SOFTWARE_KINDS: readonly BackupKind[] = ['jar', 'config', 'root_key'];

/** The services the agent reports (one per checked port), in the order it reports them. */
export function servicesOf(answer: HealthAnswer): string[] {
  return [...new Set(answer.ports.map((p) => p.service))];
}

/** Stops the services, last started first. */
export async function stopServices(ctx: FlowContext, node: NodeClient): Promise<void> {
  for (const service of [...ctx.services].reverse()) {
    const r = await ctx.nodes.call(node, 'service.stop', { service }, ctx.signal);
    if (r.active)
      throw new UpgradeError('DEPLOYMENT_FAILED', `${service} on ${node.id} is still active after stop`);
  }
}

export async function startServices(ctx: FlowContext, node: NodeClient): Promise<void> {
  for (const service of ctx.services) {
    const r = await ctx.nodes.call(node, 'service.start', { service }, ctx.signal);
    if (!r.active)
      throw new UpgradeError('DEPLOYMENT_FAILED', `${service} on ${node.id} did not stay active after start`);
  }
}

/** Creates a backup on `node`, applying the retention, and returns what was written. */
export async function createBackup(
  ctx: FlowContext,
  node: NodeClient,
  backupId: string,
): Promise<ResultOf<'backup.create'>> {
  const created = await ctx.nodes.call(
    node,
    'backup.create',
    { backupId, retention: Math.max(1, ctx.config.backupRetention) },
    ctx.signal,
  );
  const kinds = new Set(created.files.map((f) => f.kind));
  const missing = (['jar', 'config', 'root_key', 'database'] as const).filter((k) => !kinds.has(k));
  if (missing.length > 0)
    throw new UpgradeError(
      'DEPLOYMENT_FAILED',
      `backup ${backupId} on ${node.id} lacks ${missing.join(', ')}`,
    );
  return created;
}

/** Re-hashes a backup on its node; throws CHECKSUM_MISMATCH naming every file that differs. */
export async function verifyBackup(
  ctx: FlowContext,
  node: NodeClient,
  backupId: string,
  files: readonly BackupFile[],
): Promise<void> {
  const result = await ctx.nodes.call(
    node,
    'backup.verify',
    { backupId, files: files.map((f) => ({ kind: f.kind, path: f.path, md5: f.md5, sha256: f.sha256 })) },
    ctx.signal,
  );
  if (!result.ok || result.mismatches.length > 0)
    throw new UpgradeError(
      'CHECKSUM_MISMATCH',
      `backup ${backupId} on ${node.id} does not match its checksums: ${
        result.mismatches.map((m) => `${m.kind} ${m.path} (${m.reason})`).join(', ') || 'verification failed'
      }`,
      { details: { nodeId: node.id, backupId, mismatches: result.mismatches } },
    );
}

/**
 * Copies a local file into `node`'s staging dir and checks the SHA-256 it arrived with. `staged`
 * learns the node first, so a copy that fails half-way is still cleaned up.
 */
export async function stageFile(
  ctx: FlowContext,
  staged: Set<NodeClient>,
  node: NodeClient,
  file: { localPath: string; stagedName: string; sha256: string },
): Promise<void> {
  staged.add(node);
  const written = await ctx.nodes.putFile(node, file.localPath, file.stagedName, ctx.signal);
  if (written.sha256 !== file.sha256)
    throw new UpgradeError(
      'CHECKSUM_MISMATCH',
      `${file.stagedName} arrived on ${node.id} with SHA-256 ${written.sha256}, expected ${file.sha256}`,
    );
}

/** The newest backup record of each node. */
export function latestBackups(records: readonly BackupRecord[]): Map<string, BackupRecord> {
  const byNode = new Map<string, BackupRecord>();
  for (const r of records) {
    const seen = byNode.get(r.nodeId);
    if (seen === undefined || r.at.getTime() >= seen.at.getTime()) byNode.set(r.nodeId, r);
  }
  return byNode;
}
