import { hostname } from 'node:os';
import type { FastifyServerOptions } from 'fastify';

/** pino levels; `silent` logs nothing. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Log level and destination of a service. */
export interface LoggerOptions {
  /** Default `info`. */
  level?: LogLevel;
  /** Where JSON lines go; default stdout. Tests pass a collector. */
  stream?: { write(line: string): void };
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
];

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
    ...(opts.stream === undefined ? {} : { stream: opts.stream }),
  };
}
