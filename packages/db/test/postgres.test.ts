import { createServer, type Server, type Socket } from 'node:net';
import { runChecks } from '@upgrade/core';
import { createTestDatabase, startTcpProxy, useTestDatabase } from '@upgrade/testkit';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureDatabase,
  migrate,
  migrationStatus,
  openDatabase,
  tryAdvisoryLock,
  withTx,
  type DatabaseHandle,
  type OpenDatabaseOptions,
} from '../src/index.js';
import { describeDbSuite, FIXTURE_MIGRATIONS, rejectionOf } from './db-suite.js';
import { widgets } from './fixtures/schema.js';

const testDb = useTestDatabase();

describeDbSuite('PostgreSQL', () => openDatabase({ url: testDb.url }));

/** Resolves once `condition` holds, polling briefly; for effects that arrive over a socket. */
async function eventually(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('@upgrade/db on PostgreSQL only', () => {
  const opened: DatabaseHandle[] = [];
  let admin: DatabaseHandle;

  async function open(options: OpenDatabaseOptions<Record<string, never>> = {}): Promise<DatabaseHandle> {
    const handle = await openDatabase({ url: testDb.url, ...options });
    opened.push(handle);
    return handle;
  }

  /** Ends this database's sessions of one application, as an administrator or a failover would. */
  async function terminate(where: string): Promise<number> {
    const rows = await admin.execute<{ pid: number }>(
      `SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND ${where}`,
    );
    return rows.length;
  }

  beforeAll(async () => {
    admin = await open();
    await migrate(admin, FIXTURE_MIGRATIONS);
  });

  afterAll(async () => {
    await Promise.all(opened.map((h) => h.close()));
  });

  describe('advisory locks', () => {
    it('lets exactly one of two instances hold a lock', async () => {
      const a = await open();
      const b = await open();
      const releaseA = await tryAdvisoryLock(a, 'rcu:round');
      expect(releaseA).not.toBeNull();
      expect(await tryAdvisoryLock(b, 'rcu:round')).toBeNull();
      // The lock is held by a session, not by a query: the pool's other connections stay free.
      await expect(a.ping()).resolves.toBeUndefined();

      await releaseA?.();
      const releaseB = await tryAdvisoryLock(b, 'rcu:round');
      expect(releaseB).not.toBeNull();
      expect(await tryAdvisoryLock(a, 'rcu:round')).toBeNull();
      await releaseB?.();
    });

    it('signals `lost` when the lock connection dies, and the lock becomes free', async () => {
      const holder = await open({ pool: { applicationName: 'lock-holder' } });
      const release = await tryAdvisoryLock(holder, 'rcu:lost');
      expect(release).not.toBeNull();

      expect(await terminate(`application_name = 'lock-holder'`)).toBe(1);
      await eventually(() => release?.lost.aborted === true);
      expect(release?.lost.reason).toMatchObject({ code: 'UNAVAILABLE', retryable: true });

      const other = await tryAdvisoryLock(admin, 'rcu:lost');
      expect(other).not.toBeNull();
      await other?.();
      await expect(release?.()).resolves.toBeUndefined();
    });
  });

  describe('unavailable server', () => {
    it('answers UNAVAILABLE at once when nothing listens on the port', async () => {
      const down = await open({ url: 'postgres://postgres:secret@127.0.0.1:1/nowhere' });
      expect(down.target).not.toContain('secret');
      const started = performance.now();
      const error = await rejectionOf(down.ping());
      expect(performance.now() - started).toBeLessThan(5000);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable: true });
      expect(error.message).not.toContain('127.0.0.1');

      const report = await runChecks([down.healthCheck('postgres')]);
      expect(report.status).toBe('down');
      expect(report.checks[0]?.detail).toBe('UNAVAILABLE: database unavailable: connection refused');
      await expect(rejectionOf(down.execute('SELECT 1'))).resolves.toMatchObject({ code: 'UNAVAILABLE' });
    });

    describe('when the server accepts but never answers', () => {
      let silent: Server;
      const sockets: Socket[] = [];
      beforeAll(async () => {
        silent = createServer((socket) => sockets.push(socket));
        await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      });
      afterAll(async () => {
        sockets.forEach((s) => s.destroy());
        await new Promise((resolve) => silent.close(resolve));
      });

      it('gives up after the connect timeout with UNAVAILABLE', async () => {
        const { port } = silent.address() as { port: number };
        const hung = await open({
          url: `postgres://postgres@127.0.0.1:${port}/x`,
          pool: { connectionTimeoutMillis: 300 },
        });
        const started = performance.now();
        const error = await rejectionOf(hung.ping());
        expect(performance.now() - started).toBeLessThan(2000);
        expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      });
    });

    it('maps an administrator ending the session to UNAVAILABLE and recovers on the next query', async () => {
      const victim = await open({ pool: { applicationName: 'victim' } });
      const running = rejectionOf(victim.execute('SELECT pg_sleep(5)'));
      let ended = 0;
      const deadline = Date.now() + 3000;
      while (ended === 0 && Date.now() < deadline) {
        ended = await terminate(`application_name = 'victim' AND state = 'active'`);
      }
      const error = await running;
      expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true, details: { sqlState: '57P01' } });
      await expect(victim.ping()).resolves.toBeUndefined();
    });

    it('survives an idle pooled connection being dropped and logs it', async () => {
      const warnings: string[] = [];
      const idle = await open({
        pool: { applicationName: 'idle-victim' },
        logger: { warn: (_obj, msg) => warnings.push(msg) },
      });
      await idle.ping();
      expect(await terminate(`application_name = 'idle-victim'`)).toBe(1);
      await eventually(() => warnings.length > 0);
      expect(warnings[0]).toBe('idle database connection failed');
      await expect(idle.ping()).resolves.toBeUndefined();
    });
  });

  describe('timeouts and contention', () => {
    it('maps the statement timeout to TIMEOUT', async () => {
      const strict = await open({ pool: { statementTimeoutMillis: 50 } });
      const error = await rejectionOf(strict.execute('SELECT pg_sleep(2)'));
      expect(error).toMatchObject({ code: 'TIMEOUT', status: 504, details: { sqlState: '57014' } });
    });

    it('fails a query past the client-side deadline with TIMEOUT and drops its connection', async () => {
      const bounded = await open({ pool: { max: 1, queryTimeoutMillis: 200 } });
      const pid = async (): Promise<number> =>
        (await bounded.execute<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]?.pid ?? 0;
      const before = await pid();

      // The server stays busy for 20 s: only the client's deadline can end the wait.
      const late = await rejectionOf(bounded.execute('SELECT pg_sleep(20)'));
      expect(late).toMatchObject({ code: 'TIMEOUT' });
      // The pool's one slot is usable at once, on a new connection, not queued behind the sleep.
      const after = await pid();
      expect(after).not.toBe(before);

      // In a transaction, the ROLLBACK does not wait for the lost answer either.
      const inTx = await rejectionOf(
        withTx(bounded, async (tx) => {
          await tx.execute(sql`SELECT pg_sleep(20)`);
        }),
      );
      expect(['TIMEOUT', 'UNAVAILABLE']).toContain(inTx.code);
      expect(await pid()).not.toBe(after);
      await terminate(`query LIKE 'SELECT pg_sleep(20)%'`);
    });

    it('leaves queries without a deadline unless one is asked for', async () => {
      const plain = await open({ pool: { max: 1 } });
      await expect(plain.execute('SELECT pg_sleep(0.3)')).resolves.toHaveLength(1);
    });

    it('maps a deadlock to a retryable CONFLICT and rolls the loser back', async () => {
      await admin.db.insert(widgets).values([{ name: 'dl-1' }, { name: 'dl-2' }]);
      let arrived = 0;
      let bothLocked!: () => void;
      const barrier = new Promise<void>((resolve) => (bothLocked = resolve));
      const crossUpdate = (first: string, second: string) =>
        withTx(admin, async (tx) => {
          await tx.execute(sql`SET LOCAL deadlock_timeout = '50ms'`);
          await tx.update(widgets).set({ quantity: 1 }).where(eq(widgets.name, first));
          if (++arrived === 2) bothLocked();
          await barrier;
          await tx.update(widgets).set({ quantity: 2 }).where(eq(widgets.name, second));
        });
      const outcomes = await Promise.allSettled([crossUpdate('dl-1', 'dl-2'), crossUpdate('dl-2', 'dl-1')]);
      const failed = outcomes.filter((o) => o.status === 'rejected');
      expect(failed).toHaveLength(1);
      expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({
        code: 'CONFLICT',
        retryable: true,
        details: { sqlState: '40P01' },
      });
    });
  });

  describe('ensureDatabase', () => {
    it('creates a missing database once, even when instances race', async () => {
      const url = new URL(testDb.url);
      const name = `${testDb.name}_ensure`;
      url.pathname = `/${name}`;
      try {
        const results = await Promise.all([1, 2, 3].map(() => ensureDatabase(url.toString())));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(await ensureDatabase(url.toString())).toEqual({ created: false });
        const fresh = await open({ url: url.toString() });
        await expect(fresh.ping()).resolves.toBeUndefined();
        await fresh.close();
      } finally {
        await admin.execute(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }
    });

    it('reports an unreachable server as UNAVAILABLE', async () => {
      const error = await rejectionOf(ensureDatabase('postgres://postgres@127.0.0.1:1/test_upgrade'));
      expect(error.code).toBe('UNAVAILABLE');
    });
  });

  describe('migrations across instances', () => {
    it('serialises instances that start together: each migration applied once', async () => {
      const fresh = await createTestDatabase({ hint: 'migrate_race' });
      const handles = [
        await open({ url: fresh.url }),
        await open({ url: fresh.url }),
        await open({ url: fresh.url }),
      ];
      try {
        const applied = await Promise.all(handles.map((h) => migrate(h, FIXTURE_MIGRATIONS)));
        expect(applied.flat().map((m) => m.tag)).toEqual(['0000_create_widgets', '0001_add_parts']);
        const status = await migrationStatus(handles[0] as DatabaseHandle, FIXTURE_MIGRATIONS);
        expect(status.pending).toEqual([]);
      } finally {
        await Promise.all(handles.map((h) => h.close()));
        await fresh.drop();
      }
    });

    it('gives back pooled connections with the session settings restored', async () => {
      const single = await open({ pool: { max: 1, statementTimeoutMillis: 1234 } });
      await migrate(single, FIXTURE_MIGRATIONS);
      expect(await single.execute('SHOW statement_timeout')).toEqual([{ statement_timeout: '1234ms' }]);
      // This connection's own locks: the server is shared with other test files and runs.
      const locks = await single.execute(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`,
      );
      expect(locks).toEqual([{ n: 0 }]);
    });
  });
});

describe('@upgrade/db when PostgreSQL drops a connection in use', () => {
  it('fails the transaction with UNAVAILABLE and does not crash the process', async () => {
    const server = new URL(testDb.url);
    const proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    const handle = await openDatabase({
      url: proxy.via(testDb.url),
      pool: { connectionTimeoutMillis: 1000 },
    });
    try {
      const error = await rejectionOf(
        withTx(handle, async (tx) => {
          await tx.execute(sql`select 1`);
          // The server goes away between two statements of the transaction: the checked-out
          // client emits 'error' while no query is pending.
          proxy.cut();
          await new Promise((r) => setTimeout(r, 100));
          await tx.execute(sql`select 1`);
        }),
      );
      expect(error.code).toBe('UNAVAILABLE');
      proxy.restore();
      expect(await handle.execute<{ one: number }>('select 1 as one')).toEqual([{ one: 1 }]);
    } finally {
      await handle.close();
      await proxy.close();
    }
  });
});
