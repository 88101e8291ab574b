// One log line when a Redis client loses its connection and one when it is back, instead of one
// per reconnect attempt (ioredis emits 'error' for each). Calls made meanwhile fail on their own
// with UNAVAILABLE; these lines tell the operator why.
import type { Redis } from 'ioredis';
import type { BackendLogger } from '../backend-log.js';

/**
 * Listens for the client's 'error' events (without a listener ioredis prints each one) and logs
 * the transitions. `what` names the client in the lines, e.g. `user sessions`.
 */
export function watchRedisConnection(redis: Redis, what: string, logger: BackendLogger | undefined): void {
  let down = false;
  let wasReady = false;
  const lost = (error?: Error): void => {
    if (down || !wasReady) return;
    down = true;
    // The code only (ECONNREFUSED, ETIMEDOUT...): ioredis messages can carry the address.
    const code = (error as { code?: unknown } | undefined)?.code;
    logger?.warn(
      { redis: what, ...(typeof code === 'string' ? { code } : {}) },
      'Redis connection lost; its calls answer 503 until it is back',
    );
  };
  redis.on('error', (error: Error) => lost(error));
  redis.on('close', () => {
    if (redis.status !== 'end') lost();
  });
  redis.on('ready', () => {
    if (down) logger?.info({ redis: what }, 'Redis connection back');
    down = false;
    wasReady = true;
  });
}
