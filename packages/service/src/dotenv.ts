import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';

/**
 * Loads a `.env` file if there is one, with Node's own parser (the one behind `process.loadEnvFile`
 * and `--env-file`). Variables already set win: the file holds laptop defaults, the real
 * environment (systemd, pm2, CI) decides. Returns the names it set.
 */
export function loadDotenv(path = '.env', env: Record<string, string | undefined> = process.env): string[] {
  if (!existsSync(path)) return [];
  const applied: string[] = [];
  for (const [name, value] of Object.entries(parseEnv(readFileSync(path, 'utf8')))) {
    if (value === undefined || env[name] !== undefined) continue;
    env[name] = value;
    applied.push(name);
  }
  return applied;
}
