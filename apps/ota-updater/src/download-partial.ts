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

/** Lower-case hex MD5 and the raw SHA-256 digest of the bytes written so far. */
export interface PartialDigests {
  md5: string;
  sha256: Buffer;
}

/** An open partial file; `offset` bytes are written and hashed. */
export class PartialFile {
  private md5: Hash = createHash('md5');
  private sha256: Hash = createHash('sha256');
  private closed = false;
  // Set when a write failed after its bytes were hashed: the hashes no longer describe the file.
  private broken = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private position: number,
  ) {}

  /**
   * Opens (or creates) the partial file and keeps its first `resumeAt` bytes, re-hashing them;
   * anything after them was never confirmed and is cut off. A file shorter than `resumeAt` lost
   * bytes that were synced, so nothing in it is trusted and the download starts from zero.
   */
  static async open(path: string, resumeAt: number, signal?: AbortSignal): Promise<PartialFile> {
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    const file = new PartialFile(path, handle, 0);
    try {
      const { size } = await handle.stat();
      const keep = size >= resumeAt ? resumeAt : 0;
      await handle.truncate(keep);
      await file.rehash(keep, signal);
      return file;
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  get offset(): number {
    return this.position;
  }

  /** Writes `chunk` at the end and hashes it while the write is in flight. */
  async append(chunk: Buffer): Promise<void> {
    this.assertUsable();
    const writing = writeAll(this.handle, chunk, this.position);
    this.md5.update(chunk);
    this.sha256.update(chunk);
    try {
      await writing;
    } catch (error) {
      this.broken = true;
      throw error;
    }
    this.position += chunk.length;
  }

  /** Empties the file and the hashes: the server is sending the package from its first byte. */
  async reset(): Promise<void> {
    this.assertUsable();
    await this.handle.truncate(0);
    this.md5 = createHash('md5');
    this.sha256 = createHash('sha256');
    this.position = 0;
  }

  /** Flushes the written bytes to the disk: only synced bytes may be promised in a checkpoint. */
  async sync(): Promise<void> {
    this.assertUsable();
    await this.handle.sync();
  }

  /** The digests of everything written; the hashes cannot be updated afterwards. */
  digests(): PartialDigests {
    this.assertUsable();
    this.broken = true;
    return { md5: this.md5.digest('hex'), sha256: this.sha256.digest() };
  }

  /** Closes the file; safe to call more than once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
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
      this.sha256.update(view);
      this.position += bytesRead;
    }
  }

  private assertUsable(): void {
    if (this.closed || this.broken)
      throw new UpgradeError(
        'INTERNAL',
        `partial file ${this.path} is closed or no longer matches its hashes`,
      );
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  // Regular files take whole writes in practice, but the contract allows short ones.
  for (let done = 0; done < chunk.length;) {
    const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + done);
    done += bytesWritten;
  }
}
