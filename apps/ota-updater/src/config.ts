// Every setting of the service, from env / .env. `.env.example` documents each one.
// A table and a reader of its own instead of the service kit's typebox schema: the kit's reader
// loads typebox (~15 MiB of a 50 MiB budget) for thirty scalars. The rules and the messages are
// the kit's: numbers from their text (`3.5` is not an integer, `0x10` is not a number), booleans
// from true/false/1/0/yes/no/on/off, an empty value counts as unset, every bad variable named at
// once, and values of secret-like names (KEY, TOKEN, ...) never echoed.
import { UpgradeError } from '@upgrade/core';

type Setting =
  | { kind: 'integer'; default: number; minimum: number; maximum?: number; description: string }
  | { kind: 'string'; default?: string; pattern?: string; description: string }
  | { kind: 'boolean'; default: boolean; description: string }
  | { kind: 'enum'; default: string; values: readonly string[]; description: string };

const Ms = (def: number, description: string): Setting => ({
  kind: 'integer',
  default: def,
  minimum: 1,
  description: `${description} (milliseconds)`,
});
const Bytes = (def: number, description: string): Setting => ({
  kind: 'integer',
  default: def,
  minimum: 1,
  description: `${description} (bytes)`,
});

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Every variable the service reads, with its default and its bounds. */
export const ENV_SETTINGS = {
  PORT: { kind: 'integer', default: 12315, minimum: 0, maximum: 65535, description: 'HTTP port of the API' },
  HOST: { kind: 'string', default: '0.0.0.0', description: 'address the API listens on' },
  LOG_LEVEL: { kind: 'enum', default: 'info', values: LOG_LEVELS, description: 'log level' },
  LOG_FILE: {
    kind: 'string',
    description: 'write JSON logs to this file, rotated by size, instead of stdout',
  },
  LOG_FILE_MAX_BYTES: Bytes(10 * 1024 * 1024, 'size at which the log file is rotated'),
  LOG_FILE_COUNT: {
    kind: 'integer',
    default: 3,
    minimum: 1,
    maximum: 20,
    description: 'log files kept, the current one included',
  },
  OTA_ROOT: {
    kind: 'string',
    default: '/opt/tope',
    description: 'install root: versions/<v>/ and the links versions/current, previous, factory',
  },
  OTA_DATA_DIR: { kind: 'string', description: 'state.json and downloads/ (default: <OTA_ROOT>/.ota)' },
  DEVICE_API_URL: {
    kind: 'string',
    default: 'http://127.0.0.1:9080/api/v1.0/ota/progress',
    pattern: '^https?://',
    description: 'where progress is POSTed',
  },
  DEVICE_API_TIMEOUT_MS: Ms(2_000, 'timeout of one progress report'),
  OTA_PUBLIC_KEY_FILE: {
    kind: 'string',
    description: 'ed25519 public key (PEM); when set, every package must be signed',
  },
  DOWNLOAD_CONNECT_TIMEOUT_MS: Ms(10_000, 'connect timeout of the package server'),
  DOWNLOAD_HEADERS_TIMEOUT_MS: Ms(30_000, 'wait for the answer headers'),
  DOWNLOAD_STALL_TIMEOUT_MS: Ms(30_000, 'a body silent this long is a stalled server'),
  DOWNLOAD_TOTAL_TIMEOUT_MS: Ms(2 * 60 * 60 * 1000, 'the whole download, retries included'),
  DOWNLOAD_RETRIES: {
    kind: 'integer',
    default: 3,
    minimum: 0,
    maximum: 20,
    description: 'retries in a row without progress',
  },
  DOWNLOAD_RETRY_DELAY_MS: Ms(1_000, 'first retry delay, doubled per retry'),
  DOWNLOAD_CHECKPOINT_BYTES: Bytes(
    64 * 1024 * 1024,
    'a download checkpoint (fsync + state.json) every this many bytes, or every DOWNLOAD_CHECKPOINT_INTERVAL_MS',
  ),
  DOWNLOAD_CHECKPOINT_INTERVAL_MS: Ms(5_000, 'a download checkpoint at least this often while bytes arrive'),
  UNPACK_MAX_ENTRY_BYTES: Bytes(512 * 1024 * 1024, 'largest file in a package'),
  UNPACK_MAX_TOTAL_BYTES: Bytes(2 * 1024 * 1024 * 1024, 'largest unpacked package'),
  UNPACK_MAX_ENTRIES: {
    kind: 'integer',
    default: 50_000,
    minimum: 1,
    description: 'most files in a package',
  },
  KEEP_LAST_PACKAGE: {
    kind: 'boolean',
    default: false,
    description:
      'keep the last verified package in downloads/ after it was deployed, rolled back or cancelled, for a quick re-deploy',
  },
  DISK_MIN_FREE_BYTES: Bytes(
    16 * 1024 * 1024,
    '/healthz reports the disk down below this much free space on the install file system',
  ),
  KEEP_VERSIONS: {
    kind: 'integer',
    default: 2,
    minimum: 0,
    description: 'versions kept besides current, previous and factory',
  },
  SYSTEMCTL: { kind: 'string', default: 'systemctl', description: 'the systemctl executable' },
  SYSTEMCTL_TIMEOUT_MS: Ms(90_000, 'bound on systemctl start / stop'),
  HEALTH_TIMEOUT_MS: Ms(60_000, 'budget for the services to become healthy after a start'),
  HEALTH_INTERVAL_MS: Ms(1_000, 'wait between two health rounds'),
  HEALTH_CONSECUTIVE_OK: {
    kind: 'integer',
    default: 2,
    minimum: 1,
    description: 'healthy rounds in a row required',
  },
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 'how long SIGTERM waits for in-flight requests'),
} satisfies Record<string, Setting>;

/** The configuration as the service uses it (ENV_SETTINGS documents each variable). */
export interface Env {
  PORT: number;
  HOST: string;
  LOG_LEVEL: LogLevel;
  LOG_FILE?: string;
  LOG_FILE_MAX_BYTES: number;
  LOG_FILE_COUNT: number;
  OTA_ROOT: string;
  OTA_DATA_DIR?: string;
  DEVICE_API_URL: string;
  DEVICE_API_TIMEOUT_MS: number;
  OTA_PUBLIC_KEY_FILE?: string;
  DOWNLOAD_CONNECT_TIMEOUT_MS: number;
  DOWNLOAD_HEADERS_TIMEOUT_MS: number;
  DOWNLOAD_STALL_TIMEOUT_MS: number;
  DOWNLOAD_TOTAL_TIMEOUT_MS: number;
  DOWNLOAD_RETRIES: number;
  DOWNLOAD_RETRY_DELAY_MS: number;
  DOWNLOAD_CHECKPOINT_BYTES: number;
  DOWNLOAD_CHECKPOINT_INTERVAL_MS: number;
  UNPACK_MAX_ENTRY_BYTES: number;
  UNPACK_MAX_TOTAL_BYTES: number;
  UNPACK_MAX_ENTRIES: number;
  KEEP_LAST_PACKAGE: boolean;
  DISK_MIN_FREE_BYTES: number;
  KEEP_VERSIONS: number;
  SYSTEMCTL: string;
  SYSTEMCTL_TIMEOUT_MS: number;
  HEALTH_TIMEOUT_MS: number;
  HEALTH_INTERVAL_MS: number;
  HEALTH_CONSECUTIVE_OK: number;
  SHUTDOWN_TIMEOUT_MS: number;
}

// Compiles only while the table and the interface name the same variables.
const _sameVariables: [keyof typeof ENV_SETTINGS] extends [keyof Env]
  ? [keyof Env] extends [keyof typeof ENV_SETTINGS]
    ? true
    : never
  : never = true;

const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIAL|PRIVATE/i;
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);
const MAX_SHOWN = 60;

/** One variable that is missing or wrong, with a message safe to print. */
export interface ConfigIssue {
  variable: string;
  message: string;
}

/** The configuration could not be loaded: `message` names every bad variable (exit code 2). */
export class ConfigError extends UpgradeError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => `  ${i.variable}: ${i.message}`);
    super('CONFIG_INVALID', `Invalid configuration:\n${lines.join('\n')}`, {
      details: { issues: issues.map((i) => ({ ...i })) },
    });
    this.issues = issues;
  }
}

/** Loads and checks the configuration; a ConfigError names every problem at once. */
export function loadOtaConfig(env: Readonly<Record<string, string | undefined>> = process.env): Env {
  const config: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  for (const [name, setting] of Object.entries(ENV_SETTINGS) as [string, Setting][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if (setting.default !== undefined) config[name] = setting.default;
      continue;
    }
    const read = readSetting(setting, raw);
    if (read.ok) config[name] = read.value;
    else
      issues.push({
        variable: name,
        message: `must be ${read.expected}${shown(raw, SECRET_NAME.test(name))}`,
      });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return config as unknown as Env;
}

function readSetting(
  setting: Setting,
  raw: string,
): { ok: true; value: unknown } | { ok: false; expected: string } {
  const text = raw.trim();
  switch (setting.kind) {
    case 'integer': {
      const value = NUMBER.test(text) ? Number(text) : Number.NaN;
      const { minimum: min, maximum: max } = setting;
      if (Number.isInteger(value) && value >= min && (max === undefined || value <= max))
        return { ok: true, value };
      const range = max === undefined ? ` at least ${min}` : ` between ${min} and ${max}`;
      return { ok: false, expected: `an integer${range}` };
    }
    case 'boolean': {
      const lower = text.toLowerCase();
      if (TRUE.has(lower)) return { ok: true, value: true };
      if (FALSE.has(lower)) return { ok: true, value: false };
      return { ok: false, expected: 'a boolean (true or false)' };
    }
    case 'enum':
      return setting.values.includes(raw)
        ? { ok: true, value: raw }
        : { ok: false, expected: `one of ${setting.values.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'string':
      return setting.pattern === undefined || new RegExp(setting.pattern).test(raw)
        ? { ok: true, value: raw }
        : { ok: false, expected: `a string matching /${setting.pattern}/` };
  }
}

/** ` (got "abc")`, shortened, with URL passwords masked; nothing at all for secrets. */
function shown(raw: string, secret: boolean): string {
  if (secret) return ' (value hidden)';
  const masked = raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@\s]*:)[^/@\s]*@/i, '$1***@');
  const short = masked.length > MAX_SHOWN ? `${masked.slice(0, MAX_SHOWN)}...` : masked;
  return ` (got ${JSON.stringify(short)})`;
}
