// The console in a real browser (Debian chromium through playwright-core) against the whole
// service as an operator runs it (startHaOrchestrator: migrations, crash recovery, a real loopback
// port) with the in-process fake pair. What is asserted is what a person sees on the page.
// The database is the real PostgreSQL server, not the embedded PGlite: PGlite's first start (initdb)
// took 40 s of this file's minute on the loaded test machine; the embedded path has its own test
// (embedded.test.ts), and nothing the page shows depends on which one serves.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '@upgrade/core';
import { useTestDatabase } from '@upgrade/testkit';
import { chromiumAvailability, useBrowserPage, type BrowserPageRef } from '@upgrade/testkit/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgUpgradeConfigStore } from '../src/adapters/pg-store.js';
import { loadHaConfig } from '../src/config.js';
import { CONSOLE_ROOT } from '../src/console.js';
import { startHaOrchestrator, type RunningService } from '../src/main.js';
import { writeConfigEnv } from './config-env.js';
import { createFakeCluster } from './fakes/fake-cluster.js';
import { TOKEN, buildPackage, signPackage, signingKeys } from './helpers.js';

type Page = BrowserPageRef['page'];

const availability = chromiumAvailability();
const testDb = useTestDatabase();

/** Runs in the page: records every text the task's status line shows, in order, in `window.seen`. */
const RECORD_STATUS_LINES = `(() => {
  const seen = [];
  window.seen = seen;
  const status = document.getElementById('task-status');
  new MutationObserver(() => seen.push(status.textContent)).observe(status, {
    childList: true,
    characterData: true,
    subtree: true,
  });
})()`;

describe.skipIf(!availability.ok)('the ha-orchestrator console in a browser', () => {
  const browser = useBrowserPage({
    executablePath: availability.ok ? availability.executablePath : '',
    screenshotDir: fileURLToPath(new URL('../test-results/console', import.meta.url)),
  });
  const dir = mkdtempSync(join(tmpdir(), 'ha-console-'));
  const keys = signingKeys();
  let service: RunningService;
  let base: string;

  beforeAll(async () => {
    if (!existsSync(join(CONSOLE_ROOT, 'index.html')))
      throw new Error('the console is not built: run `pnpm --filter @upgrade/ha-orchestrator build` first');
    const config = loadHaConfig({
      ...writeConfigEnv(dir, keys.publicPem),
      DATABASE_URL: testDb.url,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    // Node operations take a few hundred milliseconds: a run lasts a few seconds, long enough for
    // the page to show it under way.
    const pair = createFakeCluster({
      clock: systemClock,
      version: '2.3.0',
      latencyMs: {
        'backup.create': 300,
        'backup.verify': 20,
        'service.stop': 20,
        'service.start': 20,
        'jar.install': 20,
        'schema.apply': 20,
        putFile: 10,
      },
      vipMoveDelayMs: 100,
      replicationCatchUpMs: 30,
      rsyncIntervalMs: 30,
    });
    service = await startHaOrchestrator(config, {
      cluster: pair.cluster,
      handleSignals: false,
      logger: false,
    });
    await createPgUpgradeConfigStore(service.db.db).set({
      healthRetryIntervalMs: 20,
      vipSwitchTimeoutMs: 5_000,
    });
    base = service.address;
  });
  afterAll(async () => {
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page, token = TOKEN): Promise<void> {
    await page.goto(`${base}/`);
    await page.getByLabel('API token', { exact: true }).fill(token);
    await page.getByRole('button', { name: 'Open the console' }).click();
  }

  async function choosePackage(page: Page, zip: Buffer, signature: string): Promise<void> {
    await page.getByLabel('Package (ZIP with manifest.json)').setInputFiles({
      name: 'app.zip',
      mimeType: 'application/zip',
      buffer: zip,
    });
    await page.getByLabel('Signature (base64 ed25519 over the ZIP)').fill(signature);
    await page.getByRole('button', { name: 'Check, upload and start' }).click();
  }

  const historyRows = (page: Page) => page.locator('#history-table tbody tr');

  it('asks for the token again, saying why, when the API refuses it', async () => {
    // The page itself loads without a token (it holds no data); the API behind it does not answer.
    const html = await fetch(`${base}/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect((await fetch(`${base}/api/v1/upgrade/events`)).status).toBe(401);
    const { page } = browser;
    await signIn(page, 'not-the-token');
    const message = page.locator('#login-message');
    await message.waitFor();
    expect(await message.textContent()).toContain('the API token is not valid');
    expect(await page.getByLabel('API token', { exact: true }).isVisible()).toBe(true);
    expect(await page.locator('#console').isHidden()).toBe(true);
    // The token never shows up in the address.
    expect(page.url()).toBe(`${base}/`);
  });

  it('refuses a package whose signature no trusted key verifies, before uploading it', async () => {
    const { page } = browser;
    await signIn(page);
    await page.getByRole('heading', { name: 'The pair now' }).waitFor();
    const zip = await buildPackage({ version: '2.4.0' });
    await choosePackage(page, zip, signPackage(zip, signingKeys().privateKey));
    const result = page.locator('#upload-result');
    await expect.poll(() => result.textContent()).toContain('Not uploaded');
    expect(await page.locator('#upload-checks').textContent()).toContain(
      "failed: The signature does not verify against any of the orchestrator's 1 signing key(s)",
    );
    const history = await (
      await fetch(`${base}/api/v1/upgrade/history`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json();
    expect((history as { total: number }).total).toBe(0);
  });

  it("shows the orchestrator's refusal of a signed package it cannot use", async () => {
    const { page } = browser;
    await signIn(page);
    await page.getByRole('heading', { name: 'The pair now' }).waitFor();
    const zip = await buildPackage({ version: '2.4.0', omitManifest: true });
    await choosePackage(page, zip, signPackage(zip, keys.privateKey));
    const result = page.locator('#upload-result');
    await expect.poll(() => result.textContent()).toContain('Refused (HTTP 400');
    expect(await result.textContent()).toContain('MANIFEST_MISSING');
    expect(await page.locator('#upload-checks').textContent()).toContain('passed: The signature verifies');
  });

  it('uploads a signed package and follows the upgrade live to COMPLETE, then lists it in the history', async () => {
    const { page } = browser;
    await signIn(page);
    await expect.poll(() => page.locator('#feed-status').textContent()).toBe('Live');
    // The pair as /health sees it: both nodes on 2.3.0, node-a holding the VIP.
    const nodeA = page.locator('#pair-table tr[data-node="node-a"]');
    await expect.poll(() => nodeA.textContent()).toContain('holds the VIP');
    expect(await nodeA.textContent()).toContain('2.3.0');
    expect(await nodeA.textContent()).toContain('priority 150');

    // Every status line the page shows, in order, to see the task under way and not only its end.
    await page.evaluate(RECORD_STATUS_LINES);

    const zip = await buildPackage({ version: '2.4.0' });
    await choosePackage(page, zip, signPackage(zip, keys.privateKey));
    await expect.poll(() => page.locator('#upload-result').textContent()).toContain('Accepted: task');

    const complete = page.locator('#timeline li[data-state="COMPLETE"]');
    await expect.poll(() => complete.textContent(), { timeout: 30_000 }).toBe('COMPLETEended here');
    for (const state of [
      'IDLE',
      'PREPARE',
      'BACKUP',
      'UPGRADE_BACKUP',
      'VIP_SWITCH',
      'UPGRADE_MASTER',
      'VERIFY',
    ])
      expect(await page.locator(`#timeline li[data-state="${state}"]`).textContent()).toBe(`${state}passed`);
    expect(await page.locator('#timeline li[data-state="ROLLBACK"]').textContent()).toBe(
      'ROLLBACKnot reached',
    );
    expect(await page.locator('#task-status').textContent()).toBe('Ended COMPLETE, 100 %');
    const seen = await page.evaluate<string[]>('window.seen');
    expect(
      seen.some((line) =>
        /^(IDLE|PREPARE|BACKUP|UPGRADE_BACKUP|VIP_SWITCH|UPGRADE_MASTER|VERIFY)\b.* %$/.test(line),
      ),
    ).toBe(true);

    // The log lines arrived as they were written, the transitions among them.
    const log = page.locator('#task-log li');
    await expect.poll(async () => (await log.allTextContents()).join('\n')).toContain('VERIFY → COMPLETE');
    expect((await log.allTextContents()).join('\n')).toContain('VIP switch attempt 1');
    expect(await log.count()).toBeGreaterThan(10);
    expect(await page.locator('#task-details').textContent()).toMatch(/Downtime\d/);

    // After the upgrade the pair has moved: node-b holds the VIP, both on 2.4.0.
    const nodeB = page.locator('#pair-table tr[data-node="node-b"]');
    await expect.poll(() => nodeB.textContent(), { timeout: 15_000 }).toContain('holds the VIP');
    expect(await nodeB.textContent()).toContain('2.4.0');

    // The history lists it; its full log and downtime open below the table.
    await expect.poll(() => historyRows(page).count()).toBe(1);
    expect(await historyRows(page).first().textContent()).toContain('COMPLETE');
    await historyRows(page).first().getByRole('button').click();
    const fullLog = page.locator('#history-log');
    await expect.poll(() => fullLog.textContent()).toContain('downtime');
    expect(await fullLog.locator('tbody tr').count()).toBe(
      Number(/(\d+) lines/.exec((await fullLog.textContent()) ?? '')?.[1]),
    );

    // The cancel button is off for an ended task; the restore asks first and says what it does.
    expect(await page.getByRole('button', { name: 'Cancel the upgrade…' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Restore from its backups…' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain('one at a time so clients do not notice');
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);

    await browser.screenshot('final-ha-console');
  });
});
