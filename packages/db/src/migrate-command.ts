// The `<service> migrate up|status` command every service's CLI offers, written once: the lines to
// print, so each CLI only opens its database and prints them.
import type { DatabaseHandle, Schema } from './handle.js';
import { migrate, migrationStatus, type MigrationStatus } from './migrate.js';

export type MigrateSubcommand = 'up' | 'status';

/** True for the subcommands `runMigrateCommand` knows. */
export function isMigrateSubcommand(value: string): value is MigrateSubcommand {
  return value === 'up' || value === 'status';
}

/**
 * `up`: applies the pending migrations and returns `applied <tag>` lines (or `up to date`);
 * `status`: returns one line per migration, applied / pending / skipped / unknown.
 */
export async function runMigrateCommand<TSchema extends Schema>(
  handle: DatabaseHandle<TSchema>,
  migrationsFolder: string,
  subcommand: MigrateSubcommand,
): Promise<string[]> {
  if (subcommand === 'up') {
    const applied = await migrate(handle, migrationsFolder);
    return applied.length === 0 ? ['up to date'] : applied.map((m) => `applied ${m.tag}`);
  }
  return formatMigrationStatus(await migrationStatus(handle, migrationsFolder));
}

/** One line per migration: `applied  <tag>`, `pending  <tag>`, `skipped  ...`, `unknown  ...`. */
export function formatMigrationStatus(status: MigrationStatus): string[] {
  return [
    ...status.applied.map((m) => `applied  ${m.tag}`),
    ...status.pending.map((m) => `pending  ${m.tag}`),
    ...status.skipped.map((m) => `skipped  ${m.tag} (older than the last applied one; never applied)`),
    ...status.unknown.map(
      (m) =>
        `unknown  ${m.hash.slice(0, 12)} applied ${m.createdAt.toISOString()} (in the database, not in this build)`,
    ),
  ];
}
