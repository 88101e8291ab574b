#!/usr/bin/env node
// visiona-api [serve] | migrate [up|status] | help
import { isMigrateSubcommand, openDatabase, runMigrateCommand } from '@upgrade/db';
import { runCli, usageError } from '@upgrade/service';
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

async function runMigrate(sub: string): Promise<void> {
  if (!isMigrateSubcommand(sub)) usageError(`unknown migrate command "${sub}" (use up or status)`);
  const config = loadMigrateConfig();
  const db = await openDatabase({
    url: config.DATABASE_URL,
    schema,
    pool: { max: 2, connectionTimeoutMillis: Math.max(config.DATABASE_CONNECT_TIMEOUT_MS, 5_000) },
  });
  try {
    for (const line of await runMigrateCommand(db, migrationsFolder, sub)) console.log(line);
  } finally {
    await db.close();
  }
}

await runCli({
  name: 'visiona-api',
  usage: USAGE,
  commands: {
    serve: () => startVisionaApi(loadVisionaConfig()),
    migrate: (args) => runMigrate(args[0] ?? 'up'),
  },
});
