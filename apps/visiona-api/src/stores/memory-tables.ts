// The rows the memory stores share, like tables of one database: a device store must see the
// users its owners are, and unpairing must reach the session tokens.
import type { Device, Model, SessionToken, User } from '../ports.js';

/** A stored model: the domain row plus its soft-delete mark. */
export interface ModelRow extends Model {
  deletedAt: Date | null;
}

/** A stored device: the domain row plus its soft-delete mark. */
export interface DeviceRow extends Device {
  deletedAt: Date | null;
}

/** A stored pairing token. */
export interface PairingTokenRow {
  tokenHash: string;
  ownerId: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
}

/** Failures a test can inject, standing in for what a trigger or a dropped connection does to PostgreSQL. */
export interface MemoryFaults {
  /** Thrown from inside unpairing's token revocation, after the device was marked deleted. */
  revokeSessionTokens?: () => never;
}

/** Every memory table, keyed by primary key. */
export interface MemoryTables {
  users: Map<string, User>;
  models: Map<string, ModelRow>;
  devices: Map<string, DeviceRow>;
  pairingTokens: Map<string, PairingTokenRow>;
  sessionTokens: Map<string, SessionToken>;
  faults: MemoryFaults;
}

/** Empty tables for one set of memory stores. */
export function createMemoryTables(): MemoryTables {
  return {
    users: new Map(),
    models: new Map(),
    devices: new Map(),
    pairingTokens: new Map(),
    sessionTokens: new Map(),
    faults: {},
  };
}
