// backup.space: will the next backup fit? Free space where backups are written (statfs of the
// backup dir, or the nearest existing parent) against an estimate of what backup.create writes:
// the jar, the config dir, the root key and the database (its on-disk size; a dump is smaller).
import { readdir, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { queryRows } from '../database.js';
import type { ResultOf } from '../protocol.js';

async function sizeOf(path: string): Promise<number> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const entry of await readdir(path)) total += await sizeOf(join(path, entry));
  return total;
}

async function freeBytesAt(dir: string): Promise<number> {
  let path = dir;
  for (;;) {
    try {
      const fs = await statfs(path);
      return fs.bavail * fs.bsize;
    } catch (error) {
      const parent = dirname(path);
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path)
        throw new UpgradeError('UNAVAILABLE', `cannot read free space of ${dir}`);
      path = parent;
    }
  }
}

export async function backupSpace(ctx: AgentContext): Promise<ResultOf<'backup.space'>> {
  const { backupDir, jar, configDir, rootKeyPath } = ctx.config;
  const rows = await queryRows(ctx, 'select pg_database_size(current_database())');
  const database = Number(rows[0]?.[0] ?? '0');
  const neededBytes =
    (await sizeOf(jar.path)) +
    (await sizeOf(configDir)) +
    (await sizeOf(rootKeyPath)) +
    (Number.isFinite(database) ? database : 0);
  return { dir: backupDir, freeBytes: await freeBytesAt(backupDir), neededBytes };
}
