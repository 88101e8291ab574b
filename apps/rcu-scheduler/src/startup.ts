// Start-up failures as one line an operator can act on, with the exit code that tells a
// supervisor whether restarting can help: 2 for what only a configuration change fixes (PM2's
// stop_exit_codes), 1 for what may pass (the database still starting, a network blip).
import { isUpgradeError } from '@upgrade/core';
import { mapPgError } from '@upgrade/db';

/** Thrown by start-up steps; the CLI prints `message` as one line and exits with `exitCode`. */
export class StartupError extends Error {
  override name = 'StartupError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/** `host:port` of a PostgreSQL URL (default port 5432), never its user or password. */
export function databaseAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`;
  } catch {
    return '<unparseable DATABASE_URL>';
  }
}

/** The database name a PostgreSQL URL names. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}

/**
 * What went wrong opening, creating or migrating the database, in one line naming where
 * (`DATABASE_URL`'s host:port, or the embedded data directory) and why, without driver text.
 */
export function databaseStartupError(
  error: unknown,
  target: { url: string } | { dataDir: string },
): StartupError {
  if (error instanceof StartupError) return error;
  const mapped = isUpgradeError(error) ? error : mapPgError(error);
  const sqlState = (mapped.details as { sqlState?: unknown } | undefined)?.sqlState;
  if (!('url' in target)) {
    return new StartupError(
      `embedded database in ${target.dataDir} (DATA_DIR): ${mapped.message}`,
      mapped.code === 'CONFIG_INVALID' ? 2 : 1,
    );
  }
  const where = `database "${safeName(target.url)}" at ${databaseAddress(target.url)} (DATABASE_URL)`;
  const user = safeUser(target.url);
  const fixable = (reason: string): StartupError => new StartupError(`${where}: ${reason}`, 2);
  if (sqlState === '3D000')
    return fixable(
      'does not exist; check the name, or create it (DATABASE_CREATE=true lets the service do it)',
    );
  if (typeof sqlState === 'string' && sqlState.startsWith('28'))
    return fixable(`the server rejected role "${user}" or its password; check the user and password`);
  if (sqlState === '42501')
    return fixable(
      `role "${user}" lacks a privilege the service needs (creating the database, or its tables and indexes)`,
    );
  if (mapped.code === 'CONFIG_INVALID') return fixable(mapped.message);
  const retry = mapped.retryable ? '; the supervisor restarts the service to try again' : '';
  return new StartupError(`${where}: ${mapped.message}${retry}`, mapped.retryable ? 1 : 2);
}

function safeName(url: string): string {
  try {
    return databaseName(url);
  } catch {
    return '?';
  }
}

function safeUser(url: string): string {
  try {
    return decodeURIComponent(new URL(url).username) || '(default)';
  } catch {
    return '?';
  }
}
