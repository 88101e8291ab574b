// The tunnel registry in Redis, shared by every instance. `<prefix>tunnel:<deviceId>` is a hash
// { instance_id, url, connection_id, connected_at, last_seen_at } whose expiry (the TTL) the
// holder's heartbeat pushes back: the entries of an instance that died expire by themselves. Each
// claim is published on `<prefix>tunnel:claims` so the previous holder closes its stale connection
// at once instead of at its next heartbeat. Every write is one Lua script, so compare-and-set and
// compare-and-delete are atomic.
import { UpgradeError } from '@upgrade/core';
import { Redis, type RedisOptions } from 'ioredis';
import type { BackendLogger } from '../backend-log.js';
import { watchRedisConnection } from '../stores/redis-connection.js';
import type { TunnelClaim, TunnelHolder, TunnelRegistry } from './registry.js';

/** KEYS[1] entry; ARGV instance, url, connection, connected at, last seen, ttl ms, channel, message. */
const CLAIM = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'instance_id', ARGV[1], 'url', ARGV[2], 'connection_id', ARGV[3],
  'connected_at', ARGV[4], 'last_seen_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
`;

/** KEYS[1] entry; ARGV as CLAIM's first six. 0 when another connection holds the device. */
const REFRESH = `
local holder = redis.call('HGET', KEYS[1], 'connection_id')
if holder and holder ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'instance_id', ARGV[1], 'url', ARGV[2], 'connection_id', ARGV[3],
  'connected_at', ARGV[4], 'last_seen_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
`;

/** KEYS[1] entry; ARGV[1] connection. 1 when it was this connection's and is now gone. */
const RELEASE = `
if redis.call('HGET', KEYS[1], 'connection_id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

export interface RedisTunnelRegistryOptions {
  /** `REDIS_URL`. */
  url: string;
  /** This instance's id, unique among the instances sharing the registry. */
  instanceId: string;
  /** Where the other instances reach this one (`INSTANCE_ADVERTISE_URL`, e.g. http://10.0.0.5:8320). */
  advertiseUrl: string;
  /** Prepended to every key and to the channel, e.g. `visiona:` (tests use a random one). */
  keyPrefix?: string;
  /** How long an entry outlives its last refresh; longer than the heartbeat interval. Default 45 000 ms. */
  ttlMs?: number;
  /** Bound on connecting and on each command; a down Redis fails calls within this. Default 1000 ms. */
  timeoutMs?: number;
  /** Where the connection's loss and return, and a failed claims subscription, are logged. */
  logger?: BackendLogger;
}

/** The registry and its start-up wait. */
export interface RedisTunnelRegistry extends TunnelRegistry {
  /**
   * Resolves once connected and subscribed to claims; UNAVAILABLE after the timeout. Calls made
   * before the first connection fail (there is no offline queue), so start-up awaits this; the
   * registry keeps reconnecting either way.
   */
  ready(): Promise<void>;
}

/**
 * TunnelRegistry on Redis. Calls fail fast with UNAVAILABLE while Redis is down (no offline queue,
 * bounded timeouts) and work again once it is back.
 */
export function createRedisTunnelRegistry(options: RedisTunnelRegistryOptions): RedisTunnelRegistry {
  const prefix = `${options.keyPrefix ?? ''}tunnel:`;
  const channel = `${prefix}claims`;
  const ttlMs = options.ttlMs ?? 45_000;
  const timeoutMs = options.timeoutMs ?? 1000;
  const { instanceId, advertiseUrl } = options;
  const base: RedisOptions = {
    connectTimeout: timeoutMs,
    // Keep reconnecting in the background, never more than a second apart.
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  };
  const redis = new Redis(options.url, {
    ...base,
    enableOfflineQueue: false,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
  });
  // A subscriber holds its connection for pushed messages only. It subscribes on every 'ready'
  // itself: ioredis's own resubscribe after a reconnect (autoResubscribe) leaves its SUBSCRIBE
  // promise unhandled, so a connection closed before the reply (a close during the reconnect, or
  // Redis dropping again) rejects it with "Connection is closed." and nobody catches it.
  const subscriber = new Redis(options.url, { ...base, autoResubscribe: false });
  // Commands in flight are rejected with the cause; the watcher logs the loss and the return once
  // each (the subscriber shares the server, so its own errors would only repeat them).
  watchRedisConnection(redis, 'tunnel registry', options.logger);
  subscriber.on('error', () => undefined);
  let closing = false;
  let markSubscribed: () => void = () => undefined;
  const subscribed = new Promise<void>((resolve) => {
    markSubscribed = resolve;
  });
  subscriber.on('ready', () => {
    subscriber.subscribe(channel).then(
      () => markSubscribed(),
      (error: unknown) => {
        // The connection went away before the reply: the next 'ready' subscribes again, and
        // meanwhile each heartbeat's refresh still finds a lost claim.
        if (!closing) options.logger?.warn({ err: error }, 'could not subscribe to tunnel claims');
      },
    );
  });
  const listeners: ((deviceId: string, connectionId: string) => void)[] = [];
  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    const claim = parseClaimMessage(message);
    if (claim === undefined) return;
    for (const listener of listeners) listener(claim.deviceId, claim.connectionId);
  });

  const key = (deviceId: string): string => `${prefix}${deviceId}`;
  const fields = (claim: TunnelClaim): string[] => [
    instanceId,
    advertiseUrl,
    claim.connectionId,
    String(claim.connectedAt.getTime()),
    String(claim.lastSeenAt.getTime()),
    String(ttlMs),
  ];
  const run = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw new UpgradeError(
        'UNAVAILABLE',
        `the tunnel registry (Redis) did not answer while ${what}; retry once Redis is back`,
        { cause: error },
      );
    }
  };

  const connected = (): Promise<void> =>
    redis.status === 'ready'
      ? Promise.resolve()
      : new Promise<void>((resolve) => redis.once('ready', () => resolve()));

  return {
    instanceId,
    shared: true,
    ready: async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () =>
            reject(new UpgradeError('UNAVAILABLE', 'the tunnel registry (Redis) did not answer at start-up')),
          timeoutMs,
        );
      });
      try {
        await Promise.race([Promise.all([connected(), subscribed]), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    claim: (deviceId, claim) =>
      run('claiming a device', async () => {
        const message = JSON.stringify({ deviceId, connectionId: claim.connectionId });
        await redis.eval(CLAIM, 1, key(deviceId), ...fields(claim), channel, message);
      }),
    refresh: (deviceId, claim) =>
      run(
        'refreshing a device',
        async () => (await redis.eval(REFRESH, 1, key(deviceId), ...fields(claim))) === 1,
      ),
    release: (deviceId, connectionId) =>
      run(
        'releasing a device',
        async () => (await redis.eval(RELEASE, 1, key(deviceId), connectionId)) === 1,
      ),
    locate: (deviceId) => run('locating a device', async () => toHolder(await redis.hgetall(key(deviceId)))),
    locateMany: (deviceIds) =>
      run('locating devices', async () => {
        if (deviceIds.length === 0) return [];
        const pipeline = redis.pipeline();
        for (const deviceId of deviceIds) pipeline.hgetall(key(deviceId));
        const results = (await pipeline.exec()) ?? [];
        return results.map(([error, hash]) => {
          if (error) throw error;
          return toHolder(hash as Record<string, string>);
        });
      }),
    onClaim: (listener) => {
      listeners.push(listener);
    },
    close: async () => {
      closing = true;
      listeners.length = 0;
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

function toHolder(hash: Record<string, string>): TunnelHolder | undefined {
  const { instance_id: id, url, connection_id: connectionId, connected_at: at, last_seen_at: seen } = hash;
  if (id === undefined || url === undefined || connectionId === undefined) return undefined;
  return {
    instanceId: id,
    url,
    connectionId,
    connectedAt: new Date(Number(at)),
    lastSeenAt: new Date(Number(seen)),
  };
}

function parseClaimMessage(message: string): { deviceId: string; connectionId: string } | undefined {
  try {
    const parsed = JSON.parse(message) as { deviceId?: unknown; connectionId?: unknown };
    if (typeof parsed.deviceId !== 'string' || typeof parsed.connectionId !== 'string') return undefined;
    return { deviceId: parsed.deviceId, connectionId: parsed.connectionId };
  } catch {
    return undefined;
  }
}
