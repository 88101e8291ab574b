import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisTestPrefix, testRedisUrl, useRedisPrefix } from '../src/index.js';

let redis: Redis;

beforeAll(() => {
  redis = new Redis(testRedisUrl());
});

afterAll(async () => {
  await redis.quit();
});

describe('redisTestPrefix', () => {
  it('deletes every key under its prefix and nothing else', async () => {
    const scope = redisTestPrefix();
    const outside = redisTestPrefix();
    expect(scope.prefix).toMatch(/^test:[0-9a-f]{10}:$/);
    expect(scope.prefix).not.toBe(outside.prefix);

    // More keys than one SCAN page, so the cursor loop is exercised.
    const keys = Array.from({ length: 1200 }, (_, i) => `${scope.prefix}k${i}`);
    await redis.mset(Object.fromEntries(keys.map((k) => [k, '1'])));
    await redis.set(`${outside.prefix}keep`, '1');

    expect(await scope.cleanup()).toBe(1200);
    expect(await redis.exists(keys[0] ?? '', keys[1199] ?? '')).toBe(0);
    expect(await redis.get(`${outside.prefix}keep`)).toBe('1');
    expect(await outside.cleanup()).toBe(1);
  });
});

describe('useRedisPrefix', () => {
  const scope = useRedisPrefix();
  let firstPrefix = '';

  it('gives a test its own prefix', async () => {
    firstPrefix = scope.prefix;
    await redis.set(`${scope.prefix}session`, 'abc', 'EX', 60);
    expect(await redis.get(`${scope.prefix}session`)).toBe('abc');
  });

  it('cleans up after each test and hands the next test a new prefix', async () => {
    expect(scope.prefix).not.toBe(firstPrefix);
    expect(await redis.exists(`${firstPrefix}session`)).toBe(0);
  });
});
