#!/usr/bin/env node
// visiona-api [serve] | migrate [up|status] | help
import { migrate, migrationStatus, openDatabase } from '@upgrade/db';
import { EXIT_CODES, loadDotenv, runMain } from '@upgrade/service';
import { loadMigrateConfig, loadVisionaConfig } from './config.js';
import * as schema from './db/schema.js';
import { startVisionaApi } from './main.js';
import { migrationsFolder } from './paths.js';

const USAGE = `usage: visiona-api [command]

commands:
  serve                  run the API (default)
  migrate [up|status]    apply pending migrations, or list applied and pending ones (needs DATABASE_URL)
  help                   this text

configuration comes from the environment and ./.env; see .env.example`;

async function main(argv: string[]): Promise<void> {
  loadDotenv();
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve':
      await startVisionaApi(loadVisionaConfig());
      return;
    case 'migrate':
      await runMigrate(rest[0] ?? 'up');
      return;
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      usageError(`unknown command "${command}"`);
  }
}

async function runMigrate(sub: string): Promise<void> {
  if (sub !== 'up' && sub !== 'status') usageError(`unknown migrate command "${sub}" (use up or status)`);
  const config = loadMigrateConfig();
  const db = await openDatabase({
    url: config.DATABASE_URL,
    schema,
    pool: { max: 2, connectionTimeoutMillis: Math.max(config.DATABASE_CONNECT_TIMEOUT_MS, 5_000) },
  });
  try {
    if (sub === 'up') {
      const applied = await migrate(db, migrationsFolder);
      console.log(applied.length === 0 ? 'up to date' : applied.map((m) => `applied ${m.tag}`).join('\n'));
    } else {
      const status = await migrationStatus(db, migrationsFolder);
      for (const m of status.applied) console.log(`applied  ${m.tag}`);
      for (const m of status.pending) console.log(`pending  ${m.tag}`);
      for (const m of status.skipped)
        console.log(`skipped  ${m.tag} (older than the last applied one; never applied)`);
      for (const m of status.unknown)
        console.log(
          `unknown  ${m.hash.slice(0, 12)} applied ${m.createdAt.toISOString()} (in the database, not in this build)`,
        );
    }
  } finally {
    await db.close();
  }
}

/** Bad arguments: one readable line, the usage, exit code 2 (the same as a bad configuration). */
function usageError(message: string): never {
  process.stderr.write(`visiona-api: ${message}\n\n${USAGE}\n`);
  process.exit(EXIT_CODES.config);
}

await runMain(() => main(process.argv.slice(2)));
