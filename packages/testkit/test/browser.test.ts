import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailability, useBrowserPage } from '../src/browser.js';

const availability = chromiumAvailability();
const screenshotDir = await mkdtemp(join(tmpdir(), 'testkit-browser-'));

describe.skipIf(!availability.ok)('a real browser', () => {
  const browser = useBrowserPage({
    executablePath: availability.ok ? availability.executablePath : '',
    screenshotDir,
  });
  let server: Server;
  let url = '';
  beforeAll(async () => {
    server = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end('<!doctype html><title>t</title><h1>Pair healthy</h1><button>Run</button>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    url = `http://127.0.0.1:${address.port}/`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(screenshotDir, { recursive: true, force: true });
  });

  it('loads a page over loopback and reads what a person sees', async () => {
    await browser.page.goto(url);
    expect(await browser.page.getByRole('heading').textContent()).toBe('Pair healthy');
    await expect(browser.page.getByRole('button', { name: 'Run' }).isVisible()).resolves.toBe(true);
  });

  it('saves a screenshot where it was asked to', async () => {
    await browser.page.goto(url);
    const path = await browser.screenshot('Final state: pair');
    expect(path).toBe(join(screenshotDir, 'final-state-pair.png'));
    expect(existsSync(path)).toBe(true);
    expect(await readdir(screenshotDir)).toContain('final-state-pair.png');
  });
});
