import { UpgradeError } from '@upgrade/core';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createService, errorResponses, Type, type ServiceApp } from '../src/index.js';
import { collectLogs, listenLocal, type LogLine } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let app: ServiceApp;
let logs: LogLine[];

beforeEach(async () => {
  const collector = collectLogs();
  logs = collector.lines;
  app = await createService({
    name: 'errors-test',
    version: '0.0.0',
    logger: { level: 'info', stream: collector.stream },
    bodyLimit: 1024,
    handlerTimeout: 100,
    metrics: { defaultMetrics: false },
  });
  app.post(
    '/downloads',
    {
      schema: {
        body: Type.Object({ version: Type.String(), package_size: Type.Integer({ minimum: 1 }) }),
        response: { 202: Type.Object({ accepted: Type.Boolean() }), ...errorResponses(400, 409) },
      },
    },
    async (_request, reply) => reply.code(202).send({ accepted: true }),
  );
  app.get('/busy', () => {
    throw new UpgradeError('CONFLICT', 'a download is already running', {
      details: { stage: 'downloading' },
    });
  });
  app.get('/db-down', () => {
    throw new UpgradeError('UNAVAILABLE', 'pg pool at 10.1.2.3:5432 refused connection');
  });
  app.get('/crash', () => {
    throw new Error('ECONNRESET talking to 10.9.8.7 as admin');
  });
  app.get('/slow', async (request) => {
    await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
    return 'late';
  });
});

afterEach(async () => {
  await app.close();
});

function errorLogs(): LogLine[] {
  return logs.filter((l) => l.level >= 50);
}

describe('the error envelope', () => {
  it('maps an UpgradeError to its status, code, message and details with the request id', async () => {
    const res = await app.inject({ method: 'GET', url: '/busy' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      error: {
        code: 'CONFLICT',
        message: 'a download is already running',
        details: { stage: 'downloading' },
        requestId: res.headers['x-request-id'],
      },
    });
  });

  it('answers an unexpected error with a generic 500 and logs the real one under the request id', async () => {
    const res = await app.inject({ method: 'GET', url: '/crash' });
    expect(res.statusCode).toBe(500);
    const requestId = res.headers['x-request-id'];
    expect(res.json()).toEqual({ error: { code: 'INTERNAL', message: 'Internal Server Error', requestId } });
    expect(res.body).not.toMatch(/ECONNRESET|10\.9\.8\.7|admin|stack/);
    const [logged] = errorLogs();
    expect(logged).toMatchObject({ reqId: requestId, msg: 'request failed', service: 'errors-test' });
    expect(JSON.stringify(logged)).toContain('ECONNRESET talking to 10.9.8.7');
  });

  it('keeps the status and code of a 5xx UpgradeError but not its message', async () => {
    const res = await app.inject({ method: 'GET', url: '/db-down' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      error: { code: 'UNAVAILABLE', message: 'Service Unavailable', requestId: res.headers['x-request-id'] },
    });
    expect(JSON.stringify(errorLogs())).toContain('10.1.2.3:5432');
  });

  it('answers a schema violation with 400 VALIDATION_FAILED naming the field', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/downloads',
      payload: { version: '1.2', package_size: 'big' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: {
        code: 'VALIDATION_FAILED',
        message: 'body/package_size must be integer',
        details: { fields: [{ location: 'body', field: 'package_size', message: 'must be integer' }] },
        requestId: res.headers['x-request-id'],
      },
    });
    const missing = await app.inject({ method: 'POST', url: '/downloads', payload: { package_size: 3 } });
    expect(missing.json()).toMatchObject({
      error: { code: 'VALIDATION_FAILED', details: { fields: [{ location: 'body', field: 'version' }] } },
    });
    expect(errorLogs()).toEqual([]);
  });

  it('answers an unknown route with 404 NOT_FOUND without echoing the query string', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope?token=s3cr3t' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: { code: 'NOT_FOUND', message: 'no route for GET /nope', requestId: res.headers['x-request-id'] },
    });
  });

  it('answers malformed JSON with 400 INVALID_JSON and an unsupported body type with 415', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/downloads',
      headers: { 'content-type': 'application/json' },
      payload: '{"version": ',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({
      error: { code: 'INVALID_JSON', requestId: bad.headers['x-request-id'] },
    });
    const xml = await app.inject({
      method: 'POST',
      url: '/downloads',
      headers: { 'content-type': 'application/xml' },
      payload: '<a/>',
    });
    expect(xml.statusCode).toBe(415);
    expect(xml.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });

  it('answers a handler past its deadline with 503 UNAVAILABLE', async () => {
    const res = await app.inject({ method: 'GET', url: '/slow' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: { code: 'UNAVAILABLE', message: 'Service Unavailable' } });
  });
});

describe('over a real connection', () => {
  it('answers an oversized body with 413 PAYLOAD_TOO_LARGE', async () => {
    const base = await listenLocal(app);
    const res = await request(`${base}/downloads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ version: 'x'.repeat(4096), package_size: 1 }),
    });
    expect(res.statusCode).toBe(413);
    expect(await res.body.json()).toMatchObject({
      error: {
        code: 'PAYLOAD_TOO_LARGE',
        message: 'Request body is too large',
        requestId: res.headers['x-request-id'],
      },
    });
  });

  it('echoes an acceptable x-request-id, replaces an unacceptable one, generates one when absent', async () => {
    const base = await listenLocal(app);
    const given = await request(`${base}/busy`, { headers: { 'x-request-id': 'lb-4f2a.9:trace/1' } });
    await given.body.dump();
    expect(given.headers['x-request-id']).toBe('lb-4f2a.9:trace/1');

    for (const bad of ['has spaces', 'x'.repeat(129), '"quoted"']) {
      const res = await request(`${base}/busy`, { headers: { 'x-request-id': bad } });
      expect(await res.body.json()).toMatchObject({
        error: { requestId: expect.stringMatching(UUID) as string },
      });
      expect(res.headers['x-request-id']).toMatch(UUID);
    }

    const generated = await request(`${base}/downloads`, { method: 'GET' });
    const body = (await generated.body.json()) as { error: { requestId: string } };
    expect(generated.headers['x-request-id']).toMatch(UUID);
    expect(body.error.requestId).toBe(generated.headers['x-request-id']);
    const lines = logs.filter((l) => l.reqId === generated.headers['x-request-id']);
    expect(lines.map((l) => l.msg)).toEqual(['incoming request', 'request rejected', 'request completed']);
  });
});
