// @upgrade/visiona-api as a library: the HTTP app, its wiring and configuration, and the storage
// layer. The service itself runs from the CLI (dist/cli.js). Each export's own JSDoc says more.

/** The store ports and domain types. */
export type * from './ports.js';
/** The drizzle schema (for migrations and the wiring's `openDatabase({ schema })`). */
export * as schema from './db/schema.js';
export type { VisionaDatabase } from './db/database.js';
/** All persistent stores on PostgreSQL/PGlite or in memory. */
export { createMemoryStores, createPgStores, type PersistentStores } from './stores/index.js';
export { createMemoryTables, type MemoryTables } from './stores/memory-tables.js';
/** User sessions on Redis (idle + absolute TTL by key expiry) or in memory (single instance). */
export {
  createRedisUserSessionStore,
  type RedisUserSessionOptions,
  type RedisUserSessions,
} from './stores/user-sessions.redis.js';
export { createMemoryUserSessionStore } from './stores/user-sessions.memory.js';
/** The live agent connections of this instance. */
export { createTunnelSessionStore } from './stores/tunnel-sessions.memory.js';
/** scrypt password hashes. */
export { hashPassword, verifyPassword, type ScryptParams } from './passwords.js';
/** One-time-shown tokens and the hashes stored for them. */
export { hashToken, newToken } from './tokens.js';
/** The HTTP app (never listens), the wiring that opens its backends and listens, and the configuration. */
export { buildApp, type AppDeps, type AppSettings } from './app.js';
export { appSettings, openBackends, startVisionaApi, type Backends, type RunningVisionaApi } from './main.js';
export { EnvSchema, loadVisionaConfig, type Env } from './config.js';
export { SERVICE_NAME, SERVICE_VERSION } from './version.js';
