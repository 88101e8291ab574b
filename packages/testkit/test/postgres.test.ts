import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, testDatabaseServerUrl, useTestDatabase } from '../src/index.js';

async function query<Row extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return (await client.query<Row>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function databaseExists(name: string): Promise<boolean> {
  const rows = await query(testDatabaseServerUrl(), 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length === 1;
}

describe('createTestDatabase', () => {
  it('creates a database that accepts connections and drops it', async () => {
    const db = await createTestDatabase({ hint: 'Create Drop!' });
    expect(db.name).toMatch(/^t_create_drop_[0-9a-f]{10}$/);
    expect(await databaseExists(db.name)).toBe(true);
    const [row] = await query<{ db: string }>(db.url, 'SELECT current_database() AS db');
    expect(row?.db).toBe(db.name);

    await db.drop();
    expect(await databaseExists(db.name)).toBe(false);
    await expect(db.drop()).resolves.toBeUndefined();
  });

  it('drops a database that still has an open connection', async () => {
    const db = await createTestDatabase();
    const leftover = new pg.Client({ connectionString: db.url });
    leftover.on('error', () => undefined); // terminated by drop(); that is the point
    await leftover.connect();
    try {
      await db.drop();
      expect(await databaseExists(db.name)).toBe(false);
    } finally {
      await leftover.end().catch(() => undefined);
    }
  });

  it('gives every database its own name', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    try {
      expect(a.name).not.toBe(b.name);
    } finally {
      await Promise.all([a.drop(), b.drop()]);
    }
  });
});

describe('useTestDatabase', () => {
  const testDb = useTestDatabase();
  // Read during collection, before any hook ran: the mistake the getter guards against.
  const earlyRead = errorMessageOf(() => testDb.url);

  it('refuses to hand out a URL before beforeAll has run', () => {
    expect(earlyRead).toMatch(/beforeAll/);
  });

  it('names the database after the test file and serves it', async () => {
    usedName = testDb.name;
    expect(testDb.name).toMatch(/^t_postgres_[0-9a-f]{10}$/);
    await query(testDb.url, 'CREATE TABLE t (id int)');
    expect(await query(testDb.url, 'SELECT * FROM t')).toEqual([]);
  });
});

let usedName: string | undefined;

it('useTestDatabase drops the database in afterAll', async () => {
  expect(usedName).toBeDefined();
  expect(await databaseExists(usedName ?? '')).toBe(false);
});

function errorMessageOf(fn: () => unknown): string {
  try {
    fn();
    return '';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
