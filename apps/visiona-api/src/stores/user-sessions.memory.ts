import type { Clock } from '@upgrade/core';
import type { SessionUser, UserSession, UserSessionStore, UserSessionTtl } from '../ports.js';
import { hashToken, newToken } from '../tokens.js';

interface Entry {
  userId: string;
  user: SessionUser | undefined;
  createdAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
}

/**
 * UserSessionStore in memory, for a single instance only (sessions do not survive a restart or
 * reach another instance). Ended sessions are dropped when next looked at, so no timer runs.
 */
export function createMemoryUserSessionStore(ttl: UserSessionTtl, clock: Clock): UserSessionStore {
  const sessions = new Map<string, Entry>();
  const alive = (key: string): Entry | undefined => {
    const entry = sessions.get(key);
    if (entry !== undefined && entry.expiresAt <= clock.now()) sessions.delete(key);
    return entry !== undefined && entry.expiresAt > clock.now() ? entry : undefined;
  };
  return {
    create: async (user) => {
      const { raw, hash } = newToken();
      const now = clock.now();
      const absoluteExpiresAt = now + ttl.absoluteMs;
      const entry: Entry = {
        userId: typeof user === 'string' ? user : user.id,
        user: typeof user === 'string' ? undefined : { ...user },
        createdAt: now,
        expiresAt: Math.min(now + ttl.idleMs, absoluteExpiresAt),
        absoluteExpiresAt,
      };
      sessions.set(hash, entry);
      return { sessionId: raw, session: toSession(entry) };
    },
    get: async (sessionId) => {
      const entry = alive(hashToken(sessionId));
      return entry === undefined ? null : toSession(entry);
    },
    touch: async (sessionId) => {
      const entry = alive(hashToken(sessionId));
      if (entry === undefined) return null;
      entry.expiresAt = Math.min(clock.now() + ttl.idleMs, entry.absoluteExpiresAt);
      return toSession(entry);
    },
    destroy: async (sessionId) => {
      const key = hashToken(sessionId);
      return alive(key) !== undefined && sessions.delete(key);
    },
    destroyForUser: async (userId) => {
      let ended = 0;
      for (const key of [...sessions.keys()]) {
        const entry = alive(key);
        if (entry?.user?.id === userId && sessions.delete(key)) ended++;
      }
      return ended;
    },
  };
}

function toSession(entry: Entry): UserSession {
  return {
    userId: entry.userId,
    ...(entry.user === undefined
      ? {}
      : { user: { ...entry.user, createdAt: new Date(entry.user.createdAt) } }),
    createdAt: new Date(entry.createdAt),
    expiresAt: new Date(entry.expiresAt),
    absoluteExpiresAt: new Date(entry.absoluteExpiresAt),
  };
}
