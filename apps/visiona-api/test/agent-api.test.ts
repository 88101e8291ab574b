// The user-facing side of the tunnel over a real loopback port: a device paired through the API,
// the reference agent connected with the token it got, requests to it through the owner-scoped
// routes, and unpairing cutting it off.
import { startReferenceAgent, type ReferenceAgent } from '../src/agent/index.js';
import { useRedisPrefix, useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, startTestApi, type ErrorBody, type TestApi } from './helpers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listeningApi(): Promise<{ api: TestApi; url: string }> {
  const api = await startTestApi({
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: redis.prefix,
  });
  cleanups.push(() => api.close());
  const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
  return { api, url };
}

/** What the echo agent's GET /deps answers; `broken`: text that is not the JSON it claims to be. */
let depsAnswer: 'report' | 'broken' = 'report';

/** Echoes method, path and body back as JSON; GET /deps reports two dependencies. */
function startEchoAgent(url: string, sessionToken: string): ReferenceAgent {
  const agent = startReferenceAgent({
    apiUrl: url,
    sessionToken,
    reconnect: { minMs: 50, maxMs: 200 },
    handler: (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.url === '/deps' && depsAnswer === 'broken') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"npu_runtime": ');
          return;
        }
        const body =
          req.url === '/deps'
            ? { npu_runtime: 'ok', camera: 'down' }
            : {
                method: req.method,
                path: req.url,
                contentType: req.headers['content-type'] ?? null,
                cookie: req.headers.cookie ?? null,
                body: Buffer.concat(chunks).toString('utf8'),
              };
        res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    },
  });
  cleanups.push(() => agent.close());
  return agent;
}

describe('devices reached through the agent tunnel', () => {
  it('forwards owner requests to the agent, reports the tunnel, and cuts it off on unpair', async () => {
    const { api, url } = await listeningApi();
    const ada = new Client(api.app, '10.0.0.1');
    const bob = new Client(api.app, '10.0.0.2');
    await ada.signUp('ada@example.com');
    await bob.signUp('bob@example.com');
    const issued = await ada.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const paired = await new Client(api.app).call<{ device: { id: string }; session_token: string }>(
      'POST',
      '/api/agent/pair',
      { pairing_code: issued.body.pairing_code, serial: 'SN-TUNNEL' },
    );
    const id = paired.body.device.id;
    const agent = startEchoAgent(url, paired.body.session_token);
    await agent.connected;

    const device = await ada.call<{ tunnel_connected: boolean }>('GET', `/api/devices/${id}`);
    expect(device.body.tunnel_connected).toBe(true);

    const get = await ada.call<Record<string, unknown>>('GET', `/api/devices/${id}/agent/models/list?x=1`);
    expect(get.status).toBe(200);
    expect(get.body).toMatchObject({ method: 'GET', path: '/models/list?x=1', cookie: null });

    const post = await api.app.inject({
      method: 'POST',
      url: `/api/devices/${id}/agent/run`,
      cookies: { visiona_session: ada.cookie ?? '' },
      headers: { 'content-type': 'text/plain' },
      payload: 'raw body, not JSON',
    });
    expect(post.statusCode).toBe(200);
    expect(JSON.parse(post.body)).toMatchObject({
      method: 'POST',
      path: '/run',
      contentType: 'text/plain',
      body: 'raw body, not JSON',
    });
    expect((await ada.call('GET', `/api/devices/${id}/agent/missing`)).status).toBe(404);

    const deps = await ada.call('GET', `/api/system/deps?device_id=${id}`);
    expect([deps.status, deps.body]).toEqual([200, { data: { npu_runtime: 'ok', camera: 'down' } }]);
    // Ada has this one device: it is the one asked without device_id.
    expect((await ada.call('GET', '/api/system/deps')).body).toEqual(deps.body);
    // An answer that is not the JSON it claims to be passes through as the agent gave it.
    depsAnswer = 'broken';
    const broken = await ada.call('GET', '/api/system/deps');
    depsAnswer = 'report';
    expect([broken.status, broken.body, broken.headers['content-type']]).toEqual([
      200,
      '{"npu_runtime": ',
      'application/json',
    ]);
    type Health = { data: Record<string, unknown> };
    for (const query of [`?device_id=${id}`, '']) {
      const health = await ada.call<Health>('GET', `/api/system/health${query}`);
      expect(health.body.data).toMatchObject({
        api_server: 'ok',
        tunnel_connected: true,
        agent_session_count: 1,
      });
      expect(Date.parse(String(health.body.data.agent_last_seen_at))).toBeGreaterThan(Date.now() - 60_000);
    }

    const foreign = await bob.call<ErrorBody>('GET', `/api/devices/${id}/agent/models/list`);
    expect([foreign.status, foreign.body.error.code]).toEqual([404, 'NOT_FOUND']);

    expect((await ada.call('DELETE', `/api/devices/${id}`)).status).toBe(204);
    await waitFor(
      async () =>
        (await ada.call<{ data: { agent_session_count: number } }>('GET', '/api/system/health')).body.data
          .agent_session_count === 0,
    );
    expect(await agent.stopped).toMatch(/unauthorized|closed|replaced/);
  });
});
