import { Counter } from 'prom-client';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { createService, Type } from '../src/index.js';
import { listenLocal } from './helpers.js';

async function build(name: string) {
  const app = await createService({ name, version: '0.0.0', logger: false, openapi: { docsPath: false } });
  app.get('/devices/:id', { schema: { params: Type.Object({ id: Type.String() }) } }, (r) => ({
    id: r.params.id,
  }));
  return app;
}

function seriesOf(text: string, metric: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${metric}{`) || line.startsWith(`${metric} `));
}

describe('GET /metrics', () => {
  it('counts requests by route pattern, not raw URL, and times them', async () => {
    const app = await build('metrics-a');
    const base = await listenLocal(app);
    for (const path of ['/devices/1', '/devices/2', '/devices/3', '/no/such/thing', '/also/missing']) {
      await (await request(`${base}${path}`)).body.dump();
    }
    const res = await request(`${base}/metrics`);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.body.text();
    expect(seriesOf(text, 'http_requests_total')).toEqual([
      'http_requests_total{method="GET",route="/devices/:id",status_code="200"} 3',
      'http_requests_total{method="GET",route="unmatched",status_code="404"} 2',
    ]);
    expect(text).not.toContain('/devices/1');
    expect(seriesOf(text, 'http_request_duration_seconds_count')).toContain(
      'http_request_duration_seconds_count{method="GET",route="/devices/:id",status_code="200"} 3',
    );
    expect(text).toContain('process_cpu_user_seconds_total');
    await app.close();
  });

  it("shows the app's own metrics, and several apps in one process keep separate registries", async () => {
    const a = await build('metrics-b');
    const b = await build('metrics-c');
    const rounds = new Counter({
      name: 'upgrade_rounds_total',
      help: 'Upgrade rounds finished, by outcome',
      labelNames: ['outcome'],
      registers: [a.metrics.registry],
    });
    rounds.inc({ outcome: 'completed' });
    await a.inject({ method: 'GET', url: '/devices/7' });

    const textA = (await a.inject({ method: 'GET', url: '/metrics' })).body;
    const textB = (await b.inject({ method: 'GET', url: '/metrics' })).body;
    expect(seriesOf(textA, 'upgrade_rounds_total')).toEqual(['upgrade_rounds_total{outcome="completed"} 1']);
    expect(textB).not.toContain('upgrade_rounds_total');
    expect(seriesOf(textB, 'http_requests_total')).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });
});
