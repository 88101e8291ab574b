import { randomUUID } from 'node:crypto';
import type { Clock } from '@upgrade/core';
import type { Device, DeviceStore, SessionToken } from '../ports.js';
import type { DeviceRow, MemoryTables } from './memory-tables.js';
import { checkPage, checkTokenHash, constraintViolated, isUuid } from './rules.js';

/** DeviceStore in memory; unpairing undoes itself when token revocation fails, like a rollback. */
export function createMemoryDeviceStore(tables: MemoryTables, clock: Clock): DeviceStore {
  const live = (id: string, ownerId?: string): DeviceRow | undefined => {
    const row = isUuid(id) ? tables.devices.get(id) : undefined;
    if (row === undefined || row.deletedAt !== null) return undefined;
    return ownerId === undefined || row.ownerId === ownerId ? row : undefined;
  };
  const change = (row: DeviceRow | undefined, patch: Partial<DeviceRow>): Device | null => {
    if (row === undefined) return null;
    Object.assign(row, patch, { updatedAt: new Date(clock.now()) });
    return toDevice(row);
  };
  return {
    create: async ({ ownerId, serial, name, pairingStatus = 'pending' }) => {
      if (!tables.users.has(ownerId)) throw constraintViolated('devices_owner_id_users_id_fk', 'foreign key');
      if ([...tables.devices.values()].some((d) => d.serial === serial && d.deletedAt === null))
        throw constraintViolated('devices_serial_live', 'unique');
      const now = new Date(clock.now());
      const row: DeviceRow = {
        id: randomUUID(),
        ownerId,
        serial,
        name,
        pairingStatus,
        onlineStatus: 'offline',
        agentLastSeenAt: null,
        createdAt: now,
        updatedAt: now,
        deletedAt: null,
      };
      tables.devices.set(row.id, row);
      return toDevice(row);
    },
    get: async (id, ownerId) => nullable(live(id, ownerId)),
    getById: async (id) => nullable(live(id)),
    list: async (ownerId, page) => {
      checkPage(page);
      const rows = [...tables.devices.values()]
        .filter((d) => d.ownerId === ownerId && d.deletedAt === null)
        .sort(
          (a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
        );
      return { items: rows.slice(page.offset, page.offset + page.limit).map(toDevice), total: rows.length };
    },
    rename: async (id, ownerId, name) => change(live(id, ownerId), { name }),
    markPaired: async (id) => change(live(id), { pairingStatus: 'paired' }),
    recordPresence: async (id, onlineStatus, seenAt) =>
      change(live(id), { onlineStatus, agentLastSeenAt: new Date(seenAt) }),
    unpair: async (id, ownerId) => {
      const row = live(id, ownerId);
      if (row === undefined) return false;
      const before = { ...row };
      Object.assign(row, {
        pairingStatus: 'unpaired',
        onlineStatus: 'offline',
        deletedAt: new Date(clock.now()),
        updatedAt: new Date(clock.now()),
      } satisfies Partial<DeviceRow>);
      try {
        tables.faults.revokeSessionTokens?.();
        for (const [hash, token] of tables.sessionTokens)
          if (token.deviceId === id) tables.sessionTokens.delete(hash);
      } catch (error) {
        Object.assign(row, before);
        throw error;
      }
      return true;
    },
    // Every check comes before the first write, and nothing awaits in between: all or nothing.
    pair: async ({ pairingTokenHash, serial, name, sessionTokenHash, sessionExpiresAt = null }) => {
      const code = tables.pairingTokens.get(pairingTokenHash);
      const now = clock.now();
      if (code === undefined || code.usedAt !== null || code.expiresAt.getTime() <= now) return null;
      if ([...tables.devices.values()].some((d) => d.serial === serial && d.deletedAt === null))
        throw constraintViolated('devices_serial_live', 'unique');
      checkTokenHash(sessionTokenHash, 'session_tokens');
      if (tables.sessionTokens.has(sessionTokenHash))
        throw constraintViolated('session_tokens_pkey', 'unique');
      const at = new Date(now);
      const row: DeviceRow = {
        id: randomUUID(),
        ownerId: code.ownerId,
        serial,
        name,
        pairingStatus: 'paired',
        onlineStatus: 'offline',
        agentLastSeenAt: null,
        createdAt: at,
        updatedAt: at,
        deletedAt: null,
      };
      const sessionToken: SessionToken = {
        tokenHash: sessionTokenHash,
        deviceId: row.id,
        createdAt: at,
        expiresAt: sessionExpiresAt === null ? null : new Date(sessionExpiresAt),
      };
      code.usedAt = at;
      tables.devices.set(row.id, row);
      tables.sessionTokens.set(sessionTokenHash, sessionToken);
      return { device: toDevice(row), sessionToken: { ...sessionToken } };
    },
  };
}

function nullable(row: DeviceRow | undefined): Device | null {
  return row === undefined ? null : toDevice(row);
}

function toDevice(row: DeviceRow): Device {
  const { deletedAt: _deletedAt, ...device } = row;
  return { ...device };
}
