// The console's actions in a real browser, on PostgreSQL with the scripted flow (it waits at a gate
// in UPGRADE_BACKUP until released or cancelled, so a cancel always finds the task running): the
// cancel behind its dialog, and a restore the orchestrator refuses, shown with its code.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UpgradeError } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase } from '@upgrade/testkit';
import { chromiumAvailability, useBrowserPage } from '@upgrade/testkit/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import { CONSOLE_ROOT } from '../src/console.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import {
  AUTH,
  TOKEN,
  buildPackage,
  buildTestApp,
  scriptedRun,
  signPackage,
  signingKeys,
  triggerBody,
  type TestApp,
} from './helpers.js';

const availability = chromiumAvailability();
const testDb = useTestDatabase();

describe.skipIf(!availability.ok)('the console’s actions in a browser', () => {
  const browser = useBrowserPage({
    executablePath: availability.ok ? availability.executablePath : '',
    screenshotDir: fileURLToPath(new URL('../test-results/console', import.meta.url)),
  });
  const keys = signingKeys();
  let handle: DatabaseHandle<typeof schema>;
  let t: TestApp;
  let base: string;
  let release: () => void = () => undefined;
  /** What each restore was asked for. */
  const restores: { taskId: string; restoreDatabase: boolean }[] = [];

  beforeAll(async () => {
    if (!existsSync(join(CONSOLE_ROOT, 'index.html')))
      throw new Error('the console is not built: run `pnpm --filter @upgrade/ha-orchestrator build` first');
    handle = await openDatabase({ url: testDb.url, schema });
    await migrate(handle, migrationsFolder);
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    t = await buildTestApp({
      tasks: createPgTaskStore(handle.db),
      audit: createPgAuditTrail(handle.db),
      configStore: createPgUpgradeConfigStore(handle.db),
      requestLog: createPgApiRequestLog(handle.db),
      database: handle.healthCheck('database'),
      run: scriptedRun(() => gate),
      restore: async (_deps, taskId, options) => {
        restores.push({ taskId, restoreDatabase: options?.restoreDatabase === true });
        throw new UpgradeError('VALIDATION_FAILED', 'task has no backups to restore from');
      },
      keys: [keys.publicKey],
    });
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    release();
    await t?.close();
    await handle?.close();
  });

  it('cancels the running task once the dialog is confirmed with a reason; a refused restore, rolling or with the database, shows why', async () => {
    const { page } = browser;
    const zip = await buildPackage({ version: '2.4.0' });
    const body = triggerBody(zip, signPackage(zip, keys.privateKey));
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/upgrade/trigger',
      payload: body.payload,
      headers: { ...body.headers, ...AUTH },
    });
    expect(res.statusCode, res.body).toBe(201);

    await page.goto(`${base}/`);
    await page.getByLabel('API token', { exact: true }).fill(TOKEN);
    await page.getByRole('button', { name: 'Open the console' }).click();
    await expect
      .poll(() => page.locator('#task-status').textContent())
      .toBe('UPGRADE_BACKUP, step upgrade_backup.step, 40 %');

    // Going back from the dialog changes nothing.
    const cancel = page.getByRole('button', { name: 'Cancel the upgrade…' });
    await cancel.click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain('stops at its next safe point');
    await dialog.getByRole('button', { name: 'Go back' }).click();
    await expect.poll(() => dialog.isVisible()).toBe(false);
    expect(await page.locator('#task-status').textContent()).toBe(
      'UPGRADE_BACKUP, step upgrade_backup.step, 40 %',
    );

    // Confirmed with a reason (typed with the keyboard, the dialog holds the focus).
    await cancel.click();
    await page.keyboard.type('maintenance window closed');
    await dialog.getByRole('button', { name: 'Cancel the upgrade' }).click();
    const cancelled = page.locator('#timeline li[data-state="CANCELLED"]');
    await expect.poll(() => cancelled.textContent()).toBe('CANCELLEDended here');
    expect(await page.locator('#task-details').textContent()).toContain('maintenance window closed');
    expect(await cancel.isDisabled()).toBe(true);

    // A restore the orchestrator refuses: its code and message are shown. The default is the
    // rolling restore; the box asks for the database too.
    const restore = page.getByRole('button', { name: 'Restore from its backups…' });
    await restore.click();
    expect(await dialog.textContent()).toContain('no database row is lost');
    await dialog.getByRole('button', { name: 'Restore from backups' }).click();
    const result = page.locator('#task-action-result');
    await expect
      .poll(() => result.textContent())
      .toBe('Refused (HTTP 400 VALIDATION_FAILED): task has no backups to restore from');
    await restore.click();
    await dialog.getByLabel("Also replace the database from the backup's dump").check();
    await dialog.getByRole('button', { name: 'Restore from backups' }).click();
    await expect.poll(() => restores.length).toBe(2);
    const id = res.json<{ task_id: string }>().task_id;
    expect(restores).toEqual([
      { taskId: id, restoreDatabase: false },
      { taskId: id, restoreDatabase: true },
    ]);
  });
});
