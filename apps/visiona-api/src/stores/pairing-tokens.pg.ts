import type { Clock } from '@upgrade/core';
import { translateDbErrors } from './db-errors.js';
import { and, eq, gt, isNull } from 'drizzle-orm';
import type { VisionaDatabase } from '../db/database.js';
import { pairingTokens } from '../db/schema.js';
import type { PairingTokenStore } from '../ports.js';

/** PairingTokenStore on PostgreSQL or PGlite. */
export function createPgPairingTokenStore(db: VisionaDatabase, clock: Clock): PairingTokenStore {
  return {
    create: ({ tokenHash, ownerId, expiresAt }) =>
      translateDbErrors(async () => {
        await db
          .insert(pairingTokens)
          .values({ tokenHash, ownerId, expiresAt, createdAt: new Date(clock.now()) });
      }),
    redeem: (tokenHash) =>
      translateDbErrors(async () => {
        const now = new Date(clock.now());
        // One conditional UPDATE: the row lock makes a concurrent second redeem re-check
        // `used_at is null` after the first commits, and find nothing.
        const [row] = await db
          .update(pairingTokens)
          .set({ usedAt: now })
          .where(
            and(
              eq(pairingTokens.tokenHash, tokenHash),
              isNull(pairingTokens.usedAt),
              gt(pairingTokens.expiresAt, now),
            ),
          )
          .returning({ ownerId: pairingTokens.ownerId });
        return row ?? null;
      }),
  };
}
