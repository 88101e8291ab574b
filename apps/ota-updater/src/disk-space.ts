// Free space on the file systems the service writes to: checked before a download and before an
// unpack (a full disk found before the work, not after an hour of it), and shown in /healthz and
// /metrics. Kept apart so the rule and its message are written once.
import { statfs } from 'node:fs/promises';
import { UpgradeError } from '@upgrade/core';

/** Free (for an unprivileged writer) and total bytes of the file system holding `path`. */
export interface DiskSpace {
  free: number;
  total: number;
}

/** Reads the file system of `path`. */
export async function diskSpaceOf(path: string): Promise<DiskSpace> {
  const stats = await statfs(path);
  return { free: stats.bavail * stats.bsize, total: stats.blocks * stats.bsize };
}

/**
 * Throws INSUFFICIENT_SPACE (not retryable: freeing space fixes it) when the file system of `path`
 * has less than `needed` bytes free; `what` names the work, e.g. "the package 1.2.0".
 */
export async function ensureFreeSpace(path: string, needed: number, what: string): Promise<void> {
  const { free } = await diskSpaceOf(path);
  if (free < needed)
    throw new UpgradeError(
      'INSUFFICIENT_SPACE',
      `not enough free disk space for ${what}: ${needed} bytes needed in ${path}, ${free} free; free space (old versions, logs) and try again`,
      { retryable: false, details: { needed, free } },
    );
}

/** A write that failed because the disk is full, as the error to report; null for any other failure. */
export function diskFullError(error: unknown, path: string): UpgradeError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return null;
  return new UpgradeError(
    'INSUFFICIENT_SPACE',
    `the disk filled up while writing ${path}; free space (old versions, logs) and try again`,
    { retryable: false, cause: error },
  );
}
