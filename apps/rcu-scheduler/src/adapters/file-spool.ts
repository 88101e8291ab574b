// ResultSpool on local disk: one JSON file per finished round whose results still have to reach
// the database. Written so that a crash or power cut leaves either the old file, the new file or
// none, never half of one, and so that a damaged file costs one round's results, not the service.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import type { FinalHostStatus, ResultSpool, SpooledResult, UpgradeLogEntry } from '../ports.js';

/** The part of a pino-like logger the spool writes to. */
export interface SpoolLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Options of `createFileSpool`. */
export interface FileSpoolOptions {
  /** Where corrupt files and stale temp files are reported. Default: console.warn. */
  logger?: SpoolLogger;
  /** Temp files older than this are leftovers of a crash mid-write and removed by `list`. Default 10 min. */
  staleTempMs?: number;
}

const SPOOL_SUFFIX = '.json';
const TEMP_SUFFIX = '.tmp';
const CORRUPT_SUFFIX = '.corrupt';
/** Round ids are uuids; anything else could name a path outside the spool directory. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const FINAL_STATUSES: ReadonlySet<string> = new Set<FinalHostStatus>(['completed', 'failed', 'timeout']);

const consoleLogger: SpoolLogger = { warn: (obj, msg) => console.warn(msg, obj) };

/**
 * A spool of finished rounds' results in `dir` (created when missing), surviving restarts.
 *
 * @example const spool = createFileSpool('./data/rcu-scheduler/spool', { logger: app.log })
 */
export function createFileSpool(dir: string, options: FileSpoolOptions = {}): ResultSpool {
  const logger = options.logger ?? consoleLogger;
  const staleTempMs = options.staleTempMs ?? 10 * 60_000;
  const fileOf = (roundId: string): string => join(dir, `${checkedName(roundId)}${SPOOL_SUFFIX}`);

  return {
    async put(roundId, batch) {
      if (batch.roundId !== roundId)
        throw new UpgradeError(
          'VALIDATION_FAILED',
          `spool put(${roundId}) got the results of round ${batch.roundId}; spool each round under its own id`,
        );
      const target = fileOf(roundId);
      // A unique temp name per write: two writers of one round never share a half-written file.
      const temp = `${target}.${process.pid}-${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`;
      try {
        await mkdir(dir, { recursive: true });
        const file = await open(temp, 'wx');
        try {
          await file.writeFile(JSON.stringify(batch), 'utf8');
          // The data must be on disk before the rename makes it visible under the real name.
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(temp, target);
        await syncDir(dir);
      } catch (error) {
        // Best effort: the failure to report is the write's, not the clean-up's.
        await rm(temp, { force: true }).catch(() => undefined);
        throw spoolFailed(`could not write ${target}`, error);
      }
    },

    async list() {
      const names = await readdirOrEmpty(dir);
      const results: SpooledResult[] = [];
      for (const name of names) {
        const path = join(dir, name);
        if (name.endsWith(TEMP_SUFFIX)) {
          await removeStaleTemp(path, staleTempMs, logger);
          continue;
        }
        if (!name.endsWith(SPOOL_SUFFIX)) continue;
        let text: string;
        try {
          text = await readFile(path, 'utf8');
        } catch (error) {
          // Removed by a concurrent `remove` between readdir and here: nothing to replay.
          if (isErrno(error, 'ENOENT')) continue;
          throw spoolFailed(`could not read ${path}`, error);
        }
        try {
          const result = parseSpooled(text);
          // `remove(roundId)` deletes by file name: a file holding another round would be replayed forever.
          if (`${result.roundId}${SPOOL_SUFFIX}` !== name)
            throw new Error(`holds round ${result.roundId}, not the one its name says`);
          results.push(result);
        } catch (error) {
          // Kept aside rather than deleted: an operator can still read what it held.
          await rename(path, `${path}${CORRUPT_SUFFIX}`).catch(() => undefined);
          logger.warn(
            { file: path, quarantined: `${path}${CORRUPT_SUFFIX}`, reason: reasonOf(error) },
            'spooled round results are unreadable; moved aside, its results will not be replayed',
          );
        }
      }
      // Oldest first: replaying in finishing order keeps the rotation moving forward.
      return results.sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime());
    },

    async remove(roundId) {
      const file = fileOf(roundId);
      try {
        await unlink(file);
        await syncDir(dir);
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return;
        throw spoolFailed(`could not remove ${file}`, error);
      }
    },
  };
}

function checkedName(roundId: string): string {
  if (!SAFE_NAME.test(roundId))
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `round id ${JSON.stringify(roundId)} cannot name a spool file; round ids are uuids`,
    );
  return roundId;
}

/**
 * Makes the rename (or unlink) itself durable. Windows cannot open a directory for fsync, and
 * NTFS journals the rename anyway, so it is skipped there.
 */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    // Nothing was ever spooled: the directory is created by the first `put`.
    if (isErrno(error, 'ENOENT')) return [];
    throw spoolFailed(`could not read the spool directory ${dir}`, error);
  }
}

async function removeStaleTemp(path: string, staleMs: number, logger: SpoolLogger): Promise<void> {
  try {
    const { mtimeMs } = await stat(path);
    // A young temp file may belong to a `put` in flight.
    if (Date.now() - mtimeMs < staleMs) return;
    await unlink(path);
    logger.warn({ file: path }, 'removed a spool temp file left by an interrupted write');
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw spoolFailed(`could not remove ${path}`, error);
  }
}

/** Reads a spool file back into domain types, refusing anything that is not what `put` wrote. */
function parseSpooled(text: string): SpooledResult {
  const raw: unknown = JSON.parse(text);
  if (!isRecord(raw)) throw new Error('not a JSON object');
  const { roundId, finishedAt, entries } = raw;
  if (typeof roundId !== 'string') throw new Error('roundId is not a string');
  if (!Array.isArray(entries)) throw new Error('entries is not an array');
  return {
    roundId,
    finishedAt: dateField(finishedAt, 'finishedAt'),
    entries: entries.map((e: unknown, i) => parseEntry(e, i)),
  };
}

function parseEntry(raw: unknown, index: number): UpgradeLogEntry {
  const where = `entries[${index}]`;
  if (!isRecord(raw)) throw new Error(`${where} is not an object`);
  const str = (key: string): string => {
    const v = raw[key];
    if (typeof v !== 'string') throw new Error(`${where}.${key} is not a string`);
    return v;
  };
  const strOrNull = (key: string): string | null => (raw[key] === null ? null : str(key));
  const int = (key: string): number => {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${where}.${key} is not an integer`);
    return v;
  };
  const status = str('status');
  if (!FINAL_STATUSES.has(status)) throw new Error(`${where}.status ${status} is not a final status`);
  return {
    roundId: str('roundId'),
    uuid: strOrNull('uuid'),
    roomTypeId: int('roomTypeId'),
    host: str('host'),
    filename: str('filename'),
    fileType: int('fileType'),
    status: status as FinalHostStatus,
    startTime: dateField(raw.startTime, `${where}.startTime`),
    endTime: dateField(raw.endTime, `${where}.endTime`),
    configVersion: strOrNull('configVersion'),
    firmwareVersion: strOrNull('firmwareVersion'),
    detail: strOrNull('detail'),
  };
}

function dateField(value: unknown, name: string): Date {
  const date = typeof value === 'string' ? new Date(value) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) throw new Error(`${name} is not an ISO date`);
  return date;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === code;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Disk trouble (full, read-only, permissions) is worth retrying once an operator fixed it. */
function spoolFailed(message: string, cause: unknown): UpgradeError {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  return new UpgradeError(
    'UNAVAILABLE',
    `result spool: ${message}${code === undefined ? '' : ` (${code})`}`,
    {
      cause,
      retryable: true,
    },
  );
}
