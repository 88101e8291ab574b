// @upgrade/db: the one way services reach PostgreSQL or the embedded PGlite. Each export's own
// JSDoc says more; this file only curates.

/** Open a database: PostgreSQL when a URL is set, else PGlite in a data directory. */
export { openDatabase, type OpenDatabaseOptions } from './open.js';
/** Open a specific driver, for code that needs the typed pool or PGlite instance. */
export { openPostgres, redactUrl, type OpenPostgresOptions, type PoolOptions } from './postgres.js';
export { openPglite, type OpenPgliteOptions } from './pglite.js';
/** The handle and the drizzle types apps write repositories against. */
export type {
  Database,
  DatabaseHandle,
  DbLogger,
  PgliteHandle,
  PostgresHandle,
  Schema,
  Transaction,
} from './handle.js';
/** Create a service's default database (e.g. `test_upgrade`) when it is missing. */
export { ensureDatabase, type EnsureDatabaseOptions } from './ensure-database.js';
/** Apply and inspect drizzle-kit migration folders, on either driver. */
export { migrate, migrationStatus, type MigrationStatus } from './migrate.js';
/** The `migrate up|status` command of the services' CLIs: the lines it prints. */
export {
  formatMigrationStatus,
  isMigrateSubcommand,
  runMigrateCommand,
  type MigrateSubcommand,
} from './migrate-command.js';
export type { MigrationInfo } from './migrations-folder.js';
/** Run work in one transaction with mapped errors. */
export { withTx } from './tx.js';
/** The one place pg / PGlite errors become UpgradeErrors. */
export { mapPgError, translatePgErrors } from './errors.js';
/** Session advisory locks: exactly one instance runs a round. */
export { advisoryLockKey, tryAdvisoryLock, type ReleaseLock } from './advisory-lock.js';
