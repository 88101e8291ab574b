#!/usr/bin/env node
// rcu-scheduler [serve] | migrate [up|status] | report [--since <ISO date | 7d | 24h>] | help
import { isMigrateSubcommand, runMigrateCommand } from '@upgrade/db';
import { join } from 'node:path';
import { loadDotenv, runCli, usageError } from '@upgrade/service';
import { createPgStore } from './adapters/pg-store.js';
import { loadDatabaseConfig, loadRcuConfig } from './config.js';
import { openRcuDatabase, startRcuScheduler } from './main.js';
import { migrationsFolder, packageRoot } from './paths.js';
import { formatStatsReport } from './report.js';
import { StartupError } from './startup.js';

const USAGE = `usage: rcu-scheduler [command]

commands:
  serve                  run the scheduler and its API (default)
  migrate [up|status]    apply pending migrations, or list applied and pending ones
  report [--since WHEN]  success rate and duration per firmware file and per host
                         WHEN: an ISO date, or a span back from now such as 7d, 24h, 90m (default 7d)
  help                   this text

configuration: the environment, then ./.env, then the service's own .env; see .env.example`;

async function runMigrate(sub: string): Promise<void> {
  if (!isMigrateSubcommand(sub)) usageError(`unknown migrate command "${sub}" (use up or status)`);
  const db = await openRcuDatabase({ ...loadDatabaseConfig(), MIGRATE_ON_START: false });
  try {
    for (const line of await runMigrateCommand(db, migrationsFolder, sub)) console.log(line);
  } finally {
    await db.close();
  }
}

async function runReport(args: string[]): Promise<void> {
  let since = new Date(Date.now() - 7 * 24 * 3600_000);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--since') since = parseSince(args[++i]);
    else usageError(`unknown option "${args[i]}"`);
  }
  const db = await openRcuDatabase({ ...loadDatabaseConfig(), MIGRATE_ON_START: true });
  try {
    console.log(formatStatsReport(await createPgStore(db.db).stats(since)));
  } finally {
    await db.close();
  }
}

/** `2026-11-01`, `2026-11-01T10:00:00Z`, or a span back from now: `7d`, `24h`, `90m`. */
export function parseSince(value: string | undefined, now = Date.now()): Date {
  const span = /^(\d+)([dhm])$/.exec(value ?? '');
  if (span !== null) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[span[2] as 'd' | 'h' | 'm'];
    return new Date(now - Number(span[1]) * unit);
  }
  const date = new Date(value ?? '');
  if (value === undefined || Number.isNaN(date.getTime())) {
    usageError(
      `--since needs an ISO date or a span like 7d, 24h, 90m (got ${value === undefined ? 'nothing' : `"${value}"`})`,
    );
  }
  return date;
}

/**
 * Every command reads the service's own `.env` (beside package.json) after the working
 * directory's, which runCli has loaded: real environment > ./.env > <service dir>/.env. So
 * `node apps/rcu-scheduler/dist/cli.js` from anywhere finds the service's configuration. A
 * start-up failure prints its one line and exits with its code (2: fix the configuration).
 */
function command(run: (args: string[]) => Promise<unknown>): (args: string[]) => Promise<unknown> {
  return async (args) => {
    loadDotenv(join(packageRoot, '.env'));
    try {
      return await run(args);
    } catch (error) {
      if (!(error instanceof StartupError)) throw error;
      process.stderr.write(`rcu-scheduler: ${error.message}\n`);
      process.exit(error.exitCode);
    }
  };
}

await runCli({
  name: 'rcu-scheduler',
  usage: USAGE,
  commands: {
    serve: command(() => startRcuScheduler(loadRcuConfig())),
    migrate: command((args) => runMigrate(args[0] ?? 'up')),
    report: command(runReport),
  },
});
