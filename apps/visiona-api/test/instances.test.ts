// Several API instances behind a load balancer share PostgreSQL and Redis: a session started on
// one is good on the other, and sign-in attempts count across them.
import { useRedisPrefix, useTestDatabase } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, startTestApi, type TestApi } from './helpers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
const apis: TestApi[] = [];
afterEach(async () => {
  await Promise.all(apis.splice(0).map((a) => a.close()));
});

async function twoInstances(): Promise<[TestApi, TestApi]> {
  const env = { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix };
  const first = await startTestApi(env);
  apis.push(first);
  const second = await startTestApi({ ...env, MIGRATE_ON_START: 'false' });
  apis.push(second);
  return [first, second];
}

describe('two instances on one PostgreSQL and one Redis', () => {
  it('a cookie from a sign-in on one instance works on the other, and sign-out ends it on both', async () => {
    const [one, two] = await twoInstances();
    const onOne = new Client(one.app);
    const user = await onOne.signUp('ada@example.com');
    const onTwo = new Client(two.app);
    onTwo.cookie = onOne.cookie;
    const me = await onTwo.call<{ user: { id: string } }>('GET', '/api/auth/me');
    expect([me.status, me.body.user.id]).toEqual([200, user.id]);

    const model = await onTwo.call<{ id: string }>('POST', '/api/models', {
      name: 'm',
      chip: 'hailo8',
      source: 'zoo',
      input_shape: [1, 3, 224, 224],
    });
    expect((await onOne.call('GET', `/api/models/${model.body.id}`)).status).toBe(200);

    expect((await onTwo.call('POST', '/api/auth/logout')).status).toBe(204);
    expect((await onOne.call('GET', '/api/auth/me')).status).toBe(401);
  });

  it('counts sign-in attempts across instances', async () => {
    const [one, two] = await twoInstances();
    const attempt = (api: TestApi) =>
      new Client(api.app, '10.7.7.7').call('POST', '/api/auth/login', {
        email: 'ada@example.com',
        password: 'wrong password!',
      });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await attempt(i % 2 === 0 ? one : two)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });
});

describe('without DATABASE_URL and REDIS_URL', () => {
  it('runs on memory stores and says single instance only', async () => {
    const api = await startTestApi({});
    apis.push(api);
    expect(api.backends.where).toEqual({ database: 'memory', sessions: 'memory' });
    expect(api.backends.warnings.join('\n')).toContain('single instance only');
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    expect((await ada.call('GET', '/api/auth/me')).status).toBe(200);
    const health = await ada.call('GET', '/healthz');
    expect([health.status, health.body]).toEqual([200, { status: 'ok', checks: {} }]);
  });
});

describe('with DATABASE_URL and without REDIS_URL', () => {
  it('/healthz lists PostgreSQL alone', async () => {
    const api = await startTestApi({ DATABASE_URL: database.url });
    apis.push(api);
    const health = await new Client(api.app).call('GET', '/healthz');
    expect([health.status, health.body]).toEqual([200, { status: 'ok', checks: { postgres: 'ok' } }]);
  });
});
