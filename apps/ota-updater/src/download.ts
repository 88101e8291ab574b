// The download of one OTA package, top to bottom: stream it to a partial file with bounded memory,
// check the announced size before writing, hash while writing, resume with Range after a cut or a
// restart, and only then verify size, MD5, SHA-256 and signature and rename it into place.
import { mkdir, rename, rm } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { UpgradeError, isUpgradeError, systemClock, type Clock } from '@upgrade/core';
import type { DownloadCheckpoint, DownloadRequest, VerifiedPackage } from './ports.js';
import { startRun, type RunControl } from './download-deadlines.js';
import { PartialFile, downloadPaths } from './download-partial.js';
import { Transfer, sizeMismatch, type TransferSettings } from './download-transfer.js';
import { ensureFreeSpace } from './disk-space.js';
import { checkDownloadRequest, decodeSignature, loadPublicKey, verifyPackage } from './download-verify.js';
import { syncDir } from './state-file.js';

export { downloadPaths } from './download-partial.js';

/** Bytes received so far of the package's total. */
export interface DownloadProgress {
  received: number;
  total: number;
}

/** Options of {@link downloadPackage}; times in milliseconds. */
export interface DownloadOptions {
  /** Directory of partial and verified packages; created when missing. */
  dir: string;
  /** Ed25519 public key (PEM or KeyObject). When set, every package must carry a valid signature. */
  publicKey?: string | KeyObject;
  /** TCP + TLS connect limit of each request. Default 10 000. */
  connectTimeoutMs?: number;
  /** Limit from sending a request to its answer's headers. Default 30 000. */
  headersTimeoutMs?: number;
  /** A body silent this long is a stalled server: the attempt ends and is retried. Default 30 000. */
  stallTimeoutMs?: number;
  /** The whole download, retries and re-hashing included; then TIMEOUT, partial kept. Default 2 h. */
  totalTimeoutMs?: number;
  /**
   * Failed attempts in a row that added no byte, retried with Range before giving up with
   * DOWNLOAD_FAILED. An attempt that added bytes starts the count again. Default 3.
   */
  retries?: number;
  /** Delay before the first retry, doubled for each further one up to 30 s. Default 1 000. */
  retryDelayMs?: number;
  /**
   * Bytes between two checkpoints (fsync + onCheckpoint, taken while the body streams on), or
   * `checkpointIntervalMs`, whichever comes first. At most that much is downloaded again after a
   * power cut. Default 64 MiB.
   */
  checkpointBytes?: number;
  /** Time between two checkpoints while bytes arrive; see `checkpointBytes`. Default 5 000. */
  checkpointIntervalMs?: number;
  /** Where an earlier call (this process or a previous one) left off; its partial file is re-hashed. */
  resumeFrom?: DownloadCheckpoint;
  /** Abort: ABORTED, the partial file is kept for a resume (see {@link discardDownload}). */
  signal?: AbortSignal;
  /** Retry delays and deadlines run on it. Default the system clock. */
  clock?: Clock;
  /** Each chunk written; throttling the reports is the caller's job. */
  onProgress?(progress: DownloadProgress): void;
  /** After each fsync of the partial file, and once more when the download stops resumable. Persist it. */
  onCheckpoint?(checkpoint: DownloadCheckpoint): void | Promise<void>;
}

const MiB = 1024 * 1024;
/** Failures that prove the partial file wrong: it is deleted, never resumed. */
const CHECK_FAILURES = [
  'PACKAGE_SIZE_MISMATCH',
  'MD5_MISMATCH',
  'CHECKSUM_MISMATCH',
  'SIGNATURE_INVALID',
] as const;

/**
 * Downloads `request.packageUrl` into `options.dir` and returns it verified as `<dir>/<version>.zip`.
 *
 * Memory stays flat whatever the package size: the body is streamed with backpressure through the
 * hashes into the partial file (written in batches) `<dir>/<version>.zip.part`. Errors (UpgradeError): VALIDATION_FAILED,
 * PACKAGE_SIZE_MISMATCH (Content-Length, Content-Range total or bytes received), MD5_MISMATCH,
 * CHECKSUM_MISMATCH (SHA-256), SIGNATURE_INVALID (see `verifyPackage` for the scheme): the partial
 * file is deleted. DOWNLOAD_FAILED (HTTP status, network, stall, after the retries), TIMEOUT,
 * ABORTED: a partial file holding bytes is kept and announced with a last `onCheckpoint`.
 *
 * @example const pkg = await downloadPackage(request, { dir: '/opt/tope/downloads', onCheckpoint: save })
 */
export async function downloadPackage(
  request: DownloadRequest,
  options: DownloadOptions,
): Promise<VerifiedPackage> {
  checkDownloadRequest(request);
  const settings = settingsOf(options);
  // Signature problems that need no download fail before the first byte.
  const signing =
    options.publicKey === undefined
      ? null
      : { key: loadPublicKey(options.publicKey), signature: decodeSignature(request) };
  const paths = downloadPaths(options.dir, request.version);
  await mkdir(options.dir, { recursive: true });
  const run = startRun(options.signal, settings.clock, settings.totalTimeoutMs);
  let file: PartialFile | undefined;
  let transfer: Transfer | undefined;
  try {
    const resume = resumableOffset(options.resumeFrom, request, paths.partial);
    // SHA-256 costs as much CPU as MD5 again: computed only when a check needs it.
    const sha256 = request.packageSha256 !== undefined || signing !== null;
    file = await PartialFile.open(paths.partial, resume?.offset ?? 0, { sha256, signal: run.signal });
    // A full disk is found before the download, not after an hour of it.
    await ensureFreeSpace(options.dir, request.packageSize - file.offset, `the package ${request.version}`);
    options.onProgress?.({ received: file.offset, total: request.packageSize });
    const etag = file.offset > 0 ? (resume?.etag ?? null) : null;
    transfer = new Transfer(request, settings, file, run, etag, options);
    await transfer.receiveAll();
    if (file.offset !== request.packageSize)
      throw sizeMismatch(request, `received ${file.offset} bytes, expected ${request.packageSize}`);
    await file.sync();
    const digests = file.digests();
    verifyPackage(request, digests, signing);
    await file.close();
    await rename(paths.partial, paths.final);
    // Durable rename: a power cut after it must not bring the partial name back.
    await syncDir(options.dir);
    return {
      version: request.version,
      path: paths.final,
      size: request.packageSize,
      md5: digests.md5,
      sha256: digests.sha256?.toString('hex') ?? null,
    };
  } catch (error) {
    const failure = explain(error, run);
    if (file !== undefined) await settle(failure, file, transfer);
    throw failure;
  } finally {
    run.dispose();
    await file?.close().catch(() => undefined);
  }
}

/** Deletes the partial file of a download that will not be resumed (cancel, restart policy). */
export async function discardDownload(checkpoint: Pick<DownloadCheckpoint, 'partialPath'>): Promise<void> {
  // The path comes back from state.json: never let it name anything but a partial package.
  if (!checkpoint.partialPath.endsWith('.zip.part'))
    throw new UpgradeError(
      'INTERNAL',
      `refusing to discard ${checkpoint.partialPath}: not a partial package file`,
    );
  await rm(checkpoint.partialPath, { force: true });
}

function settingsOf(options: DownloadOptions): TransferSettings {
  const positive = (name: string, value: number): number => {
    if (!Number.isFinite(value) || value <= 0)
      throw new UpgradeError('CONFIG_INVALID', `download ${name} must be a positive number, is ${value}`);
    return value;
  };
  const retries = options.retries ?? 3;
  if (!Number.isInteger(retries) || retries < 0)
    throw new UpgradeError('CONFIG_INVALID', `download retries must be a whole number >= 0, is ${retries}`);
  return {
    clock: options.clock ?? systemClock,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs ?? 10_000),
    headersTimeoutMs: positive('headersTimeoutMs', options.headersTimeoutMs ?? 30_000),
    stallTimeoutMs: positive('stallTimeoutMs', options.stallTimeoutMs ?? 30_000),
    totalTimeoutMs: positive('totalTimeoutMs', options.totalTimeoutMs ?? 2 * 60 * 60_000),
    retries,
    retryDelayMs: options.retryDelayMs ?? 1_000,
    checkpointBytes: positive('checkpointBytes', options.checkpointBytes ?? 64 * MiB),
    checkpointIntervalMs: positive('checkpointIntervalMs', options.checkpointIntervalMs ?? 5_000),
  };
}

/** The checkpoint's offset when it belongs to this request and this partial file, else none. */
function resumableOffset(
  checkpoint: DownloadCheckpoint | undefined,
  request: DownloadRequest,
  partialPath: string,
): { offset: number; etag: string | null } | undefined {
  if (checkpoint === undefined) return undefined;
  const same =
    checkpoint.partialPath === partialPath &&
    checkpoint.request.version === request.version &&
    checkpoint.request.packageSize === request.packageSize &&
    checkpoint.request.packageMd5.toLowerCase() === request.packageMd5.toLowerCase() &&
    checkpoint.request.packageSha256?.toLowerCase() === request.packageSha256?.toLowerCase();
  // Another package's bytes, or a path this download would not write: start from zero.
  if (!same || !Number.isSafeInteger(checkpoint.offset) || checkpoint.offset < 0) return undefined;
  return { offset: Math.min(checkpoint.offset, request.packageSize), etag: checkpoint.etag };
}

/** The error to report: an abort or deadline beats whatever the interrupted step threw. */
function explain(error: unknown, run: RunControl): UpgradeError {
  if (isUpgradeError(error, ...CHECK_FAILURES)) return error;
  const reason = run.reason();
  if (reason !== null) return reason;
  if (isUpgradeError(error)) return error;
  return new UpgradeError('INTERNAL', `download failed unexpectedly: ${String(error)}`, { cause: error });
}

/** Deletes a partial file a check proved wrong or that holds nothing; announces a resumable one. */
async function settle(
  failure: UpgradeError,
  file: PartialFile,
  transfer: Transfer | undefined,
): Promise<void> {
  if (isUpgradeError(failure, ...CHECK_FAILURES) || file.offset === 0) {
    await file.close().catch(() => undefined);
    await rm(file.path, { force: true });
    return;
  }
  // Best effort: an earlier checkpoint stays valid, and the download's own failure is what counts.
  await transfer?.checkpoint().catch(() => undefined);
}
