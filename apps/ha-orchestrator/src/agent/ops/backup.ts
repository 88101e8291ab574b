// backup.create / verify / restore. One backup is a directory `<backupDir>/<backupId>` holding the
// jar, the config dir as a tar, the root key, a full database dump and manifest.json (what was
// saved, its MD5 and SHA-256, the version installed). It is written as a hidden `.partial` dir and
// renamed when complete, so retention and restore never see half a backup.
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { AgentContext } from '../context.js';
import { dumpDatabase, restoreDatabase } from '../database.js';
import { excerpt } from '../exec.js';
import { copyAtomic, exists, writeAtomic } from '../files.js';
import { hashFile } from '../hashing.js';
import type { BackupFile, BackupKind, ResultOf } from '../protocol.js';
import { readVersion } from './jar.js';

const MANIFEST = 'manifest.json';

interface BackupManifest {
  backupId: string;
  nodeId: string;
  createdAt: string;
  version: string | null;
  files: BackupFile[];
}

export async function createBackup(
  ctx: AgentContext,
  args: { backupId: string; retention: number },
): Promise<ResultOf<'backup.create'>> {
  const { backupDir, jar, configDir, rootKeyPath, nodeId } = ctx.config;
  const dir = join(backupDir, args.backupId);
  if (await exists(dir))
    throw new UpgradeError(
      'CONFLICT',
      `backup ${args.backupId} already exists on ${nodeId}; use a new backup id`,
    );
  await mkdir(backupDir, { recursive: true, mode: 0o700 });
  const partial = join(backupDir, `.${args.backupId}.partial-${randomBytes(4).toString('hex')}`);
  await mkdir(partial, { mode: 0o700 });
  try {
    const saved: { kind: BackupKind; name: string }[] = [];
    const jarName = basename(jar.path);
    await copyRequired(jar.path, join(partial, jarName), 'jar');
    saved.push({ kind: 'jar', name: jarName });

    const tar = await ctx.run(['tar', '-cf', join(partial, 'config.tar'), '-C', configDir, '.']);
    if (tar.code !== 0)
      throw new UpgradeError('UNAVAILABLE', `cannot archive config dir ${configDir}: ${excerpt(tar)}`);
    saved.push({ kind: 'config', name: 'config.tar' });

    await copyRequired(rootKeyPath, join(partial, 'root_key'), 'root key');
    await chmod(join(partial, 'root_key'), 0o600);
    saved.push({ kind: 'root_key', name: 'root_key' });

    await dumpDatabase(ctx, join(partial, 'database.dump'));
    saved.push({ kind: 'database', name: 'database.dump' });

    const files: BackupFile[] = [];
    for (const { kind, name } of saved) {
      ctx.signal.throwIfAborted();
      files.push({ kind, path: join(dir, name), ...(await hashFile(join(partial, name))) });
    }
    const manifest: BackupManifest = {
      backupId: args.backupId,
      nodeId,
      createdAt: new Date().toISOString(),
      version: await readVersion(jar.versionFile),
      files,
    };
    await writeFile(join(partial, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    await rename(partial, dir);
    const removed = await applyRetention(backupDir, args.retention);
    return { backupId: args.backupId, dir, files, removed };
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
}

async function copyRequired(source: string, target: string, what: string): Promise<void> {
  try {
    await copyFile(source, target);
  } catch (error) {
    throw new UpgradeError(
      'UNAVAILABLE',
      `cannot back up the ${what} ${source}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Keeps the newest `retention` complete backups; removes older ones and leftovers of failed runs. */
async function applyRetention(backupDir: string, retention: number): Promise<string[]> {
  const complete: { id: string; createdAt: string }[] = [];
  const removed: string[] = [];
  for (const entry of await readdir(backupDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    if (entry.name.startsWith('.') && entry.name.includes('.partial-')) {
      // A partial dir of a run still going would be younger than a minute; only old ones are leftovers.
      const age = Date.now() - (await stat(join(backupDir, entry.name))).mtimeMs;
      if (age > 60 * 60_000) await rm(join(backupDir, entry.name), { recursive: true, force: true });
      continue;
    }
    const manifest = await readManifest(join(backupDir, entry.name));
    if (manifest !== null) complete.push({ id: entry.name, createdAt: manifest.createdAt });
  }
  complete.sort((a, b) =>
    a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : a.createdAt < b.createdAt ? 1 : -1,
  );
  for (const old of complete.slice(retention)) {
    await rm(join(backupDir, old.id), { recursive: true, force: true });
    removed.push(old.id);
  }
  return removed;
}

async function readManifest(dir: string): Promise<BackupManifest | null> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as BackupManifest;
    return typeof parsed.createdAt === 'string' && Array.isArray(parsed.files) ? parsed : null;
  } catch {
    return null;
  }
}

async function requireManifest(
  ctx: AgentContext,
  backupId: string,
): Promise<{ dir: string; manifest: BackupManifest }> {
  const dir = join(ctx.config.backupDir, backupId);
  const manifest = await readManifest(dir);
  if (manifest === null)
    throw new UpgradeError(
      'NOT_FOUND',
      `backup ${backupId} not found on ${ctx.config.nodeId} (or it is incomplete)`,
    );
  return { dir, manifest };
}

export async function verifyBackup(
  ctx: AgentContext,
  args: { backupId: string; files: Pick<BackupFile, 'kind' | 'path' | 'md5' | 'sha256'>[] },
): Promise<ResultOf<'backup.verify'>> {
  const dir = resolve(ctx.config.backupDir, args.backupId);
  for (const file of args.files)
    if (!resolve(file.path).startsWith(dir + sep))
      throw new UpgradeError(
        'VALIDATION_FAILED',
        `backup file ${file.path} is not inside backup ${args.backupId}`,
        {
          details: { field: 'files' },
        },
      );
  const mismatches: { kind: BackupKind; path: string; reason: string }[] = [];
  for (const file of args.files) {
    ctx.signal.throwIfAborted();
    const reason = await compareFile(file.path, file.md5, file.sha256);
    if (reason !== null) mismatches.push({ kind: file.kind, path: file.path, reason });
  }
  return { ok: mismatches.length === 0, mismatches };
}

async function compareFile(path: string, md5: string, sha256: string): Promise<string | null> {
  let actual;
  try {
    actual = await hashFile(path);
  } catch {
    return 'missing';
  }
  if (actual.md5 !== md5.toLowerCase()) return `md5 is ${actual.md5}, expected ${md5.toLowerCase()}`;
  if (actual.sha256 !== sha256.toLowerCase())
    return `sha256 is ${actual.sha256}, expected ${sha256.toLowerCase()}`;
  return null;
}

export async function restoreBackup(
  ctx: AgentContext,
  args: { backupId: string; kinds: BackupKind[] },
): Promise<ResultOf<'backup.restore'>> {
  const { manifest } = await requireManifest(ctx, args.backupId);
  const kinds = [...new Set(args.kinds)];
  const chosen = kinds.map((kind) => {
    const file = manifest.files.find((f) => f.kind === kind);
    if (file === undefined)
      throw new UpgradeError('NOT_FOUND', `backup ${args.backupId} holds no ${kind} file`, {
        details: { kind },
      });
    return file;
  });
  // Every file is checked before anything is touched: a damaged backup restores nothing.
  for (const file of chosen) {
    const reason = await compareFile(file.path, file.md5, file.sha256);
    if (reason !== null)
      throw new UpgradeError(
        'CHECKSUM_MISMATCH',
        `backup ${args.backupId} ${file.kind} file ${file.path}: ${reason}; restore refused`,
        {
          details: { kind: file.kind },
        },
      );
  }
  const restored: BackupKind[] = [];
  for (const file of chosen) {
    ctx.signal.throwIfAborted();
    await restoreOne(ctx, file, manifest);
    restored.push(file.kind);
  }
  return { restored };
}

async function restoreOne(ctx: AgentContext, file: BackupFile, manifest: BackupManifest): Promise<void> {
  const { jar, configDir, rootKeyPath } = ctx.config;
  switch (file.kind) {
    case 'jar':
      await copyAtomic(file.path, jar.path);
      if (manifest.version !== null) await writeAtomic(jar.versionFile, `${manifest.version}\n`);
      return;
    case 'root_key':
      await mkdir(dirname(rootKeyPath), { recursive: true });
      await copyAtomic(file.path, rootKeyPath, 0o600);
      return;
    case 'config':
      await restoreConfigDir(ctx, file.path, configDir);
      return;
    case 'database':
      await restoreDatabase(ctx, file.path);
      return;
  }
}

/** Unpacks beside the config dir, then swaps the two directories by rename. */
async function restoreConfigDir(ctx: AgentContext, archive: string, configDir: string): Promise<void> {
  const suffix = randomBytes(4).toString('hex');
  const fresh = `${configDir}.restore-${suffix}`;
  const replaced = `${configDir}.replaced-${suffix}`;
  await mkdir(fresh, { recursive: true });
  try {
    const untar = await ctx.run(['tar', '-xf', archive, '-C', fresh]);
    if (untar.code !== 0)
      throw new UpgradeError('ROLLBACK_FAILED', `cannot unpack config backup ${archive}: ${excerpt(untar)}`);
    const hadDir = await exists(configDir);
    if (hadDir) await rename(configDir, replaced);
    await rename(fresh, configDir);
    if (hadDir) await rm(replaced, { recursive: true, force: true });
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
}
