// config.lock / config.unlock: the synced config dir (and the root key) made read-only for the
// length of an upgrade, so an edit on one node cannot slip in while rsync is paused (seed 2.5.4).
// The lock is a record in the staging dir, written before any mode changes: each file's mode and
// SHA-256 at lock time. Unlock puts every recorded mode back and names the files whose content
// changed meanwhile (root can still write a read-only file: the change is then reported, not
// refused). Locking an already locked node keeps the first record's modes, so a lock left by an
// orchestrator that died is undone by the next unlock.
import { chmod, lstat, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { writeAtomic } from '../files.js';
import { sha256File } from '../hashing.js';
import type { ArgsOf, ResultOf } from '../protocol.js';

/** The lock record's name in the staging dir (never a task id prefix, so staging.clean keeps it). */
export const LOCK_RECORD = '.config-lock.json';

const WRITE_BITS = 0o222;

interface LockRecord {
  owner: string;
  lockedAt: string;
  /** Absolute path -> mode and SHA-256 at lock time. */
  files: Record<string, { mode: number; sha256: string }>;
}

export async function lockConfig(
  ctx: AgentContext,
  args: ArgsOf<'config.lock'>,
): Promise<ResultOf<'config.lock'>> {
  const previous = await readRecord(ctx);
  const current = await lockedFiles(ctx);
  const files: LockRecord['files'] = {};
  for (const path of current) {
    ctx.signal.throwIfAborted();
    const kept = previous?.files[path];
    const mode = kept?.mode ?? (await lstat(path)).mode & 0o7777;
    files[path] = { mode, sha256: kept?.sha256 ?? (await sha256File(path)) };
  }
  const record: LockRecord = { owner: args.owner, lockedAt: new Date().toISOString(), files };
  // Written before any mode changes: whatever happens next, unlock knows what to put back.
  await writeAtomic(recordPath(ctx), `${JSON.stringify(record)}\n`, 0o600);
  for (const [path, { mode }] of Object.entries(files)) await chmod(path, mode & ~WRITE_BITS);
  return { locked: true, files: current.length, alreadyLocked: previous !== null };
}

export async function unlockConfig(ctx: AgentContext): Promise<ResultOf<'config.unlock'>> {
  const record = await readRecord(ctx);
  if (record === null) return { locked: false, files: 0, changed: [], wasLocked: false };
  const changed: string[] = [];
  let restored = 0;
  for (const [path, { mode, sha256 }] of Object.entries(record.files)) {
    try {
      await chmod(path, mode);
      restored++;
      if ((await sha256File(path)) !== sha256) changed.push(path);
    } catch {
      // Gone (or replaced by a restore of the config dir, which brings its own modes).
      changed.push(path);
    }
  }
  await rm(recordPath(ctx), { force: true });
  return { locked: false, files: restored, changed: changed.sort(), wasLocked: true };
}

function recordPath(ctx: AgentContext): string {
  return join(ctx.config.stagingDir, LOCK_RECORD);
}

async function readRecord(ctx: AgentContext): Promise<LockRecord | null> {
  let text: string;
  try {
    text = await readFile(recordPath(ctx), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = JSON.parse(text) as LockRecord;
    if (typeof parsed.files !== 'object' || parsed.files === null) throw new Error('no files');
    return parsed;
  } catch {
    throw new UpgradeError(
      'CONFIG_INVALID',
      `config lock record ${recordPath(ctx)} on ${ctx.config.nodeId} is unreadable; check the config file modes and remove it`,
    );
  }
}

/** Regular files under the config dir (links and the rest are left alone), and the root key. */
async function lockedFiles(ctx: AgentContext): Promise<string[]> {
  const { configDir, rootKeyPath, nodeId } = ctx.config;
  try {
    await lstat(configDir);
  } catch {
    throw new UpgradeError('UNAVAILABLE', `config dir ${configDir} does not exist on ${nodeId}`);
  }
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    ctx.signal.throwIfAborted();
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) out.push(full);
    }
  };
  await walk(configDir);
  try {
    if ((await lstat(rootKeyPath)).isFile()) out.push(rootKeyPath);
  } catch {
    // No root key on this node: nothing to lock there.
  }
  return out.sort();
}
