import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { migrationStatus, openDatabase } from '../src/index.js';
import { describeDbSuite, FIXTURE_MIGRATIONS } from './db-suite.js';
import { widgets } from './fixtures/schema.js';

let root: string | undefined;
const dataDir = (): string => join(root ?? '', 'data', 'service');

afterAll(async () => {
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describeDbSuite('PGlite', async () => {
  root = await mkdtemp(join(tmpdir(), 'db-pglite-'));
  // A nested path that does not exist yet: openDatabase creates it, as `./data/<service>` on a fresh host.
  return openDatabase({ dataDir: dataDir() });
});

// Runs after the suite closed its instance: a service restart must find its rows and migrations.
it('keeps data and migration state across a restart', async () => {
  const reopened = await openDatabase({ dataDir: dataDir() });
  try {
    expect(reopened.kind).toBe('pglite');
    const rows = await reopened.db.select({ name: widgets.name }).from(widgets);
    expect(rows.map((r) => r.name)).toContain('taken@example.com');
    expect((await migrationStatus(reopened, FIXTURE_MIGRATIONS)).pending).toEqual([]);
  } finally {
    await reopened.close();
  }
}, 30_000);
