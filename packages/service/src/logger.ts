import { hostname } from 'node:os';
import type { FastifyError, FastifyServerOptions } from 'fastify';

/** pino levels; `silent` logs nothing. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Log level and destination of a service. */
export interface LoggerOptions {
  /** Default `info`. */
  level?: LogLevel;
  /** Where JSON lines go; default stdout. Tests pass a collector. */
  stream?: { write(line: string): void };
  /**
   * How `time` is written: `epoch` (default, pino's milliseconds since 1970) or `iso`, an ISO 8601
   * UTC string (`"2026-01-28T09:15:02.123Z"`) for log files people read.
   */
  time?: 'epoch' | 'iso';
}

/** `false` silences the service (tests); a level or options configure pino's JSON lines. */
export type LoggerOption = boolean | LogLevel | LoggerOptions;

/**
 * Credentials that could reach a log line through a logged request or config object. pino replaces
 * them at serialization, so a careless `log.info({ req })` cannot leak them.
 */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.token',
  '*.passwordHash',
  '*.password_hash',
  '*.sessionToken',
  '*.session_token',
  '*.pairingCode',
  '*.pairing_code',
  '*.cookie',
  '*.authorization',
  '*.params',
];

/**
 * Fields of an error that hold the values of a query or of a row: drizzle's failed query
 * (`query`, `params`), pg's `detail` ("Key (email)=(...) already exists"), `where` and
 * `internalQuery`. The error serializer leaves them out, at every level of the cause chain.
 */
const SECRET_ERROR_FIELDS: ReadonlySet<string> = new Set([
  'query',
  'params',
  'parameters',
  'values',
  'detail',
  'where',
  'internalQuery',
  ...REDACT.filter((path) => path.startsWith('*.')).map((path) => path.slice(2)),
]);

/** drizzle's message of a failed query: the SQL text, then `params: <every value>`. */
const FAILED_QUERY = /Failed query:[\s\S]*?(?=\n {4}at |$)/g;

/** What fastify expects of the `err` serializer's output. */
type SerializedError = { type: string; message: string; stack: string; [key: string]: unknown };

/** How deep a cause chain is logged. */
const MAX_CAUSES = 5;

/** A text of an error with a failed query's SQL and parameters cut out. */
function scrubErrorText(text: string): string {
  return text.replace(FAILED_QUERY, 'query failed (its text and parameters are not logged)');
}

/**
 * The `err` serializer of every service: type, message, stack and own fields of the error and of
 * each cause, with query text, parameters and row values left out. pino's default folds every
 * cause's message into the top message and stack, which carried a failed query's parameters
 * (emails, password hashes) into the log.
 */
export function serializeError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return error;
  const out: Record<string, unknown> = {
    type: error.constructor.name || error.name,
    message: scrubErrorText(error.message),
    ...(error.stack === undefined ? {} : { stack: scrubErrorText(error.stack) }),
  };
  for (const [key, value] of Object.entries(error)) {
    if (key in out || key === 'cause' || SECRET_ERROR_FIELDS.has(key) || typeof value === 'function')
      continue;
    out[key] = typeof value === 'string' ? scrubErrorText(value) : value;
  }
  if (depth < MAX_CAUSES) {
    if (error.cause !== undefined) out.cause = serializeError(error.cause, depth + 1);
    if (error instanceof AggregateError && Array.isArray(error.errors)) {
      out.errors = (error.errors as unknown[]).slice(0, MAX_CAUSES).map((e) => serializeError(e, depth + 1));
    }
  }
  return out;
}

/** pino's `timestamp` contract: the `,"time":...` fragment of the line. */
function isoTime(): string {
  return `,"time":"${new Date().toISOString()}"`;
}

/** fastify's `logger` option: pino JSON with the service's name and version on every line. */
export function loggerOptions(
  option: LoggerOption | undefined,
  service: { name: string; version: string },
): FastifyServerOptions['logger'] {
  if (option === false) return false;
  const opts: LoggerOptions =
    option === undefined || option === true ? {} : typeof option === 'string' ? { level: option } : option;
  return {
    level: opts.level ?? 'info',
    base: { service: service.name, version: service.version, pid: process.pid, hostname: hostname() },
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: { err: (error: FastifyError) => serializeError(error) as SerializedError },
    ...(opts.time === 'iso' ? { timestamp: isoTime } : {}),
    ...(opts.stream === undefined ? {} : { stream: opts.stream }),
  };
}
