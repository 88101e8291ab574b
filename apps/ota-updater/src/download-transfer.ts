// The HTTP side of one download: attempts with Range and If-Range, what each answer means
// (continue, start over from byte zero, retry, give up), and the bytes of a body written through
// the partial file with a stall watch. download.ts owns the flow around it: resume, checks, rename.
import { UpgradeError, isUpgradeError, type Clock } from '@upgrade/core';
import type { DownloadCheckpoint, DownloadRequest } from './ports.js';
import { follow, watchStall, type RunControl } from './download-deadlines.js';
import {
  Interrupted,
  RETRY_STATUSES,
  contentLengthOf,
  contentRangeOf,
  describeNetworkError,
  etagOf,
  headerOf,
  strongEtag,
} from './download-http.js';
import type { PartialFile } from './download-partial.js';
import { diskFullError } from './disk-space.js';
import { discardBody, type HttpAnswer } from './http-client.js';
import { sendStreamingGet } from './http-stream.js';

/** What the caller hears during a transfer (DownloadOptions' callbacks). */
export interface DownloadCallbacks {
  onProgress?(progress: { received: number; total: number }): void;
  onCheckpoint?(checkpoint: DownloadCheckpoint): void | Promise<void>;
}

const MAX_RETRY_DELAY_MS = 30_000;
// Restarts from byte zero after an unusable range answer; more than this means the server is broken.
const MAX_RESTARTS = 3;
// Package URLs often point at a CDN or object store that redirects to the file; more hops is a loop.
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The resolved limits of one download; see DownloadOptions for each. */
export interface TransferSettings {
  clock: Clock;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  stallTimeoutMs: number;
  totalTimeoutMs: number;
  retries: number;
  retryDelayMs: number;
  checkpointBytes: number;
  checkpointIntervalMs: number;
}

/** One download's requests: attempts, retries and restarts, and what each answer means. */
export class Transfer {
  private lastCheckpoint: number;
  private lastCheckpointAt: number;
  /** A checkpoint taken while the body streams on; its failure fails the download. */
  private background: Promise<void> | null = null;
  private backgroundFailure: { error: unknown } | null = null;

  constructor(
    private readonly request: DownloadRequest,
    private readonly settings: TransferSettings,
    private readonly file: PartialFile,
    private readonly run: RunControl,
    /** The server's validator of the bytes in the partial file, for If-Range. */
    private etag: string | null,
    private readonly callbacks: DownloadCallbacks,
  ) {
    this.lastCheckpoint = file.offset;
    this.lastCheckpointAt = settings.clock.now();
  }

  /** Attempts until the body ended cleanly, retrying interruptions that leave hope. */
  async receiveAll(): Promise<void> {
    let fruitless = 0;
    let attempts = 0;
    let restarts = 0;
    // Every byte arrived before a restart or power cut, only the checks are left.
    if (this.file.offset === this.request.packageSize) return;
    for (;;) {
      const before = this.file.offset;
      attempts++;
      let outcome: 'done' | 'restart';
      try {
        try {
          outcome = await this.attempt();
        } finally {
          // Whatever ended the attempt, the bytes received are written before anything else.
          await this.settleWrites();
        }
      } catch (error) {
        if (!(error instanceof Interrupted)) throw error;
        fruitless = this.file.offset > before ? 1 : fruitless + 1;
        if (fruitless > this.settings.retries) throw this.gaveUp(error, attempts);
        const delay = Math.min(MAX_RETRY_DELAY_MS, this.settings.retryDelayMs * 2 ** (fruitless - 1));
        await this.settings.clock.sleep(delay, this.run.signal);
        continue;
      }
      if (outcome === 'done') return;
      if (++restarts > MAX_RESTARTS)
        throw new UpgradeError(
          'DOWNLOAD_FAILED',
          `${this.request.packageUrl}: the server's range answers do not fit the package after ${restarts} restarts`,
          { retryable: false },
        );
    }
  }

  /** A fresh checkpoint of everything received (written and synced first), for the caller to persist. */
  async checkpoint(): Promise<void> {
    await this.settleBackground();
    await this.syncAndSave();
  }

  /** Syncs what was written and hands its offset to `save`. */
  private async syncAndSave(): Promise<void> {
    let offset: number;
    try {
      offset = await this.file.sync();
    } catch (error) {
      throw diskFailure(this.file.path, error);
    }
    await this.save(offset);
  }

  /** Waits for the queued writes and a background checkpoint; throws what either failed with. */
  private async settleWrites(): Promise<void> {
    try {
      await this.file.flush();
    } catch (error) {
      throw diskFailure(this.file.path, error);
    }
    await this.settleBackground();
  }

  private async settleBackground(): Promise<void> {
    await this.background;
    const failure = this.backgroundFailure;
    this.backgroundFailure = null;
    if (failure !== null) throw failure.error;
  }

  /**
   * Every `checkpointBytes` or `checkpointIntervalMs`, whichever comes first: the bytes already in
   * the file are synced and announced while the body streams on. Resuming needs no more: the
   * partial file is re-hashed up to the checkpoint.
   */
  private maybeCheckpoint(): void {
    if (this.background !== null) return;
    // Counted on received bytes: the checkpoint writes the batch still in memory before its fsync.
    const gained = this.file.offset - this.lastCheckpoint;
    if (gained <= 0) return;
    const now = this.settings.clock.now();
    if (
      gained < this.settings.checkpointBytes &&
      now - this.lastCheckpointAt < this.settings.checkpointIntervalMs
    )
      return;
    this.lastCheckpointAt = now;
    this.background = this.syncAndSave()
      .catch((error: unknown) => {
        this.backgroundFailure ??= { error };
      })
      .finally(() => {
        this.background = null;
      });
  }

  private async save(offset: number): Promise<void> {
    this.lastCheckpoint = offset;
    this.lastCheckpointAt = this.settings.clock.now();
    const checkpoint: DownloadCheckpoint = {
      request: this.request,
      partialPath: this.file.path,
      offset,
      etag: this.etag,
    };
    try {
      await this.callbacks.onCheckpoint?.(checkpoint);
    } catch (error) {
      if (isUpgradeError(error)) throw error;
      throw new UpgradeError('INTERNAL', `saving the download checkpoint failed: ${String(error)}`, {
        cause: error,
      });
    }
  }

  private async attempt(): Promise<'done' | 'restart'> {
    const controller = new AbortController();
    const unlink = follow(this.run.signal, controller);
    let stalled = false;
    try {
      const answer = await this.requestFollowingRedirects(controller.signal);
      try {
        if ((await this.accept(answer)) === 'restart') return 'restart';
        const watch = watchStall(this.settings.clock, this.settings.stallTimeoutMs, () => {
          stalled = true;
          controller.abort(new Error('stalled'));
        });
        try {
          // Each chunk is a view of the client's one read buffer, valid until the next `next()`:
          // consume() hashes and copies it before asking for more.
          const chunks = answer.body[Symbol.asyncIterator]();
          for (;;) {
            let next: IteratorResult<Buffer>;
            try {
              next = await chunks.next();
            } catch (error) {
              throw this.interrupted(error, stalled);
            }
            if (next.done === true) return 'done';
            watch.hold();
            await this.consume(next.value);
            watch.release();
          }
        } finally {
          watch.stop();
        }
      } finally {
        answer.close();
      }
    } finally {
      unlink();
    }
  }

  /**
   * GET of the package URL, following up to MAX_REDIRECTS http(s) redirects. A redirect loop or
   * a redirect anywhere but http(s) can never succeed: DOWNLOAD_FAILED, not retried.
   */
  private async requestFollowingRedirects(signal: AbortSignal): Promise<HttpAnswer> {
    let url = new URL(this.request.packageUrl);
    for (let hops = 0; ; hops++) {
      let answer: HttpAnswer;
      try {
        answer = await sendStreamingGet(url, {
          method: 'GET',
          headers: this.headers(),
          signal,
          connectTimeoutMs: this.settings.connectTimeoutMs,
          headersTimeoutMs: this.settings.headersTimeoutMs,
        });
      } catch (error) {
        throw this.interrupted(error, false);
      }
      const location = headerOf(answer.headers, 'location');
      if (!REDIRECT_STATUSES.has(answer.status) || location === undefined) return answer;
      await discardBody(answer);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw permanent(`${this.request.packageUrl}: the server redirected to an invalid URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        throw permanent(
          `${this.request.packageUrl}: the server redirected to a ${next.protocol} URL; only http and https are followed`,
        );
      if (hops + 1 > MAX_REDIRECTS)
        throw permanent(
          `${this.request.packageUrl}: more than ${MAX_REDIRECTS} redirects (a redirect loop); check package_url`,
        );
      url = next;
    }
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = {
      'accept-encoding': 'identity',
      'user-agent': 'ota-updater',
    };
    if (this.file.offset > 0) {
      headers.range = `bytes=${this.file.offset}-`;
      const validator = strongEtag(this.etag);
      if (validator !== null) headers['if-range'] = validator;
    }
    return headers;
  }

  /** Checks an answer's status and sizes before a byte of its body is written. */
  private async accept(response: HttpAnswer): Promise<'body' | 'restart'> {
    const { status, headers } = response;
    const size = this.request.packageSize;
    if (status === 200) {
      const length = contentLengthOf(headers);
      if (length !== null && length !== size)
        throw sizeMismatch(
          this.request,
          `the server announces ${length} bytes (Content-Length), expected ${size}`,
        );
      // Range ignored or If-Range failed: the whole package follows, from its first byte.
      if (this.file.offset > 0) await this.file.reset();
      this.etag = etagOf(headers);
      await this.checkpoint();
      return 'body';
    }
    if (status === 206) {
      const range = contentRangeOf(headers);
      if (range?.total != null && range.total !== size)
        throw sizeMismatch(
          this.request,
          `the server announces ${range.total} bytes (Content-Range total), expected ${size}`,
        );
      const etag = etagOf(headers);
      const changed = this.etag !== null && etag !== null && etag !== this.etag;
      if (range === null || range.start !== this.file.offset || range.end !== size - 1 || changed) {
        await discardBody(response);
        await this.file.reset();
        return 'restart';
      }
      this.etag = etag ?? this.etag;
      return 'body';
    }
    await discardBody(response);
    if (status === 416 && this.file.offset > 0) {
      // The partial file is longer than the server's package, or the range is unknown to it.
      await this.file.reset();
      return 'restart';
    }
    if (RETRY_STATUSES.has(status)) throw new Interrupted(`the server answered HTTP ${status}`, status);
    throw new UpgradeError(
      'DOWNLOAD_FAILED',
      `the package server answered HTTP ${status} for ${this.request.packageUrl}; check package_url`,
      { retryable: false, details: { status } },
    );
  }

  private async consume(chunk: Buffer): Promise<void> {
    const size = this.request.packageSize;
    if (this.file.offset + chunk.length > size)
      throw sizeMismatch(this.request, `the server sent more than the expected ${size} bytes`);
    if (this.backgroundFailure !== null) await this.settleBackground();
    try {
      await this.file.append(chunk);
    } catch (error) {
      throw diskFailure(this.file.path, error);
    }
    this.callbacks.onProgress?.({ received: this.file.offset, total: size });
    this.maybeCheckpoint();
  }

  private interrupted(error: unknown, stalled: boolean): Error {
    const reason = this.run.reason();
    if (reason !== null) return reason;
    if (stalled) return new Interrupted(`server stalled: no bytes for ${this.settings.stallTimeoutMs} ms`);
    return new Interrupted(describeNetworkError(error, this.settings), undefined, { cause: error });
  }

  private gaveUp(last: Interrupted, attempts: number): UpgradeError {
    const { offset } = this.file;
    return new UpgradeError(
      'DOWNLOAD_FAILED',
      `${this.request.packageUrl}: ${last.reason}; gave up after ${attempts} attempts with ${offset} of ${this.request.packageSize} bytes on disk, kept for a resume`,
      {
        cause: last.cause,
        details: {
          attempts,
          received: offset,
          ...(last.status === undefined ? {} : { status: last.status }),
        },
      },
    );
  }
}

/** The announced or received size is not package_size: the server's file is not the package. */
export function sizeMismatch(request: DownloadRequest, what: string): UpgradeError {
  return new UpgradeError(
    'PACKAGE_SIZE_MISMATCH',
    `package ${request.version}: ${what}; package_size or the server's file is wrong`,
    { details: { expected: request.packageSize } },
  );
}

function diskFailure(path: string, error: unknown): UpgradeError {
  if (isUpgradeError(error)) return error;
  const full = diskFullError(error, path);
  if (full !== null) return full;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return new UpgradeError(
    'DOWNLOAD_FAILED',
    `could not write ${path}${code === undefined ? '' : ` (${code})`}: free space or fix permissions`,
    { retryable: false, cause: error },
  );
}

function permanent(message: string): UpgradeError {
  return new UpgradeError('DOWNLOAD_FAILED', message, { retryable: false });
}
