import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import { readMigrationFiles } from 'drizzle-orm/migrator';

/** One migration of a drizzle-kit folder. */
export interface MigrationInfo {
  /** File name without `.sql`, e.g. `0001_add_status`. */
  tag: string;
  /** When drizzle-kit generated it; drizzle records this as `created_at` and orders by it. */
  createdAt: Date;
  /** SHA-256 of the SQL file, as drizzle records it. */
  hash: string;
}

interface Journal {
  entries: { tag: string; when: number }[];
}

/** The folder's migrations in journal order, hashed exactly as drizzle's migrator hashes them. */
export function readMigrationsFolder(folder: string): MigrationInfo[] {
  let journal: Journal;
  let files: ReturnType<typeof readMigrationFiles>;
  try {
    journal = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as Journal;
    files = readMigrationFiles({ migrationsFolder: folder });
  } catch (error) {
    throw new UpgradeError(
      'CONFIG_INVALID',
      `cannot read migrations from ${folder}: expected drizzle-kit output with meta/_journal.json`,
      { cause: error },
    );
  }
  return files.map((file, i) => ({
    tag: journal.entries[i]?.tag ?? `#${i}`,
    createdAt: new Date(file.folderMillis),
    hash: file.hash,
  }));
}
