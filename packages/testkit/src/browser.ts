// A real browser for page tests: Debian's `chromium` driven by playwright-core (browser builds are
// never downloaded; .ci/run installs the Debian package when it is missing). One browser per test
// file, a fresh context and page per test, and a screenshot of the page when a test fails.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** Where the browser is, or why page tests cannot run here. */
export type ChromiumAvailability = { ok: true; executablePath: string } | { ok: false; reason: string };

/**
 * Finds the browser: `CHROMIUM_PATH` when set, else the Debian package's path. Under CI (`CI` set) a
 * missing browser is an error, not a skip: the gate must not pass without running the page tests.
 */
export function chromiumAvailability(): ChromiumAvailability {
  const fromEnv = process.env.CHROMIUM_PATH;
  const executablePath = fromEnv ?? CANDIDATES.find((path) => existsSync(path));
  if (executablePath !== undefined && existsSync(executablePath)) return { ok: true, executablePath };
  const reason = fromEnv
    ? `CHROMIUM_PATH=${fromEnv} does not exist`
    : `no chromium at ${CANDIDATES.join(', ')} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI) throw new Error(`page tests need a browser: ${reason}`);
  return { ok: false, reason };
}

/** Starts headless chromium. Sandboxing is off: the tests run as root in CI, where chromium refuses it. */
export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
}

/** The page of the current test, its context, and where screenshots go. */
export interface BrowserPageRef {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Saves a full-page PNG under the screenshot folder and returns its path. */
  screenshot(name: string): Promise<string>;
}

/** Options of `useBrowserPage`. */
export interface UseBrowserPageOptions {
  executablePath: string;
  /** Folder for screenshots (failures and explicit ones), created when needed. */
  screenshotDir: string;
  /** Viewport of every page. Default 1280 x 900. */
  viewport?: { width: number; height: number };
}

/**
 * Vitest hooks: one browser for the file, a new context and page per test, closed after it; when a
 * test fails, the page as it was is saved to `<screenshotDir>/failed-<test name>.png` and the path
 * printed, so the failure can be seen, not only read.
 */
export function useBrowserPage(options: UseBrowserPageOptions): BrowserPageRef {
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page | undefined;

  const screenshot = async (name: string): Promise<string> => {
    if (!page) throw new Error('no page: screenshot() is for use inside a test');
    await mkdir(options.screenshotDir, { recursive: true });
    const path = join(options.screenshotDir, `${safeFileName(name)}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  };

  beforeAll(async () => {
    browser = await launchChromium(options.executablePath);
  });
  beforeEach(async () => {
    if (!browser) throw new Error('the browser did not start');
    context = await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 900 } });
    page = await context.newPage();
  });
  afterEach(async ({ task }) => {
    // The test's own errors are recorded before the after-hooks run (onTestFailed comes too late:
    // after these hooks have closed the page).
    if ((task.result?.errors?.length ?? 0) > 0) {
      try {
        const path = await screenshot(`failed-${task.name}`);
        process.stderr.write(`screenshot of the failed page: ${path}\n`);
      } catch (error) {
        process.stderr.write(`no screenshot of the failed page: ${String(error)}\n`);
      }
    }
    await context?.close();
    context = undefined;
    page = undefined;
  });
  afterAll(async () => {
    await browser?.close();
  });

  return {
    get page(): Page {
      if (!page) throw new Error('no page: use it inside a test');
      return page;
    },
    get context(): BrowserContext {
      if (!context) throw new Error('no browser context: use it inside a test');
      return context;
    },
    screenshot,
  };
}

function safeFileName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 80);
}
