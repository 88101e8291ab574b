// File moves the agent makes: always write beside the target, fsync, then rename, so a crash leaves
// either the old or the new file, never half of one.
import { randomBytes } from 'node:crypto';
import { copyFile, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A temp path in the same directory as `target` (same file system, so rename is atomic). */
export function tempBeside(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${randomBytes(6).toString('hex')}`);
}

/** Replaces `target` with a copy of `source` atomically, keeping `mode` (default: the old file's, else 0644). */
export async function copyAtomic(source: string, target: string, mode?: number): Promise<void> {
  const temp = tempBeside(target);
  const keepMode = mode ?? (await modeOf(target)) ?? 0o644;
  try {
    await copyFile(source, temp);
    await syncAndChmod(temp, keepMode);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Replaces `target` with `content` atomically. */
export async function writeAtomic(target: string, content: string, mode?: number): Promise<void> {
  const temp = tempBeside(target);
  const keepMode = mode ?? (await modeOf(target)) ?? 0o644;
  try {
    const handle = await open(temp, 'w', keepMode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncAndChmod(temp, keepMode);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function syncAndChmod(path: string, mode: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function modeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).mode & 0o7777;
  } catch {
    return null;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
