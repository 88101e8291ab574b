import { UpgradeError, type HealthCheck } from '@upgrade/core';
import { describe, expect, it } from 'vitest';
import { createService, type ServiceOptions } from '../src/index.js';
import { collectLogs } from './helpers.js';

const RAW = 'password authentication failed for user "admin" at 10.0.0.5:5432';

const healthy: HealthCheck = { name: 'postgres', check: () => Promise.resolve('pool 3/10') };
const broken: HealthCheck = { name: 'redis', check: () => Promise.reject(new Error(RAW)) };
const hanging: HealthCheck = { name: 'vendor', check: () => new Promise(() => undefined) };

async function build(options: Partial<ServiceOptions>) {
  const collector = collectLogs();
  const app = await createService({
    name: 'health-test',
    version: '0.0.0',
    logger: { stream: collector.stream },
    metrics: { defaultMetrics: false },
    openapi: { docsPath: false },
    ...options,
  });
  return { app, logs: collector.lines };
}

describe('GET /healthz', () => {
  it('answers 200 ok with the report when every check passes', async () => {
    const { app } = await build({ healthChecks: [healthy] });
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ok',
      timestamp: expect.any(String) as string,
      checks: [
        {
          name: 'postgres',
          status: 'ok',
          durationMs: expect.any(Number) as number,
          detail: 'pool 3/10',
          attempts: 1,
        },
      ],
    });
    await app.close();
  });

  it('answers 503 down naming the failing check, with the raw error only in the log', async () => {
    const { app, logs } = await build({ healthChecks: [healthy, broken] });
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      status: 'down',
      checks: [
        { name: 'postgres', status: 'ok' },
        { name: 'redis', status: 'down', detail: 'failed' },
      ],
    });
    expect(res.body).not.toMatch(/password|admin|10\.0\.0\.5/);
    const warning = logs.find((l) => l.msg === 'health check failed');
    expect(warning).toMatchObject({
      check: 'redis',
      reqId: res.headers['x-request-id'],
      err: { message: RAW },
    });
    await app.close();
  });

  it('bounds a hanging check by the timeout', async () => {
    const { app } = await build({ healthChecks: [healthy, hanging], healthTimeoutMs: 50 });
    const started = performance.now();
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      checks: [{ status: 'ok' }, { name: 'vendor', detail: 'timeout after 50 ms' }],
    });
    await app.close();
  });

  it('stays 200 degraded when only a non-critical check fails, and shows our own error text', async () => {
    const optional: HealthCheck = {
      name: 'device-api',
      critical: false,
      check: () => Promise.reject(new UpgradeError('UNREACHABLE', 'device api not answering')),
    };
    const { app } = await build({ healthChecks: [healthy, optional] });
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'degraded',
      checks: [{}, { status: 'down', detail: 'UNREACHABLE: device api not answering' }],
    });
    await app.close();
  });

  it('asks a check function for the current checks on every request, and app.checkHealth reuses them', async () => {
    let checks: HealthCheck[] = [healthy];
    const { app } = await build({ healthChecks: () => checks });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    checks = [healthy, broken];
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(503);
    expect((await app.checkHealth()).status).toBe('down');
    await app.close();
  });

  it('leaves the route to the service with healthRoute false; app.checkHealth still runs the checks', async () => {
    const { app } = await build({ healthChecks: [healthy, broken], healthRoute: false });
    app.get('/healthz', async () => ({ mine: (await app.checkHealth()).status }));
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ mine: 'down' });
    await app.close();
  });
});

describe('maxParamLength', () => {
  it('lets a route see a path parameter longer than the router default of 100 characters', async () => {
    const short = await build({});
    const long = await build({ maxParamLength: 500 });
    for (const { app } of [short, long]) app.get('/items/:id', async (request) => request.params);
    const id = 'a'.repeat(101);
    expect((await short.app.inject({ method: 'GET', url: `/items/${id}` })).statusCode).toBe(414);
    expect((await long.app.inject({ method: 'GET', url: `/items/${id}` })).json()).toEqual({ id });
    await short.app.close();
    await long.app.close();
  });
});
