// The operator console in a real browser (Debian chromium driven by playwright-core) against the
// real service: PostgreSQL, the vendor simulator, the built page. What is asserted is what a person
// sees: the round's hosts going final live, the history row, the charts' points, the ranking, the
// service's message when a round cannot start.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createRotation, type RotationState } from '@upgrade/core';
import { advisoryLockKey, migrate, openDatabase } from '@upgrade/db';
import { useTestDatabase } from '@upgrade/testkit';
import { chromiumAvailability, useBrowserPage } from '@upgrade/testkit/browser';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgStore } from '../src/adapters/pg-store.js';
import { loadRcuConfig } from '../src/config.js';
import * as schema from '../src/db/schema.js';
import { startRcuScheduler, type RunningService } from '../src/main.js';
import { migrationsFolder } from '../src/paths.js';
import type { FinalHostStatus } from '../src/ports.js';
import { FILES, makeGroups, tempDir } from './helpers.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

const availability = chromiumAvailability();
const database = useTestDatabase();
const GROUPS = makeGroups(2, 3); // rt100-h000..h002, rt101-h000..h002
const WAIT = { timeout: 30_000, interval: 100 };

/**
 * Three finished rounds an hour ago (A, A, B: the next is B again): rt101-h002 failed in all three, rt100-h002 in two,
 * every other host completed.
 */
async function seedHistory(url: string): Promise<void> {
  const handle = await openDatabase({ url, schema });
  try {
    await migrate(handle, migrationsFolder);
    const store = createPgStore(handle.db);
    const start = Date.now() - 60 * 60_000;
    const failing: Record<string, FinalHostStatus[]> = {
      'rt101-h002': ['failed', 'failed', 'timeout'],
      'rt100-h002': ['failed', 'completed', 'failed'],
    };
    const rotation = createRotation(FILES, 2);
    let state: RotationState | null = null;
    for (const n of [0, 1, 2]) {
      const { version: file, state: rotationAfter } = rotation.next(state);
      state = rotationAfter;
      const id = randomUUID();
      const startedAt = new Date(start + n * 10 * 60_000);
      await store.startRound({
        id,
        slot: null,
        trigger: 'schedule',
        ...file,
        rotationAfter,
        status: 'running',
        startedAt,
        finishedAt: null,
        groups: GROUPS.map((g) => ({ ...g, uuid: `seed-${n}-${g.roomTypeId}`, triggerError: null })),
      });
      const entries = GROUPS.flatMap((g) =>
        g.hosts.map((host) => {
          const status = failing[host]?.[n] ?? 'completed';
          return {
            roundId: id,
            uuid: `seed-${n}-${g.roomTypeId}`,
            roomTypeId: g.roomTypeId,
            host,
            ...file,
            status,
            startTime: startedAt,
            endTime: new Date(startedAt.getTime() + 20_000 + n * 1_000),
            configVersion: null,
            firmwareVersion: null,
            detail: status === 'completed' ? null : `seeded ${status} of ${host}`,
          };
        }),
      );
      await store.finishRound(id, entries, new Date(startedAt.getTime() + 60_000));
    }
  } finally {
    await handle.close();
  }
}

describe.skipIf(!availability.ok)('the rcu-scheduler console in a browser', () => {
  const browser = useBrowserPage({
    executablePath: availability.ok ? availability.executablePath : '',
    screenshotDir: fileURLToPath(new URL('../test-results/console', import.meta.url)),
  });
  const dataDir = tempDir('rcu-console-');
  let sim: VendorSimulator;
  let service: RunningService;
  let sql: pg.Pool;

  beforeAll(async () => {
    await seedHistory(database.url);
    sim = await startVendorSimulator({ hostDurationMs: 600, startSpreadMs: 50 });
    sql = new pg.Pool({ connectionString: database.url, max: 1 });
    service = await startRcuScheduler(
      loadRcuConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        DATA_DIR: dataDir.path,
        DATABASE_URL: database.url,
        VENDOR_BASE_URL: sim.baseUrl,
        VENDOR_USERNAME: sim.credentials.username,
        VENDOR_PASSWORD: sim.credentials.password,
        RCU_GROUPS: JSON.stringify(GROUPS),
        FIRMWARE_FILES: JSON.stringify(FILES),
        ROUND_INTERVAL_MS: '3600000',
        ROUND_ON_START: 'false',
        INITIAL_WAIT_MS: '100',
        POLL_INTERVAL_MS: '100',
        // Far beyond the test: the stuck host must stay running until the test lets it go.
        POLL_TIMEOUT_MS: '120000',
      }),
      { handleSignals: false },
    );
  });
  afterAll(async () => {
    await service?.stop();
    await sim?.close();
    await sql?.end();
    dataDir.remove();
  });

  const hostState = (roomTypeId: number, host: string) =>
    browser.page
      .getByRole('table', { name: `Room type ${roomTypeId}` })
      .getByRole('row', { name: new RegExp(host) })
      .getByRole('cell')
      .first()
      .textContent();
  const rowTexts = async (selector: string): Promise<string[]> =>
    (await browser.page.locator(selector).allTextContents()).map((text) => text.trim());
  const chart = (id: string) => browser.page.locator(`figure#${id}`);

  it("shows the service's message when a round cannot start, reached by keyboard, and fits a phone", async () => {
    const { page } = browser;
    // Another instance holds the round lock: the service answers 409.
    const holder = await sql.connect();
    try {
      await holder.query('select pg_advisory_lock($1)', [advisoryLockKey('rcu-scheduler:rounds').toString()]);
      await page.goto(`${service.address}/`);
      await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
      await page.keyboard.press('Tab'); // the skip link
      await page.keyboard.press('Tab');
      await expect.poll(() => page.locator(':focus').getAttribute('id')).toBe('run-round');
      await page.keyboard.press('Enter');
      const alert = page.getByRole('alert').filter({ hasText: 'could not start' });
      await alert.waitFor();
      expect(await alert.textContent()).toBe(
        'The round could not start: another instance is running a round; try again when it has finished',
      );
      expect(await page.getByRole('button', { name: 'Run a round now' }).isEnabled()).toBe(true);
    } finally {
      await holder.query('select pg_advisory_unlock_all()');
      holder.release();
    }

    await page.setViewportSize({ width: 390, height: 844 });
    await expect
      .poll(() => page.evaluate<number>('document.documentElement.scrollWidth'), WAIT)
      .toBeLessThanOrEqual(390);
    await browser.screenshot('final-rcu-console-390px');
  });

  it('runs a round from the button and shows it live, in the history, the charts and the ranking', async () => {
    const { page } = browser;
    await page.goto(`${service.address}/`);
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();

    // The seeded history: three rounds, a point each, two firmware files, two room types.
    await expect.poll(() => rowTexts('#history tbody tr'), WAIT).toHaveLength(3);
    await expect.poll(() => chart('chart-firmware').getAttribute('data-points'), WAIT).toBe('3');
    expect(await chart('chart-firmware').getAttribute('data-series')).toBe('2');
    expect(await chart('chart-room-type').getAttribute('data-series')).toBe('2');
    expect(await chart('chart-duration').getAttribute('data-series')).toBe('3');
    expect(await chart('chart-firmware').locator('canvas').count()).toBeGreaterThan(0);
    const ranked = async () => (await rowTexts('#failing tbody tr th')).map((t) => t.trim());
    await expect.poll(ranked, WAIT).toEqual(['rt101-h002', 'rt100-h002']);

    sim.failHosts(['rt100-h001'], { message: 'flash write error (simulated)' });
    sim.stickHosts(['rt101-h000']);
    await page.getByRole('button', { name: 'Run a round now' }).click();
    await page.getByText(/^Round [0-9a-f-]{36} started\.$/).waitFor();

    // Live: every host but the stuck one goes final while the round still runs.
    const summary = page.locator('#current-summary');
    await expect.poll(() => summary.textContent(), WAIT).toBe('Running: 5 of 6 hosts final.');
    expect(await hostState(100, 'rt100-h001')).toBe('failed');
    expect(await hostState(100, 'rt100-h000')).toBe('completed');
    expect(await hostState(101, 'rt101-h000')).toBe('running');
    expect(await page.getByRole('button', { name: 'Run a round now' }).isDisabled()).toBe(true);
    // The running round is already in the history.
    await expect.poll(() => rowTexts('#history tbody tr'), WAIT).toHaveLength(4);
    expect((await rowTexts('#history tbody tr'))[0]).toContain('running');

    sim.reset(); // the stuck host finishes
    await expect
      .poll(() => summary.textContent(), WAIT)
      .toMatch(/^Finished in .+: 5 completed, 1 failed, 0 timed out\.$/);
    expect(await hostState(101, 'rt101-h000')).toBe('completed');
    await expect.poll(async () => (await rowTexts('#history tbody tr'))[0], WAIT).toContain('finished');
    const newest = page.locator('#history tbody tr').first().getByRole('cell');
    expect(await newest.allTextContents()).toEqual([
      FILES[1].filename,
      'manual',
      'finished',
      '5',
      '1',
      '0',
      expect.stringMatching(/s$/) as unknown as string,
    ]);

    // One more point on each chart, in the canvas's figure and in its table.
    await expect.poll(() => chart('chart-firmware').getAttribute('data-points'), WAIT).toBe('4');
    for (const id of ['chart-firmware', 'chart-room-type', 'chart-duration']) {
      expect(await chart(id).getAttribute('data-points')).toBe('4');
      expect(await chart(id).locator('details table tbody tr').count()).toBe(4);
    }
    await expect.poll(ranked, WAIT).toEqual(['rt101-h002', 'rt100-h002', 'rt100-h001']);
    expect(await page.locator('#failing tbody tr').last().textContent()).toContain(
      'flash write error (simulated)',
    );

    await browser.screenshot('final-rcu-console');
  }, 120_000);
});
