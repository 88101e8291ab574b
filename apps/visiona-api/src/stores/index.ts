// The persistent stores as one set, built on PostgreSQL/PGlite or in memory: the wiring picks
// one with `DATABASE_URL`, and the contract suites build both.
import type { Clock } from '@upgrade/core';
import type { VisionaDatabase } from '../db/database.js';
import type { DeviceStore, ModelStore, PairingTokenStore, SessionTokenStore, UserStore } from '../ports.js';
import { createMemoryDeviceStore } from './devices.memory.js';
import { createPgDeviceStore } from './devices.pg.js';
import { createMemoryTables, type MemoryTables } from './memory-tables.js';
import { createMemoryModelStore } from './models.memory.js';
import { createPgModelStore } from './models.pg.js';
import { createMemoryPairingTokenStore } from './pairing-tokens.memory.js';
import { createPgPairingTokenStore } from './pairing-tokens.pg.js';
import { createMemorySessionTokenStore } from './session-tokens.memory.js';
import { createPgSessionTokenStore } from './session-tokens.pg.js';
import { createMemoryUserStore } from './users.memory.js';
import { createPgUserStore } from './users.pg.js';

/** The stores that live in PostgreSQL (or in memory when no database is configured). */
export interface PersistentStores {
  users: UserStore;
  models: ModelStore;
  devices: DeviceStore;
  pairingTokens: PairingTokenStore;
  sessionTokens: SessionTokenStore;
}

/** Every persistent store over one drizzle database (pg pool or PGlite). */
export function createPgStores(db: VisionaDatabase, clock: Clock): PersistentStores {
  return {
    users: createPgUserStore(db, clock),
    models: createPgModelStore(db, clock),
    devices: createPgDeviceStore(db, clock),
    pairingTokens: createPgPairingTokenStore(db, clock),
    sessionTokens: createPgSessionTokenStore(db, clock),
  };
}

/** Every persistent store over one set of memory tables (single instance, lost on restart). */
export function createMemoryStores(
  clock: Clock,
  tables: MemoryTables = createMemoryTables(),
): PersistentStores {
  return {
    users: createMemoryUserStore(tables, clock),
    models: createMemoryModelStore(tables, clock),
    devices: createMemoryDeviceStore(tables, clock),
    pairingTokens: createMemoryPairingTokenStore(tables, clock),
    sessionTokens: createMemorySessionTokenStore(tables, clock),
  };
}
