// What keeps a signed-in request cheap, and what keeps it safe: sessions record their user (on
// memory and Redis), ending a user's sessions takes the user's access away, sessions that name
// their user only are still checked against the user store, and the one-statement device page
// still counts a page past the end.
import { fileURLToPath } from 'node:url';
import { migrate, openDatabase } from '@upgrade/db';
import { FakeClock, useRedisPrefix, useTestDatabase } from '@upgrade/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createAccounts } from '../src/accounts.js';
import * as schema from '../src/db/schema.js';
import type { SessionUser, UserSessionStore } from '../src/ports.js';
import { createMemoryStores, createPgStores } from '../src/stores/index.js';
import { createMemoryTables } from '../src/stores/memory-tables.js';
import { createMemoryUserSessionStore } from '../src/stores/user-sessions.memory.js';
import { createRedisUserSessionStore } from '../src/stores/user-sessions.redis.js';

const TTL = { idleMs: 60_000, absoluteMs: 120_000 };
const ADA: SessionUser = {
  id: '7d0f6a52-9c55-4a43-8d4e-3c1b2f0a9e11',
  email: 'Ada@example.com',
  createdAt: new Date('2026-01-02T03:04:05.678Z'),
};
const BOB: SessionUser = { ...ADA, id: '0b7e1a2c-5f3d-4e6a-9b8c-1d2e3f4a5b6c', email: 'bob@example.com' };

const redisPrefix = useRedisPrefix();
const testDb = useTestDatabase();

const TARGETS: [string, () => Promise<{ store: UserSessionStore; close: () => Promise<void> }>][] = [
  [
    'memory',
    async () => ({ store: createMemoryUserSessionStore(TTL, new FakeClock()), close: async () => undefined }),
  ],
  [
    'Redis',
    async () => {
      const store = createRedisUserSessionStore({
        url: redisPrefix.url,
        keyPrefix: redisPrefix.prefix,
        ttl: TTL,
      });
      await store.ready();
      return { store, close: () => store.close() };
    },
  ],
];

for (const [name, open] of TARGETS) {
  describe(`user sessions recording their user on ${name}`, () => {
    it('give the user back on get and touch', async () => {
      const { store, close } = await open();
      try {
        const { sessionId, session } = await store.create(ADA);
        expect(session).toMatchObject({ userId: ADA.id, user: ADA });
        expect(await store.get(sessionId)).toMatchObject({ userId: ADA.id, user: ADA });
        expect(await store.touch(sessionId)).toMatchObject({ userId: ADA.id, user: ADA });
        const idOnly = await store.create(ADA.id);
        expect((await store.touch(idOnly.sessionId))?.user).toBeUndefined();
      } finally {
        await close();
      }
    });

    it('end together for one user, and only for that user', async () => {
      const { store, close } = await open();
      try {
        const first = await store.create(ADA);
        const second = await store.create(ADA);
        const ended = await store.create(ADA);
        await store.destroy(ended.sessionId);
        const bob = await store.create(BOB);
        expect(await store.destroyForUser(ADA.id)).toBe(2);
        expect(await store.get(first.sessionId)).toBeNull();
        expect(await store.get(second.sessionId)).toBeNull();
        expect(await store.get(bob.sessionId)).toMatchObject({ user: BOB });
        expect(await store.destroyForUser(ADA.id)).toBe(0);
        const later = await store.create(ADA);
        expect(await store.get(later.sessionId)).toMatchObject({ user: ADA });
      } finally {
        await close();
      }
    });
  });
}

describe('user sessions recording their user on Redis, storage', () => {
  it('keep the per-user set no longer than a session can live, holding hashed keys only', async () => {
    const { store, close } = await TARGETS[1]![1]();
    const redis = new Redis(redisPrefix.url);
    try {
      const { sessionId } = await store.create(ADA);
      const keys = await redis.keys(`${redisPrefix.prefix}*`);
      expect(keys).toHaveLength(2);
      const setKey = keys.find((k) => k.endsWith(`user:${ADA.id}`)) ?? '';
      const pttl = await redis.pttl(setKey);
      expect(pttl).toBeGreaterThan(TTL.idleMs);
      expect(pttl).toBeLessThanOrEqual(TTL.absoluteMs);
      const members = await redis.smembers(setKey);
      expect(members).toHaveLength(1);
      expect(members[0]).not.toContain(sessionId);
    } finally {
      redis.disconnect();
      await close();
    }
  });
});

describe('signing in', () => {
  it('serves requests from the session, and ending the user’s sessions signs them out everywhere', async () => {
    const clock = new FakeClock();
    const tables = createMemoryTables();
    const stores = createMemoryStores(clock, tables);
    const accounts = createAccounts({
      users: stores.users,
      sessions: createMemoryUserSessionStore(TTL, clock),
    });
    const user = await accounts.register('Ada@example.com', 'correct horse battery');
    const laptop = await accounts.login('ada@example.com', 'correct horse battery');
    const phone = await accounts.login('ada@example.com', 'correct horse battery');
    const signedIn = await accounts.authenticate(laptop.sessionId);
    expect(signedIn.user).toEqual({ id: user.id, email: 'Ada@example.com', createdAt: user.createdAt });
    expect(signedIn.user).not.toHaveProperty('passwordHash');

    expect((await accounts.currentUser(phone.sessionId)).user).toEqual(signedIn.user);

    // The user goes: who-am-I reads the user store and sees it at once; ending the sessions
    // (what removing a user comes with) takes every other route away too.
    tables.users.delete(user.id);
    await expect(accounts.currentUser(phone.sessionId)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await accounts.endSessionsOf(user.id)).toBe(2);
    for (const { sessionId } of [laptop, phone])
      await expect(accounts.authenticate(sessionId)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('checks a session naming its user only against the user store', async () => {
    const clock = new FakeClock();
    const stores = createMemoryStores(clock);
    const sessions = createMemoryUserSessionStore(TTL, clock);
    const accounts = createAccounts({ users: stores.users, sessions });
    const user = await accounts.register('ada@example.com', 'correct horse battery');
    const known = await sessions.create(user.id);
    expect((await accounts.authenticate(known.sessionId)).user).toEqual({
      id: user.id,
      email: user.email,
      createdAt: user.createdAt,
    });
    const gone = await sessions.create(ADA.id);
    await expect(accounts.authenticate(gone.sessionId)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });
});

describe('device pages on PostgreSQL', () => {
  it('count every live device on any page, past the end too', async () => {
    const handle = await openDatabase({ url: testDb.url, schema });
    try {
      await migrate(handle, fileURLToPath(new URL('../drizzle', import.meta.url)));
      const clock = new FakeClock();
      const stores = createPgStores(handle.db, clock);
      const owner = await stores.users.create({ email: 'pages@example.com', passwordHash: 'h' });
      const other = await stores.users.create({ email: 'other@example.com', passwordHash: 'h' });
      expect(await stores.devices.list(owner.id, { limit: 2, offset: 0 })).toEqual({ items: [], total: 0 });
      for (const serial of ['A', 'B', 'C']) {
        await stores.devices.create({ ownerId: owner.id, serial, name: serial });
        await clock.advance(1);
      }
      await stores.devices.create({ ownerId: other.id, serial: 'D', name: 'D' });
      const last = await stores.devices.list(owner.id, { limit: 2, offset: 2 });
      expect(last.items.map((d) => d.serial)).toEqual(['C']);
      expect(last.total).toBe(3);
      expect(last.items[0]).not.toHaveProperty('total');
      expect(await stores.devices.list(owner.id, { limit: 2, offset: 10 })).toEqual({ items: [], total: 3 });
    } finally {
      await handle.close();
    }
  });
});
