#!/usr/bin/env node
// ha-orchestrator [serve] | migrate [up|status] | config [show | set key=value...] | help
import { isMigrateSubcommand, runMigrateCommand } from '@upgrade/db';
import { runCli, usageError } from '@upgrade/service';
import { createPgUpgradeConfigStore } from './adapters/pg-store.js';
import { loadDatabaseConfig, loadHaConfig } from './config.js';
import { openHaDatabase, startHaOrchestrator } from './main.js';
import { migrationsFolder } from './paths.js';
import { DEFAULT_FLOW_CONFIG, flowConfigValueProblem, type FlowConfig } from './ports.js';

const USAGE = `usage: ha-orchestrator [command]

commands:
  serve                       run the API and the upgrade runner (default)
  migrate [up|status]         apply pending migrations, or list applied and pending ones
  config show                 the upgrade parameters (upgrade_config table)
  config set KEY=VALUE...     change upgrade parameters; KEY is one of:
                              ${Object.keys(DEFAULT_FLOW_CONFIG).join(', ')}
                              (snake_case works too, e.g. vip_switch_timeout_ms=45000;
                              database_switchover is 1/0 or true/false)
  help                        this text

configuration comes from the environment and ./.env; see .env.example`;

async function runMigrate(sub: string): Promise<void> {
  if (!isMigrateSubcommand(sub)) usageError(`unknown migrate command "${sub}" (use up or status)`);
  const db = await openHaDatabase({ ...loadDatabaseConfig(), MIGRATE_ON_START: false });
  try {
    for (const line of await runMigrateCommand(db, migrationsFolder, sub)) console.log(line);
  } finally {
    await db.close();
  }
}

async function runConfig(args: string[]): Promise<void> {
  const [sub = 'show', ...pairs] = args;
  if (sub !== 'show' && sub !== 'set') usageError(`unknown config command "${sub}" (use show or set)`);
  const patch = sub === 'set' ? parseConfigPairs(pairs) : {};
  const db = await openHaDatabase({ ...loadDatabaseConfig(), MIGRATE_ON_START: true });
  try {
    const store = createPgUpgradeConfigStore(db.db);
    const config = sub === 'set' ? await store.set(patch) : await store.get();
    for (const [key, value] of Object.entries(config)) {
      const isDefault = DEFAULT_FLOW_CONFIG[key as keyof FlowConfig] === value;
      console.log(`${key.padEnd(24)} ${String(value).padStart(10)}${isDefault ? '  (default)' : ''}`);
    }
  } finally {
    await db.close();
  }
}

/**
 * `key=value` pairs into a patch; camelCase or snake_case keys, whole numbers (databaseSwitchover:
 * 1/0 or true/false), each checked like the store checks it, so a bad value names its key.
 */
export function parseConfigPairs(pairs: readonly string[]): Partial<FlowConfig> {
  if (pairs.length === 0) usageError('config set needs at least one KEY=VALUE');
  const keys = new Map(
    Object.keys(DEFAULT_FLOW_CONFIG).flatMap((k) => [
      [k.toLowerCase(), k],
      [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), k],
    ]),
  );
  const patch: Partial<Record<keyof FlowConfig, number>> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = keys.get(pair.slice(0, Math.max(0, eq)).toLowerCase()) as keyof FlowConfig | undefined;
    if (eq <= 0 || key === undefined) usageError(`"${pair}" is not KEY=VALUE with a known key`);
    const text = pair.slice(eq + 1).trim();
    const value = parseConfigValue(key, text.toLowerCase());
    if (value === undefined)
      usageError(
        key === 'databaseSwitchover'
          ? `${key} must be 1, 0, true or false, got "${text}"`
          : `${key} must be a whole number, got "${text}"`,
      );
    const problem = flowConfigValueProblem(key, value);
    if (problem !== undefined) usageError(problem);
    patch[key] = value;
  }
  return patch;
}

function parseConfigValue(key: keyof FlowConfig, text: string): number | undefined {
  if (key === 'databaseSwitchover' && (text === 'true' || text === 'false')) return text === 'true' ? 1 : 0;
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

await runCli({
  name: 'ha-orchestrator',
  usage: USAGE,
  commands: {
    serve: () => startHaOrchestrator(loadHaConfig()),
    migrate: (args) => runMigrate(args[0] ?? 'up'),
    config: runConfig,
  },
});
