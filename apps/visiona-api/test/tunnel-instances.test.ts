// Two API instances on loopback ports share Redis (the tunnel registry) and the stores: a request
// that lands on the instance without the agent goes through the one holding it; a reconnect to the
// other instance moves the tunnel; a dead instance's entries expire; a cut Redis fails cross-instance
// requests with UNAVAILABLE while local ones carry on. Every case runs on the memory stores (one
// instance shared by both) and on PostgreSQL (one database, a pool per instance).
import { fileURLToPath } from 'node:url';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { createService, generateOpenApi, type ServiceApp } from '@upgrade/service';
import {
  FakeClock,
  freePort,
  rejectionOf,
  startTcpProxy,
  useRedisPrefix,
  useTestDatabase,
  waitFor,
} from '@upgrade/testkit';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startReferenceAgent, type AgentHandler, type ReferenceAgent } from '../src/agent/index.js';
import * as schema from '../src/db/schema.js';
import type { Device } from '../src/ports.js';
import { createMemoryStores, createPgStores, type PersistentStores } from '../src/stores/index.js';
import { createTunnelSessionStore } from '../src/stores/tunnel-sessions.memory.js';
import { newToken } from '../src/tokens.js';
import { registerTunnel, type AgentConnection, type TunnelHub } from '../src/tunnel/index.js';
import {
  FORWARD_REQUEST_HEADER,
  encodeRequestMeta,
  internalForwardUrl,
} from '../src/tunnel/internal-protocol.js';
import { createRedisTunnelRegistry } from '../src/tunnel/registry.redis.js';
import type { TunnelRegistry } from '../src/tunnel/registry.js';
import type { ErrorBody } from './helpers.js';

const MIGRATIONS = fileURLToPath(new URL('../drizzle', import.meta.url));
const TRUNCATE = 'TRUNCATE session_tokens, pairing_tokens, devices, models, users';
const INTERNAL_TOKEN = 'internal-token-shared-by-every-instance-0123456789';
/** Long enough that no beat fires during a test that is not about heartbeats or expiry. */
const QUIET_HEARTBEAT_MS = 60_000;
/**
 * A beat closes a connection whose previous PING is still unanswered, so the beat is also the
 * PING's deadline: at 100 ms a loaded 2-core machine stalled the PING's round trip (in this one
 * process) past it and the tunnel under test closed as "heartbeat missed".
 */
const FAST_HEARTBEAT_MS = 250;
/** Registry TTL of the expiry test: a few beats. */
const SHORT_TTL_MS = 1_500;
const FAST_RECONNECT = { minMs: 20, maxMs: 100 };

const testDb = useTestDatabase();
const redis = useRedisPrefix();

interface StoresTarget {
  /** The stores of two instances over the same data. */
  fresh(clock: FakeClock): Promise<[PersistentStores, PersistentStores]>;
  close(): Promise<void>;
}

const TARGETS: [string, () => Promise<StoresTarget>][] = [
  [
    'memory stores',
    async () => ({
      fresh: async (clock) => {
        const shared = createMemoryStores(clock);
        return [shared, shared];
      },
      close: async () => {},
    }),
  ],
  [
    'PostgreSQL stores',
    async () => {
      const open = (): Promise<DatabaseHandle<typeof schema>> => openDatabase({ url: testDb.url, schema });
      const one = await open();
      const two = await open();
      await migrate(one, MIGRATIONS);
      return {
        fresh: async (clock) => {
          await one.execute(TRUNCATE);
          return [createPgStores(one.db, clock), createPgStores(two.db, clock)];
        },
        close: async () => {
          await one.close();
          await two.close();
        },
      };
    },
  ],
];

/** Answers with its own name, so a test sees which agent served the request. */
const answerAs =
  (name: string): AgentHandler =>
  async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.url === '/hang') return;
    res.writeHead(201, { 'content-type': 'text/plain', 'x-agent': name, 'x-path': req.url ?? '' });
    res.end(`${name}:${req.method}:${Buffer.concat(chunks).toString()}`);
  };

interface InstanceOptions {
  heartbeatIntervalMs?: number;
  ttlMs?: number;
  /** Redis as this instance reaches it (a cuttable proxy in one test). */
  redisUrl?: string;
  internalToken?: string;
}

interface Instance {
  name: string;
  app: ServiceApp;
  hub: TunnelHub;
  registry: TunnelRegistry;
  url: string;
  /** A clean shutdown: connections closed, registry entries removed. */
  close(): Promise<void>;
  /** As if the process died: nothing is removed from Redis. */
  kill(): Promise<void>;
}

for (const [targetName, openTarget] of TARGETS) {
  describe(`tunnel across two instances on ${targetName}`, () => {
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

    /** One paired device and its token, on stores both instances share. */
    async function setup() {
      if (target === undefined) throw new Error('stores did not open');
      const clock = new FakeClock();
      const [storesA, storesB] = await target.fresh(clock);
      const owner = await storesA.users.create({ email: 'owner@example.com', passwordHash: 'x' });
      const device = await storesA.devices.create({
        ownerId: owner.id,
        serial: 'SN-1',
        name: 'cam',
        pairingStatus: 'paired',
      });
      const token = newToken();
      await storesA.sessionTokens.create({ tokenHash: token.hash, deviceId: device.id });

      const startInstance = async (
        name: string,
        stores: PersistentStores,
        options: InstanceOptions = {},
      ): Promise<Instance> => {
        const port = await freePort();
        const url = `http://127.0.0.1:${port}`;
        const registry = createRedisTunnelRegistry({
          url: options.redisUrl ?? redis.url,
          instanceId: name,
          advertiseUrl: url,
          keyPrefix: redis.prefix,
          ttlMs: options.ttlMs ?? 30_000,
          timeoutMs: 500,
        });
        await registry.ready();
        const app = await createService({ name: 'visiona-api', version: 'test', logger: false });
        const hub = await registerTunnel(app, {
          sessionTokens: stores.sessionTokens,
          devices: stores.devices,
          tunnels: createTunnelSessionStore<AgentConnection>(clock),
          logger: app.log,
          clock,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? QUIET_HEARTBEAT_MS,
          requestTimeoutMs: 5_000,
          registry,
          internalToken: options.internalToken ?? INTERNAL_TOKEN,
        });
        await app.listen({ host: '127.0.0.1', port });
        let down = false;
        const close = async (): Promise<void> => {
          if (down) return;
          down = true;
          await app.close();
          await registry.close();
        };
        cleanups.push(close);
        return {
          name,
          app,
          hub,
          registry,
          url,
          close,
          kill: async () => {
            down = true;
            await registry.close();
            await app.close();
          },
        };
      };

      const startAgent = (apiUrl: string, handler: AgentHandler): ReferenceAgent => {
        const agent = startReferenceAgent({
          apiUrl,
          sessionToken: token.raw,
          reconnect: FAST_RECONNECT,
          handler,
        });
        cleanups.push(() => agent.close());
        return agent;
      };
      const deviceNow = async (): Promise<Device> => {
        const current = await storesA.devices.getById(device.id);
        if (current === null) throw new Error('device is gone');
        return current;
      };
      return { clock, storesA, storesB, device, startInstance, startAgent, deviceNow };
    }

    it('a request made on the instance without the agent reaches it through the one that holds it', async () => {
      const { clock, storesA, storesB, device, startInstance, startAgent } = await setup();
      const a = await startInstance('a', storesA);
      const b = await startInstance('b', storesB);
      await startAgent(a.url, answerAs('agent')).connected;
      await waitFor(() => a.hub.isConnected(device.id));
      await waitFor(async () => (await b.hub.presence(device.id)).connected, { what: 'the claim' });

      const answer = await b.hub.forward(device.id, {
        method: 'POST',
        path: '/echo?x=1',
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
      });

      expect(answer.status).toBe(201);
      expect(answer.headers['x-agent']).toBe('agent');
      expect(answer.headers['x-path']).toBe('/echo?x=1');
      expect(answer.body.toString()).toBe('agent:POST:hello');
      expect(b.hub.isConnected(device.id)).toBe(false);
      expect(await b.hub.presence(device.id)).toEqual({
        connected: true,
        here: false,
        instanceId: 'a',
        lastSeenAt: new Date(clock.now()),
      });
      expect(await b.hub.presenceMany([device.id, 'no-such-device'])).toMatchObject([
        { connected: true, here: false, instanceId: 'a' },
        { connected: false, here: false },
      ]);
      expect((await a.hub.presence(device.id)).here).toBe(true);

      // The holder's timeout comes back as TIMEOUT, and many requests go through at once.
      const slow = await rejectionOf(
        b.hub.forward(device.id, { method: 'GET', path: '/hang', timeoutMs: 200 }),
      );
      expect([slow.code, slow.status]).toEqual(['TIMEOUT', 504]);
      const many = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          b.hub.forward(device.id, { method: 'PUT', path: '/', body: `${i}` }),
        ),
      );
      expect(many.map((m) => m.body.toString())).toEqual(
        Array.from({ length: 20 }, (_, i) => `agent:PUT:${i}`),
      );
      const big = Buffer.alloc(2 * 1024 * 1024, 'x');
      const large = await b.hub.forward(device.id, { method: 'PUT', path: '/big', body: big });
      expect(large.body.length).toBe('agent:PUT:'.length + big.length);
    });

    it('moves the tunnel when the agent reconnects to the other instance: the old connection is closed as replaced', async () => {
      const { storesA, storesB, device, startInstance, startAgent, deviceNow } = await setup();
      const a = await startInstance('a', storesA);
      const b = await startInstance('b', storesB);
      const first = startAgent(a.url, answerAs('first'));
      await first.connected;
      await waitFor(async () => (await b.hub.presence(device.id)).instanceId === 'a');

      const second = startAgent(b.url, answerAs('second'));
      await second.connected;

      // Heartbeats are quiet here: the claim's message closes the old connection.
      expect(await first.stopped).toBe('replaced');
      await waitFor(() => !a.hub.isConnected(device.id));
      const viaA = await a.hub.forward(device.id, { method: 'GET', path: '/' });
      expect(viaA.body.toString()).toBe('second:GET:');
      expect(await a.hub.presence(device.id)).toMatchObject({
        connected: true,
        here: false,
        instanceId: 'b',
      });
      expect(second.state()).toBe('connected');

      // The old connection's end is not written as the device going offline: it is online on b.
      await a.close();
      expect((await deviceNow()).onlineStatus).toBe('online');
      expect((await b.hub.presence(device.id)).here).toBe(true);
    });

    it('closes a connection whose entry another connection took, at the next heartbeat', async () => {
      const { storesA, device, startInstance, startAgent } = await setup();
      const a = await startInstance('a', storesA, { heartbeatIntervalMs: FAST_HEARTBEAT_MS });
      const agent = startAgent(a.url, answerAs('agent'));
      await agent.connected;
      await waitFor(async () => (await a.registry.locate(device.id)) !== undefined);

      // A claim whose message never arrived: only the heartbeat's refresh can notice it.
      const direct = new Redis(redis.url);
      cleanups.push(async () => direct.quit());
      await direct.hset(`${redis.prefix}tunnel:${device.id}`, 'connection_id', 'someone-else');

      expect(await agent.stopped).toBe('replaced');
      expect(a.hub.isConnected(device.id)).toBe(false);
    });

    it('lets the entries of a dead instance expire: 503 while it cannot be reached, 503 once they are gone', async () => {
      const { storesA, storesB, device, startInstance, startAgent } = await setup();
      const a = await startInstance('a', storesA, {
        heartbeatIntervalMs: FAST_HEARTBEAT_MS,
        ttlMs: SHORT_TTL_MS,
      });
      const b = await startInstance('b', storesB, { ttlMs: SHORT_TTL_MS });
      await startAgent(a.url, answerAs('agent')).connected;
      // Several beats later the entry is still there: the heartbeat keeps pushing its expiry back.
      await new Promise((resolve) => setTimeout(resolve, SHORT_TTL_MS * 1.5));
      expect((await b.hub.forward(device.id, { method: 'GET', path: '/' })).status).toBe(201);

      await a.kill();

      const unreachable = await rejectionOf(b.hub.forward(device.id, { method: 'GET', path: '/' }));
      expect([unreachable.code, unreachable.status]).toEqual(['UNAVAILABLE', 503]);
      // Left to expire rather than removed: an instance that is only restarting keeps its devices.
      expect((await b.registry.locate(device.id))?.instanceId).toBe('a');

      await waitFor(async () => (await b.registry.locate(device.id)) === undefined, {
        timeoutMs: SHORT_TTL_MS * 5,
        what: 'the dead instance entry to expire',
      });
      const gone = await rejectionOf(b.hub.forward(device.id, { method: 'GET', path: '/' }));
      expect([gone.code, gone.status]).toEqual(['UNAVAILABLE', 503]);
      expect(gone.message).toContain('not connected');
      expect((await b.hub.presence(device.id)).connected).toBe(false);
    });

    it('refuses the internal route without the shared token (401) and keeps it out of the API description', async () => {
      const { storesA, storesB, device, startInstance, startAgent } = await setup();
      const a = await startInstance('a', storesA);
      const b = await startInstance('b', storesB, {
        internalToken: 'a-different-token-of-enough-length-000',
      });
      await startAgent(a.url, answerAs('agent')).connected;
      await waitFor(async () => (await b.hub.presence(device.id)).connected);

      const call = async (authorization?: string) => {
        const response = await request(internalForwardUrl(a.url, device.id), {
          method: 'POST',
          headers: {
            ...(authorization === undefined ? {} : { authorization }),
            [FORWARD_REQUEST_HEADER]: encodeRequestMeta({ method: 'GET', path: '/' }, 1_000),
          },
          body: '',
        });
        const text = await response.body.text();
        return { status: response.statusCode, text };
      };
      const noToken = await call();
      const wrong = await call('Bearer not-the-token');
      const right = await call(`Bearer ${INTERNAL_TOKEN}`);

      const codeOf = (text: string): unknown => (JSON.parse(text) as ErrorBody).error.code;
      expect([noToken.status, codeOf(noToken.text)]).toEqual([401, 'UNAUTHORIZED']);
      expect([wrong.status, codeOf(wrong.text)]).toEqual([401, 'UNAUTHORIZED']);
      expect([right.status, right.text]).toEqual([200, 'agent:GET:']);
      // An instance configured with another token cannot send requests on: 503, nothing reaches the agent.
      const refused = await rejectionOf(b.hub.forward(device.id, { method: 'GET', path: '/' }));
      expect([refused.code, refused.status]).toEqual(['UNAVAILABLE', 503]);
      const paths = Object.keys((await generateOpenApi(a.app)).paths ?? {});
      expect(paths.some((path) => path.startsWith('/internal'))).toBe(false);
    });

    it('fails cross-instance requests with UNAVAILABLE while Redis is cut, keeps local ones working, and recovers', async () => {
      const { storesA, storesB, device, startInstance, startAgent } = await setup();
      const redisAddress = new URL(redis.url);
      const proxy = await startTcpProxy({
        host: redisAddress.hostname,
        port: Number(redisAddress.port || 6379),
      });
      cleanups.push(() => proxy.close());
      const redisUrl = proxy.via(redis.url);
      const a = await startInstance('a', storesA, { redisUrl, heartbeatIntervalMs: FAST_HEARTBEAT_MS });
      const b = await startInstance('b', storesB, { redisUrl });
      await startAgent(a.url, answerAs('agent')).connected;
      await waitFor(async () => (await b.hub.presence(device.id)).connected);
      expect((await b.hub.forward(device.id, { method: 'GET', path: '/' })).status).toBe(201);

      proxy.cut();

      const cut = await rejectionOf(b.hub.forward(device.id, { method: 'GET', path: '/' }));
      expect([cut.code, cut.status]).toEqual(['UNAVAILABLE', 503]);
      const unknown = await rejectionOf(b.hub.presence(device.id));
      expect(unknown.code).toBe('UNAVAILABLE');
      // Heartbeats fail to refresh the entry meanwhile, which does not cut a working tunnel.
      await new Promise((resolve) => setTimeout(resolve, FAST_HEARTBEAT_MS * 3));
      const local = await a.hub.forward(device.id, { method: 'POST', path: '/', body: 'still' });
      expect(local.body.toString()).toBe('agent:POST:still');
      expect(a.hub.isConnected(device.id)).toBe(true);

      proxy.restore();
      await waitFor(
        async () => {
          try {
            return (await b.hub.forward(device.id, { method: 'GET', path: '/' })).status === 201;
          } catch {
            return false;
          }
        },
        { what: 'requests through the other instance once Redis is back' },
      );
    });
  });
}
