// The UserSessionStore contract on memory (fake clock) and Redis (short real TTLs: Redis expiry
// is the thing under test, so its own clock must run), plus Redis going down.
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeClock, rejectionOf, startTcpProxy, useRedisPrefix, waitFor } from '@upgrade/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UserSessionStore, UserSessionTtl } from '../src/ports.js';
import { createMemoryUserSessionStore } from '../src/stores/user-sessions.memory.js';
import { createRedisUserSessionStore } from '../src/stores/user-sessions.redis.js';

const TTL: UserSessionTtl = { idleMs: 200, absoluteMs: 500 };

interface SessionsTarget {
  store: UserSessionStore;
  /** Lets `ms` pass for the store: fake time for memory, real time for Redis. */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

const redisPrefix = useRedisPrefix();

const TARGETS: [string, () => Promise<SessionsTarget>][] = [
  [
    'memory',
    async () => {
      const clock = new FakeClock();
      return {
        store: createMemoryUserSessionStore(TTL, clock),
        elapse: (ms) => clock.advance(ms),
        close: async () => undefined,
      };
    },
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
      return { store, elapse: (ms) => sleep(ms), close: () => store.close() };
    },
  ],
];

for (const [name, open] of TARGETS) {
  describe(`user sessions on ${name}`, () => {
    let target: SessionsTarget;
    beforeEach(async () => {
      target = await open();
    });
    afterEach(async () => {
      await target.close();
    });

    it('creates a session readable by its id, and destroys it', async () => {
      const { sessionId, session } = await target.store.create('user-1');
      expect(session.userId).toBe('user-1');
      expect(session.expiresAt.getTime() - session.createdAt.getTime()).toBe(TTL.idleMs);
      expect(session.absoluteExpiresAt.getTime() - session.createdAt.getTime()).toBe(TTL.absoluteMs);
      expect(await target.store.get(sessionId)).toMatchObject({
        userId: 'user-1',
        createdAt: session.createdAt,
      });
      expect(await target.store.get('unknown')).toBeNull();
      expect(await target.store.destroy(sessionId)).toBe(true);
      expect(await target.store.destroy(sessionId)).toBe(false);
      expect(await target.store.get(sessionId)).toBeNull();
    });

    it('ends an unused session after the idle TTL', async () => {
      const { sessionId } = await target.store.create('user-1');
      await target.elapse(120);
      expect(await target.store.get(sessionId)).not.toBeNull();
      await target.elapse(120);
      expect(await target.store.get(sessionId)).toBeNull();
    });

    it('keeps a used session past the idle TTL but not past the absolute one', async () => {
      const { sessionId, session } = await target.store.create('user-1');
      for (let i = 0; i < 3; i++) {
        await target.elapse(120);
        const touched = await target.store.touch(sessionId);
        expect(touched?.userId).toBe('user-1');
        expect(touched?.expiresAt.getTime()).toBeLessThanOrEqual(session.absoluteExpiresAt.getTime());
      }
      // ~360 ms in: touching now cannot reach past the 500 ms absolute deadline.
      const last = await target.store.touch(sessionId);
      expect(last?.expiresAt.getTime()).toBe(session.absoluteExpiresAt.getTime());
      await target.elapse(160);
      expect(await target.store.touch(sessionId)).toBeNull();
    });
  });
}

describe('user sessions on Redis, storage', () => {
  it('stores a hashed key with a PTTL of at most the idle TTL, and no raw session id', async () => {
    const store = createRedisUserSessionStore({
      url: redisPrefix.url,
      keyPrefix: redisPrefix.prefix,
      ttl: TTL,
    });
    const redis = new Redis(redisPrefix.url);
    try {
      await store.ready();
      const { sessionId } = await store.create('user-1');
      const keys = await redis.keys(`${redisPrefix.prefix}*`);
      expect(keys).toHaveLength(1);
      const key = keys[0] ?? '';
      expect(key).not.toContain(sessionId);
      const pttl = await redis.pttl(key);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(TTL.idleMs);
    } finally {
      redis.disconnect();
      await store.close();
    }
  });

  it('fails with UNAVAILABLE (503) while Redis is down, and works again once it is back', async () => {
    const url = new URL(redisPrefix.url);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 6379) });
    const store = createRedisUserSessionStore({
      url: proxy.via(redisPrefix.url),
      keyPrefix: redisPrefix.prefix,
      ttl: { idleMs: 60_000, absoluteMs: 120_000 },
      timeoutMs: 500,
    });
    try {
      await store.ready();
      const { sessionId } = await store.create('user-1');
      proxy.cut();
      const started = Date.now();
      for (const call of [
        () => store.get(sessionId),
        () => store.touch(sessionId),
        () => store.create('u'),
      ]) {
        const error = await rejectionOf(call());
        expect([error.code, error.status]).toEqual(['UNAVAILABLE', 503]);
        expect(error.message).not.toMatch(/ECONN|127\.0\.0\.1|Stream/);
      }
      expect(Date.now() - started).toBeLessThan(2000);
      proxy.restore();
      await waitFor(async () => (await store.get(sessionId).catch(() => null)) !== null, { timeoutMs: 5000 });
      expect(await store.get(sessionId)).toMatchObject({ userId: 'user-1' });
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
