// Files the journal must not depend on WORK_DIR for. WORK_DIR may be a tmpfs or cleaned by an
// operator after a reboot; the schema rollback scripts are small and are kept in the journal
// itself, and the package's jar is used to finish forward only when it is still there, intact.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { FlowContext } from './context.js';

/**
 * Runs `use` with the rollback script's path: the unpacked file when it is still there, else a
 * copy written from the journal (checked against the recorded SHA-256 on arrival like any staged
 * file) and removed afterwards.
 */
export async function withRollbackScript<T>(
  ctx: FlowContext,
  change: { localPath: string; stagedName: string; sha256: string; content?: string },
  use: (path: string) => Promise<T>,
): Promise<T> {
  if (existsSync(change.localPath)) return use(change.localPath);
  if (change.content === undefined)
    throw new UpgradeError(
      'ROLLBACK_FAILED',
      `rollback script ${change.stagedName} is gone from ${change.localPath} and the journal has no copy of it`,
    );
  // Synchronous: a few kilobytes, and nothing else of the rollback runs meanwhile.
  const dir = mkdtempSync(join(tmpdir(), 'ha-rollback-'));
  try {
    const path = join(dir, change.stagedName);
    writeFileSync(path, change.content, { mode: 0o600 });
    await ctx.rec.log('INFO', `rollback script ${change.stagedName} taken from the task's journal`);
    return await use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether `path` is a file with SHA-256 `sha256` (hex). */
export async function fileMatches(path: string, sha256: string): Promise<boolean> {
  if (!(await exists(path))) return false;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex') === sha256;
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
