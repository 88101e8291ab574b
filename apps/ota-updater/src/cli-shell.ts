// The command-line shell of `ota-updater`, with the behaviour of the service kit's runCli (the
// other services use that one): `.env` loaded (variables already set win), `serve` as the default
// command, help, a bad argument as one line + the usage and exit 2, a configuration error as its
// one message and exit 2, a crash as `fatal: <error>` and exit 1, and the crash policy (an unhandled
// rejection or uncaught exception: one JSON line on stderr, exit 1, the supervisor restarts). Its
// own copy because the kit's module loads fastify, typebox and prom-client with it.
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { inspect, parseEnv } from 'node:util';
import { isUpgradeError } from '@upgrade/core';

/** Exit codes of a service process, for runbooks and supervisors. */
export const EXIT_CODES = { ok: 0, failure: 1, config: 2 } as const;

/** Bad command-line arguments: the message and the usage, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Throws a UsageError: for a command's argument checks. */
export function usageError(message: string): never {
  throw new UsageError(message);
}

export interface CliSpec {
  name: string;
  usage: string;
  commands: Record<string, (args: string[]) => unknown>;
}

const HELP = new Set(['help', '--help', '-h']);

/** Runs the command named by argv; never rejects (every failure ends in an exit code). */
export async function runCli(spec: CliSpec, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  installCrashPolicy(spec.name);
  try {
    loadDotenv('.env');
    if (HELP.has(command)) {
      process.stdout.write(`${spec.usage}\n`);
      return;
    }
    const run = Object.hasOwn(spec.commands, command) ? spec.commands[command] : undefined;
    if (run === undefined) usageError(`unknown command "${command}"`);
    await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${spec.name}: ${error.message}\n\n${spec.usage}\n`);
      process.exit(EXIT_CODES.config);
    }
    if (isUpgradeError(error, 'CONFIG_INVALID')) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CODES.config);
    }
    // inspect keeps the stack and the cause chain: this is a crash, the operator needs all of it.
    process.stderr.write(`fatal: ${inspect(error)}\n`);
    process.exit(EXIT_CODES.failure);
  }
}

/** `.env` in the working directory, with Node's own parser; the real environment wins. */
function loadDotenv(path: string): void {
  if (!existsSync(path)) return;
  for (const [name, value] of Object.entries(parseEnv(readFileSync(path, 'utf8')))) {
    if (value !== undefined && process.env[name] === undefined) process.env[name] = value;
  }
}

/**
 * An error nobody handled means a state nobody designed: one JSON line (pino's field names, level
 * 60) written synchronously to stderr, then exit 1 so the supervisor starts a clean process.
 */
function installCrashPolicy(service: string): void {
  let crashed = false;
  const crash = (kind: 'unhandledRejection' | 'uncaughtException', reason: unknown): void => {
    if (crashed) return;
    crashed = true;
    try {
      const err = describeCrash(reason);
      const what = kind === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
      const line = {
        level: 60,
        time: Date.now(),
        service,
        pid: process.pid,
        hostname: hostname(),
        kind,
        msg: `${what}: ${err.message}; exiting with ${EXIT_CODES.failure} so the supervisor restarts the service`,
        err,
      };
      writeSync(2, `${JSON.stringify(line)}\n`);
    } finally {
      process.exit(EXIT_CODES.failure);
    }
  };
  process.on('unhandledRejection', (reason: unknown) => crash('unhandledRejection', reason));
  process.on('uncaughtException', (error: Error) => crash('uncaughtException', error));
}

function describeCrash(reason: unknown): { type: string; message: string; stack?: string; code?: string } {
  if (reason instanceof Error) {
    const code = (reason as { code?: unknown }).code;
    return {
      type: reason.name,
      message: reason.message,
      ...(reason.stack === undefined ? {} : { stack: reason.stack }),
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  let message: string;
  try {
    message = typeof reason === 'string' ? reason : (JSON.stringify(reason) ?? String(reason));
  } catch {
    message = Object.prototype.toString.call(reason);
  }
  return { type: typeof reason, message, stack: new Error('rejected with a non-Error value').stack ?? '' };
}
