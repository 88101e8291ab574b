// The partial file of a download and the hashes of the bytes it holds. Both move together: a chunk
// counts as received only once it is written and hashed, so an interrupted attempt can go on from
// `offset` in the same process, and a new process can rebuild the hashes by re-reading the file.
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError, abortError } from '@upgrade/core';

/** Version strings name files: no separators, no leading dot, nothing a shell or path would reinterpret. */
const SAFE_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const REHASH_BUFFER = 1024 * 1024;

/** Where a version's download lives in `dir`: the partial file while it streams, the package after. */
export function downloadPaths(dir: string, version: string): { partial: string; final: string } {
  if (!SAFE_VERSION.test(version))
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `version ${JSON.stringify(version)} cannot name a package file: use letters, digits, '.', '_', '+' or '-'`,
      { details: { field: 'version' } },
    );
  return { partial: join(dir, `${version}.zip.part`), final: join(dir, `${version}.zip`) };
}

/** Lower-case hex MD5, and the raw SHA-256 digest when it was asked for, of the bytes written so far. */
export interface PartialDigests {
  md5: string;
  sha256: Buffer | null;
}

/** Options of {@link PartialFile.open}. */
export interface PartialFileOptions {
  /** Also compute SHA-256 (needed for package_sha256 or a signature); MD5 is always computed. */
  sha256: boolean;
  signal?: AbortSignal;
}

/**
 * Received bytes are gathered up to this much before one write: fewer system calls per GiB. Two
 * of them are the download's whole buffer memory beside the 64 KiB read buffer (the device has a
 * 50 MiB budget); 256 KiB writes are 4,096 per GiB, a few ms of the download's CPU.
 */
const WRITE_BATCH_BYTES = 256 * 1024;

/**
 * An open partial file; `offset` bytes are received and hashed. Received bytes are copied into one
 * of two reused write buffers, written while the next bytes arrive: `written` bytes are in the
 * file, `flush()` brings `written` up to `offset`, and only what `sync()` returns may be promised
 * in a checkpoint. Copying costs little and lets each received chunk die at once, young: chunks
 * kept across a write outlive a minor GC and pile up in the old generation until a full one.
 */
export class PartialFile {
  private md5: Hash = createHash('md5');
  private sha256: Hash | null;
  private closed = false;
  // Set when a write failed after its bytes were hashed: the hashes no longer describe the file.
  private broken = false;
  private failure: Error | null = null;
  /** The write buffers (allocated at the first byte), the one filling, and the bytes in it. */
  private buffers: [Buffer, Buffer] | null = null;
  private current: 0 | 1 = 0;
  private filled = 0;
  /** Per buffer: settles when its last write ended, so it may be filled again. */
  private free: [Promise<void>, Promise<void>] = [Promise.resolve(), Promise.resolve()];
  /** The writes handed over, chained: each goes where the previous ended. */
  private writing: Promise<void> = Promise.resolve();
  /** Bytes handed to a write, and bytes whose write completed. */
  private queued: number;
  private flushed: number;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private position: number,
    withSha256: boolean,
  ) {
    this.sha256 = withSha256 ? createHash('sha256') : null;
    this.queued = position;
    this.flushed = position;
  }

  /**
   * Opens (or creates) the partial file and keeps its first `resumeAt` bytes, re-hashing them;
   * anything after them was never confirmed and is cut off. A file shorter than `resumeAt` lost
   * bytes that were synced, so nothing in it is trusted and the download starts from zero.
   */
  static async open(path: string, resumeAt: number, options: PartialFileOptions): Promise<PartialFile> {
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    const file = new PartialFile(path, handle, 0, options.sha256);
    try {
      const { size } = await handle.stat();
      const keep = size >= resumeAt ? resumeAt : 0;
      await handle.truncate(keep);
      await file.rehash(keep, options.signal);
      return file;
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Bytes received and hashed. */
  get offset(): number {
    return this.position;
  }

  /** Bytes in the file (written, not necessarily synced). */
  get written(): number {
    return this.flushed;
  }

  /**
   * Hashes `chunk` and queues it for writing at the end. Resolves at once unless the previous
   * batch is still being written (backpressure); a failed write is thrown by a later call.
   */
  async append(chunk: Buffer): Promise<void> {
    this.assertUsable();
    this.md5.update(chunk);
    this.sha256?.update(chunk);
    this.position += chunk.length;
    this.buffers ??= [Buffer.allocUnsafeSlow(WRITE_BATCH_BYTES), Buffer.allocUnsafeSlow(WRITE_BATCH_BYTES)];
    for (let at = 0; at < chunk.length;) {
      // A buffer is filled again only once its previous write ended: backpressure on the body.
      if (this.filled === 0) await this.free[this.current];
      const buffer = this.buffers[this.current];
      const copied = chunk.copy(buffer, this.filled, at);
      this.filled += copied;
      at += copied;
      if (this.filled === buffer.length) this.startWrite();
    }
  }

  /** Writes everything received so far: afterwards `written` is at least the `offset` of the call. */
  async flush(): Promise<void> {
    this.assertUsable();
    this.startWrite();
    await this.writing;
    this.assertUsable();
  }

  /** Empties the file and the hashes: the server is sending the package from its first byte. */
  async reset(): Promise<void> {
    await this.writing;
    this.assertUsable();
    this.filled = 0;
    this.queued = 0;
    await this.handle.truncate(0);
    this.md5 = createHash('md5');
    this.sha256 = this.sha256 === null ? null : createHash('sha256');
    this.position = 0;
    this.flushed = 0;
  }

  /**
   * Writes what was received and flushes the file to the disk; returns how many bytes it holds
   * for sure. Appends may go on meanwhile (they are covered by a later sync).
   */
  async sync(): Promise<number> {
    await this.flush();
    const durable = this.flushed;
    await this.handle.sync();
    return durable;
  }

  /** The digests of everything received; the hashes cannot be updated afterwards. */
  digests(): PartialDigests {
    this.assertUsable();
    this.broken = true;
    return { md5: this.md5.digest('hex'), sha256: this.sha256?.digest() ?? null };
  }

  /** Closes the file (after a write in flight); safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writing;
    await this.handle.close();
  }

  /**
   * Hands the filling buffer to a write that starts when the previous one ended, and switches to
   * the other buffer. Never rejects: a failure is kept and thrown by the next call.
   */
  private startWrite(): void {
    if (this.filled === 0 || this.buffers === null) return;
    const data = this.buffers[this.current].subarray(0, this.filled);
    const at = this.queued;
    const end = at + this.filled;
    this.queued = end;
    this.writing = this.writing
      .then(async () => {
        if (this.failure !== null) return;
        await writeAll(this.handle, data, at);
        this.flushed = end;
      })
      .catch((error: unknown) => {
        this.broken = true;
        this.failure ??= error instanceof Error ? error : new Error(String(error));
      });
    this.free[this.current] = this.writing;
    this.current = this.current === 0 ? 1 : 0;
    this.filled = 0;
  }

  private async rehash(length: number, signal: AbortSignal | undefined): Promise<void> {
    // One reused buffer: re-hashing a 1 GiB partial costs 1 MiB of memory, not 1 GiB.
    const buffer = Buffer.allocUnsafe(Math.min(REHASH_BUFFER, Math.max(1, length)));
    while (this.position < length) {
      if (signal?.aborted === true) throw abortError(signal);
      const want = Math.min(buffer.length, length - this.position);
      const { bytesRead } = await this.handle.read(buffer, 0, want, this.position);
      if (bytesRead === 0)
        throw new Error(`partial file ${this.path} ended at ${this.position} while re-hashing`);
      const view = buffer.subarray(0, bytesRead);
      this.md5.update(view);
      this.sha256?.update(view);
      this.position += bytesRead;
    }
    this.queued = this.position;
    this.flushed = this.position;
  }

  private assertUsable(): void {
    if (this.failure !== null) throw this.failure;
    if (this.closed || this.broken)
      throw new UpgradeError(
        'INTERNAL',
        `partial file ${this.path} is closed or no longer matches its hashes`,
      );
  }
}

async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  // Regular files take whole writes in practice, but the contract allows short ones.
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
