import { basename } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { randomSuffix } from './random.js';

const DEFAULT_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
/** PostgreSQL truncates identifiers past 63 bytes; keep the hint short so the random part survives. */
const MAX_HINT = 30;

/** A database created for tests, to drop when they are done. */
export interface TestDatabase {
  /** Connection string of the new database (same server, user and options as the admin URL). */
  readonly url: string;
  readonly name: string;
  /** Ends leftover connections and drops the database; safe to call twice. */
  drop(): Promise<void>;
}

/** Options of `createTestDatabase` and `useTestDatabase`. */
export interface CreateTestDatabaseOptions {
  /** Goes into the name to tell databases apart in `\l`, e.g. the test file. Default `db`. */
  hint?: string;
  /** A URL of the server with rights to CREATE DATABASE. Default `TEST_DATABASE_URL` or the local server. */
  serverUrl?: string;
}

/** The admin URL used for test databases: `TEST_DATABASE_URL`, else postgres@127.0.0.1:5432. */
export function testDatabaseServerUrl(): string {
  return process.env.TEST_DATABASE_URL ?? DEFAULT_SERVER_URL;
}

/** Creates an empty database named `t_<hint>_<random>` on the test server. */
export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const serverUrl = options.serverUrl ?? testDatabaseServerUrl();
  const name = `t_${sanitizeHint(options.hint ?? 'db')}_${randomSuffix()}`;
  await withAdminClient(serverUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      if (dropped) return;
      dropped = true;
      await withAdminClient(serverUrl, async (client) => {
        // A pool the test forgot to close would otherwise keep the database alive.
        await client.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      });
    },
  };
}

/** What `useTestDatabase` hands a test file; read it inside tests or hooks, not at import time. */
export interface TestDatabaseRef {
  readonly url: string;
  readonly name: string;
}

/**
 * One fresh database for the calling test file: created in `beforeAll`, dropped in `afterAll`.
 * Register it at the top of the file so it runs before the file's own `beforeAll` hooks.
 */
export function useTestDatabase(options: CreateTestDatabaseOptions = {}): TestDatabaseRef {
  let current: TestDatabase | undefined;
  beforeAll(async () => {
    current = await createTestDatabase({
      ...options,
      hint: options.hint ?? fileHint(expect.getState().testPath),
    });
  });
  afterAll(async () => {
    await current?.drop();
  });
  const get = (): TestDatabase => {
    if (current === undefined)
      throw new Error('useTestDatabase: the database exists only once beforeAll has run');
    return current;
  };
  return {
    get url() {
      return get().url;
    },
    get name() {
      return get().name;
    },
  };
}

async function withAdminClient<T>(serverUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function fileHint(file: string | undefined): string {
  return basename(file ?? 'db').replace(/\.(test|spec)\.[cm]?[jt]sx?$/, '');
}

function sanitizeHint(hint: string): string {
  const clean = hint
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, MAX_HINT);
  return clean === '' ? 'db' : clean;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
