// Rate-limit counters in Redis, for @fastify/rate-limit's `store` option: every instance behind the
// load balancer counts the same attempts. A fixed window per key: INCR, and PEXPIRE on the first hit.
import { UpgradeError } from '@upgrade/core';
import { Redis } from 'ioredis';
import type { BackendLogger } from '../backend-log.js';
import { watchRedisConnection } from './redis-connection.js';

/** KEYS[1] counter; ARGV window ms. Returns the count and the ms left in the window. */
const HIT = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end
return {current, ttl}
`;

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/** The store interface @fastify/rate-limit drives. */
interface RateLimitStore {
  incr(key: string, callback: Callback, timeWindow: number, max: number): void;
  child(routeOptions: { routeInfo: { method?: string; url?: string } }): RateLimitStore;
}

/** Options of the Redis rate-limit store. */
export interface RedisRateLimitOptions {
  url: string;
  /** Prepended to every key, e.g. `visiona:`. */
  keyPrefix?: string;
  /** Bound on connecting and on each command. Default 1000 ms. */
  timeoutMs?: number;
  /** Where the connection's loss and return are logged. */
  logger?: BackendLogger;
}

/**
 * A store class for `@fastify/rate-limit` (`{ store: limits.Store }`) and its client's shutdown.
 * While Redis is down, a limited route answers 503 (UNAVAILABLE): it neither lets every attempt
 * through nor blocks them forever.
 */
export function createRedisRateLimits(options: RedisRateLimitOptions): {
  Store: new (globalOptions: unknown) => RateLimitStore;
  close(): Promise<void>;
} {
  const timeoutMs = options.timeoutMs ?? 1000;
  const redis = new Redis(options.url, {
    keyPrefix: `${options.keyPrefix ?? ''}ratelimit:`,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  watchRedisConnection(redis, 'rate limits', options.logger);

  const storeFor = (prefix: string): RateLimitStore => ({
    incr: (key, callback, timeWindow) => {
      redis.eval(HIT, 1, `${prefix}${key}`, timeWindow).then(
        (reply) => {
          const [current, ttl] = (reply as unknown[]).map(Number);
          callback(null, { current: current ?? 0, ttl: ttl ?? timeWindow });
        },
        (error: unknown) =>
          callback(
            new UpgradeError('UNAVAILABLE', 'rate limit store unavailable: Redis did not answer', {
              cause: error,
            }),
          ),
      );
    },
    child: ({ routeInfo }) => storeFor(`${prefix}${routeInfo.method ?? ''}${routeInfo.url ?? ''}:`),
  });

  return {
    Store: class {
      constructor(_globalOptions: unknown) {
        return storeFor('');
      }
    } as unknown as new (globalOptions: unknown) => RateLimitStore,
    close: async () => {
      redis.disconnect();
    },
  };
}
