import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChecks, UpgradeError } from '@upgrade/core';
import { DrizzleQueryError, eq, sql } from 'drizzle-orm';
import { rejectionOf } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  mapPgError,
  migrate,
  isMigrateSubcommand,
  migrationStatus,
  runMigrateCommand,
  translatePgErrors,
  tryAdvisoryLock,
  withTx,
  type DatabaseHandle,
} from '../src/index.js';
import { parts, widgets } from './fixtures/schema.js';

export const FIXTURE_MIGRATIONS = fileURLToPath(new URL('./fixtures/drizzle', import.meta.url));

export { rejectionOf };

/** A copy of the fixture folder whose journal keeps only the first `count` migrations. */
async function fixturePrefix(count: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'db-migrations-'));
  await cp(FIXTURE_MIGRATIONS, dir, { recursive: true });
  const journalPath = join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, count);
  await writeFile(journalPath, JSON.stringify(journal));
  return dir;
}

/** A copy of the fixture folder with one more migration dated between the two real ones. */
async function fixtureWithLateBranch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'db-migrations-'));
  await cp(FIXTURE_MIGRATIONS, dir, { recursive: true });
  const journalPath = join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as {
    entries: { when: number; tag: string }[];
  };
  const first = journal.entries[0]?.when ?? 0;
  journal.entries.push({ ...journal.entries[0], when: first + 1, tag: '0002_late_branch' });
  await writeFile(journalPath, JSON.stringify(journal));
  await writeFile(join(dir, '0002_late_branch.sql'), 'SELECT 1;');
  return dir;
}

/**
 * The behaviour every driver must share, run once per driver (drizzle's shared `tests()`).
 * `open` is called once for the whole suite: a PGlite instance costs ~2 s and ~800 MB.
 * Tests run in order and build on each other's migrations.
 */
export function describeDbSuite(name: string, open: () => Promise<DatabaseHandle>): void {
  describe(`@upgrade/db on ${name}`, () => {
    let handle: DatabaseHandle;
    const tempDirs: string[] = [];

    beforeAll(async () => {
      handle = await open();
    }, 60_000);

    afterAll(async () => {
      await handle?.close();
      await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
    });

    describe('connection', () => {
      it('pings and reports healthy', async () => {
        await expect(handle.ping()).resolves.toBeUndefined();
        const report = await runChecks([handle.healthCheck()]);
        expect(report.status).toBe('ok');
        expect(report.checks[0]).toMatchObject({ name: 'database', status: 'ok', detail: handle.kind });
      });

      it('refuses a ping whose signal is already aborted', async () => {
        const error = await rejectionOf(handle.ping(AbortSignal.abort(new Error('shutting down'))));
        expect(error.code).toBe('ABORTED');
      });

      it('executes raw SQL and returns rows', async () => {
        const rows = await handle.execute<{ n: number }>(sql`SELECT ${41}::int + 1 AS n`);
        expect(rows).toEqual([{ n: 42 }]);
        expect(await handle.execute('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      });

      it('reports SQL errors mapped, never raw', async () => {
        const error = await rejectionOf(handle.execute('SELECT * FROM no_such_table'));
        expect(error.code).toBe('INTERNAL');
        expect(error.message).not.toContain('no_such_table');
        expect(error.cause).toBeDefined();
      });
    });

    describe('migrations', () => {
      it('lists every migration as pending on an empty database', async () => {
        const status = await migrationStatus(handle, FIXTURE_MIGRATIONS);
        expect(status.applied).toEqual([]);
        expect(status.pending.map((m) => m.tag)).toEqual(['0000_create_widgets', '0001_add_parts']);
        expect(status.skipped).toEqual([]);
        expect(status.unknown).toEqual([]);
      });

      it('applies only what is pending, in order', async () => {
        const first = await fixturePrefix(1);
        tempDirs.push(first);
        expect((await migrate(handle, first)).map((m) => m.tag)).toEqual(['0000_create_widgets']);

        const midway = await migrationStatus(handle, FIXTURE_MIGRATIONS);
        expect(midway.applied.map((m) => m.tag)).toEqual(['0000_create_widgets']);
        expect(midway.pending.map((m) => m.tag)).toEqual(['0001_add_parts']);

        expect((await migrate(handle, FIXTURE_MIGRATIONS)).map((m) => m.tag)).toEqual(['0001_add_parts']);
        const done = await migrationStatus(handle, FIXTURE_MIGRATIONS);
        expect(done.applied.map((m) => m.tag)).toEqual(['0000_create_widgets', '0001_add_parts']);
        expect(done.pending).toEqual([]);
        expect(await handle.execute(`SELECT count(*)::int AS n FROM parts`)).toEqual([{ n: 0 }]);
      });

      it('is a no-op when re-run', async () => {
        expect(await migrate(handle, FIXTURE_MIGRATIONS)).toEqual([]);
        const rows = await handle.execute<{ n: number }>(
          'SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations',
        );
        expect(rows).toEqual([{ n: 2 }]);
      });

      it('names migrations the database has but this build lacks', async () => {
        const older = await fixturePrefix(1);
        tempDirs.push(older);
        const status = await migrationStatus(handle, older);
        expect(status.applied.map((m) => m.tag)).toEqual(['0000_create_widgets']);
        expect(status.unknown).toHaveLength(1);
      });

      it('names migrations drizzle would skip because they are older than the last applied', async () => {
        const branched = await fixtureWithLateBranch();
        tempDirs.push(branched);
        const status = await migrationStatus(handle, branched);
        expect(status.skipped.map((m) => m.tag)).toEqual(['0002_late_branch']);
        expect(status.pending).toEqual([]);
      });

      it('prints the migrate command lines: status of every kind, and up when nothing is pending', async () => {
        const branched = await fixtureWithLateBranch();
        tempDirs.push(branched);
        expect(await runMigrateCommand(handle, branched, 'status')).toEqual([
          'applied  0000_create_widgets',
          'applied  0001_add_parts',
          'skipped  0002_late_branch (older than the last applied one; never applied)',
        ]);
        const older = await fixturePrefix(1);
        tempDirs.push(older);
        const lines = await runMigrateCommand(handle, older, 'status');
        expect(lines[0]).toBe('applied  0000_create_widgets');
        expect(lines[1]).toMatch(
          /^unknown {2}[0-9a-f]{12} applied \S+ \(in the database, not in this build\)$/,
        );
        expect(await runMigrateCommand(handle, FIXTURE_MIGRATIONS, 'up')).toEqual(['up to date']);
        expect(isMigrateSubcommand('status')).toBe(true);
        expect(isMigrateSubcommand('down')).toBe(false);
      });

      it('rejects a folder without a journal as a configuration error', async () => {
        const error = await rejectionOf(migrate(handle, join(tmpdir(), 'no-such-migrations')));
        expect(error.code).toBe('CONFIG_INVALID');
      });
    });

    describe('withTx', () => {
      beforeAll(async () => {
        await migrate(handle, FIXTURE_MIGRATIONS);
      });

      it('commits every write when the callback resolves', async () => {
        const result = await withTx(handle, async (tx) => {
          const [w] = await tx.insert(widgets).values({ name: 'commit-a' }).returning();
          await tx.insert(parts).values({ widgetId: w?.id ?? -1, label: 'commit-part' });
          return w?.id;
        });
        expect(result).toBeTypeOf('number');
        expect(await handle.db.select().from(parts).where(eq(parts.label, 'commit-part'))).toHaveLength(1);
      });

      it('rolls back every write when the callback throws, passing its UpgradeError through', async () => {
        const own = new UpgradeError('ILLEGAL_TRANSITION', 'stop here');
        const error = await rejectionOf(
          withTx(handle, async (tx) => {
            await tx.insert(widgets).values({ name: 'rollback-a' });
            throw own;
          }),
        );
        expect(error).toBe(own);
        expect(await handle.db.select().from(widgets).where(eq(widgets.name, 'rollback-a'))).toEqual([]);
      });

      it('writes both or neither when the second write violates a constraint', async () => {
        const error = await rejectionOf(
          withTx(handle, async (tx) => {
            await tx.insert(widgets).values({ name: 'pair-a' });
            await tx.insert(widgets).values({ name: 'pair-a' });
          }),
        );
        expect(error.code).toBe('CONFLICT');
        expect(await handle.db.select().from(widgets).where(eq(widgets.name, 'pair-a'))).toEqual([]);
      });

      it('accepts the drizzle database as well as the handle', async () => {
        await withTx(handle.db, (tx) => tx.insert(widgets).values({ name: 'via-db' }));
        expect(await handle.db.select().from(widgets).where(eq(widgets.name, 'via-db'))).toHaveLength(1);
      });
    });

    describe('error mapping', () => {
      beforeAll(async () => {
        await migrate(handle, FIXTURE_MIGRATIONS);
        await handle.db.insert(widgets).values({ name: 'taken@example.com' });
      });

      it('maps a unique violation to CONFLICT 409 naming the constraint, not the value', async () => {
        const error = await rejectionOf(
          translatePgErrors(() => handle.db.insert(widgets).values({ name: 'taken@example.com' })),
        );
        expect(error).toMatchObject({ code: 'CONFLICT', status: 409, retryable: false });
        expect(error.message).toContain('widgets_name_unique');
        expect(error.message).not.toContain('taken@example.com');
        expect(error.details).toMatchObject({ constraint: 'widgets_name_unique', sqlState: '23505' });
        // drizzle wraps the driver error (its message holds the SQL and parameters); it stays for logs only.
        expect(error.cause).toBeInstanceOf(DrizzleQueryError);
      });

      it('maps a foreign key violation to CONFLICT', async () => {
        const error = await rejectionOf(
          translatePgErrors(() => handle.db.insert(parts).values({ widgetId: 999_999, label: 'orphan' })),
        );
        expect(error).toMatchObject({ code: 'CONFLICT', status: 409 });
        expect(error.message).toContain('parts_widget_id_widgets_id_fk');
      });

      it('maps not-null, check and malformed values to VALIDATION_FAILED', async () => {
        const notNull = await rejectionOf(handle.execute(`INSERT INTO widgets (name) VALUES (NULL)`));
        expect(notNull).toMatchObject({ code: 'VALIDATION_FAILED', status: 400 });
        expect(notNull.message).toContain('"name"');

        const check = await rejectionOf(
          translatePgErrors(() => handle.db.insert(widgets).values({ name: 'negative', quantity: -1 })),
        );
        expect(check).toMatchObject({
          code: 'VALIDATION_FAILED',
          details: { constraint: 'widgets_quantity_non_negative' },
        });

        const malformed = await rejectionOf(handle.execute(`SELECT 'not-a-number'::int`));
        expect(malformed).toMatchObject({ code: 'VALIDATION_FAILED', details: { sqlState: '22P02' } });
        expect(malformed.message).not.toContain('not-a-number');
      });

      it('is idempotent on UpgradeErrors', () => {
        const own = new UpgradeError('NOT_FOUND', 'no such widget');
        expect(mapPgError(own)).toBe(own);
      });
    });

    describe('advisory locks', () => {
      it('is exclusive until released', async () => {
        const release = await tryAdvisoryLock(handle, 'suite:round');
        expect(release).not.toBeNull();
        expect(release?.lost.aborted).toBe(false);
        expect(await tryAdvisoryLock(handle, 'suite:round')).toBeNull();

        const other = await tryAdvisoryLock(handle, 'suite:other');
        expect(other).not.toBeNull();
        await other?.();

        await release?.();
        await release?.(); // releasing twice is harmless
        const again = await tryAdvisoryLock(handle, 'suite:round');
        expect(again).not.toBeNull();
        await again?.();
      });

      it('accepts bigint keys and rejects ones outside int8', async () => {
        const release = await tryAdvisoryLock(handle, 42n);
        expect(release).not.toBeNull();
        await release?.();
        const error = await rejectionOf(tryAdvisoryLock(handle, 2n ** 63n));
        expect(error.code).toBe('VALIDATION_FAILED');
      });
    });
  });
}
