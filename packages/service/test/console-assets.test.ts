import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createService,
  generateOpenApi,
  openEventStream,
  registerStaticAssets,
  type ServiceApp,
} from '../src/index.js';
import { listenLocal } from './helpers.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'console-assets-'));
  await mkdir(join(root, 'assets'));
  await writeFile(join(root, 'index.html'), '<!doctype html><title>Console</title>');
  await writeFile(join(root, 'assets', 'app-AbCdEf12.js'), 'console.log(1);');
  await writeFile(join(root, 'assets', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function consoleApp(assetRoot: string): Promise<{ app: ServiceApp; url: string }> {
  const app = await createService({ name: 'console-test', version: '1.0.0', logger: false });
  await registerStaticAssets(app, { root: assetRoot, missingHint: 'Run `pnpm build`.' });
  // In a plugin, as route modules register themselves: its own encapsulated instance.
  await app.register(async (scope: ServiceApp) => {
    scope.get('/events', { schema: { hide: true } }, async (request, reply) => {
      const stream = openEventStream(scope, request, reply, { keepAliveMs: 50 });
      stream.send('hello', { n: 1, text: 'two\nlines' }, '7');
      return reply;
    });
  });
  return { app, url: await listenLocal(app) };
}

describe('registerStaticAssets', () => {
  let app: ServiceApp;
  let url: string;
  beforeAll(async () => {
    ({ app, url } = await consoleApp(root));
  });
  afterAll(async () => {
    await app.close();
  });

  it('serves the page revalidated each time, with its security headers', async () => {
    const response = await fetch(`${url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await response.text()).toContain('<title>Console</title>');

    const again = await fetch(`${url}/`, {
      headers: { 'if-none-match': response.headers.get('etag') ?? '' },
    });
    expect(again.status).toBe(304);
  });

  it('caches hashed assets for a year and others not at all; unknown ones are 404', async () => {
    const hashed = await fetch(`${url}/assets/app-AbCdEf12.js`);
    expect(hashed.status).toBe(200);
    expect(hashed.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(hashed.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const plain = await fetch(`${url}/assets/logo.svg`);
    expect(plain.headers.get('cache-control')).toBe('no-cache');
    expect((await fetch(`${url}/assets/../index.html`)).status).not.toBe(500);
    expect((await fetch(`${url}/assets/nope.js`)).status).toBe(404);
  });

  it('keeps the console out of the OpenAPI document', async () => {
    const doc = await generateOpenApi(app);
    const paths = Object.keys(doc.paths as Record<string, unknown>);
    expect(paths).not.toContain('/');
    expect(paths).not.toContain('/assets/*');
  });

  it('streams events as one JSON data line each, and a close of the app ends the stream', async () => {
    const response = await fetch(`${url}/events`);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    if (!response.body) throw new Error('no body');
    const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
    let text = '';
    while (!text.includes(': keep-alive')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('event: hello\nid: 7\ndata: {"n":1,"text":"two\\nlines"}\n\n');
    const closing = app.close();
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
    await closing;
  });
});

describe('a console that was not built', () => {
  it('answers 503 naming what to run, and the API still works', async () => {
    const { app, url } = await consoleApp(join(root, 'missing'));
    try {
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(503);
      expect(await page.text()).toContain('Run `pnpm build`.');
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
