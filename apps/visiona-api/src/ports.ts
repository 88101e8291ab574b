// The storage ports of visiona-api and the domain types they speak. Every store has a memory
// implementation and a real one (PostgreSQL, Redis) behind the same interface; the contract suites
// under test/contracts run against all of them so they cannot drift.
//
// Conventions shared by every store:
// - ids are UUIDs; an id that is not one reads as "not found", never as a validation error.
// - owner-scoped getters take the owner: another user's row reads exactly like a missing one.
// - failures are UpgradeErrors: CONFLICT (409) for uniqueness and references, UNAVAILABLE (503)
//   when the backing server is down. A driver's own message never escapes.
// - tokens arrive as their SHA-256 hex hash (see tokens.ts); a store never sees a raw token.

/** A page request: `limit` rows after skipping `offset`. */
export interface Page {
  limit: number;
  offset: number;
}

/** One page of rows and how many rows match in all. */
export interface PageResult<T> {
  items: T[];
  total: number;
}

/** An account. `email` keeps the case it was registered with; lookups ignore case. */
export interface User {
  id: string;
  email: string;
  /** scrypt hash string from passwords.ts; never a plain or fast hash. */
  passwordHash: string;
  createdAt: Date;
}

/** What registering a user needs. */
export interface NewUser {
  email: string;
  passwordHash: string;
}

/** Users; an email registered twice in any case is CONFLICT (`users_email_lower_unique`). */
export interface UserStore {
  create(user: NewUser): Promise<User>;
  get(id: string): Promise<User | null>;
  findByEmail(email: string): Promise<User | null>;
}

/** An AI model published by a user for one NPU chip. */
export interface Model {
  id: string;
  ownerId: string;
  name: string;
  /** The NPU the model is compiled for, e.g. `hailo8`, `rk3588`. */
  chip: string;
  /** Where the model came from, e.g. `upload`, `zoo`, `conversion`. */
  source: string;
  labels: string[];
  /** The input tensor shape, e.g. [1, 3, 640, 640]. */
  inputShape: number[];
  /** Object-storage key of the model file; null until the file is uploaded. */
  faaObjectKey: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What an upsert writes; `faaObjectKey` left undefined or null keeps the stored key. */
export interface ModelInput {
  id: string;
  ownerId: string;
  name: string;
  chip: string;
  source: string;
  labels: string[];
  inputShape: number[];
  faaObjectKey?: string | null;
}

/** Filters of a model listing; every one given must match. */
export interface ModelFilter {
  ownerId?: string;
  chip?: string;
  source?: string;
}

/** Models; deleted models are kept (soft delete) but no method returns them. */
export interface ModelStore {
  /**
   * Inserts the model or updates the caller's live model with this id, keeping `createdAt` and,
   * unless a new one is given, `faaObjectKey`. An id held by another owner or by a deleted model
   * is NOT_FOUND.
   */
  upsert(model: ModelInput): Promise<Model>;
  get(id: string, ownerId: string): Promise<Model | null>;
  /** Newest first (created_at, then id, descending). */
  list(filter: ModelFilter, page: Page): Promise<PageResult<Model>>;
  /** Returns false when the owner has no live model with this id. */
  softDelete(id: string, ownerId: string): Promise<boolean>;
}

/** Where a device stands in pairing: `unpaired` exactly when it is deleted. */
export type PairingStatus = 'pending' | 'paired' | 'unpaired';
/** Whether the device's agent is connected, as heartbeats last said. */
export type OnlineStatus = 'online' | 'offline';

/** A paired edge device. */
export interface Device {
  id: string;
  ownerId: string;
  /** The hardware serial; unique among live devices, so a deleted serial can register again. */
  serial: string;
  name: string;
  pairingStatus: PairingStatus;
  onlineStatus: OnlineStatus;
  agentLastSeenAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What registering a device needs; it starts `offline`. */
export interface NewDevice {
  ownerId: string;
  serial: string;
  name: string;
  pairingStatus?: Exclude<PairingStatus, 'unpaired'>;
}

/** What pairing a device through a one-time code needs. */
export interface DevicePairing {
  /** The SHA-256 of the pairing code the agent presents. */
  pairingTokenHash: string;
  serial: string;
  name: string;
  /** The SHA-256 of the session token the agent receives once. */
  sessionTokenHash: string;
  sessionExpiresAt?: Date | null;
}

/** A device paired through a code, and the session token its agent connects with. */
export interface PairedDevice {
  device: Device;
  sessionToken: SessionToken;
}

/** Devices; deleted (unpaired) devices are kept but no method returns them. */
export interface DeviceStore {
  /** A live device with the same serial is CONFLICT (`devices_serial_live`). */
  create(device: NewDevice): Promise<Device>;
  get(id: string, ownerId: string): Promise<Device | null>;
  /** For the agent side, where the session token names the device and no user is involved. */
  getById(id: string): Promise<Device | null>;
  /** Oldest first (created_at, then id). */
  list(ownerId: string, page: Page): Promise<PageResult<Device>>;
  rename(id: string, ownerId: string, name: string): Promise<Device | null>;
  markPaired(id: string): Promise<Device | null>;
  /** Records an agent heartbeat (`online` and `seenAt`) or a disconnect (`offline`). */
  recordPresence(id: string, status: OnlineStatus, seenAt: Date): Promise<Device | null>;
  /**
   * Deletes the device and revokes every session token it holds in one transaction: both happen
   * or neither. Returns false when the owner has no live device with this id.
   */
  unpair(id: string, ownerId: string): Promise<boolean>;
  /**
   * Redeems the pairing code, creates the device (`paired`, owned by whoever issued the code) and
   * its session token in one transaction: all three or none. Null for an unknown, used or expired
   * code; a live device with the same serial is CONFLICT and leaves the code unused.
   */
  pair(pairing: DevicePairing): Promise<PairedDevice | null>;
}

/** A one-time code a user issues so an agent can pair a device to them. */
export interface NewPairingToken {
  tokenHash: string;
  ownerId: string;
  expiresAt: Date;
}

/** Pairing tokens: short-lived, one use. */
export interface PairingTokenStore {
  create(token: NewPairingToken): Promise<void>;
  /**
   * Marks the token used and returns whose it is, atomically: of two concurrent redeems one
   * wins. Null for an unknown, used or expired token (the caller answers all three alike).
   */
  redeem(tokenHash: string): Promise<{ ownerId: string } | null>;
}

/** The long-lived credential an agent authenticates its tunnel with. */
export interface SessionToken {
  tokenHash: string;
  deviceId: string;
  createdAt: Date;
  /** Null: valid until revoked. */
  expiresAt: Date | null;
}

/** What issuing a session token needs. */
export interface NewSessionToken {
  tokenHash: string;
  deviceId: string;
  expiresAt?: Date | null;
}

/** Session tokens of devices. */
export interface SessionTokenStore {
  /** A device that does not exist (or is deleted) is CONFLICT. */
  create(token: NewSessionToken): Promise<SessionToken>;
  /** The live, unexpired token with this hash, or null. */
  find(tokenHash: string): Promise<SessionToken | null>;
  revoke(tokenHash: string): Promise<boolean>;
  /** Returns how many tokens were revoked. */
  revokeForDevice(deviceId: string): Promise<number>;
}

/**
 * Who a browser session belongs to, recorded with the session at sign-in so that a signed-in
 * request is served without reading the user. Users are never edited; ending a user's sessions
 * (`UserSessionStore.destroyForUser`) is what takes their access away.
 */
export interface SessionUser {
  id: string;
  email: string;
  createdAt: Date;
}

/** A signed-in user's browser session. */
export interface UserSession {
  userId: string;
  /** The user as recorded at sign-in; absent on a session started with the id alone. */
  user?: SessionUser;
  createdAt: Date;
  /** When the session ends unless used again: min(idle deadline, absolute deadline). */
  expiresAt: Date;
  /** When the session ends however much it is used. */
  absoluteExpiresAt: Date;
}

/** Lifetimes of user sessions. */
export interface UserSessionTtl {
  /** Ends a session this long after its last use. */
  idleMs: number;
  /** Ends a session this long after it was created, used or not. */
  absoluteMs: number;
}

/** User sessions, keyed by the session id the cookie carries (stored hashed). */
export interface UserSessionStore {
  /**
   * Starts a session; the returned `sessionId` is the cookie value, shown this once. Given the
   * user (not just its id), the session records it and can be ended by `destroyForUser`.
   */
  create(user: SessionUser | string): Promise<{ sessionId: string; session: UserSession }>;
  /** The session without extending it, or null when it ended. */
  get(sessionId: string): Promise<UserSession | null>;
  /** The session with its idle deadline pushed back (never past the absolute one), or null. */
  touch(sessionId: string): Promise<UserSession | null>;
  destroy(sessionId: string): Promise<boolean>;
  /** Ends every session that records this user (for when the user goes); returns how many. */
  destroyForUser(userId: string): Promise<number>;
}

/** The live agent connections of this instance (`H` is whatever the tunnel keeps per agent). */
export interface TunnelSessionStore<H> {
  /** Returns the handle this one replaced, so the caller can close the stale connection. */
  register(deviceId: string, handle: H): H | undefined;
  get(deviceId: string): H | undefined;
  /** Removes the device's entry only while it is still `handle`: a stale close cannot drop a newer one. */
  unregister(deviceId: string, handle: H): boolean;
  /** Records traffic from the agent. */
  markSeen(deviceId: string): void;
  lastSeenAt(deviceId: string): Date | undefined;
  /** The latest traffic among the connected agents; undefined with none connected. */
  latestSeenAt(): Date | undefined;
  count(): number;
}
