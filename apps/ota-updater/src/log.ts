// The service's JSON log lines, in the shape of the rest of the repo's services (pino's field
// names, so the same tooling reads them): `level` as a number, `time` ISO 8601 UTC, `service`,
// `version`, `pid`, `hostname`, the fields, `msg`. A few lines of its own instead of pino (~8 MiB
// of a 50 MiB budget). Written to stdout (journald) or to a size-rotated file (LOG_FILE).
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { LogLevel } from './config.js';

const LEVELS: Readonly<Record<LogLevel, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Number.POSITIVE_INFINITY,
};

/** Where lines go. */
export interface LogSink {
  write(line: string): void;
}

export interface Logger {
  readonly level: number;
  /** Would a line at `level` be written? */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean;
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  /** The same logger with `bindings` on every line (e.g. the request id). */
  child(bindings: object): Logger;
}

/** A logger of `service` at `level` writing to `sink` (stdout by default). */
export function createLogger(options: {
  service: string;
  version: string;
  level: LogLevel;
  sink?: LogSink;
}): Logger {
  const sink = options.sink ?? { write: (line: string) => void process.stdout.write(line) };
  // The fields every line starts with, serialized once: `,"service":...,"hostname":"..."`.
  const base = JSON.stringify({
    service: options.service,
    version: options.version,
    pid: process.pid,
    hostname: hostname(),
  }).slice(1, -1);
  return makeLogger(LEVELS[options.level], sink, base);
}

function makeLogger(threshold: number, sink: LogSink, prefix: string): Logger {
  const write = (level: number, fields: object, msg: string): void => {
    if (level < threshold) return;
    const own = JSON.stringify(fields, replaceErrors);
    const middle = own === '{}' ? '' : `,${own.slice(1, -1)}`;
    sink.write(
      `{"level":${level},"time":"${new Date().toISOString()}",${prefix}${middle},"msg":${JSON.stringify(msg)}}\n`,
    );
  };
  return {
    level: threshold,
    enabled: (level) => LEVELS[level] >= threshold,
    debug: (fields, msg) => write(20, fields, msg),
    info: (fields, msg) => write(30, fields, msg),
    warn: (fields, msg) => write(40, fields, msg),
    error: (fields, msg) => write(50, fields, msg),
    child: (bindings) => {
      const own = JSON.stringify(bindings).slice(1, -1);
      return makeLogger(threshold, sink, own === '' ? prefix : `${prefix},${own}`);
    },
  };
}

/** An Error in a field is logged as its type, message and stack (JSON.stringify would give `{}`). */
function replaceErrors(_key: string, value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return {
    type: value.name,
    message: value.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(value.stack === undefined ? {} : { stack: value.stack }),
  };
}

/** A log destination that keeps at most `files` files of at most `maxBytes` each. */
export interface RotatingFile extends LogSink {
  /** Closes the current file; later writes reopen it. */
  close(): void;
}

/**
 * Appends lines to `path`; when the next line would pass `maxBytes`, `path` becomes `path.1`,
 * `path.1` becomes `path.2`, ... and the oldest beyond `files - 1` rotations is deleted. Writes are
 * synchronous: a line is on its way to the disk before the call returns, so a crash or power cut
 * loses no line that was logged (on a device, the last lines before a failure matter most).
 */
export function createRotatingFile(options: { path: string; maxBytes: number; files: number }): RotatingFile {
  const { path, maxBytes } = options;
  const files = Math.max(1, options.files);
  mkdirSync(dirname(path), { recursive: true });
  let fd: number | null = null;
  let size = 0;
  const open = (): number => {
    if (fd === null) {
      fd = openSync(path, 'a', 0o640);
      size = fstatSync(fd).size;
    }
    return fd;
  };
  const rotate = (): void => {
    if (fd !== null) closeSync(fd);
    fd = null;
    rmSync(`${path}.${files - 1}`, { force: true });
    for (let i = files - 2; i >= 1; i--) {
      if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    }
    if (files > 1) renameSync(path, `${path}.1`);
    else rmSync(path, { force: true });
  };
  return {
    write(line) {
      const bytes = Buffer.byteLength(line);
      open();
      if (size > 0 && size + bytes > maxBytes) rotate();
      writeSync(open(), line);
      size += bytes;
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
