// downloadPackage against package servers that misbehave at the TCP level (short 200 bodies, FIN
// then RST mid-body, redirect loops, redirects to file://), over real loopback sockets. Any error
// escaping as an unhandled event would fail this file: vitest reports it.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UpgradeError } from '@upgrade/core';
import { downloadPackage } from '../src/download.js';
import type { DownloadRequest } from '../src/ports.js';
import {
  startHostileServer,
  type HostileBehaviour,
  type HostileServer,
} from './simulators/hostile-server.js';

const SIZE = 4 * 1024 * 1024;
let dir: string;
let server: HostileServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-hostile-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function serve(path: string, behaviour: HostileBehaviour): Promise<HostileServer> {
  server = await startHostileServer({ [path]: behaviour });
  return server;
}

function requestFor(url: string, size = SIZE): DownloadRequest {
  return {
    version: '1.2.0',
    packageUrl: url,
    packageName: 'tope-1.2.0.zip',
    packageSize: size,
    packageMd5: '0'.repeat(32),
  };
}

async function failureOf(promise: Promise<unknown>): Promise<UpgradeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof UpgradeError)) throw new Error(`expected an UpgradeError, got ${String(error)}`);
  return error;
}

describe('downloadPackage against a hostile server', () => {
  it('ends a short 200 body (captive portal page) in PACKAGE_SIZE_MISMATCH, 20 times in a row, file removed', async () => {
    const srv = await serve('/p.zip', { kind: 'short' });
    const unannounced = await startHostileServer({ '/p.zip': { kind: 'short', contentLength: false } });
    try {
      for (let i = 0; i < 20; i++) {
        const url = (i % 2 === 0 ? srv : unannounced).urlOf('/p.zip');
        const error = await failureOf(downloadPackage(requestFor(url), { dir, retryDelayMs: 1 }));
        expect(error.code).toBe('PACKAGE_SIZE_MISMATCH');
        expect(error.message).toMatch(/23 bytes/);
        expect(await readdir(dir)).toEqual([]);
      }
    } finally {
      await unannounced.close();
    }
  });

  it('turns a body ended by FIN then RST mid-stream into DOWNLOAD_FAILED, 50 times in a row, partial kept', async () => {
    const srv = await serve('/p.zip', { kind: 'fin-rst', size: SIZE, sendBytes: 1024 * 1024 });
    for (let i = 0; i < 50; i++) {
      await rm(join(dir, '1.2.0.zip.part'), { force: true });
      const error = await failureOf(
        downloadPackage(requestFor(srv.urlOf('/p.zip')), { dir, retries: 0, retryDelayMs: 1 }),
      );
      expect(error.code).toBe('DOWNLOAD_FAILED');
      expect(error.message).toMatch(/connection lost|gave up/);
    }
    expect(srv.hits.get('/p.zip')).toBe(50);
  });

  it('fails a redirect loop at once with DOWNLOAD_FAILED, not retried', async () => {
    const srv = await serve('/loop', { kind: 'redirect-loop' });
    const error = await failureOf(downloadPackage(requestFor(srv.urlOf('/loop')), { dir, retryDelayMs: 1 }));
    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/redirect loop/);
    // The first request and five redirects: no retry of an answer that cannot change.
    expect(srv.hits.get('/loop')).toBe(6);
  });

  it('refuses a redirect to file:// with DOWNLOAD_FAILED after one request', async () => {
    const srv = await serve('/p.zip', { kind: 'redirect', location: 'file:///etc/passwd' });
    const error = await failureOf(downloadPackage(requestFor(srv.urlOf('/p.zip')), { dir, retryDelayMs: 1 }));
    expect(error.code).toBe('DOWNLOAD_FAILED');
    expect(error.message).toMatch(/file: URL/);
    expect(srv.hits.get('/p.zip')).toBe(1);
  });
});
