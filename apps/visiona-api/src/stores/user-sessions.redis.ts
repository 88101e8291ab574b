// User sessions in Redis. Each session is a hash whose key expiry is the session's end: PEXPIRE
// is set to min(idle TTL, time left before the absolute deadline) at creation and on every touch,
// so Redis itself ends idle and too-old sessions and no cleanup loop exists. Time comes from the
// Redis server (TIME), so instances with skewed clocks agree on the deadlines.
//
// A session started with the user records its email and creation time too, so a signed-in
// request costs one Redis round trip and no user lookup; such sessions are also listed in a
// per-user set (`user:<id>`, kept as long as the newest session can live) so that
// `destroyForUser` ends them all. Every script runs by EVALSHA (ioredis sends the body only on
// NOSCRIPT), so a request sends the session key and a few numbers, not the script.
import { UpgradeError } from '@upgrade/core';
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import type { BackendLogger } from '../backend-log.js';
import type { SessionUser, UserSession, UserSessionStore, UserSessionTtl } from '../ports.js';
import { hashToken, newToken } from '../tokens.js';
import { watchRedisConnection } from './redis-connection.js';

/**
 * KEYS[1] session key, KEYS[2] the user's session set; ARGV user id, idle ms, absolute ms, email
 * and user creation ms (both '' for a session started with the id alone). Returns created,
 * expires, absolute.
 */
const CREATE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[3])
local ttl = math.min(tonumber(ARGV[2]), deadline - now)
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'created_at', now, 'deadline', deadline)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'email', ARGV[4], 'user_created_at', ARGV[5])
  redis.call('SADD', KEYS[2], KEYS[1])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {tostring(now), tostring(now + ttl), tostring(deadline)}
`;

/**
 * KEYS[1] session key; ARGV idle ms, or 0 to read without extending. Nil when ended, else user
 * id, created, expires, absolute, email and user creation ms (nil for an id-only session).
 */
const READ = `
local s = redis.call('HMGET', KEYS[1], 'user_id', 'created_at', 'deadline', 'email', 'user_created_at')
if not s[1] then return nil end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = tonumber(s[3]) - now
if left <= 0 then redis.call('DEL', KEYS[1]) return nil end
local idle = tonumber(ARGV[1])
if idle > 0 then redis.call('PEXPIRE', KEYS[1], math.min(idle, left)) end
local pttl = redis.call('PTTL', KEYS[1])
return {s[1], s[2], tostring(now + pttl), s[3], s[4], s[5]}
`;

/** KEYS[1] the user's session set. Deletes every session in it and the set; returns how many were live. */
const DESTROY_FOR_USER = `
local ended = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  ended = ended + redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return ended
`;

/** The scripts above as ioredis commands (EVALSHA, with the key prefix applied to KEYS). */
interface SessionCommands {
  sessionCreate(
    key: string,
    userKey: string,
    userId: string,
    idleMs: number,
    absoluteMs: number,
    email: string,
    userCreatedAt: string,
  ): Promise<unknown>;
  sessionRead(key: string, extendBy: number): Promise<unknown>;
  sessionDestroyForUser(userKey: string): Promise<unknown>;
}

/** The key of a user's session set, beside the session hashes (64 hex digits, so no clash). */
const userKey = (userId: string): string => `user:${userId}`;

/** Options of the Redis session store. */
export interface RedisUserSessionOptions {
  /** `REDIS_URL`. */
  url: string;
  ttl: UserSessionTtl;
  /** Prepended to every key, e.g. `visiona:` (tests use a random one). */
  keyPrefix?: string;
  /** Bound on connecting and on each command; a down Redis fails calls within this. Default 1000 ms. */
  timeoutMs?: number;
  /** Where the connection's loss and return are logged. */
  logger?: BackendLogger;
}

/** The store and its client's shutdown. */
export interface RedisUserSessions extends UserSessionStore {
  /**
   * Resolves once connected; UNAVAILABLE after the timeout. Calls made before the first
   * connection fail (there is no offline queue), so start-up awaits this when it wants sessions
   * from the first request; the store keeps reconnecting either way.
   */
  ready(): Promise<void>;
  /** Resolves when Redis answers PING; rejects with UNAVAILABLE (for `/healthz`). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * UserSessionStore on Redis. Calls fail fast with UNAVAILABLE while Redis is down (no offline
 * queue, bounded timeouts) and work again once it is back; nothing falls back to memory.
 */
export function createRedisUserSessionStore(options: RedisUserSessionOptions): RedisUserSessions {
  const timeoutMs = options.timeoutMs ?? 1000;
  const redisOptions: RedisOptions = {
    keyPrefix: `${options.keyPrefix ?? ''}session:`,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    // Keep reconnecting in the background, never more than a second apart, so recovery needs no restart.
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  };
  const redis = new Redis(options.url, redisOptions);
  // Connection errors also reject the commands in flight, which map them; the watcher logs the
  // loss and the return once each.
  watchRedisConnection(redis, 'user sessions', options.logger);
  redis.defineCommand('sessionCreate', { numberOfKeys: 2, lua: CREATE });
  redis.defineCommand('sessionRead', { numberOfKeys: 1, lua: READ });
  redis.defineCommand('sessionDestroyForUser', { numberOfKeys: 1, lua: DESTROY_FOR_USER });
  const scripts = redis as unknown as SessionCommands;
  const { idleMs, absoluteMs } = options.ttl;

  const read = async (sessionId: string, extendBy: number): Promise<UserSession | null> => {
    const reply = await call(() => scripts.sessionRead(hashToken(sessionId), extendBy));
    if (!Array.isArray(reply)) return null;
    const [userId, createdAt, expiresAt, deadline, email, userCreatedAt] = reply as (string | null)[];
    if (typeof userId !== 'string') return null;
    return {
      userId,
      ...(typeof email === 'string' && typeof userCreatedAt === 'string'
        ? { user: { id: userId, email, createdAt: new Date(Number(userCreatedAt)) } }
        : {}),
      createdAt: new Date(Number(createdAt)),
      expiresAt: new Date(Number(expiresAt)),
      absoluteExpiresAt: new Date(Number(deadline)),
    };
  };

  return {
    create: async (user) => {
      const recorded: SessionUser | undefined = typeof user === 'string' ? undefined : user;
      const userId = typeof user === 'string' ? user : user.id;
      const { raw, hash } = newToken();
      const reply = await call(() =>
        scripts.sessionCreate(
          hash,
          userKey(userId),
          userId,
          idleMs,
          absoluteMs,
          recorded?.email ?? '',
          recorded === undefined ? '' : String(recorded.createdAt.getTime()),
        ),
      );
      const [createdAt, expiresAt, deadline] = (reply as unknown[]).map(Number);
      return {
        sessionId: raw,
        session: {
          userId,
          ...(recorded === undefined ? {} : { user: { ...recorded } }),
          createdAt: new Date(createdAt ?? Number.NaN),
          expiresAt: new Date(expiresAt ?? Number.NaN),
          absoluteExpiresAt: new Date(deadline ?? Number.NaN),
        },
      };
    },
    get: (sessionId) => read(sessionId, 0),
    touch: (sessionId) => read(sessionId, idleMs),
    destroy: async (sessionId) => (await call(() => redis.del(hashToken(sessionId)))) > 0,
    destroyForUser: async (userId) =>
      Number(await call(() => scripts.sessionDestroyForUser(userKey(userId)))),
    ready: async () => {
      if (redis.status === 'ready') return;
      await call(
        () =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no connection in time')), timeoutMs);
            redis.once('ready', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      );
    },
    ping: async () => {
      await call(() => redis.ping());
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

/** Runs one Redis call; a server's reply error is a bug (INTERNAL), anything else means Redis is unreachable. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof ReplyError)
      throw new UpgradeError('INTERNAL', 'session store command failed', { cause: error });
    throw new UpgradeError('UNAVAILABLE', 'session store unavailable: Redis did not answer', {
      cause: error,
      retryable: true,
    });
  }
}
