import type { Clock } from '@upgrade/core';
import { translateDbErrors, withTx } from './db-errors.js';
import { and, eq, gt, isNull, or } from 'drizzle-orm';
import type { VisionaDatabase } from '../db/database.js';
import { devices, sessionTokens } from '../db/schema.js';
import type { SessionTokenStore } from '../ports.js';
import { deviceGone, isUuid } from './rules.js';

/** SessionTokenStore on PostgreSQL or PGlite. */
export function createPgSessionTokenStore(db: VisionaDatabase, clock: Clock): SessionTokenStore {
  return {
    create: ({ tokenHash, deviceId, expiresAt = null }) =>
      withTx(db, async (tx) => {
        if (!isUuid(deviceId)) throw deviceGone(deviceId);
        // FOR SHARE holds off a concurrent unpair until this token is in, so unpairing revokes it.
        const [device] = await tx
          .select({ id: devices.id })
          .from(devices)
          .where(and(eq(devices.id, deviceId), isNull(devices.deletedAt)))
          .for('share');
        if (device === undefined) throw deviceGone(deviceId);
        const [row] = await tx
          .insert(sessionTokens)
          .values({ tokenHash, deviceId, expiresAt, createdAt: new Date(clock.now()) })
          .returning();
        if (row === undefined) throw new Error('insert into session_tokens returned no row');
        return row;
      }),
    find: (tokenHash) =>
      translateDbErrors(async () => {
        const [row] = await db
          .select()
          .from(sessionTokens)
          .where(
            and(
              eq(sessionTokens.tokenHash, tokenHash),
              or(isNull(sessionTokens.expiresAt), gt(sessionTokens.expiresAt, new Date(clock.now()))),
            ),
          );
        return row ?? null;
      }),
    revoke: (tokenHash) =>
      translateDbErrors(async () => {
        const rows = await db
          .delete(sessionTokens)
          .where(eq(sessionTokens.tokenHash, tokenHash))
          .returning({ tokenHash: sessionTokens.tokenHash });
        return rows.length > 0;
      }),
    revokeForDevice: (deviceId) =>
      translateDbErrors(async () => {
        if (!isUuid(deviceId)) return 0;
        const rows = await db
          .delete(sessionTokens)
          .where(eq(sessionTokens.deviceId, deviceId))
          .returning({ tokenHash: sessionTokens.tokenHash });
        return rows.length;
      }),
  };
}
