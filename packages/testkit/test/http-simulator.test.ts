import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock, sendJson, startHttpSimulator, type HttpSimulator } from '../src/index.js';

const started: HttpSimulator[] = [];

async function start(...args: Parameters<typeof startHttpSimulator>): Promise<HttpSimulator> {
  const sim = await startHttpSimulator(...args);
  started.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

describe('startHttpSimulator', () => {
  it('serves routes by method and path and records each request', async () => {
    const sim = await start({
      'GET /health': (_req, res) => sendJson(res, 200, { status: 'ok' }),
      'POST /echo': (req, res) =>
        sendJson(res, 201, { got: JSON.parse(req.body) as unknown, q: req.query.get('q') }),
    });
    expect(sim.url).toBe(`http://127.0.0.1:${sim.port}`);

    const health = await fetch(`${sim.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const echo = await fetch(`${sim.url}/echo?q=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'r-1' },
      body: JSON.stringify({ a: 1 }),
    });
    expect(echo.status).toBe(201);
    expect(await echo.json()).toEqual({ got: { a: 1 }, q: '1' });

    const missing = await fetch(`${sim.url}/health`, { method: 'DELETE' });
    expect(missing.status).toBe(404);

    expect(sim.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /health',
      'POST /echo',
      'DELETE /health',
    ]);
    expect(sim.requests[1]?.body).toBe('{"a":1}');
    expect(sim.requests[1]?.headers['x-request-id']).toBe('r-1');
  });

  it('answers 500 when a handler throws', async () => {
    const sim = await start(() => {
      throw new Error('boom');
    });
    const res = await fetch(sim.url);
    expect(res.status).toBe(500);
    expect(await res.text()).toContain('boom');
  });

  it('closes promptly even while a handler hangs, and stops accepting connections', async () => {
    let arrived!: () => void;
    const hanging = new Promise<void>((resolve) => (arrived = resolve));
    const sim = await start(() => {
      arrived(); // never answer: the "hang" error mode of a simulator
    });
    const pending = fetch(`${sim.url}/slow`);
    const outcome = pending.then(
      () => 'answered',
      () => 'failed',
    );
    await hanging;

    const startedAt = performance.now();
    await sim.close();
    expect(performance.now() - startedAt).toBeLessThan(1000);
    expect(await outcome).toBe('failed');
    await expect(fetch(sim.url)).rejects.toThrow();
  });
});

describe('FakeClock', () => {
  it('is re-exported from core', async () => {
    const clock = new FakeClock(0);
    const slept = clock.sleep(1000);
    await clock.advance(1000);
    await expect(slept).resolves.toBeUndefined();
    expect(clock.now()).toBe(1000);
  });
});
