// The HTTP API over real PostgreSQL and Redis, as a browser and an agent see it.
import { useRedisPrefix, useTestDatabase } from '@upgrade/testkit';
import { openDatabase, type DatabaseHandle } from '@upgrade/db';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client, startTestApi, type ErrorBody, type TestApi } from './helpers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
let api: TestApi;
let db: DatabaseHandle;

beforeAll(async () => {
  db = await openDatabase({ url: database.url });
});
afterAll(async () => {
  await db.close();
});
beforeEach(async () => {
  api = await startTestApi({
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: redis.prefix,
  });
  await db.execute('TRUNCATE session_tokens, pairing_tokens, devices, models, users');
});
afterEach(async () => {
  await api.close();
});

const MODEL = {
  name: 'yolov8n',
  chip: 'hailo8',
  source: 'zoo',
  labels: ['person', 'car'],
  input_shape: [1, 3, 640, 640],
};

async function pairDevice(owner: Client, agent: Client, serial: string) {
  const issued = await owner.call<{ pairing_code: string; expires_at: string }>(
    'POST',
    '/api/devices/pairing-tokens',
  );
  expect(issued.status).toBe(201);
  return agent.call<{
    device: { id: string; owner_id: string; pairing_status: string };
    session_token: string;
  }>('POST', '/api/agent/pair', { pairing_code: issued.body.pairing_code, serial });
}

describe('auth', () => {
  it('registers, signs in with an HttpOnly SameSite=Lax Secure cookie, answers me, signs out', async () => {
    const browser = new Client(api.app);
    const reg = await browser.call<{ user: { id: string; email: string } }>('POST', '/api/auth/register', {
      email: 'Ada@Example.com',
      password: 'correct horse battery',
    });
    expect(reg.status).toBe(201);
    expect(reg.body.user).toMatchObject({ email: 'Ada@Example.com' });
    expect(JSON.stringify(reg.body)).not.toContain('password');

    const res = await api.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      payload: { email: 'ada@example.com', password: 'correct horse battery' },
    });
    expect(res.statusCode).toBe(200);
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^visiona_session=[A-Za-z0-9_-]{43};/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Lax');
    expect(setCookie).toContain('Secure');
    expect(setCookie).toContain('Path=/');
    expect(setCookie).toContain('Max-Age=86400');
    browser.cookie = res.cookies[0]?.value;

    const me = await browser.call<{ user: { id: string }; session: { expires_at: string } }>(
      'GET',
      '/api/auth/me',
    );
    expect(me.status).toBe(200);
    expect(me.body.user.id).toBe(reg.body.user.id);
    expect(Date.parse(me.body.session.expires_at)).toBeGreaterThan(Date.now());

    expect((await browser.call('POST', '/api/auth/logout')).status).toBe(204);
    const after = await browser.call<ErrorBody>('GET', '/api/auth/me');
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('UNAUTHORIZED');
  });

  it('refuses a wrong password and an unknown email alike (401), and a duplicate email in any case (409)', async () => {
    const browser = new Client(api.app);
    await browser.signUp('ada@example.com');
    const wrong = await browser.call<ErrorBody>('POST', '/api/auth/login', {
      email: 'ada@example.com',
      password: 'not the password',
    });
    const unknown = await browser.call<ErrorBody>('POST', '/api/auth/login', {
      email: 'nobody@example.com',
      password: 'not the password',
    });
    expect([wrong.status, unknown.status]).toEqual([401, 401]);
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
    const dup = await browser.call<ErrorBody>('POST', '/api/auth/register', {
      email: 'ADA@example.com',
      password: 'another password',
    });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('CONFLICT');
    expect(dup.body.error.requestId).toEqual(expect.any(String));
    expect(JSON.stringify(dup.body)).not.toMatch(/duplicate key|users_email/);
  });

  it('rejects malformed input with 400 VALIDATION_FAILED naming the field', async () => {
    const browser = new Client(api.app);
    const bad = await browser.call<ErrorBody & { error: { details: { fields: { field: string }[] } } }>(
      'POST',
      '/api/auth/register',
      { email: 'not-an-email', password: 'short' },
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_FAILED');
    const fields = bad.body.error.details.fields.map((f) => f.field);
    expect(fields.some((f) => f === 'email' || f === 'password')).toBe(true);
    const json = await api.app.inject({
      method: 'POST',
      url: '/api/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"email":',
    });
    expect(json.statusCode).toBe(400);
    expect((JSON.parse(json.body) as ErrorBody).error.code).toBe('INVALID_JSON');
  });

  it('rate limits sign-in per address and email with 429 in the error envelope', async () => {
    const browser = new Client(api.app, '10.1.1.1');
    await browser.signUp('ada@example.com');
    const attempt = (client: Client, email: string) =>
      client.call<ErrorBody>('POST', '/api/auth/login', { email, password: 'wrong password!' });
    // signUp used one attempt of the five.
    for (let i = 0; i < 4; i++) expect((await attempt(browser, 'ada@example.com')).status).toBe(401);
    const limited = await attempt(browser, 'ADA@example.com');
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('TOO_MANY_REQUESTS');
    expect(limited.body.error.requestId).toEqual(expect.any(String));
    expect(limited.headers['retry-after']).toBeDefined();
    // Another email from the same address, and the same email from another address, still get through.
    expect((await attempt(browser, 'bob@example.com')).status).toBe(401);
    expect((await attempt(new Client(api.app, '10.2.2.2'), 'ada@example.com')).status).toBe(401);
  });

  it('answers 401 to every owner route without a session', async () => {
    const anonymous = new Client(api.app);
    for (const [method, url] of [
      ['GET', '/api/models'],
      ['GET', '/api/devices'],
      ['POST', '/api/devices/pairing-tokens'],
      ['GET', '/api/system/health'],
    ] as const)
      expect((await anonymous.call(method, url)).status).toBe(401);
  });
});

describe('models', () => {
  it('creates, reads, replaces, lists with filters and paging, and deletes', async () => {
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    const created = await ada.call<{ id: string; created_at: string; faa_object_key: null }>(
      'POST',
      '/api/models',
      MODEL,
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...MODEL, faa_object_key: null });
    const id = created.body.id;
    expect((await ada.call('GET', `/api/models/${id}`)).body).toEqual(created.body);

    const replaced = await ada.call<{ name: string; created_at: string; faa_object_key: string }>(
      'PUT',
      `/api/models/${id}`,
      { ...MODEL, name: 'yolov8s', faa_object_key: 'models/yolov8s.hef' },
    );
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ name: 'yolov8s', created_at: created.body.created_at });
    const putNew = await ada.call('PUT', '/api/models/7d1c1c52-5f0e-4c58-9f55-3a4b1f0c2d11', {
      ...MODEL,
      chip: 'rk3588',
      source: 'upload',
    });
    expect(putNew.status).toBe(201);

    const all = await ada.call<{ items: { id: string }[]; total: number }>(
      'GET',
      '/api/models?limit=1&offset=0',
    );
    expect(all.body.total).toBe(2);
    expect(all.body.items).toHaveLength(1);
    const hailo = await ada.call<{ items: { id: string }[]; total: number }>(
      'GET',
      '/api/models?chip=hailo8&owner=me',
    );
    expect(hailo.body.items.map((m) => m.id)).toEqual([id]);
    const zoo = await ada.call<{ total: number }>('GET', '/api/models?source=upload');
    expect(zoo.body.total).toBe(1);

    expect((await ada.call('DELETE', `/api/models/${id}`)).status).toBe(204);
    expect((await ada.call('GET', `/api/models/${id}`)).status).toBe(404);
    expect((await ada.call('DELETE', `/api/models/${id}`)).status).toBe(404);
  });

  it("answers 404 for another user's model and lists none of them", async () => {
    const ada = new Client(api.app, '10.0.0.1');
    const bob = new Client(api.app, '10.0.0.2');
    const adaUser = await ada.signUp('ada@example.com');
    await bob.signUp('bob@example.com');
    const { body } = await ada.call<{ id: string }>('POST', '/api/models', MODEL);
    const missing = await bob.call<ErrorBody>('GET', `/api/models/${body.id}`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
    expect((await bob.call('PUT', `/api/models/${body.id}`, MODEL)).status).toBe(404);
    expect((await bob.call('DELETE', `/api/models/${body.id}`)).status).toBe(404);
    expect((await bob.call<{ total: number }>('GET', `/api/models?owner=${adaUser.id}`)).body.total).toBe(0);
    expect((await bob.call<{ total: number }>('GET', '/api/models')).body.total).toBe(0);
    expect((await ada.call('GET', `/api/models/${body.id}`)).status).toBe(200);
  });

  it('rejects an invalid model with 400 VALIDATION_FAILED', async () => {
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    const bad = await ada.call<ErrorBody>('POST', '/api/models', { ...MODEL, input_shape: [] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_FAILED');
    expect((await ada.call('GET', '/api/models?limit=0')).status).toBe(400);
    expect((await ada.call('PUT', '/api/models/not-a-uuid', MODEL)).status).toBe(400);
  });
});

describe('devices and pairing', () => {
  it('pairs a device with a one-time code: device and session token created, the code used up', async () => {
    const ada = new Client(api.app, '10.0.0.1');
    const agent = new Client(api.app, '10.9.9.9');
    const adaUser = await ada.signUp('ada@example.com');
    const issued = await ada.call<{ pairing_code: string; expires_at: string }>(
      'POST',
      '/api/devices/pairing-tokens',
    );
    expect(issued.status).toBe(201);
    const paired = await agent.call<{
      device: { id: string; owner_id: string; pairing_status: string; name: string };
      session_token: string;
    }>('POST', '/api/agent/pair', {
      pairing_code: issued.body.pairing_code,
      serial: 'SN-0001',
      name: 'door cam',
    });
    expect(paired.status).toBe(201);
    expect(paired.body.device).toMatchObject({
      owner_id: adaUser.id,
      pairing_status: 'paired',
      name: 'door cam',
    });
    expect(paired.body.session_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = await db.execute(
      sql`SELECT token_hash FROM session_tokens WHERE device_id = ${paired.body.device.id}`,
    );
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(paired.body.session_token);

    const again = await agent.call<ErrorBody>('POST', '/api/agent/pair', {
      pairing_code: issued.body.pairing_code,
      serial: 'SN-0002',
    });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('UNAUTHORIZED');

    const list = await ada.call<{ items: { id: string; tunnel_connected: boolean }[]; total: number }>(
      'GET',
      '/api/devices',
    );
    expect(list.body.total).toBe(1);
    expect(list.body.items[0]).toMatchObject({ id: paired.body.device.id, tunnel_connected: false });
  });

  it('refuses an expired code', async () => {
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    const issued = await ada.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    await db.execute("UPDATE pairing_tokens SET expires_at = now() - interval '1 second'");
    const late = await new Client(api.app).call<ErrorBody>('POST', '/api/agent/pair', {
      pairing_code: issued.body.pairing_code,
      serial: 'SN-1',
    });
    expect(late.status).toBe(401);
    expect(await db.execute('SELECT 1 FROM devices')).toHaveLength(0);
  });

  it('answers 409 for a serial a paired device holds, and the code stays usable', async () => {
    const ada = new Client(api.app);
    await ada.signUp('ada@example.com');
    expect((await pairDevice(ada, new Client(api.app), 'SN-1')).status).toBe(201);
    const issued = await ada.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const clash = await new Client(api.app).call<ErrorBody>('POST', '/api/agent/pair', {
      pairing_code: issued.body.pairing_code,
      serial: 'SN-1',
    });
    expect(clash.status).toBe(409);
    expect(clash.body.error.code).toBe('CONFLICT');
    const retry = await new Client(api.app).call('POST', '/api/agent/pair', {
      pairing_code: issued.body.pairing_code,
      serial: 'SN-2',
    });
    expect(retry.status).toBe(201);
  });

  it("renames and unpairs one's own device; another user's device is 404 everywhere", async () => {
    const ada = new Client(api.app, '10.0.0.1');
    const bob = new Client(api.app, '10.0.0.2');
    await ada.signUp('ada@example.com');
    await bob.signUp('bob@example.com');
    const { body } = await pairDevice(ada, new Client(api.app), 'SN-1');
    const id = body.device.id;

    for (const [method, url, payload] of [
      ['GET', `/api/devices/${id}`, undefined],
      ['PATCH', `/api/devices/${id}`, { name: 'mine now' }],
      ['DELETE', `/api/devices/${id}`, undefined],
      ['GET', `/api/devices/${id}/agent/status`, undefined],
      ['GET', `/api/system/deps?device_id=${id}`, undefined],
      ['GET', `/api/system/health?device_id=${id}`, undefined],
    ] as const) {
      const res = await bob.call<ErrorBody>(method, url, payload);
      expect({ url, method, status: res.status }).toEqual({ url, method, status: 404 });
    }
    expect((await bob.call<{ total: number }>('GET', '/api/devices')).body.total).toBe(0);

    const renamed = await ada.call<{ name: string }>('PATCH', `/api/devices/${id}`, { name: 'porch' });
    expect([renamed.status, renamed.body.name]).toEqual([200, 'porch']);
    expect((await ada.call('PATCH', `/api/devices/${id}`, { name: '' })).status).toBe(400);

    // The agent is not connected: the tunnel answers 503 for the owner.
    const deps = await ada.call<ErrorBody>('GET', `/api/system/deps?device_id=${id}`);
    expect(deps.status).toBe(503);
    // Never connected: no agent_last_seen_at at all.
    const health = await ada.call('GET', `/api/system/health?device_id=${id}`);
    expect(health.body).toEqual({
      data: { api_server: 'ok', tunnel_connected: false, agent_session_count: 0 },
    });

    expect((await ada.call('DELETE', `/api/devices/${id}`)).status).toBe(204);
    const rows = await db.execute<{ deleted_at: Date | null; tokens: string }>(
      sql`SELECT deleted_at, (SELECT count(*) FROM session_tokens WHERE device_id = ${id}) AS tokens FROM devices WHERE id = ${id}`,
    );
    expect(rows[0]?.deleted_at).not.toBeNull();
    expect(rows[0]?.tokens).toBe('0');
    expect((await ada.call('GET', `/api/devices/${id}`)).status).toBe(404);
    expect((await ada.call('DELETE', `/api/devices/${id}`)).status).toBe(404);
  });
});

describe('system', () => {
  it('reports the service, its build version and phase', async () => {
    const info = await new Client(api.app).call('GET', '/api/system/info');
    expect(info.status).toBe(200);
    // Running from source: no build wrote a commit in.
    expect(info.body).toEqual({ data: { service: 'visiona-api-server', version: 'dev', phase: 'beta' } });
  });

  it('asks the only device for its dependencies without device_id, and wants device_id with several', async () => {
    const cy = new Client(api.app, '10.0.0.3');
    await cy.signUp('cy@example.com');
    const none = await cy.call<ErrorBody>('GET', '/api/system/deps');
    expect([none.status, none.body.error.code]).toEqual([404, 'NOT_FOUND']);
    expect(none.body.error.message).toContain('no paired device');

    await pairDevice(cy, new Client(api.app, '10.0.0.4'), 'SN-ONLY');
    // The one device is asked; its agent is not connected.
    const one = await cy.call<ErrorBody>('GET', '/api/system/deps');
    expect([one.status, one.body.error.code]).toEqual([503, 'UNAVAILABLE']);

    await pairDevice(cy, new Client(api.app, '10.0.0.4'), 'SN-SECOND');
    const two = await cy.call<ErrorBody>('GET', '/api/system/deps');
    expect([two.status, two.body.error.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect(two.body.error.message).toMatch(/^device_id is required/);
    expect(two.body.error.details).toEqual({
      fields: [{ location: 'querystring', field: 'device_id', message: 'is required' }],
    });
  });

  it('/healthz pings PostgreSQL and Redis', async () => {
    const res = await new Client(api.app).call('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
  });
});
