// state.json on local disk, written so that a crash or power cut at any instant leaves either the
// old file or the new one, never half of one: temp file, fsync, rename over, fsync the directory.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UpgradeError } from '@upgrade/core';

let sequence = 0;
/** Temp files of writes in flight in this process: a concurrent read must not remove them. */
const inFlight = new Set<string>();
/** Writes to one path queue behind each other, so the last call's value is the one that stays. */
const queues = new Map<string, Promise<void>>();

/**
 * Replaces `path` with `value` as JSON (2-space indent) atomically and durably; creates the
 * directory when missing. Failures are UNAVAILABLE errors naming the path and the errno.
 *
 * @example await writeStateFile('/var/lib/ota-updater/state.json', { stage: 'downloading', checkpoint })
 */
export async function writeStateFile(path: string, value: unknown): Promise<void> {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, null, 2);
  } catch (error) {
    throw new UpgradeError('INTERNAL', `state for ${path} is not JSON-serialisable: ${String(error)}`, {
      cause: error,
    });
  }
  if (text === undefined) throw new UpgradeError('INTERNAL', `state for ${path} is not a JSON value`);
  const content = `${text}\n`;
  const previous = queues.get(path) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => replaceFile(path, content));
  queues.set(path, mine);
  try {
    await mine;
  } finally {
    if (queues.get(path) === mine) queues.delete(path);
  }
}

/**
 * Reads a state file back through `validate` (which throws on a value it refuses); null when the
 * file does not exist. Temp files left by a write a crash interrupted are removed first. A file that
 * is not JSON or that `validate` refuses is an INTERNAL error naming the file and the reason.
 */
export async function readStateFile<T>(path: string, validate: (value: unknown) => T): Promise<T | null> {
  await removeLeftovers(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw diskError(`could not read state file ${path}`, error);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `not valid JSON (${reasonOf(error)})`, error);
  }
  try {
    return validate(raw);
  } catch (error) {
    throw corrupt(path, `not a valid state (${reasonOf(error)})`, error);
  }
}

async function replaceFile(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const temp = `${path}.tmp-${process.pid}-${++sequence}`;
  inFlight.add(temp);
  try {
    await mkdir(dir, { recursive: true });
    const file = await open(temp, 'wx', 0o644);
    try {
      await file.writeFile(content, 'utf8');
      // The bytes must be on disk before the rename makes them the state.
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    // And the rename itself must survive a power cut.
    await syncDir(dir);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw diskError(`could not write state file ${path}`, error);
  } finally {
    inFlight.delete(temp);
  }
}

async function removeLeftovers(path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw diskError(`could not list ${dir}`, error);
  }
  for (const name of names) {
    const temp = join(dir, name);
    if (name.startsWith(prefix) && !inFlight.has(temp)) await rm(temp, { force: true });
  }
}

/**
 * Writes a directory's entries to disk, so a rename or create in it survives a power cut (its mode
 * set first when given, as umask may have narrowed it).
 */
export async function syncDir(dir: string, mode?: number): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    if (mode !== undefined) await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function corrupt(path: string, reason: string, cause: unknown): UpgradeError {
  return new UpgradeError(
    'INTERNAL',
    `state file ${path} is corrupt: ${reason}; move it aside to start from a clean state`,
    { cause, retryable: false, details: { path } },
  );
}

/** Disk trouble (full, read-only, permissions) may pass once an operator fixed it. */
function diskError(message: string, cause: unknown): UpgradeError {
  const code = errnoOf(cause);
  return new UpgradeError('UNAVAILABLE', `${message}${code === undefined ? '' : ` (${code})`}`, {
    cause,
    retryable: true,
  });
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
