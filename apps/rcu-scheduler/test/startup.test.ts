// Start-up as an operator meets it: the built CLI as a process against the real PostgreSQL. A
// mistake a restart cannot fix exits 2 (PM2 does not loop on it) with one line naming
// DATABASE_URL's host:port and the cause; what may pass exits 1.
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { testDatabaseServerUrl, useTestDatabase } from '@upgrade/testkit';
import { FILES, makeGroups, tempDir } from './helpers.js';
import { CLI, runCli, startServiceProcess } from './process.js';

const database = useTestDatabase();
const dirs: ReturnType<typeof tempDir>[] = [];
const created: string[] = [];
afterAll(async () => {
  const admin = new pg.Client({ connectionString: testDatabaseServerUrl() });
  await admin.connect();
  for (const name of created) await admin.query(`drop database if exists "${name}" with (force)`);
  await admin.end();
  for (const d of dirs) d.remove();
});

function dir(): string {
  const d = tempDir('rcu-startup-');
  dirs.push(d);
  return d.path;
}

function serverUrl(name: string, user?: string): string {
  const url = new URL(testDatabaseServerUrl());
  url.pathname = `/${name}`;
  if (user !== undefined) url.username = user;
  return url.toString();
}

const address = (): string => {
  const url = new URL(testDatabaseServerUrl());
  return `${url.hostname}:${url.port || '5432'}`;
};

async function databaseExists(name: string): Promise<boolean> {
  const admin = new pg.Client({ connectionString: testDatabaseServerUrl() });
  await admin.connect();
  try {
    return (await admin.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1;
  } finally {
    await admin.end();
  }
}

function serveEnv(databaseUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    DATA_DIR: dir(),
    VENDOR_BASE_URL: 'http://127.0.0.1:9/api',
    VENDOR_USERNAME: 'rcu',
    VENDOR_PASSWORD: 'rcu-password',
    RCU_GROUPS: JSON.stringify(makeGroups(1, 2)),
    FIRMWARE_FILES: JSON.stringify(FILES),
    PORT: '0',
    HOST: '127.0.0.1',
  };
}

const unique = (prefix: string): string => `${prefix}_${Math.random().toString(36).slice(2, 10)}`;

describe('start-up failures', () => {
  it('refuses a mistyped database name with exit 2 and one line, and creates nothing', async () => {
    const name = unique('rcu_typo');
    const result = await runCli(['serve'], serveEnv(serverUrl(name)));
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `rcu-scheduler: database "${name}" at ${address()} (DATABASE_URL): does not exist; check the name, or create it (DATABASE_CREATE=true lets the service do it)\n`,
    );
    expect(await databaseExists(name)).toBe(false);
  });

  it('creates a missing database when DATABASE_CREATE=true', async () => {
    const name = unique('rcu_create');
    created.push(name);
    const result = await runCli(['migrate', 'up'], {
      DATABASE_URL: serverUrl(name),
      DATABASE_CREATE: 'true',
      DATA_DIR: dir(),
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await databaseExists(name)).toBe(true);
  });

  it('refuses a role the server does not know with exit 2, without the password', async () => {
    const url = new URL(database.url);
    url.username = 'rcu_no_such_role';
    url.password = 'hunter2';
    const result = await runCli(['migrate', 'status'], { DATABASE_URL: url.toString(), DATA_DIR: dir() });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `rcu-scheduler: database "${database.name}" at ${address()} (DATABASE_URL): the server rejected role "rcu_no_such_role" or its password; check the user and password\n`,
    );
  });

  it('exits 1 with one line when the server does not answer: a restart may help', async () => {
    const port = await freePort();
    const result = await runCli(['serve'], serveEnv(`postgres://postgres@127.0.0.1:${port}/test_upgrade`));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `rcu-scheduler: database "test_upgrade" at 127.0.0.1:${port} (DATABASE_URL): database unavailable: connection refused; the supervisor restarts the service to try again\n`,
    );
  });
});

describe('embedded database', () => {
  it('says it is opening the embedded database before the migrations, then listens', async () => {
    const { DATABASE_URL: _, ...embedded } = serveEnv('');
    // A first start of PGlite runs initdb and the migrations: ~20 s measured on a loaded 2-core machine.
    const service = await startServiceProcess(
      { ...embedded, ROUND_ON_START: 'false' },
      { listenTimeoutMs: 60_000 },
    );
    try {
      const messages = service.logs.map((l) => l.msg);
      const opening = messages.indexOf(
        'opening the embedded database (its first start creates it: up to ~20 s)',
      );
      expect(opening).toBe(0);
      expect(messages.indexOf('database ready')).toBeGreaterThan(opening);
      expect(messages.indexOf('rcu-scheduler listening')).toBeGreaterThan(messages.indexOf('database ready'));
      expect(service.logs[0]).toMatchObject({ level: 30, service: 'rcu-scheduler', embedded: true });
    } finally {
      expect(await service.kill('SIGTERM')).toBe(0);
    }
  }, 90_000);
});

describe('.env', () => {
  it("reads the service's own .env when started from another directory; ./.env wins over it", async () => {
    // A copy of the built package: dist/cli.js with its migrations, spec and dependencies beside it.
    const pkg = dir();
    mkdirSync(join(pkg, 'dist'));
    copyFileSync(CLI, join(pkg, 'dist', 'cli.js'));
    const root = dirname(dirname(CLI));
    for (const entry of ['drizzle', 'spec', 'node_modules']) symlinkSync(join(root, entry), join(pkg, entry));
    writeFileSync(join(pkg, '.env'), `DATABASE_URL=${database.url}\nDATA_DIR=${dir()}\n`);
    const elsewhere = dir();

    const fromService = await runCli(
      ['migrate', 'status'],
      {},
      { cwd: elsewhere, cli: join(pkg, 'dist', 'cli.js') },
    );
    expect(fromService.stderr).toBe('');
    expect(fromService.code).toBe(0);
    expect(fromService.stdout).toContain('0000_init');

    const typo = unique('rcu_cwd');
    writeFileSync(join(elsewhere, '.env'), `DATABASE_URL=${serverUrl(typo)}\n`);
    const fromCwd = await runCli(
      ['migrate', 'status'],
      {},
      { cwd: elsewhere, cli: join(pkg, 'dist', 'cli.js') },
    );
    expect(fromCwd.code).toBe(2);
    expect(fromCwd.stderr).toContain(`database "${typo}"`);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
