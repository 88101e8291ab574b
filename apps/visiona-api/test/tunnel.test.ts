// The agent tunnel end to end over real loopback sockets: a service with registerTunnel, the
// reference agent dialling it, requests forwarded as HTTP/2 streams over the WebSocket. Every case
// runs on the memory stores and on PostgreSQL.
import { createHash } from 'node:crypto';
import { constants } from 'node:http2';
import { fileURLToPath } from 'node:url';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { createService, type ServiceApp } from '@upgrade/service';
import {
  FakeClock,
  rejectionOf,
  startTcpProxy,
  useTestDatabase,
  waitFor,
  type TcpProxy,
} from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createDefaultAgentHandler,
  startReferenceAgent,
  type AgentHandler,
  type ReferenceAgent,
  type ReferenceAgentOptions,
} from '../src/agent/index.js';
import * as schema from '../src/db/schema.js';
import type { Device } from '../src/ports.js';
import { createMemoryStores, createPgStores, type PersistentStores } from '../src/stores/index.js';
import { createTunnelSessionStore } from '../src/stores/tunnel-sessions.memory.js';
import { newToken } from '../src/tokens.js';
import {
  AGENT_CONNECT_PATH,
  registerTunnel,
  type AgentConnection,
  type TunnelHub,
} from '../src/tunnel/index.js';

const MIGRATIONS = fileURLToPath(new URL('../drizzle', import.meta.url));
const TRUNCATE = 'TRUNCATE session_tokens, pairing_tokens, devices, models, users';
/** Long enough that no beat fires during a test that is not about heartbeats. */
const QUIET_HEARTBEAT_MS = 60_000;
/** Short, for the tests about heartbeats: a few beats take well under a second. */
const FAST_HEARTBEAT_MS = 100;
const FAST_RECONNECT = { minMs: 20, maxMs: 100 };

const testDb = useTestDatabase();

interface StoresTarget {
  fresh(clock: FakeClock): Promise<PersistentStores>;
  close(): Promise<void>;
}

const TARGETS: [string, () => Promise<StoresTarget>][] = [
  [
    'memory stores',
    async () => ({ fresh: async (clock) => createMemoryStores(clock), close: async () => {} }),
  ],
  [
    'PostgreSQL stores',
    async () => {
      const handle: DatabaseHandle<typeof schema> = await openDatabase({ url: testDb.url, schema });
      await migrate(handle, MIGRATIONS);
      return {
        fresh: async (clock) => {
          await handle.execute(TRUNCATE);
          return createPgStores(handle.db, clock);
        },
        close: () => handle.close(),
      };
    },
  ],
];

/** The handler tests forward to: echoes bodies, hangs on /hang, and counts what it saw. */
function createEchoHandler() {
  const seen = { hanging: 0, cancelled: 0 };
  const handler: AgentHandler = async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (req.url === '/hang') {
      seen.hanging += 1;
      res.stream.once('close', () => {
        if (res.stream.rstCode !== constants.NGHTTP2_NO_ERROR) seen.cancelled += 1;
      });
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'x-method': req.method,
      'x-path': req.url,
      'x-sha256': sha256(body),
    });
    res.end(req.url === '/double' ? Buffer.concat([body, body]) : body);
  };
  return { handler, seen };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

for (const [targetName, openTarget] of TARGETS) {
  describe(`tunnel on ${targetName}`, () => {
    let target: StoresTarget | undefined;
    const cleanups: (() => Promise<unknown>)[] = [];

    beforeAll(async () => {
      target = await openTarget();
    });
    afterAll(async () => {
      await target?.close();
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A listening service with the tunnel, one paired device and its session token. */
    async function setup(options: { heartbeatIntervalMs?: number; requestTimeoutMs?: number } = {}) {
      if (target === undefined) throw new Error('stores did not open');
      const clock = new FakeClock();
      const stores = await target.fresh(clock);
      const tunnels = createTunnelSessionStore<AgentConnection>(clock);
      const app: ServiceApp = await createService({ name: 'visiona-api', version: 'test', logger: false });
      const hub: TunnelHub = await registerTunnel(app, {
        sessionTokens: stores.sessionTokens,
        devices: stores.devices,
        tunnels,
        logger: app.log,
        clock,
        heartbeatIntervalMs: options.heartbeatIntervalMs ?? QUIET_HEARTBEAT_MS,
        requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      cleanups.push(() => app.close());
      const address = app.server.address();
      if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
      const apiUrl = `http://127.0.0.1:${address.port}`;
      const owner = await stores.users.create({ email: 'owner@example.com', passwordHash: 'x' });
      const device = await stores.devices.create({
        ownerId: owner.id,
        serial: 'SN-1',
        name: 'cam',
        pairingStatus: 'paired',
      });
      const token = newToken();
      await stores.sessionTokens.create({ tokenHash: token.hash, deviceId: device.id });

      const startAgent = (overrides: Partial<ReferenceAgentOptions> = {}): ReferenceAgent => {
        const agent = startReferenceAgent({
          apiUrl,
          sessionToken: token.raw,
          reconnect: FAST_RECONNECT,
          ...overrides,
        });
        cleanups.push(() => agent.close());
        return agent;
      };
      const deviceNow = async (): Promise<Device> => {
        const current = await stores.devices.getById(device.id);
        if (current === null) throw new Error('device is gone');
        return current;
      };
      return { app, hub, clock, stores, apiUrl, owner, device, token, startAgent, deviceNow };
    }

    /** The status the API answers a WebSocket upgrade with, or 101. */
    function upgradeStatus(apiUrl: string, headers: Record<string, string>): Promise<number> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(apiUrl.replace('http:', 'ws:') + AGENT_CONNECT_PATH, { headers });
        ws.on('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          resolve(101);
          ws.close();
        });
        ws.on('error', (error) => {
          if (!error.message.includes('closed before the connection was established')) reject(error);
        });
      });
    }

    it('forwards 100 concurrent requests through one agent and matches every answer', async () => {
      const { hub, device, startAgent } = await setup();
      const { handler } = createEchoHandler();
      await startAgent({ handler }).connected;
      await waitFor(() => hub.isConnected(device.id));

      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          hub.forward(device.id, { method: 'POST', path: `/echo/${i}`, body: `body number ${i}` }),
        ),
      );
      answers.forEach((answer, i) => {
        expect(answer.status).toBe(200);
        expect(answer.headers['x-path']).toBe(`/echo/${i}`);
        expect(answer.body.toString()).toBe(`body number ${i}`);
      });
      expect(hub.count()).toBe(1);
    });

    it('carries bodies larger than 1 MiB both ways', async () => {
      const { hub, device, startAgent } = await setup();
      await startAgent({ handler: createEchoHandler().handler }).connected;
      await waitFor(() => hub.isConnected(device.id));
      const big = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) % 251;

      const answer = await hub.forward(device.id, { method: 'PUT', path: '/double', body: big });

      expect(answer.headers['x-sha256']).toBe(sha256(big));
      expect(answer.body.length).toBe(big.length * 2);
      expect(answer.body.equals(Buffer.concat([big, big]))).toBe(true);
    });

    it('serves the default agent handler: health, deps and info', async () => {
      const { hub, device, startAgent } = await setup();
      await startAgent({ handler: createDefaultAgentHandler({ deps: { npu_runtime: 'ok' } }) }).connected;
      await waitFor(() => hub.isConnected(device.id));

      const health = await hub.forward(device.id, { method: 'GET', path: '/health' });
      const deps = await hub.forward(device.id, { method: 'GET', path: '/deps' });
      const info = await hub.forward(device.id, { method: 'GET', path: '/info' });
      const missing = await hub.forward(device.id, { method: 'GET', path: '/nope' });

      expect([health.status, JSON.parse(health.body.toString())]).toEqual([200, { status: 'ok' }]);
      expect(JSON.parse(deps.body.toString())).toEqual({ npu_runtime: 'ok' });
      expect(JSON.parse(info.body.toString())).toMatchObject({ agent: 'visiona-reference-agent' });
      expect(health.headers['content-type']).toBe('application/json');
      expect(missing.status).toBe(404);
    });

    it('times out one request with TIMEOUT (504) and resets its stream while the others carry on', async () => {
      const { hub, device, startAgent } = await setup();
      const echo = createEchoHandler();
      await startAgent({ handler: echo.handler }).connected;
      await waitFor(() => hub.isConnected(device.id));

      const slow = rejectionOf(hub.forward(device.id, { method: 'GET', path: '/hang', timeoutMs: 200 }));
      const others = Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          hub.forward(device.id, { method: 'POST', path: '/x', body: `${i}` }),
        ),
      );

      const error = await slow;
      expect([error.code, error.status]).toEqual(['TIMEOUT', 504]);
      expect((await others).map((answer) => answer.body.toString())).toEqual(
        Array.from({ length: 10 }, (_, i) => `${i}`),
      );
      // The agent learns of the cancel (RST_STREAM) and the connection keeps serving.
      await waitFor(() => echo.seen.cancelled === 1, { what: 'the agent to see the cancelled stream' });
      expect((await hub.forward(device.id, { method: 'GET', path: '/after' })).status).toBe(200);
    });

    it('fails in-flight requests with UNAVAILABLE when the agent drops, answers 503 while it is gone and recovers when it reconnects', async () => {
      const { hub, device, apiUrl, startAgent, deviceNow } = await setup();
      const address = new URL(apiUrl);
      const proxy: TcpProxy = await startTcpProxy({ host: address.hostname, port: Number(address.port) });
      cleanups.push(() => proxy.close());
      const echo = createEchoHandler();
      const agent = startAgent({ apiUrl: proxy.via(apiUrl), handler: echo.handler });
      await agent.connected;
      await waitFor(() => hub.isConnected(device.id));
      await waitFor(async () => (await deviceNow()).onlineStatus === 'online');

      const inFlight = Array.from({ length: 5 }, () =>
        rejectionOf(hub.forward(device.id, { method: 'GET', path: '/hang', timeoutMs: 30_000 })),
      );
      await waitFor(() => echo.seen.hanging === 5, { what: 'the agent to receive every request' });
      const cutAt = Date.now();
      proxy.cut();

      for (const error of await Promise.all(inFlight)) {
        expect([error.code, error.status]).toEqual(['UNAVAILABLE', 503]);
      }
      expect(Date.now() - cutAt).toBeLessThan(1_000);
      expect(hub.isConnected(device.id)).toBe(false);
      const gone = await rejectionOf(hub.forward(device.id, { method: 'GET', path: '/health' }));
      expect([gone.code, gone.status]).toEqual(['UNAVAILABLE', 503]);
      await waitFor(async () => (await deviceNow()).onlineStatus === 'offline');

      proxy.restore();
      await waitFor(() => hub.isConnected(device.id), { what: 'the agent to reconnect' });
      const back = await hub.forward(device.id, { method: 'POST', path: '/back', body: 'again' });
      expect(back.body.toString()).toBe('again');
      expect(agent.connections()).toBe(2);
      await waitFor(async () => (await deviceNow()).onlineStatus === 'online');
    });

    it('refuses agents without a valid session token with 401 before upgrading and registers nothing', async () => {
      const { hub, apiUrl, owner, stores, token, startAgent } = await setup();
      const other = await stores.devices.create({ ownerId: owner.id, serial: 'SN-2', name: 'gone' });
      const revoked = newToken();
      await stores.sessionTokens.create({ tokenHash: revoked.hash, deviceId: other.id });
      await stores.sessionTokens.revoke(revoked.hash);
      const unpaired = newToken();
      const third = await stores.devices.create({ ownerId: owner.id, serial: 'SN-3', name: 'unpaired' });
      await stores.sessionTokens.create({ tokenHash: unpaired.hash, deviceId: third.id });
      await stores.devices.unpair(third.id, owner.id);

      expect(await upgradeStatus(apiUrl, {})).toBe(401);
      expect(await upgradeStatus(apiUrl, { authorization: `Basic ${token.raw}` })).toBe(401);
      expect(await upgradeStatus(apiUrl, { authorization: `Bearer ${newToken().raw}` })).toBe(401);
      expect(await upgradeStatus(apiUrl, { authorization: `Bearer ${revoked.raw}` })).toBe(401);
      expect(await upgradeStatus(apiUrl, { authorization: `Bearer ${unpaired.raw}` })).toBe(401);
      expect(hub.count()).toBe(0);

      // The reference agent gives up on a refused token instead of retrying forever.
      const agent = startAgent({ sessionToken: revoked.raw });
      const refusal = await rejectionOf(agent.connected);
      expect(refusal.code).toBe('UNAUTHORIZED');
      expect(await agent.stopped).toBe('unauthorized');
      expect(hub.count()).toBe(0);
    });

    it('answers a plain GET without an upgrade with 426', async () => {
      const { app, token } = await setup();
      const response = await app.inject({
        method: 'GET',
        url: AGENT_CONNECT_PATH,
        headers: { authorization: `Bearer ${token.raw}` },
      });
      expect(response.statusCode).toBe(426);
    });

    it('lets a newer connection of the same device replace the older one', async () => {
      const { hub, device, startAgent } = await setup();
      const answer =
        (name: string): AgentHandler =>
        (_req, res) => {
          res.end(name);
        };
      const first = startAgent({ handler: answer('first') });
      await first.connected;
      await waitFor(() => hub.isConnected(device.id));
      expect((await hub.forward(device.id, { method: 'GET', path: '/' })).body.toString()).toBe('first');

      const second = startAgent({ handler: answer('second') });
      await second.connected;

      // The replaced agent is told so and stops instead of fighting for the slot.
      expect(await first.stopped).toBe('replaced');
      expect((await hub.forward(device.id, { method: 'GET', path: '/' })).body.toString()).toBe('second');
      expect(hub.count()).toBe(1);
      expect(second.state()).toBe('connected');
    });

    it('records heartbeats: lastSeenAt moves and the device is online, then offline after the agent leaves', async () => {
      const { hub, clock, device, startAgent, deviceNow } = await setup({
        heartbeatIntervalMs: FAST_HEARTBEAT_MS,
      });
      const agent = startAgent();
      await agent.connected;
      await waitFor(async () => (await deviceNow()).onlineStatus === 'online');
      const connectedAt = clock.now();
      expect(hub.lastSeenAt(device.id)?.getTime()).toBe(connectedAt);

      await clock.advance(60_000);
      const later = clock.now();
      await waitFor(() => hub.lastSeenAt(device.id)?.getTime() === later, { what: 'a heartbeat' });
      await waitFor(async () => (await deviceNow()).agentLastSeenAt?.getTime() === later);
      expect((await deviceNow()).onlineStatus).toBe('online');

      await agent.close();
      await waitFor(async () => (await deviceNow()).onlineStatus === 'offline');
      expect(hub.isConnected(device.id)).toBe(false);
      // Last seen stays known after the agent left.
      expect(hub.lastSeenAt(device.id)?.getTime()).toBe(later);
    });

    it('closes the connection of a device unpaired while connected, at the next heartbeat', async () => {
      const { hub, owner, device, stores, startAgent } = await setup({
        heartbeatIntervalMs: FAST_HEARTBEAT_MS,
      });
      const agent = startAgent();
      await agent.connected;
      await waitFor(() => hub.isConnected(device.id));

      expect(await stores.devices.unpair(device.id, owner.id)).toBe(true);

      expect(await agent.stopped).toBe('unauthorized');
      expect(hub.isConnected(device.id)).toBe(false);
      const error = await rejectionOf(hub.forward(device.id, { method: 'GET', path: '/health' }));
      expect(error.code).toBe('UNAVAILABLE');
    });

    it('closes a connection whose agent stops answering heartbeats', async () => {
      const { hub, apiUrl, device, token } = await setup({ heartbeatIntervalMs: FAST_HEARTBEAT_MS });
      // Completes the WebSocket upgrade, then never speaks HTTP/2: no SETTINGS, no PING ack.
      const mute = new WebSocket(apiUrl.replace('http:', 'ws:') + AGENT_CONNECT_PATH, {
        headers: { authorization: `Bearer ${token.raw}` },
      });
      const closed = new Promise<number>((resolve) => mute.on('close', (code) => resolve(code)));
      cleanups.push(async () => mute.terminate());
      await waitFor(() => hub.isConnected(device.id));

      expect(await closed).toBe(4000);
      expect(hub.isConnected(device.id)).toBe(false);
    });

    it('disconnects a device on request', async () => {
      const { hub, device, startAgent } = await setup();
      const agent = startAgent();
      await agent.connected;
      await waitFor(() => hub.isConnected(device.id));

      expect(hub.disconnect(device.id)).toBe(true);
      expect(hub.isConnected(device.id)).toBe(false);
      expect(hub.disconnect(device.id)).toBe(false);
      // An explicit disconnect is not a refusal: the agent comes back.
      await waitFor(() => agent.connections() === 2, { what: 'the agent to reconnect' });
      await waitFor(() => hub.isConnected(device.id));
    });

    it('ends every connection on hub.close() and refuses new ones with 503', async () => {
      const { hub, apiUrl, device, token, startAgent, deviceNow } = await setup();
      const agent = startAgent();
      await agent.connected;
      await waitFor(() => hub.isConnected(device.id));

      await hub.close();

      expect(hub.count()).toBe(0);
      expect(hub.isConnected(device.id)).toBe(false);
      expect((await deviceNow()).onlineStatus).toBe('offline');
      expect(await upgradeStatus(apiUrl, { authorization: `Bearer ${token.raw}` })).toBe(503);
      expect(agent.state()).not.toBe('stopped');
    });
  });
}
