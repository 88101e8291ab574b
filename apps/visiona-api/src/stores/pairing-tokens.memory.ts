import type { Clock } from '@upgrade/core';
import type { PairingTokenStore } from '../ports.js';
import type { MemoryTables } from './memory-tables.js';
import { checkTokenHash, constraintViolated } from './rules.js';

/** PairingTokenStore in memory; a redeem is one synchronous step, so it is atomic here too. */
export function createMemoryPairingTokenStore(tables: MemoryTables, clock: Clock): PairingTokenStore {
  return {
    create: async ({ tokenHash, ownerId, expiresAt }) => {
      checkTokenHash(tokenHash, 'pairing_tokens');
      if (tables.pairingTokens.has(tokenHash)) throw constraintViolated('pairing_tokens_pkey', 'unique');
      if (!tables.users.has(ownerId))
        throw constraintViolated('pairing_tokens_owner_id_users_id_fk', 'foreign key');
      tables.pairingTokens.set(tokenHash, {
        tokenHash,
        ownerId,
        createdAt: new Date(clock.now()),
        expiresAt: new Date(expiresAt),
        usedAt: null,
      });
    },
    redeem: async (tokenHash) => {
      const row = tables.pairingTokens.get(tokenHash);
      const now = clock.now();
      if (row === undefined || row.usedAt !== null || row.expiresAt.getTime() <= now) return null;
      row.usedAt = new Date(now);
      return { ownerId: row.ownerId };
    },
  };
}
