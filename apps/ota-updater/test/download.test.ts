// downloadPackage against the package server over real loopback HTTP, into real temp directories.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UpgradeError } from '@upgrade/core';
import { discardDownload, downloadPackage, type DownloadOptions } from '../src/download.js';
import type { DownloadCheckpoint, DownloadRequest } from '../src/ports.js';
import {
  packageBytes,
  packageChunks,
  packageDigest,
  startPackageServer,
  type PackageFaults,
  type PackageServer,
  type PackageSpec,
} from './simulators/package-server.js';

const PATH = '/packages/1.2.0.zip';
const MiB = 1024 * 1024;

let dir: string;
let server: PackageServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-download-'));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function serve(spec: PackageSpec, faults: PackageFaults = {}): Promise<PackageServer> {
  server = await startPackageServer({ packages: { [PATH]: spec }, faults });
  return server;
}

function requestFor(
  srv: PackageServer,
  spec: PackageSpec,
  overrides: Partial<DownloadRequest> = {},
): DownloadRequest {
  const digest = packageDigest(spec);
  return {
    version: '1.2.0',
    packageUrl: srv.urlOf(PATH),
    packageName: 'tope-1.2.0.zip',
    packageSize: digest.size,
    packageMd5: digest.md5,
    ...overrides,
  };
}

/** Fast settings for tests: short deadlines, tiny retry delays. */
function fast(overrides: Partial<DownloadOptions> = {}): DownloadOptions {
  return { dir, stallTimeoutMs: 300, retryDelayMs: 5, checkpointBytes: 256 * 1024, ...overrides };
}

async function failureOf(promise: Promise<unknown>): Promise<UpgradeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof UpgradeError)) throw new Error(`expected an UpgradeError, got ${String(error)}`);
  return error;
}

async function md5OfFile(path: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path)).size;
}

describe('downloadPackage: verified downloads', () => {
  it('streams the package to <dir>/<version>.zip, checks it and reports progress and checkpoints', async () => {
    const spec = { size: 3 * MiB + 123, seed: 3 };
    const srv = await serve(spec);
    const request = requestFor(srv, spec, { packageSha256: packageDigest(spec).sha256 });
    const progress: number[] = [];
    const checkpoints: DownloadCheckpoint[] = [];

    const result = await downloadPackage(
      request,
      fast({
        checkpointBytes: MiB,
        onProgress: (p) => progress.push(p.received),
        onCheckpoint: (c) => {
          checkpoints.push(c);
        },
      }),
    );

    expect(result).toEqual({
      version: '1.2.0',
      path: join(dir, '1.2.0.zip'),
      size: spec.size,
      md5: request.packageMd5,
      sha256: request.packageSha256,
    });
    expect(await md5OfFile(result.path)).toBe(request.packageMd5);
    expect(await readdir(dir)).toEqual(['1.2.0.zip']);
    expect(progress.at(-1)).toBe(spec.size);
    // Monotonic: a watcher never sees the download go backwards.
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    // One when the answer is accepted (the caller learns the partial file), then at most one per
    // MiB of written bytes, taken while the body streams on (one due while another is being saved
    // waits for it, so a fast download may get fewer).
    const offsets = checkpoints.map((c) => c.offset);
    expect(offsets[0]).toBe(0);
    expect(offsets.length).toBeGreaterThanOrEqual(2);
    expect(offsets.at(-1)).toBeLessThanOrEqual(spec.size);
    offsets.slice(1).forEach((offset, i) => expect(offset - (offsets[i] ?? 0)).toBeGreaterThanOrEqual(MiB));
    expect(checkpoints[1]?.partialPath).toBe(join(dir, '1.2.0.zip.part'));
    expect(checkpoints[1]?.etag).toMatch(/^".+"$/);
  });

  it('computes SHA-256 only when package_sha256 or a public key asks for it', async () => {
    const spec = { size: 300_000, seed: 12 };
    const srv = await serve(spec);

    const result = await downloadPackage(requestFor(srv, spec), fast());

    expect(result).toMatchObject({ md5: packageDigest(spec).md5, sha256: null });
  });

  it('takes a checkpoint every checkpointIntervalMs while bytes arrive, below checkpointBytes', async () => {
    const spec = { size: 600_000, seed: 13 };
    const srv = await serve(spec, { throttleBytesPerSec: 1_000_000 });
    const checkpoints: DownloadCheckpoint[] = [];

    await downloadPackage(
      requestFor(srv, spec),
      fast({
        checkpointBytes: 64 * MiB,
        checkpointIntervalMs: 100,
        onCheckpoint: (c) => void checkpoints.push(c),
      }),
    );

    // ~0.6 s of body: the one at 0, then several by time, each holding bytes on disk.
    const offsets = checkpoints.map((c) => c.offset);
    expect(offsets[0]).toBe(0);
    expect(offsets.length).toBeGreaterThanOrEqual(3);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets.at(-1)).toBeGreaterThan(0);
  });

  it('accepts a package signed over its SHA-256 digest with the configured ed25519 key', async () => {
    const spec = { size: 200_000, seed: 4 };
    const srv = await serve(spec);
    const keys = generateKeyPairSync('ed25519');
    const digest = Buffer.from(packageDigest(spec).sha256, 'hex');
    const signature = sign(null, digest, keys.privateKey).toString('base64');
    const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();

    const result = await downloadPackage(requestFor(srv, spec, { signature }), fast({ publicKey }));

    expect(result.sha256).toBe(digest.toString('hex'));
  });
});

describe('downloadPackage: each failed check deletes the file and names the check', () => {
  it('refuses a Content-Length that is not package_size before writing a byte', async () => {
    const spec = { size: 500_000 };
    const srv = await serve(spec, { wrongContentLength: 400_000 });

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast()));

    expect(error.code).toBe('PACKAGE_SIZE_MISMATCH');
    expect(error.message).toContain('400000');
    expect(error.message).toContain('500000');
    expect(error.message).toContain('Content-Length');
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a resumed answer whose Content-Range total is not package_size', async () => {
    const spec = { size: 500_000 };
    const srv = await serve(spec);
    const checkpoint = await interruptedAt(srv, spec, 300_000);
    srv.setFaults({ wrongContentLength: 600_000 });

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast({ resumeFrom: checkpoint })));

    expect(srv.responses.at(-1)?.status).toBe(206);
    expect(error.code).toBe('PACKAGE_SIZE_MISMATCH');
    expect(error.message).toContain('Content-Range total');
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails a body that ends short of package_size', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec, { chunked: true });

    const error = await failureOf(downloadPackage(requestFor(srv, spec, { packageSize: 310_000 }), fast()));

    expect(error.code).toBe('PACKAGE_SIZE_MISMATCH');
    expect(error.message).toContain('received 300000 bytes, expected 310000');
    expect(await readdir(dir)).toEqual([]);
  });

  it('stops reading as soon as the body passes package_size', async () => {
    const spec = { size: 8 * MiB };
    const srv = await serve(spec, { chunked: true });

    const error = await failureOf(downloadPackage(requestFor(srv, spec, { packageSize: 100_000 }), fast()));

    expect(error.code).toBe('PACKAGE_SIZE_MISMATCH');
    expect(error.message).toContain('more than the expected 100000 bytes');
    expect(await readdir(dir)).toEqual([]);
    // The server was cut off long before the end of its 8 MiB.
    await waitFor(() => srv.responses[0]?.bytesSent !== undefined);
    expect(srv.responses[0]?.bytesSent).toBeLessThan(4 * MiB);
  });

  it('fails on an MD5 mismatch', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec);

    const error = await failureOf(
      downloadPackage(requestFor(srv, spec, { packageMd5: '0'.repeat(32) }), fast()),
    );

    expect(error.code).toBe('MD5_MISMATCH');
    expect(error.message).toContain(packageDigest(spec).md5);
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails on a SHA-256 mismatch', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec);

    const error = await failureOf(
      downloadPackage(requestFor(srv, spec, { packageSha256: 'ab'.repeat(32) }), fast()),
    );

    expect(error.code).toBe('CHECKSUM_MISMATCH');
    expect(error.message).toContain('SHA-256');
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails a signature made by another key', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec);
    const trusted = generateKeyPairSync('ed25519')
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    const other = generateKeyPairSync('ed25519').privateKey;
    const signature = sign(null, Buffer.from(packageDigest(spec).sha256, 'hex'), other).toString('base64');

    const error = await failureOf(
      downloadPackage(requestFor(srv, spec, { signature }), fast({ publicKey: trusted })),
    );

    expect(error.code).toBe('SIGNATURE_INVALID');
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses an unsigned package when a key is configured, before downloading it', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec);
    const publicKey = generateKeyPairSync('ed25519')
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast({ publicKey })));

    expect(error.code).toBe('SIGNATURE_INVALID');
    expect(error.message).toContain('no signature');
    expect(srv.requests).toHaveLength(0);
  });
});

describe('downloadPackage: interruptions and resume', () => {
  it('fails a stalled server with DOWNLOAD_FAILED within the stall timeout, keeping the partial', async () => {
    const spec = { size: 500_000 };
    const srv = await serve(spec, { stallAt: 100_000 });
    const checkpoints: DownloadCheckpoint[] = [];
    const started = Date.now();

    const error = await failureOf(
      downloadPackage(
        requestFor(srv, spec),
        fast({ retries: 0, onCheckpoint: (c) => void checkpoints.push(c) }),
      ),
    );

    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toContain('server stalled: no bytes for 300 ms');
    // Far below any default deadline: the stall watch ended it, not a generic timeout.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(checkpoints.at(-1)?.offset).toBe(100_000);
    expect(await sizeOf(join(dir, '1.2.0.zip.part'))).toBe(100_000);
  });

  it('retries a stalled attempt with Range and completes', async () => {
    const spec = { size: 500_000, seed: 9 };
    const srv = await serve(spec, { stallAt: 200_000, times: 1 });

    const result = await downloadPackage(requestFor(srv, spec), fast({ retries: 1 }));

    expect(result.md5).toBe(packageDigest(spec).md5);
    expect(srv.responses.map((r) => [r.status, r.range])).toEqual([
      [200, null],
      [206, 'bytes=200000-'],
    ]);
  });

  it('resumes in-process with Range and If-Range after connections are cut mid-body', async () => {
    const spec = { size: 1_000_000, seed: 5 };
    const srv = await serve(spec, { truncateAt: 300_000, times: 2 });

    const result = await downloadPackage(requestFor(srv, spec), fast());

    expect(await md5OfFile(result.path)).toBe(packageDigest(spec).md5);
    // A reset can discard bytes the server sent but the client had not read yet, so each resume
    // starts at or before the cut, never after it, and always moves forward.
    const ranges = srv.responses.map((r) => [r.status, r.range] as const);
    expect(ranges.map(([status]) => status)).toEqual([200, 206, 206]);
    const starts = ranges.slice(1).map(([, range]) => Number(/^bytes=(\d+)-$/.exec(range ?? '')?.[1]));
    expect(starts[0]).toBeGreaterThan(0);
    expect(starts[0]).toBeLessThanOrEqual(300_000);
    expect(starts[1]).toBeGreaterThan(starts[0] ?? 0);
    expect(starts[1]).toBeLessThanOrEqual((starts[0] ?? 0) + 300_000);
    expect(srv.requests[1]?.headers['if-range']).toMatch(/^".+"$/);
  });

  it('gives up after `retries` attempts that bring no byte, keeping nothing when nothing arrived', async () => {
    const spec = { size: 100_000 };
    const srv = await serve(spec, { truncateAt: 0 });

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast({ retries: 2 })));

    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toMatch(/connection lost.*gave up after 3 attempts/);
    expect(srv.requests).toHaveLength(3);
    expect(await readdir(dir)).toEqual([]);
  });

  it('resumes in a new call from the checkpoint of an aborted one (a restart), re-hashing the partial', async () => {
    const spec = { size: 2 * MiB, seed: 6 };
    const srv = await serve(spec, { throttleBytesPerSec: 8 * MiB, times: 1 });
    const request = requestFor(srv, spec);
    const checkpoints: DownloadCheckpoint[] = [];
    const abort = new AbortController();

    const aborted = await failureOf(
      downloadPackage(
        request,
        fast({
          signal: abort.signal,
          onProgress: (p) => {
            if (p.received >= MiB) abort.abort();
          },
          onCheckpoint: (c) => void checkpoints.push(c),
        }),
      ),
    );
    expect(aborted.code).toBe('ABORTED');
    const checkpoint = checkpoints.at(-1);
    if (checkpoint === undefined) throw new Error('no checkpoint');
    expect(checkpoint.offset).toBeGreaterThanOrEqual(MiB);
    // Bytes written after the last sync may be garbage after a power cut: they must be cut off.
    await appendFile(checkpoint.partialPath, Buffer.alloc(1000, 0xee));

    const result = await downloadPackage(request, fast({ resumeFrom: checkpoint }));

    expect(await md5OfFile(result.path)).toBe(request.packageMd5);
    const resumed = srv.responses.at(-1);
    expect(resumed).toMatchObject({ status: 206, range: `bytes=${checkpoint.offset}-` });
    expect(resumed?.bytesSent).toBe(spec.size - checkpoint.offset);
  });

  it('starts over when the server ignores Range, and still verifies', async () => {
    const spec = { size: 600_000, seed: 7 };
    const srv = await serve(spec);
    const checkpoint = await interruptedAt(srv, spec, 250_000);
    srv.setFaults({ ignoreRange: true });

    const result = await downloadPackage(requestFor(srv, spec), fast({ resumeFrom: checkpoint }));

    expect(await md5OfFile(result.path)).toBe(packageDigest(spec).md5);
    expect(srv.responses.at(-1)).toMatchObject({ status: 200, range: 'bytes=250000-', bytesSent: spec.size });
  });

  it('starts over when the package changed on the server (If-Range no longer matches)', async () => {
    const spec = { size: 600_000, seed: 8 };
    const srv = await serve(spec);
    const checkpoint = await interruptedAt(srv, spec, 250_000);
    srv.setPackage(PATH, spec);

    const result = await downloadPackage(requestFor(srv, spec), fast({ resumeFrom: checkpoint }));

    expect(result.md5).toBe(packageDigest(spec).md5);
    expect(srv.requests.at(-1)?.headers['if-range']).toBe(checkpoint.etag);
    expect(srv.responses.at(-1)).toMatchObject({ status: 200, range: 'bytes=250000-', bytesSent: spec.size });
  });

  it('goes straight to the checks when the partial already holds every byte', async () => {
    const spec = { size: 300_000 };
    const srv = await serve(spec);
    const request = requestFor(srv, spec);
    // Power cut after the last byte was synced, before the checks and the rename.
    const partialPath = join(dir, '1.2.0.zip.part');
    await writeFile(partialPath, packageBytes(spec));

    const result = await downloadPackage(
      request,
      fast({ resumeFrom: { request, partialPath, offset: spec.size, etag: null } }),
    );

    expect(result.md5).toBe(packageDigest(spec).md5);
    expect(srv.requests).toHaveLength(0);
  });
});

describe('downloadPackage: server errors, aborts, deadlines', () => {
  it('fails a 404 at once with DOWNLOAD_FAILED naming the status', async () => {
    const spec = { size: 1000 };
    const srv = await serve(spec);

    const error = await failureOf(
      downloadPackage(requestFor(srv, spec, { packageUrl: srv.urlOf('/nope.zip') }), fast()),
    );

    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toContain('HTTP 404');
    expect(error.details).toEqual({ status: 404 });
    expect(srv.requests).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it('retries a 500 and then fails with DOWNLOAD_FAILED naming the status', async () => {
    const spec = { size: 1000 };
    const srv = await serve(spec, { status: 500 });

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast({ retries: 1 })));

    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toContain('HTTP 500');
    expect(error.details).toMatchObject({ status: 500, attempts: 2 });
    expect(srv.requests).toHaveLength(2);
  });

  it('rides out a few 503 answers', async () => {
    const spec = { size: 100_000 };
    const srv = await serve(spec);
    srv.failNext(2, 503);

    const result = await downloadPackage(requestFor(srv, spec), fast());

    expect(result.md5).toBe(packageDigest(spec).md5);
    expect(srv.responses.map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('fails with DOWNLOAD_FAILED when nothing listens', async () => {
    const spec = { size: 1000 };
    const srv = await serve(spec);
    const request = requestFor(srv, spec);
    await srv.close();

    const error = await failureOf(downloadPackage(request, fast({ retries: 1 })));

    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toContain('connection refused');
  });

  it('aborts with ABORTED, keeps the partial for a resume, and discardDownload removes it', async () => {
    const spec = { size: 2 * MiB };
    const srv = await serve(spec, { throttleBytesPerSec: 4 * MiB });
    const abort = new AbortController();
    let last: DownloadCheckpoint | undefined;

    const error = await failureOf(
      downloadPackage(
        requestFor(srv, spec),
        fast({
          signal: abort.signal,
          onProgress: (p) => p.received >= 512 * 1024 && abort.abort(),
          onCheckpoint: (c) => {
            last = c;
          },
        }),
      ),
    );

    expect(error.code).toBe('ABORTED');
    if (last === undefined) throw new Error('no checkpoint');
    expect(await sizeOf(last.partialPath)).toBe(last.offset);
    expect(last.offset).toBeGreaterThanOrEqual(512 * 1024);
    await discardDownload(last);
    expect(await readdir(dir)).toEqual([]);
  });

  it('ends a download that outlives totalTimeoutMs with TIMEOUT', async () => {
    const spec = { size: 2 * MiB };
    const srv = await serve(spec, { throttleBytesPerSec: 2 * MiB });

    const error = await failureOf(downloadPackage(requestFor(srv, spec), fast({ totalTimeoutMs: 300 })));

    expect(error.code).toBe('TIMEOUT');
    expect(await sizeOf(join(dir, '1.2.0.zip.part'))).toBeGreaterThan(0);
  });

  it('refuses a version that cannot name a file, before any request', async () => {
    const spec = { size: 1000 };
    const srv = await serve(spec);

    const error = await failureOf(downloadPackage(requestFor(srv, spec, { version: '../../etc/x' }), fast()));

    expect(error.code).toBe('VALIDATION_FAILED');
    expect(srv.requests).toHaveLength(0);
  });
});

describe('package server content', () => {
  it('serves every byte of a generated package, the same bytes from any offset', () => {
    // Past 286 MiB chunk views start near the end of the pattern's period: the case that once came short.
    const spec = { size: 300 * MiB + 7, seed: 2 };
    let total = 0;
    for (const chunk of packageChunks(spec)) total += chunk.length;
    expect(total).toBe(spec.size);
    const at = 300 * MiB - 100_000;
    const whole = Buffer.concat([...packageChunks(spec, at, spec.size)]);
    const split = Buffer.concat([
      ...packageChunks(spec, at, at + 1000),
      ...packageChunks(spec, at + 1000, spec.size),
    ]);
    expect(split.equals(whole)).toBe(true);
    expect(whole.length).toBe(spec.size - at);
  });
});

describe('downloadPackage: memory', () => {
  it('downloads 64 MiB while live heap + array buffers grow by far less than the package', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const spec = { size: 64 * MiB, seed: 11 };
    const srv = await serve(spec);
    const request = requestFor(srv, spec);
    const live = (): number => {
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    gc();
    const baseline = live();
    let peak = baseline;
    let nextSample = 0;

    const result = await downloadPackage(
      request,
      fast({
        checkpointBytes: 4 * MiB,
        onProgress: ({ received }) => {
          // Live memory, garbage collected: what the download holds, not what GC has yet to free.
          if (received < nextSample) return;
          nextSample = received + 2 * MiB;
          gc();
          peak = Math.max(peak, live());
        },
      }),
    );

    expect(result.size).toBe(spec.size);
    const growth = peak - baseline;
    console.log(
      `64 MiB download: live heap + array buffers grew by ${(growth / MiB).toFixed(1)} MiB at peak`,
    );
    expect(growth).toBeLessThan(16 * MiB);
  });
});

/**
 * Runs a first download that the server stalls at `at` bytes (no retries) and returns the last
 * checkpoint it announced: what the service would have persisted before a restart.
 */
async function interruptedAt(srv: PackageServer, spec: PackageSpec, at: number): Promise<DownloadCheckpoint> {
  srv.setFaults({ stallAt: at, times: 1 });
  let last: DownloadCheckpoint | undefined;
  const error = await failureOf(
    downloadPackage(
      requestFor(srv, spec),
      fast({
        retries: 0,
        onCheckpoint: (c) => {
          last = c;
        },
      }),
    ),
  );
  expect(error.message).toContain('server stalled');
  if (last === undefined) throw new Error('the interrupted download announced no checkpoint');
  expect(last.offset).toBe(at);
  return last;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}
