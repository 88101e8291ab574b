import { randomUUID } from 'node:crypto';
import type { Clock } from '@upgrade/core';
import { translateDbErrors, withTx } from './db-errors.js';
import { and, asc, count, eq, gt, isNull, sql, type Placeholder, type SQL } from 'drizzle-orm';
import type { VisionaDatabase } from '../db/database.js';
import { devices, pairingTokens, sessionTokens } from '../db/schema.js';
import type { Device, DeviceStore } from '../ports.js';
import { checkPage, isUuid } from './rules.js';

/** The columns a Device is made of: everything but the soft-delete mark. */
const DEVICE = {
  id: devices.id,
  ownerId: devices.ownerId,
  serial: devices.serial,
  name: devices.name,
  pairingStatus: devices.pairingStatus,
  onlineStatus: devices.onlineStatus,
  agentLastSeenAt: devices.agentLastSeenAt,
  createdAt: devices.createdAt,
  updatedAt: devices.updatedAt,
};

/** The name the device page statement is prepared under (once per pooled connection). */
export const DEVICE_PAGE_STATEMENT = 'visiona_devices_page';

/** A value of the statement, or a placeholder filled when a prepared statement runs. */
type Param<T> = T | Placeholder;

/** An owner's live devices. */
const liveOf = (ownerId: Param<string>): SQL | undefined =>
  and(eq(devices.ownerId, ownerId), isNull(devices.deletedAt));

/**
 * One page of an owner's live devices, each row carrying the owner's live-device count from an
 * uncorrelated subquery (run once per statement): one round trip and one pooled connection where
 * a page and a count apart took two of each. Both halves use `devices_live_owner_idx`, the count
 * index-only. A page past the end has no row to carry the count, so `list` then counts apart.
 * Exported for the bench, which issues the same statement over raw pg.
 */
export function devicePageQuery(
  db: VisionaDatabase,
  ownerId: Param<string>,
  page: { limit: Param<number>; offset: Param<number> },
) {
  const live = liveOf(ownerId);
  const counted = db.select({ total: count() }).from(devices).where(live);
  return db
    .select({ ...DEVICE, total: sql<number>`(${counted})`.mapWith(Number) })
    .from(devices)
    .where(live)
    .orderBy(asc(devices.createdAt), asc(devices.id))
    .limit(page.limit)
    .offset(page.offset);
}

/** DeviceStore on PostgreSQL or PGlite; `unpair` runs in one `withTx` transaction. */
export function createPgDeviceStore(db: VisionaDatabase, clock: Clock): DeviceStore {
  /** Live device with this id (and owner, when given); null when an id is not a UUID. */
  const liveWhere = (id: string, ownerId?: string): SQL | null => {
    if (!isUuid(id) || (ownerId !== undefined && !isUuid(ownerId))) return null;
    return (
      and(
        eq(devices.id, id),
        isNull(devices.deletedAt),
        ownerId === undefined ? undefined : eq(devices.ownerId, ownerId),
      ) ?? null
    );
  };
  const change = (where: SQL | null, patch: Partial<typeof devices.$inferInsert>): Promise<Device | null> =>
    translateDbErrors(async () => {
      if (where === null) return null;
      const [row] = await db
        .update(devices)
        .set({ ...patch, updatedAt: new Date(clock.now()) })
        .where(where)
        .returning(DEVICE);
      return row ?? null;
    });
  // Built and named once: each call sends only the parameters, and each pooled connection parses
  // and plans the statement once.
  const pageStatement = devicePageQuery(db, sql.placeholder('ownerId'), {
    limit: sql.placeholder('limit'),
    offset: sql.placeholder('offset'),
  }).prepare(DEVICE_PAGE_STATEMENT);
  const select = (where: SQL | null): Promise<Device | null> =>
    translateDbErrors(async () => {
      if (where === null) return null;
      const [row] = await db.select(DEVICE).from(devices).where(where);
      return row ?? null;
    });

  return {
    create: ({ ownerId, serial, name, pairingStatus = 'pending' }) =>
      translateDbErrors(async () => {
        const now = new Date(clock.now());
        const [row] = await db
          .insert(devices)
          .values({
            id: randomUUID(),
            ownerId,
            serial,
            name,
            pairingStatus,
            onlineStatus: 'offline',
            createdAt: now,
            updatedAt: now,
          })
          .returning(DEVICE);
        if (row === undefined) throw new Error('insert into devices returned no row');
        return row;
      }),
    get: (id, ownerId) => select(liveWhere(id, ownerId)),
    getById: (id) => select(liveWhere(id)),
    list: (ownerId, page) =>
      translateDbErrors(async () => {
        checkPage(page);
        if (!isUuid(ownerId)) return { items: [], total: 0 };
        const rows = await pageStatement.execute({ ownerId, limit: page.limit, offset: page.offset });
        let total = 0;
        const items: Device[] = rows.map(({ total: counted, ...device }) => {
          total = counted;
          return device;
        });
        if (items.length > 0 || page.offset === 0) return { items, total };
        const [all] = await db.select({ total: count() }).from(devices).where(liveOf(ownerId));
        return { items, total: all?.total ?? 0 };
      }),
    rename: (id, ownerId, name) => change(liveWhere(id, ownerId), { name }),
    markPaired: (id) => change(liveWhere(id), { pairingStatus: 'paired' }),
    recordPresence: (id, onlineStatus, seenAt) =>
      change(liveWhere(id), { onlineStatus, agentLastSeenAt: seenAt }),
    unpair: async (id, ownerId) => {
      const where = liveWhere(id, ownerId);
      if (where === null) return false;
      // Device first, tokens second: if revoking fails, the rollback also brings the device back,
      // so an owner never sees a deleted device whose agent can still connect.
      return withTx(db, async (tx) => {
        const now = new Date(clock.now());
        const gone = await tx
          .update(devices)
          .set({ pairingStatus: 'unpaired', onlineStatus: 'offline', deletedAt: now, updatedAt: now })
          .where(where)
          .returning({ id: devices.id });
        if (gone.length === 0) return false;
        await tx.delete(sessionTokens).where(eq(sessionTokens.deviceId, id));
        return true;
      });
    },
    pair: ({ pairingTokenHash, serial, name, sessionTokenHash, sessionExpiresAt = null }) =>
      // Code first: its row lock holds off a concurrent redeem of the same code until this commits
      // or rolls back (a duplicate serial rolls back, so the code stays usable).
      withTx(db, async (tx) => {
        const now = new Date(clock.now());
        const [token] = await tx
          .update(pairingTokens)
          .set({ usedAt: now })
          .where(
            and(
              eq(pairingTokens.tokenHash, pairingTokenHash),
              isNull(pairingTokens.usedAt),
              gt(pairingTokens.expiresAt, now),
            ),
          )
          .returning({ ownerId: pairingTokens.ownerId });
        if (token === undefined) return null;
        const [device] = await tx
          .insert(devices)
          .values({
            id: randomUUID(),
            ownerId: token.ownerId,
            serial,
            name,
            pairingStatus: 'paired',
            onlineStatus: 'offline',
            createdAt: now,
            updatedAt: now,
          })
          .returning(DEVICE);
        if (device === undefined) throw new Error('insert into devices returned no row');
        const [sessionToken] = await tx
          .insert(sessionTokens)
          .values({
            tokenHash: sessionTokenHash,
            deviceId: device.id,
            createdAt: now,
            expiresAt: sessionExpiresAt,
          })
          .returning();
        if (sessionToken === undefined) throw new Error('insert into session_tokens returned no row');
        return { device, sessionToken };
      }),
  };
}
