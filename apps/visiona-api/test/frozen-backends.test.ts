// A PostgreSQL or Redis that stops answering without closing anything (SIGSTOP on a private
// server: a stuck host or a partition looks like this) while the API is under load: every request
// that needs it ends with 503 within its deadline instead of hanging, /healthz names it, no driver
// text reaches a body, and everything works again once it answers, without a restart.
import { useRedisPrefix, useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client, startTestApi, type Answer, type ErrorBody, type TestApi } from './helpers.js';
import { startPrivatePostgres, startPrivateRedis, type PrivateServer } from './private-servers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MODEL = { name: 'm', chip: 'hailo8', source: 'zoo', labels: ['person'], input_shape: [1, 3] };
const PASSWORD = 'correct horse battery';

type Health = { status: string; checks: Record<string, string> };
type Call = [method: string, url: string, payload?: unknown];

async function start(env: Parameters<typeof startTestApi>[0]): Promise<TestApi> {
  const api = await startTestApi(env);
  cleanups.push(() => api.close());
  return api;
}

/** A signed-in owner with one model and one paired device. */
async function populate(api: TestApi): Promise<{ owner: Client; modelId: string; deviceId: string }> {
  const owner = new Client(api.app);
  await owner.signUp('owner@example.com', PASSWORD);
  const model = await owner.call<{ id: string }>('POST', '/api/models', MODEL);
  expect(model.status).toBe(201);
  const issued = await owner.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
  const paired = await new Client(api.app, '10.0.0.9').call<{ device: { id: string } }>(
    'POST',
    '/api/agent/pair',
    { pairing_code: issued.body.pairing_code, serial: 'SN-1' },
  );
  expect(paired.status).toBe(201);
  return { owner, modelId: model.body.id, deviceId: paired.body.device.id };
}

/** Fires every call at once, `rounds` times over, and returns every answer. */
async function burst(client: Client, calls: Call[], rounds: number): Promise<Answer<ErrorBody>[]> {
  const all = Array.from({ length: rounds }, () => calls).flat();
  return Promise.all(all.map(([method, url, payload]) => client.call<ErrorBody>(method, url, payload)));
}

function expectUnavailable(answers: Answer<ErrorBody>[], calls: Call[]): void {
  answers.forEach((answer, i) => {
    const [method, url] = calls[i % calls.length] ?? [];
    expect({ call: `${method} ${url}`, status: answer.status, code: answer.body.error?.code }).toEqual({
      call: `${method} ${url}`,
      status: 503,
      code: 'UNAVAILABLE',
    });
    expect(JSON.stringify(answer.body)).not.toMatch(/sqlState|ECONN|timeout|127\.0\.0\.1|postgres|redis/i);
  });
}

describe('PostgreSQL frozen', () => {
  let pg: PrivateServer;
  beforeAll(async () => {
    pg = await startPrivatePostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('answers 503 on every database route under load, /healthz says postgres is down, and recovers on its own', async () => {
    const api = await start({ DATABASE_URL: pg.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix });
    const { owner, modelId, deviceId } = await populate(api);
    const calls: Call[] = [
      ['GET', '/api/models'],
      ['GET', `/api/models/${modelId}`],
      ['PUT', `/api/models/${modelId}`, MODEL],
      ['POST', '/api/models', MODEL],
      ['GET', '/api/devices'],
      ['GET', `/api/devices/${deviceId}`],
      ['PATCH', `/api/devices/${deviceId}`, { name: 'door' }],
      ['POST', '/api/devices/pairing-tokens'],
      ['POST', '/api/auth/register', { email: 'new@example.com', password: PASSWORD }],
      ['POST', '/api/auth/login', { email: 'owner@example.com', password: PASSWORD }],
      ['POST', '/api/agent/pair', { pairing_code: 'ABCD-2345', serial: 'SN-2' }],
    ];

    pg.freeze();
    try {
      // Two rounds: more requests than the pool has connections, so some wait for one.
      expectUnavailable(await burst(owner, calls, 2), calls);
      // The connections whose queries timed out were dropped: the next requests are bounded too.
      expectUnavailable(await burst(owner, calls, 1), calls);
      const health = await owner.call<Health>('GET', '/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'ok' } });
    } finally {
      pg.thaw();
    }

    await waitFor(async () => (await owner.call('GET', '/api/models')).status === 200, {
      timeoutMs: 10_000,
      what: 'the API to answer from PostgreSQL again',
    });
    const back = await burst(owner, calls.slice(0, 8), 1);
    expect(back.map((answer) => answer.status)).toEqual([200, 200, 200, 201, 200, 200, 200, 201]);
    expect((await owner.call('GET', '/healthz')).status).toBe(200);
  });
});

describe('Redis frozen', () => {
  let frozen: PrivateServer;
  beforeAll(async () => {
    frozen = await startPrivateRedis();
  });
  afterAll(async () => {
    await frozen?.stop();
  });

  // No sign-out among them: a command that timed out still reaches Redis once it thaws.
  it('answers 503 to every session call under load, /healthz says redis is down, and recovers on its own', async () => {
    const api = await start({ DATABASE_URL: database.url, REDIS_URL: frozen.url, REDIS_KEY_PREFIX: 'v:' });
    const { owner, modelId } = await populate(api);
    const calls: Call[] = [
      ['GET', '/api/auth/me'],
      ['GET', '/api/models'],
      ['GET', `/api/models/${modelId}`],
      ['GET', '/api/devices'],
      ['POST', '/api/devices/pairing-tokens'],
      ['POST', '/api/auth/login', { email: 'owner@example.com', password: PASSWORD }],
    ];

    frozen.freeze();
    try {
      expectUnavailable(await burst(owner, calls, 3), calls);
      const health = await owner.call<Health>('GET', '/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toEqual({ status: 'unavailable', checks: { postgres: 'ok', redis: 'down' } });
    } finally {
      frozen.thaw();
    }

    await waitFor(async () => (await owner.call('GET', '/api/auth/me')).status === 200, {
      timeoutMs: 10_000,
      what: 'the API to answer from Redis again',
    });
    expect((await owner.call('GET', '/api/models')).status).toBe(200);
    expect((await owner.call('GET', '/healthz')).status).toBe(200);
  });
});
