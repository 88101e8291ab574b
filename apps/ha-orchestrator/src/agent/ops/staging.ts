// The staging dir: files the orchestrator uploads (SFTP) before an install. Callers name staged
// files by plain name only; a name never resolves outside the staging dir.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { sha256File } from '../hashing.js';
import type { ResultOf } from '../protocol.js';

/** The staged file `name` (already checked as a plain name); NOT_FOUND when it is not there. */
export async function stagedFile(ctx: AgentContext, name: string): Promise<string> {
  const path = join(ctx.config.stagingDir, name);
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new UpgradeError(
      'NOT_FOUND',
      `staged file ${name} not found in ${ctx.config.stagingDir}; upload it first`,
    );
  }
  if (!info.isFile()) throw new UpgradeError('VALIDATION_FAILED', `staged ${name} is not a regular file`);
  return path;
}

/** The staged file's SHA-256, refused with CHECKSUM_MISMATCH when it is not `expected`. */
export async function verifiedStagedFile(ctx: AgentContext, name: string, expected: string): Promise<string> {
  const path = await stagedFile(ctx, name);
  const actual = await sha256File(path);
  if (actual !== expected.toLowerCase())
    throw new UpgradeError(
      'CHECKSUM_MISMATCH',
      `staged ${name} has SHA-256 ${actual}, expected ${expected.toLowerCase()}; upload it again`,
      { details: { stagedName: name, actual, expected: expected.toLowerCase() } },
    );
  return path;
}

export async function cleanStaging(
  ctx: AgentContext,
  args: { prefix: string },
): Promise<ResultOf<'staging.clean'>> {
  const dir = ctx.config.stagingDir;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { removed: [] };
  }
  const removed: string[] = [];
  for (const name of names.sort()) {
    // Upload leftovers (`.<name>.part-*`) of this prefix go too.
    if (!name.startsWith(args.prefix) && !name.startsWith(`.${args.prefix}`)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return { removed };
}

/** Transport op: where uploads go. */
export function stagingInfo(ctx: AgentContext): { dir: string } {
  return { dir: ctx.config.stagingDir };
}

/** Transport op: the SHA-256 and size of a staged file as written on the node. */
export async function stagedDigest(
  ctx: AgentContext,
  args: { stagedName: string },
): Promise<{ stagedName: string; sha256: string; sizeBytes: number }> {
  const path = await stagedFile(ctx, args.stagedName);
  const [sha256, info] = await Promise.all([sha256File(path), stat(path)]);
  return { stagedName: args.stagedName, sha256, sizeBytes: info.size };
}
