// Hostile and mistyped input is refused at the edge with 400 VALIDATION_FAILED naming the field,
// before any query: no JSON type is coerced, integers stay in PostgreSQL's range, and no NUL or
// lone surrogate reaches the database. No body carries a SQLSTATE.
import { useTestDatabase } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, startTestApi, type ErrorBody, type TestApi } from './helpers.js';

const database = useTestDatabase();
let api: TestApi;
let owner: Client;

type FieldsBody = ErrorBody & { error: { details?: { fields?: { field: string }[] } } };

beforeAll(async () => {
  api = await startTestApi({ DATABASE_URL: database.url });
});
afterAll(async () => {
  await api.close();
});

const MODEL = { name: 'm', chip: 'hailo8', source: 'zoo', labels: ['person'], input_shape: [1, 3] };

async function refusal(method: string, url: string, payload: unknown, raw?: string) {
  const res = raw
    ? await api.app.inject({
        method: method as 'POST',
        url,
        headers: { 'content-type': 'application/json', cookie: `visiona_session=${owner.cookie ?? ''}` },
        payload: raw,
      })
    : undefined;
  const answer =
    res === undefined
      ? await owner.call<FieldsBody>(method, url, payload)
      : { status: res.statusCode, body: JSON.parse(res.body) as FieldsBody };
  expect(JSON.stringify(answer.body)).not.toMatch(/sqlState|22021|22003|22P05/);
  return {
    status: answer.status,
    code: answer.body.error?.code,
    fields: answer.body.error?.details?.fields?.map((f) => f.field),
  };
}

describe('strict input', () => {
  beforeAll(async () => {
    owner = new Client(api.app);
    await owner.signUp('owner@example.com');
  });

  it.each([
    ['a numeric password', { email: 'a@example.com', password: 12345678 }, 'password'],
    ['an email in an array', { email: ['x@example.com'], password: 'long enough pass' }, 'email'],
    ['a password of 8 spaces', { email: 'b@example.com', password: '        ' }, 'password'],
  ])('refuses registration with %s', async (_what, payload, field) => {
    expect(await refusal('POST', '/api/auth/register', payload)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
      fields: [field],
    });
  });

  it.each([
    ['a number as name', { ...MODEL, name: 5 }, 'name'],
    ['a boolean as name', { ...MODEL, name: true }, 'name'],
    ['a string as labels', { ...MODEL, labels: 'person' }, 'labels'],
    ['strings in input_shape', { ...MODEL, input_shape: ['1', '3'] }, 'input_shape.0'],
    ['an input_shape beyond a PostgreSQL integer', { ...MODEL, input_shape: [2147483648] }, 'input_shape.0'],
    ['a NUL in the name', { ...MODEL, name: 'a\u0000b' }, 'name'],
  ])('refuses a model with %s', async (_what, payload, field) => {
    expect(await refusal('POST', '/api/models', payload)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
      fields: [field],
    });
  });

  it('refuses a lone surrogate instead of storing U+FFFD', async () => {
    const raw = JSON.stringify({ ...MODEL, name: 'PLACEHOLDER' }).replace('PLACEHOLDER', '\\ud800x');
    expect(await refusal('POST', '/api/models', undefined, raw)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
      fields: ['name'],
    });
    const pair = JSON.stringify({ ...MODEL, name: 'ok \\ud83d\\ude00' });
    expect((await refusal('POST', '/api/models', undefined, pair)).status).toBe(201);
  });

  it.each([
    ['/api/models?chip=a%00b', 'chip'],
    ['/api/models?offset=99999999999999999999', 'offset'],
    ['/api/devices?offset=2147483648', 'offset'],
  ])('refuses the query %s', async (url, field) => {
    expect(await refusal('GET', url, undefined)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
      fields: [field],
    });
  });

  it('refuses a numeric serial when pairing', async () => {
    const issued = await owner.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    expect(
      await refusal('POST', '/api/agent/pair', { pairing_code: issued.body.pairing_code, serial: 4242 }),
    ).toEqual({ status: 400, code: 'VALIDATION_FAILED', fields: ['serial'] });
  });

  it('answers an id longer than 100 characters in the path with 400 naming id, not 414', async () => {
    const long = 'a'.repeat(101);
    const cases: [string, string, unknown][] = [
      ['GET', `/api/models/${long}`, undefined],
      ['PUT', `/api/models/${long}`, MODEL],
      ['DELETE', `/api/models/${long}`, undefined],
      ['GET', `/api/devices/${long}`, undefined],
      ['PATCH', `/api/devices/${long}`, { name: 'door' }],
      ['GET', `/api/devices/${long}/agent/deps`, undefined],
      ['POST', `/api/devices/${'b'.repeat(5000)}/agent/run`, 'raw'],
    ];
    for (const [method, url, payload] of cases) {
      const answer = await owner.call<FieldsBody>(method, url, payload);
      expect({ method, url: url.slice(0, 20), status: answer.status, body: answer.body }).toEqual({
        method,
        url: url.slice(0, 20),
        status: 400,
        body: {
          error: {
            code: 'VALIDATION_FAILED',
            // The route's own schema answers: a uuid where ids are uuids, else the 100-character bound.
            message: expect.stringMatching(
              /^params\/id must (NOT have more than 100 characters|match format "uuid")$/,
            ) as string,
            requestId: expect.any(String) as string,
            details: {
              fields: [{ location: 'params', field: 'id', message: expect.any(String) as string }],
            },
          },
        },
      });
    }
    // At the limit, an id is looked up like any other; unknown paths stay 404.
    const atLimit = await owner.call<FieldsBody>('GET', `/api/devices/${'a'.repeat(100)}`);
    expect([atLimit.status, atLimit.body.error.code]).toEqual([404, 'NOT_FOUND']);
    const unknown = await owner.call<FieldsBody>('GET', '/api/devices/some-id/elsewhere');
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'NOT_FOUND']);
    expect(unknown.body.error.message).toBe('no route for GET /api/devices/some-id/elsewhere');
  });
});
