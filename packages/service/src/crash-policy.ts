// The process-level policy every service installs at start. An error nobody handled (a rejection
// nobody awaited, an exception thrown from a callback) means the process is in a state nobody
// designed; carrying on risks wrong answers and leaked resources. So: log it once, as one JSON line
// in the same shape as the service's pino lines (level 60, service, stack), and exit non-zero so
// the supervisor (systemd `Restart=on-failure`, PM2) starts a clean process.
import { writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { EXIT_CODES } from './run-main.js';

export interface CrashPolicyOptions {
  /** The service's name, on the line (`service`), as on every pino line of the service. */
  service: string;
  /** The service's version, when known. */
  version?: string;
  /** Where the line goes. Default: written synchronously to stderr (fd 2), so it is out before the exit. */
  write?: (line: string) => void;
  /** Default: process.exit. */
  exit?: (code: number) => void;
  /** Default: the real process. Tests pass an EventEmitter. */
  process?: Pick<NodeJS.Process, 'on'>;
}

/** What ended the process, on the line as `kind`. */
export type CrashKind = 'unhandledRejection' | 'uncaughtException';

/** The JSON line logged for a crash (pino's field names, so log tooling reads it like any other line). */
export interface CrashLine {
  level: 60;
  time: number;
  service: string;
  version?: string;
  pid: number;
  hostname: string;
  kind: CrashKind;
  msg: string;
  err: { type: string; message: string; stack?: string; code?: string };
}

let installed = false;

/**
 * Installs the crash policy on the process once (later calls do nothing): an unhandled rejection
 * or an uncaught exception is logged once as one JSON line with its stack and the service name,
 * then the process exits with 1. A second error raised while the first is being handled is not
 * logged again.
 *
 * @example installCrashPolicy({ service: 'rcu-scheduler' }) // first thing in cli.ts; runCli does it for you
 */
export function installCrashPolicy(options: CrashPolicyOptions): void {
  const target = options.process ?? process;
  if (target === process) {
    if (installed) return;
    installed = true;
  }
  const write = options.write ?? ((line: string) => void writeSync(2, line));
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let crashed = false;
  const crash = (kind: CrashKind, reason: unknown): void => {
    if (crashed) return;
    crashed = true;
    try {
      write(`${JSON.stringify(crashLine(kind, reason, options))}\n`);
    } finally {
      exit(EXIT_CODES.failure);
    }
  };
  target.on('unhandledRejection', (reason: unknown) => crash('unhandledRejection', reason));
  target.on('uncaughtException', (error: Error) => crash('uncaughtException', error));
}

/** The line for one crash; exported for tests and for services that log elsewhere as well. */
export function crashLine(
  kind: CrashKind,
  reason: unknown,
  service: { service: string; version?: string },
): CrashLine {
  const err = describeError(reason);
  const what = kind === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
  return {
    level: 60,
    time: Date.now(),
    service: service.service,
    ...(service.version === undefined ? {} : { version: service.version }),
    pid: process.pid,
    hostname: hostname(),
    kind,
    msg: `${what}: ${err.message}; exiting with ${EXIT_CODES.failure} so the supervisor restarts the service`,
    err,
  };
}

function describeError(reason: unknown): CrashLine['err'] {
  if (reason instanceof Error) {
    const code = (reason as { code?: unknown }).code;
    return {
      type: reason.name,
      message: reason.message,
      ...(reason.stack === undefined ? {} : { stack: reason.stack }),
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  // A rejection with a non-Error value has no stack of its own; say where the policy saw it.
  return {
    type: typeof reason,
    message: safeString(reason),
    stack: new Error('rejected with a non-Error value').stack ?? '',
  };
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return Object.prototype.toString.call(value);
  }
}
