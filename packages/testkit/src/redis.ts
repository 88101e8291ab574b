import { Redis } from 'ioredis';
import { afterEach, beforeEach } from 'vitest';
import { randomSuffix } from './random.js';

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const SCAN_COUNT = 500;

/** A key prefix of one test on the test Redis. */
export interface RedisTestPrefix {
  /** `test:<random>:`; give it to the code under test as its key prefix. */
  readonly prefix: string;
  /** The server the prefix lives on. */
  readonly url: string;
  /** Deletes every key under the prefix; returns how many were deleted. */
  cleanup(): Promise<number>;
}

/** The Redis used by tests: `TEST_REDIS_URL`, else 127.0.0.1:6379. */
export function testRedisUrl(): string {
  return process.env.TEST_REDIS_URL ?? DEFAULT_REDIS_URL;
}

/** A fresh key prefix on the test Redis, so tests can share one server without seeing each other's keys. */
export function redisTestPrefix(options: { url?: string } = {}): RedisTestPrefix {
  const url = options.url ?? testRedisUrl();
  const prefix = `test:${randomSuffix()}:`;
  return { prefix, url, cleanup: () => deleteKeysWithPrefix(url, prefix) };
}

/** What `useRedisPrefix` hands a test file; a new prefix for every test. */
export interface RedisPrefixRef {
  readonly prefix: string;
  readonly url: string;
}

/** Registers beforeEach/afterEach: each test gets its own prefix, and its keys are deleted after it. */
export function useRedisPrefix(options: { url?: string } = {}): RedisPrefixRef {
  let current: RedisTestPrefix | undefined;
  beforeEach(() => {
    current = redisTestPrefix(options);
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  const get = (): RedisTestPrefix => {
    if (current === undefined) throw new Error('useRedisPrefix: the prefix exists only inside a test');
    return current;
  };
  return {
    get prefix() {
      return get().prefix;
    },
    get url() {
      return get().url;
    },
  };
}

/** SCAN + DEL rather than KEYS: KEYS blocks the server, which other test files share. */
export async function deleteKeysWithPrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  try {
    await redis.connect();
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
