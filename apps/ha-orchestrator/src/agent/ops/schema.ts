// schema.apply: a staged .sql script, checked against its SHA-256, run by the configured client
// with ON_ERROR_STOP (the first failing statement stops the script and fails the operation).
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { runSqlFile } from '../database.js';
import type { ResultOf } from '../protocol.js';
import { verifiedStagedFile } from './staging.js';

export async function applySchema(
  ctx: AgentContext,
  args: { stagedName: string; sha256: string },
): Promise<ResultOf<'schema.apply'>> {
  if (!args.stagedName.endsWith('.sql'))
    throw new UpgradeError('VALIDATION_FAILED', `schema script ${args.stagedName} must be a .sql file`, {
      details: { field: 'stagedName' },
    });
  const path = await verifiedStagedFile(ctx, args.stagedName, args.sha256);
  const started = Date.now();
  await runSqlFile(ctx, path);
  return { applied: true, durationMs: Date.now() - started };
}
