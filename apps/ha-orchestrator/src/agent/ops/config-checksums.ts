// config.checksums: SHA-256 of every file under the synced config dir, keyed by relative path, and
// one digest over the sorted list, so two nodes compare with a single string.
import { createHash } from 'node:crypto';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { sha256File } from '../hashing.js';
import type { ResultOf } from '../protocol.js';

export async function configChecksums(ctx: AgentContext): Promise<ResultOf<'config.checksums'>> {
  const root = ctx.config.configDir;
  try {
    await lstat(root);
  } catch {
    throw new UpgradeError('UNAVAILABLE', `config dir ${root} does not exist on ${ctx.config.nodeId}`);
  }
  const files: Record<string, string> = {};
  await walk(root, '', files, ctx.signal);
  const digest = createHash('sha256');
  for (const path of Object.keys(files).sort()) digest.update(`${path}\0${files[path]}\n`);
  return { digest: digest.digest('hex'), files: sortKeys(files) };
}

async function walk(
  dir: string,
  prefix: string,
  out: Record<string, string>,
  signal: AbortSignal,
): Promise<void> {
  signal.throwIfAborted();
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(dir, entry.name);
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) await walk(full, rel, out, signal);
    else if (entry.isFile()) out[rel] = await sha256File(full);
    // A link is compared by where it points, not followed (rsync -l copies links as links).
    else if (entry.isSymbolicLink())
      out[rel] = createHash('sha256')
        .update(`symlink:${await readlink(full)}`)
        .digest('hex');
    else if ((await lstat(full)).isFIFO()) continue;
  }
}

function sortKeys(files: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
