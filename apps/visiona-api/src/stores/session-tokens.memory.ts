import type { Clock } from '@upgrade/core';
import type { SessionTokenStore } from '../ports.js';
import type { MemoryTables } from './memory-tables.js';
import { checkTokenHash, constraintViolated, deviceGone, isUuid } from './rules.js';

/** SessionTokenStore in memory. */
export function createMemorySessionTokenStore(tables: MemoryTables, clock: Clock): SessionTokenStore {
  return {
    create: async ({ tokenHash, deviceId, expiresAt = null }) => {
      checkTokenHash(tokenHash, 'session_tokens');
      const device = isUuid(deviceId) ? tables.devices.get(deviceId) : undefined;
      if (device === undefined || device.deletedAt !== null) throw deviceGone(deviceId);
      if (tables.sessionTokens.has(tokenHash)) throw constraintViolated('session_tokens_pkey', 'unique');
      const token = {
        tokenHash,
        deviceId,
        createdAt: new Date(clock.now()),
        expiresAt: expiresAt === null ? null : new Date(expiresAt),
      };
      tables.sessionTokens.set(tokenHash, token);
      return { ...token };
    },
    find: async (tokenHash) => {
      const token = tables.sessionTokens.get(tokenHash);
      if (token === undefined || (token.expiresAt !== null && token.expiresAt.getTime() <= clock.now()))
        return null;
      return { ...token };
    },
    revoke: async (tokenHash) => tables.sessionTokens.delete(tokenHash),
    revokeForDevice: async (deviceId) => {
      let revoked = 0;
      for (const [hash, token] of tables.sessionTokens)
        if (token.deviceId === deviceId && tables.sessionTokens.delete(hash)) revoked++;
      return revoked;
    },
  };
}
