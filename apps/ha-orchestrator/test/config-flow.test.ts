// The safety settings stored in upgrade_config (PostgreSQL) reach the flow: the task runner reads
// the store at the start of a task, and the pre-checks judge with the stored bounds, not the
// defaults; on the fake pair under a fake clock.
import { openDatabase, migrate, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPgUpgradeConfigStore } from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import type { UpgradeConfigStore, UpgradeTask } from '../src/ports.js';
import { runRollingUpgrade } from '../src/rolling-upgrade.js';
import { createTaskRunner } from '../src/task-runner.js';
import { createHarness, drive, type Harness } from './fakes/upgrade-harness.js';

const testDb = useTestDatabase();
let handle: DatabaseHandle<typeof schema>;
let store: UpgradeConfigStore;
let h: Harness;

beforeAll(async () => {
  handle = await openDatabase({ url: testDb.url, schema });
  await migrate(handle, migrationsFolder);
});
afterAll(async () => {
  await handle?.close();
});
beforeEach(async () => {
  await handle.execute('TRUNCATE upgrade_config');
  store = createPgUpgradeConfigStore(handle.db);
  // The harness's own config stays at the defaults: only the store carries the settings.
  h = createHarness();
});
afterEach(() => h.cleanup());

/** Runs one upgrade the way the service does: the task runner with the stored configuration. */
async function upgradeWithStoredConfig(): Promise<UpgradeTask> {
  const runner = createTaskRunner({
    tasks: h.deps.tasks,
    audit: h.deps.audit,
    configStore: store,
    cluster: h.fake.cluster,
    clock: h.clock,
    run: runRollingUpgrade,
  });
  const task = await h.newTask();
  runner.start(task, h.pkg);
  await drive(h.clock, runner.settled());
  const final = await h.deps.tasks.get(task.id);
  if (final === null) throw new Error(`task ${task.id} is gone`);
  return final;
}

describe('stored safety settings reach the flow', () => {
  it('the replication byte bound: a stalled standby is judged against the stored 8 MiB', async () => {
    await store.set({ replicationMaxLagBytes: 8 * 1024 * 1024 });
    h.fake.stallReplication();
    const task = await upgradeWithStoredConfig();
    expect(task.state).toBe('FAILED');
    expect(task.error?.message).toMatch(
      /^pre-check replication\.lag failed: .*20\.0 MiB behind \(bound 8\.0 MiB\)/,
    );
  });

  it('the time bound, once the stored byte bound lets the lag in bytes pass', async () => {
    await store.set({ replicationMaxLagBytes: 64 * 1024 * 1024, replicationMaxLagMs: 30_000 });
    h.fake.stallReplication();
    const task = await upgradeWithStoredConfig();
    expect(task.state).toBe('FAILED');
    expect(task.error?.message).toMatch(
      /^pre-check replication\.lag failed: .*60000 ms behind \(bound 30000 ms\)/,
    );
  });

  it('the backup space margin', async () => {
    await store.set({ backupSpaceMarginBytes: 1024 * 1024 * 1024 });
    h.fake.setFreeSpace('node-b', 900 * 1024 * 1024);
    const task = await upgradeWithStoredConfig();
    expect(task.state).toBe('FAILED');
    expect(task.error?.message).toMatch(
      /^pre-check backup\.space failed: .*node-b has 900 MiB free.*plus the 1024 MiB margin/,
    );
  });
});
