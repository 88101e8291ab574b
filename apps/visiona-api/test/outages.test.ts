// PostgreSQL or Redis going away under a running API: fast 503s in the error envelope, /healthz
// naming what is down, no driver text in any response, and recovery without a restart.
import { startTcpProxy, useRedisPrefix, useTestDatabase, type TcpProxy } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, startTestApi, type ErrorBody, type TestApi } from './helpers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function proxyTo(url: string): Promise<TcpProxy> {
  const parsed = new URL(url);
  const proxy = await startTcpProxy({ host: parsed.hostname, port: Number(parsed.port) });
  cleanups.push(() => proxy.close());
  return proxy;
}

async function start(env: Parameters<typeof startTestApi>[0]): Promise<TestApi> {
  const api = await startTestApi(env);
  cleanups.push(() => api.close());
  return api;
}

type Health = { status: string; checks: Record<string, string> };

describe('PostgreSQL down', () => {
  it('answers 503 fast, /healthz names postgres, and everything works again once it is back', async () => {
    const proxy = await proxyTo(database.url.replace(/^postgres(ql)?:/, 'http:'));
    const api = await start({
      DATABASE_URL: proxy.via(database.url),
      DATABASE_CONNECT_TIMEOUT_MS: '500',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: redis.prefix,
    });
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    expect(
      (await ada.call('POST', '/api/models', { name: 'm', chip: 'hailo8', source: 'zoo', input_shape: [1] }))
        .status,
    ).toBe(201);

    proxy.cut();
    const started = Date.now();
    for (const [method, url] of [
      ['GET', '/api/models'],
      ['GET', '/api/devices'],
      ['GET', '/api/auth/me'],
      ['POST', '/api/devices/pairing-tokens'],
    ] as const) {
      const res = await ada.call<ErrorBody>(method, url);
      expect({ url, status: res.status, code: res.body.error.code }).toEqual({
        url,
        status: 503,
        code: 'UNAVAILABLE',
      });
      expect(res.body.error.message).toBe('Service Unavailable');
      expect(JSON.stringify(res.body)).not.toMatch(/ECONN|127\.0\.0\.1|pg|postgres/i);
    }
    expect(Date.now() - started).toBeLessThan(5000);
    const health = await ada.call<Health>('GET', '/healthz');
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'ok' } });
    expect(JSON.stringify(health.body)).not.toMatch(/ECONN|127\.0\.0\.1/);

    proxy.restore();
    const back = await ada.call<{ total: number }>('GET', '/api/models');
    expect([back.status, back.body.total]).toEqual([200, 1]);
    expect((await ada.call('GET', '/healthz')).status).toBe(200);
  });
});

describe('Redis down', () => {
  it('answers 503 to session calls (no fallback to memory), /healthz names redis, then recovers', async () => {
    const proxy = await proxyTo(redis.url.replace(/^redis:/, 'http:'));
    const api = await start({
      DATABASE_URL: database.url,
      REDIS_URL: proxy.via(redis.url),
      REDIS_KEY_PREFIX: redis.prefix,
      REDIS_TIMEOUT_MS: '500',
    });
    const ada = new Client(api.app);
    await ada.signUp('bea@example.com');

    proxy.cut();
    const started = Date.now();
    for (const [method, url, payload] of [
      ['GET', '/api/auth/me', undefined],
      ['GET', '/api/devices', undefined],
      ['POST', '/api/auth/logout', undefined],
      ['POST', '/api/auth/login', { email: 'bea@example.com', password: 'correct horse battery' }],
    ] as const) {
      const res = await ada.call<ErrorBody>(method, url, payload);
      expect({ url, status: res.status, code: res.body.error.code }).toEqual({
        url,
        status: 503,
        code: 'UNAVAILABLE',
      });
      expect(JSON.stringify(res.body)).not.toMatch(/ECONN|127\.0\.0\.1|redis/i);
    }
    expect(Date.now() - started).toBeLessThan(8000);
    const health = await ada.call<Health>('GET', '/healthz');
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ status: 'unavailable', checks: { postgres: 'ok', redis: 'down' } });

    proxy.restore();
    await expect
      .poll(async () => (await ada.call('GET', '/api/auth/me')).status, { timeout: 5000, interval: 100 })
      .toBe(200);
  });
});
