// The persistent stores' contract suites, run against memory, PostgreSQL and PGlite (one PGlite
// for the whole file: each costs ~2 s and ~800 MB), plus PostgreSQL going down.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UpgradeError } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { FakeClock, rejectionOf, startTcpProxy, useTestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as schema from '../src/db/schema.js';
import { createMemoryStores, createPgStores, type PersistentStores } from '../src/stores/index.js';
import { createMemoryTables } from '../src/stores/memory-tables.js';
import { devicesContract } from './contracts/devices.contract.js';
import { modelsContract } from './contracts/models.contract.js';
import type { StoresTarget } from './contracts/target.js';
import { tokensContract } from './contracts/tokens.contract.js';
import { usersContract } from './contracts/users.contract.js';

const MIGRATIONS = fileURLToPath(new URL('../drizzle', import.meta.url));
const TRUNCATE = 'TRUNCATE session_tokens, pairing_tokens, devices, models, users';
// Stands in for any failure between the two statements of unpairing (a dropped connection, a bug).
// One statement per string: PGlite runs each as a prepared statement.
const BREAK_REVOCATION = [
  `CREATE OR REPLACE FUNCTION fail_revocation() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN RAISE EXCEPTION 'revocation broken by the test'; END $$`,
  `CREATE TRIGGER session_tokens_broken BEFORE DELETE ON session_tokens
     FOR EACH ROW EXECUTE FUNCTION fail_revocation()`,
];
const REPAIR = 'DROP TRIGGER IF EXISTS session_tokens_broken ON session_tokens';

const testDb = useTestDatabase();

function memoryTarget(): StoresTarget {
  let tables = createMemoryTables();
  return {
    fresh: async () => {
      const clock = new FakeClock();
      tables = createMemoryTables();
      return { stores: createMemoryStores(clock, tables), clock };
    },
    breakTokenRevocation: async () => {
      tables.faults.revokeSessionTokens = () => {
        throw new UpgradeError('INTERNAL', 'database operation failed');
      };
    },
    close: async () => undefined,
  };
}

async function databaseTarget(
  handle: DatabaseHandle<typeof schema>,
  onClose = async () => {},
): Promise<StoresTarget> {
  await migrate(handle, MIGRATIONS);
  return {
    fresh: async () => {
      await handle.execute(REPAIR);
      await handle.execute(TRUNCATE);
      const clock = new FakeClock();
      return { stores: createPgStores(handle.db, clock), clock };
    },
    breakTokenRevocation: async () => {
      for (const statement of BREAK_REVOCATION) await handle.execute(statement);
    },
    close: async () => {
      await handle.close();
      await onClose();
    },
  };
}

const TARGETS: [string, () => Promise<StoresTarget>][] = [
  ['memory', async () => memoryTarget()],
  ['PostgreSQL', async () => databaseTarget(await openDatabase({ url: testDb.url, schema }))],
  [
    'PGlite',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'visiona-pglite-'));
      return databaseTarget(await openDatabase({ dataDir: dir, schema }), () =>
        rm(dir, { recursive: true, force: true }),
      );
    },
  ],
];

for (const [name, open] of TARGETS) {
  describe(`persistent stores on ${name}`, () => {
    let target: StoresTarget | undefined;
    let current: { stores: PersistentStores; clock: FakeClock } | undefined;
    beforeAll(async () => {
      target = await open();
    }, 60_000);
    afterAll(async () => {
      await target?.close();
    });
    beforeEach(async () => {
      if (target === undefined) throw new Error(`${name} target did not open`);
      current = await target.fresh();
    });
    const fresh = () => {
      if (current === undefined) throw new Error('no stores outside a test');
      return current;
    };
    const theTarget = () => {
      if (target === undefined) throw new Error(`${name} target did not open`);
      return target;
    };
    usersContract(fresh);
    modelsContract(fresh);
    devicesContract(fresh, theTarget);
    tokensContract(fresh);
  });
}

describe('persistent stores with PostgreSQL down', () => {
  it('fail fast with UNAVAILABLE (503) and work again once it is back', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(testDb.url).port || 5432) });
    const handle = openDatabase({
      url: proxy.via(testDb.url),
      schema,
      pool: { connectionTimeoutMillis: 1000 },
    });
    try {
      await migrate(await handle, MIGRATIONS);
      const stores = createPgStores((await handle).db, new FakeClock());
      const user = await stores.users.create({ email: 'down@example.com', passwordHash: 'h' });
      proxy.cut();
      const calls: [string, () => Promise<unknown>][] = [
        ['users.get', () => stores.users.get(user.id)],
        ['models.list', () => stores.models.list({ ownerId: user.id }, { limit: 10, offset: 0 })],
        ['devices.create', () => stores.devices.create({ ownerId: user.id, serial: 'X', name: 'x' })],
        ['devices.unpair', () => stores.devices.unpair(user.id, user.id)],
        ['pairingTokens.redeem', () => stores.pairingTokens.redeem('0'.repeat(64))],
        ['sessionTokens.find', () => stores.sessionTokens.find('0'.repeat(64))],
      ];
      const started = Date.now();
      for (const [what, call] of calls) {
        const error = await rejectionOf(call());
        expect({ what, code: error.code, status: error.status }).toEqual({
          what,
          code: 'UNAVAILABLE',
          status: 503,
        });
        expect(error.message).not.toMatch(/ECONN|127\.0\.0\.1/);
      }
      expect(Date.now() - started).toBeLessThan(3000);
      proxy.restore();
      expect(await stores.users.get(user.id)).toEqual(user);
    } finally {
      await (await handle).close();
      await proxy.close();
    }
  });
});
