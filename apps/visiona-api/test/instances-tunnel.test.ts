// Two whole services (startVisionaApi, as `visiona-api serve` runs them) on loopback ports share one
// PostgreSQL database and one Redis: a user signs in on A, the device's agent connects to B, and
// A answers the user's requests for the device through B. Also: the configuration the shared
// registry needs, and what the device routes show while the registry cannot be read.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ConfigError, type ServiceApp } from '@upgrade/service';
import { freePort, useRedisPrefix, useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { pairAgent, startReferenceAgent, type ReferenceAgent } from '../src/agent/index.js';
import { buildApp } from '../src/app.js';
import { loadVisionaConfig } from '../src/config.js';
import { openBackends, startVisionaApi, type Backends, type RunningVisionaApi } from '../src/main.js';
import { createRedisTunnelRegistry } from '../src/tunnel/index.js';
import { Client, TEST_SETTINGS, defaultEnv, type ErrorBody } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const INTERNAL_TOKEN = 'internal-token-shared-by-every-instance-0123456789';
const FAST_RECONNECT = { minMs: 20, maxMs: 100 };

const database = useTestDatabase();
const redis = useRedisPrefix();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface DeviceWire {
  id: string;
  tunnel_connected: boolean;
  online_status: string;
}
interface HealthWire {
  data: { tunnel_connected: boolean; agent_last_seen_at?: string; agent_session_count: number };
}

/** One whole instance, reachable by the others on its own loopback address. */
async function startInstance(name: string, env: Record<string, string> = {}): Promise<RunningVisionaApi> {
  const port = await freePort();
  const config = loadVisionaConfig({
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: redis.prefix,
    INSTANCE_ID: name,
    INSTANCE_ADVERTISE_URL: `http://127.0.0.1:${port}`,
    TUNNEL_INTERNAL_TOKEN: INTERNAL_TOKEN,
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  });
  const api = await startVisionaApi(config, { handleSignals: false, logger: false });
  cleanups.push(() => api.stop());
  return api;
}

function startAgent(apiUrl: string, sessionToken: string): ReferenceAgent {
  const agent = startReferenceAgent({ apiUrl, sessionToken, reconnect: FAST_RECONNECT });
  cleanups.push(() => agent.close());
  return agent;
}

/** Signs a user up on `api` and pairs a device through `pairOn` as its agent would. */
async function pairedDevice(api: ServiceApp, pairOn: string, serial = 'SN-1') {
  const user = new Client(api);
  const { id: userId } = await user.signUp('ada@example.com');
  const code = await user.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
  expect(code.status).toBe(201);
  const paired = await pairAgent({ apiUrl: pairOn, pairingCode: code.body.pairing_code, serial });
  return { user, userId, deviceId: paired.device.id, sessionToken: paired.sessionToken };
}

describe('two whole instances sharing the tunnel registry', () => {
  it('a request on A for an agent connected to B is answered through B; A lists the device connected', async () => {
    const a = await startInstance('a');
    const b = await startInstance('b', { MIGRATE_ON_START: 'false' });
    expect(a.backends.tunnelRegistry?.instanceId).toBe('a');
    expect(a.backends.warnings).toEqual([]);

    const { user, deviceId, sessionToken } = await pairedDevice(a.app, b.address);
    const agent = startAgent(b.address, sessionToken);
    await agent.connected;
    const listed = () => user.call<{ items: DeviceWire[] }>('GET', '/api/devices');
    await waitFor(async () => (await listed()).body.items[0]?.tunnel_connected === true, {
      what: "A seeing B's agent",
    });

    const deps = await user.call<Record<string, unknown>>('GET', `/api/devices/${deviceId}/agent/deps`);
    expect(deps.status).toBe(200);
    expect(Object.keys(deps.body).sort()).toEqual(['camera', 'model_store', 'npu_runtime']);
    const viaSystem = await user.call('GET', `/api/system/deps?device_id=${deviceId}`);
    expect([viaSystem.status, viaSystem.body]).toEqual([200, { data: deps.body }]);

    const list = await listed();
    expect(list.status).toBe(200);
    expect(list.body.items).toMatchObject([
      { id: deviceId, tunnel_connected: true, online_status: 'online' },
    ]);
    const one = await user.call<DeviceWire>('GET', `/api/devices/${deviceId}`);
    expect([one.status, one.body.tunnel_connected]).toEqual([200, true]);
    const renamed = await user.call<DeviceWire>('PATCH', `/api/devices/${deviceId}`, { name: 'door' });
    expect([renamed.status, renamed.body.tunnel_connected]).toEqual([200, true]);

    // The agent is B's: A holds no connection and counts none of its own.
    const healthOnA = await user.call<HealthWire>('GET', `/api/system/health?device_id=${deviceId}`);
    expect(healthOnA.body.data).toMatchObject({ tunnel_connected: true, agent_session_count: 0 });
    expect(healthOnA.body.data.agent_last_seen_at).toBeDefined();
    const onB = new Client(b.app);
    onB.cookie = user.cookie;
    const healthOnB = await onB.call<HealthWire>('GET', `/api/system/health?device_id=${deviceId}`);
    expect(healthOnB.body.data).toMatchObject({ tunnel_connected: true, agent_session_count: 1 });

    // Once the agent is gone, neither instance shows it connected nor reaches it.
    await agent.close();
    await waitFor(async () => (await listed()).body.items[0]?.tunnel_connected === false, {
      what: 'the registry entry released',
    });
    const gone = await user.call<ErrorBody>('GET', `/api/devices/${deviceId}/agent/deps`);
    expect([gone.status, gone.body.error.code]).toEqual([503, 'UNAVAILABLE']);
  });

  it('without INSTANCE_ADVERTISE_URL an instance on Redis keeps its agents to itself, and says so', async () => {
    const backends = await openBackends(defaultEnv({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix }));
    cleanups.push(() => backends.close());
    expect(backends.tunnelRegistry).toBeUndefined();
    expect(backends.warnings).toContain(
      'INSTANCE_ADVERTISE_URL is not set: tunnel requests reach only the agents connected to this instance',
    );
  });
});

describe('while the tunnel registry cannot be read', () => {
  /** An app whose registry points at a Redis that is not there; stores and sessions in memory. */
  async function appWithRegistryDown(): Promise<{ app: ServiceApp; backends: Backends; url: string }> {
    const backends = await openBackends(defaultEnv());
    cleanups.push(() => backends.close());
    const registry = createRedisTunnelRegistry({
      url: `redis://127.0.0.1:${await freePort()}`,
      instanceId: 'lonely',
      advertiseUrl: 'http://127.0.0.1:1',
      timeoutMs: 200,
    });
    cleanups.push(() => registry.close());
    const app = await buildApp({
      stores: backends.stores,
      sessions: backends.sessions,
      healthChecks: backends.healthChecks,
      settings: { ...TEST_SETTINGS, tunnel: { internalToken: INTERNAL_TOKEN } },
      tunnelRegistry: registry,
      logger: false,
    });
    cleanups.push(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    return { app, backends, url: `http://127.0.0.1:${port}` };
  }

  it('lists devices from local connections and the stored status, and reaches only local agents', async () => {
    const { app, backends, url } = await appWithRegistryDown();
    const local = await pairedDevice(app, url, 'SN-LOCAL');
    await startAgent(url, local.sessionToken).connected;
    const { stores } = backends;
    // Devices whose agents another instance holds or held, as the holder's heartbeat stored them.
    const elsewhere = await stores.devices.create({
      ownerId: local.userId,
      serial: 'SN-ELSEWHERE',
      name: 'elsewhere',
      pairingStatus: 'paired',
    });
    await stores.devices.recordPresence(elsewhere.id, 'online', new Date());
    const offline = await stores.devices.create({
      ownerId: local.userId,
      serial: 'SN-OFFLINE',
      name: 'offline',
      pairingStatus: 'paired',
    });

    const list = await local.user.call<{ items: DeviceWire[] }>('GET', '/api/devices');
    expect(list.status).toBe(200);
    const connected = Object.fromEntries(list.body.items.map((d) => [d.id, d.tunnel_connected]));
    expect(connected).toEqual({ [local.deviceId]: true, [elsewhere.id]: true, [offline.id]: false });
    const one = await local.user.call<DeviceWire>('GET', `/api/devices/${elsewhere.id}`);
    expect([one.status, one.body.tunnel_connected]).toEqual([200, true]);
    const health = await local.user.call<HealthWire>('GET', `/api/system/health?device_id=${offline.id}`);
    expect([health.status, health.body.data.tunnel_connected]).toEqual([200, false]);

    // Requests are never reported as sent: the local agent answers, the other is UNAVAILABLE.
    expect((await local.user.call('GET', `/api/devices/${local.deviceId}/agent/deps`)).status).toBe(200);
    const remote = await local.user.call<ErrorBody>('GET', `/api/devices/${elsewhere.id}/agent/deps`);
    expect([remote.status, remote.body.error.code]).toEqual([503, 'UNAVAILABLE']);
  });
});

describe('configuration of the shared registry', () => {
  const issuesOf = (env: Record<string, string>): string[] => {
    try {
      loadVisionaConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.issues.map((i) => `${i.variable}: ${i.message}`);
      throw error;
    }
    return [];
  };

  it('names every missing or inconsistent setting', () => {
    const advertised = { INSTANCE_ADVERTISE_URL: 'http://10.0.0.5:8320' };
    expect(issuesOf({ ...advertised, REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual([
      expect.stringMatching(/^TUNNEL_INTERNAL_TOKEN: is required with INSTANCE_ADVERTISE_URL/),
    ]);
    expect(issuesOf({ ...advertised, TUNNEL_INTERNAL_TOKEN: INTERNAL_TOKEN })).toEqual([
      expect.stringMatching(/^REDIS_URL: is required with INSTANCE_ADVERTISE_URL/),
    ]);
    expect(
      issuesOf({
        ...advertised,
        REDIS_URL: 'redis://127.0.0.1:6379',
        TUNNEL_INTERNAL_TOKEN: INTERNAL_TOKEN,
        TUNNEL_HEARTBEAT_INTERVAL_MS: '15000',
        TUNNEL_REGISTRY_TTL_MS: '15000',
      }),
    ).toEqual([expect.stringMatching(/^TUNNEL_REGISTRY_TTL_MS: must exceed TUNNEL_HEARTBEAT_INTERVAL_MS/)]);
    const short = issuesOf({ ...advertised, REDIS_URL: 'redis://x', TUNNEL_INTERNAL_TOKEN: 'short-secret' });
    expect(short.map((i) => i.split(':')[0])).toEqual(['TUNNEL_INTERNAL_TOKEN']);
    expect(short.join('\n')).not.toContain('short-secret');
    expect(issuesOf({ INSTANCE_ADVERTISE_URL: 'tcp://10.0.0.5' }).map((i) => i.split(':')[0])).toEqual([
      'INSTANCE_ADVERTISE_URL',
    ]);
    // A single instance is unaffected by the registry's settings.
    expect(issuesOf({ TUNNEL_HEARTBEAT_INTERVAL_MS: '60000' })).toEqual([]);
  });

  it('serve exits 2 naming TUNNEL_INTERNAL_TOKEN when INSTANCE_ADVERTISE_URL comes without it', () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run pnpm --filter @upgrade/visiona-api build`);
    const result = spawnSync(process.execPath, [CLI, 'serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redis.url,
        INSTANCE_ADVERTISE_URL: 'http://127.0.0.1:8320',
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1).map((l) => l.trim().split(':')[0])).toEqual(['TUNNEL_INTERNAL_TOKEN']);
  });
});
