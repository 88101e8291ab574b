// Every setting of the service, from env / .env. `.env.example` documents each one.
import { ConfigError, Type, loadConfig, type ConfigIssue, type Static } from '@upgrade/service';
import { readOperatorEnv } from './operator-env.js';

const Ms = (def: number, description: string, minimum = 0) =>
  Type.Integer({ default: def, minimum, description: `${description} (milliseconds)` });

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 8310, minimum: 0, maximum: 65535, description: 'HTTP port of the API' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'address the API listens on' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description:
        'PostgreSQL URL; without a database name, `test_upgrade` is used. Only `test_upgrade` is created when missing (or any name with DATABASE_CREATE=true)',
    }),
  ),
  DATABASE_CREATE: Type.Boolean({
    default: false,
    description:
      'create the database DATABASE_URL names when it is missing, whatever its name (`test_upgrade` is always created)',
  }),
  DATA_DIR: Type.String({
    default: './data/rcu-scheduler',
    description: 'embedded PGlite database (when DATABASE_URL is unset) and the result spool',
  }),
  MIGRATE_ON_START: Type.Boolean({ default: true, description: 'apply pending migrations at start-up' }),
  // No default: a test deployment with it blank must not reach the production cloud and its devices.
  VENDOR_BASE_URL: Type.String({
    pattern: '^https?://',
    description: 'base URL of the vendor cloud API (required; production: https://www.boonlive-rcu.com/api)',
  }),
  VENDOR_USERNAME: Type.String({ minLength: 1, description: 'vendor cloud account' }),
  VENDOR_PASSWORD: Type.String({ minLength: 1, description: 'vendor cloud password' }),
  VENDOR_CONNECT_TIMEOUT_MS: Ms(5_000, 'connect timeout of a vendor call', 1),
  VENDOR_RESPONSE_TIMEOUT_MS: Ms(15_000, 'response timeout of a vendor call', 1),
  VENDOR_RETRIES: Type.Integer({
    default: 2,
    minimum: 0,
    maximum: 10,
    description: 'retries of a transient vendor failure',
  }),
  VENDOR_CONCURRENCY: Type.Integer({
    default: 8,
    minimum: 1,
    maximum: 100,
    description: 'vendor calls in flight at once',
  }),
  RCU_GROUPS: Type.Array(
    Type.Object(
      {
        roomTypeId: Type.Integer({ minimum: 0 }),
        hosts: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
      },
      { additionalProperties: false },
    ),
    { minItems: 1, description: 'JSON: [{"roomTypeId": 12, "hosts": ["host-a", ...]}, ...]' },
  ),
  FIRMWARE_FILES: Type.Array(
    Type.Object(
      {
        filename: Type.String({ minLength: 1 }),
        fileType: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    { minItems: 2, description: 'JSON: the files to rotate, [{"filename": "A.bin", "fileType": 1}, {...}]' },
  ),
  ROTATION_REPEATS: Type.Integer({ default: 2, minimum: 1, description: 'consecutive rounds per file' }),
  ROUND_INTERVAL_MS: Ms(600_000, 'time between two scheduled rounds', 1),
  ROUND_ON_START: Type.Boolean({ default: true, description: "run the current slot's round at start-up" }),
  INITIAL_WAIT_MS: Ms(45_000, 'wait after the triggers before the first progress query'),
  POLL_INTERVAL_MS: Ms(30_000, 'time between two progress queries', 1),
  POLL_TIMEOUT_MS: Ms(300_000, 'how long to poll before unfinished hosts are logged as timeout', 1),
  STORE_RETRY_MAX_MS: Ms(
    30_000,
    'longest wait between two attempts to store results while the database is down',
    1,
  ),
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 'how long a shutdown waits for in-flight work', 1),
});

export type Env = Static<typeof EnvSchema>;

/** Loads and checks the configuration; a ConfigError names every problem at once. */
export function loadRcuConfig(env: Readonly<Record<string, string | undefined>> = process.env): Env {
  // The operators' format (roomtype_id / host_list_str / fileName) becomes RCU_GROUPS and
  // FIRMWARE_FILES first; messages about those name the variables the operator actually wrote.
  const operator = readOperatorEnv(env);
  const named = (list: readonly ConfigIssue[]): ConfigIssue[] =>
    list.map((issue) => {
      const source = operator.derived[issue.variable as 'RCU_GROUPS' | 'FIRMWARE_FILES'];
      return source === undefined ? issue : { ...issue, variable: `${issue.variable} (from ${source})` };
    });
  let config: Env;
  try {
    config = loadConfig(EnvSchema, operator.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError([...operator.issues, ...named(error.issues)]);
    throw error;
  }
  const issues: ConfigIssue[] = [
    ...operator.issues,
    ...named([...groupIssues(config.RCU_GROUPS), ...fileIssues(config.FIRMWARE_FILES)]),
  ];
  if (config.POLL_INTERVAL_MS > config.POLL_TIMEOUT_MS) {
    issues.push({
      variable: 'POLL_INTERVAL_MS',
      message: `must not exceed POLL_TIMEOUT_MS (${config.POLL_TIMEOUT_MS})`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/**
 * A host in two groups, or twice in one, would get two firmware pushes a round (or a row for a host
 * the vendor was never asked about): refused at start, naming the host and its groups.
 */
export function groupIssues(groups: Env['RCU_GROUPS']): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const roomTypes = new Set<number>();
  const groupOf = new Map<string, number>();
  for (const group of groups) {
    if (roomTypes.has(group.roomTypeId)) {
      issues.push({
        variable: 'RCU_GROUPS',
        message: `roomTypeId ${group.roomTypeId} appears twice; merge its hosts into one group`,
      });
    }
    roomTypes.add(group.roomTypeId);
    const inGroup = new Set<string>();
    for (const host of group.hosts) {
      if (host !== host.trim()) {
        issues.push({
          variable: 'RCU_GROUPS',
          message: `roomTypeId ${group.roomTypeId}: host ${JSON.stringify(host)} has spaces around it`,
        });
      }
      if (inGroup.has(host)) {
        issues.push({
          variable: 'RCU_GROUPS',
          message: `roomTypeId ${group.roomTypeId} lists host ${host} twice; list each host once`,
        });
        continue;
      }
      inGroup.add(host);
      const other = groupOf.get(host);
      if (other !== undefined && other !== group.roomTypeId) {
        issues.push({
          variable: 'RCU_GROUPS',
          message: `host ${host} is in roomTypeId ${other} and roomTypeId ${group.roomTypeId}; a host belongs to one room type (it would be upgraded twice a round)`,
        });
      } else groupOf.set(host, group.roomTypeId);
    }
  }
  return issues;
}

/** The vendor knows firmware by file name alone: a path or a control character is a typo. */
function isPlainFileName(name: string): boolean {
  if (name === '.' || name === '..' || name.trim() !== name) return false;
  for (const char of name) {
    const code = char.charCodeAt(0);
    if (code < 0x20 || code === 0x7f || '/\\:*?"<>|'.includes(char)) return false;
  }
  return true;
}

export function fileIssues(files: Env['FIRMWARE_FILES']): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = files.map((f) => f.filename);
  if (new Set(names).size !== names.length) {
    issues.push({
      variable: 'FIRMWARE_FILES',
      message: 'lists the same filename twice; the rotation needs distinct files',
    });
  }
  for (const name of names) {
    if (!isPlainFileName(name)) {
      issues.push({
        variable: 'FIRMWARE_FILES',
        message: `filename ${JSON.stringify(name)} is not a plain file name (no path, no / \\ : * ? " < > |, no spaces around it); give the name the vendor cloud knows the file by, e.g. RCU_V2.3.1.bin`,
      });
    }
  }
  return issues;
}

/** Just the database settings: `migrate` and `report` run without vendor credentials. */
export const DatabaseEnvSchema = Type.Object({
  DATABASE_URL: EnvSchema.properties.DATABASE_URL,
  DATABASE_CREATE: EnvSchema.properties.DATABASE_CREATE,
  DATA_DIR: EnvSchema.properties.DATA_DIR,
});

export function loadDatabaseConfig(env: Readonly<Record<string, string | undefined>> = process.env) {
  return loadConfig(DatabaseEnvSchema, env);
}
