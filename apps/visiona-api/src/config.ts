// Every setting of the service, from env / .env. `.env.example` documents each one.
import { ConfigError, Type, loadConfig, type ConfigIssue, type Static } from '@upgrade/service';

const Ms = (def: number, description: string, minimum = 1) =>
  Type.Integer({ default: def, minimum, description: `${description} (milliseconds)` });

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 8320, minimum: 0, maximum: 65535, description: 'HTTP port of the API' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'address the API listens on' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  LOG_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'write JSON logs to this file (rotated) instead of stdout' }),
  ),
  LOG_FILE_MAX_BYTES: Type.Integer({
    default: 10 * 1024 * 1024,
    minimum: 1024,
    description: 'size at which the log file is rotated',
  }),
  LOG_FILE_COUNT: Type.Integer({ default: 3, minimum: 1, maximum: 100, description: 'log files kept' }),
  TRUST_PROXY: Type.Union([Type.Boolean(), Type.String({ minLength: 1 })], {
    default: false,
    description:
      'behind a load balancer: true, or the addresses / CIDRs of the proxies whose X-Forwarded-For to trust (comma-separated)',
  }),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description: 'PostgreSQL URL; unset: in-memory stores (single instance, lost on restart)',
    }),
  ),
  DATABASE_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 200, description: 'pool size' }),
  DATABASE_CONNECT_TIMEOUT_MS: Ms(
    1_000,
    'longest wait for a database connection; past it requests answer 503',
  ),
  DATABASE_QUERY_TIMEOUT_MS: Ms(
    2_000,
    'client-side deadline of each database query of a request; past it the request answers 503 and the connection is dropped (a frozen or cut-off server never answers)',
  ),
  DATABASE_STATEMENT_TIMEOUT_MS: Ms(
    1_500,
    'PostgreSQL statement_timeout of the request connections: the server cancels a slower statement (below DATABASE_QUERY_TIMEOUT_MS, so a slow query ends server-side first)',
  ),
  MIGRATE_ON_START: Type.Boolean({ default: true, description: 'apply pending migrations at start-up' }),
  REDIS_URL: Type.Optional(
    Type.String({
      pattern: '^rediss?://',
      description: 'Redis URL for user sessions and login rate limits; unset: in memory (single instance)',
    }),
  ),
  REDIS_KEY_PREFIX: Type.String({ default: 'visiona:', description: 'prepended to every Redis key' }),
  REDIS_TIMEOUT_MS: Ms(1_000, 'bound on connecting to Redis and on each command'),
  SESSION_IDLE_TTL_MS: Ms(HOUR, 'a user session ends this long after its last use'),
  SESSION_ABSOLUTE_TTL_MS: Ms(24 * HOUR, 'a user session ends this long after sign-in, used or not'),
  SESSION_COOKIE_NAME: Type.String({
    default: 'visiona_session',
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'name of the session cookie',
  }),
  SESSION_COOKIE_SECURE: Type.Boolean({
    default: true,
    description: 'send the session cookie over HTTPS only (false for plain-HTTP development)',
  }),
  LOGIN_RATE_LIMIT_MAX: Type.Integer({
    default: 5,
    minimum: 1,
    description: 'login attempts allowed per client address and email within the window',
  }),
  LOGIN_RATE_LIMIT_WINDOW_MS: Ms(MINUTE, 'window of the login rate limit'),
  PAIRING_CODE_TTL_MS: Ms(10 * MINUTE, 'how long a pairing code can be redeemed'),
  PAIRING_RATE_LIMIT_MAX: Type.Integer({
    default: 30,
    minimum: 1,
    description:
      'pairing attempts (POST /api/agent/pair) per client address within the window; raise it for bulk provisioning behind one NAT',
  }),
  PAIRING_RATE_LIMIT_WINDOW_MS: Ms(MINUTE, 'window of the pairing rate limit'),
  TUNNEL_HEARTBEAT_INTERVAL_MS: Ms(15_000, 'how often the tunnel pings each connected agent'),
  TUNNEL_REQUEST_TIMEOUT_MS: Ms(10_000, 'how long a request through the tunnel waits for the agent'),
  INSTANCE_ID: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 100,
      description: 'this instance in the tunnel registry and in logs; unset: a random id at each start',
    }),
  ),
  INSTANCE_ADVERTISE_URL: Type.Optional(
    Type.String({
      pattern: '^https?://',
      description:
        'where the other instances reach this one (a private address, e.g. http://10.0.0.5:8320); with REDIS_URL, the instances share the tunnel registry',
    }),
  ),
  TUNNEL_INTERNAL_TOKEN: Type.Optional(
    Type.String({
      minLength: 32,
      description:
        'shared secret of the instances for their internal tunnel route, the same on every instance; required with INSTANCE_ADVERTISE_URL',
    }),
  ),
  TUNNEL_REGISTRY_TTL_MS: Ms(
    45_000,
    'how long a tunnel registry entry outlives its last refresh; must exceed TUNNEL_HEARTBEAT_INTERVAL_MS',
  ),
  PHASE: Type.String({
    default: 'beta',
    minLength: 1,
    description: 'release phase reported by /api/system/info (e.g. alpha, beta, ga)',
  }),
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 'how long a shutdown waits for in-flight requests'),
});

export type Env = Static<typeof EnvSchema>;

type EnvSource = Readonly<Record<string, string | undefined>>;

/** Loads and checks the configuration; a ConfigError names every problem at once. */
export function loadVisionaConfig(env: EnvSource = process.env): Env {
  const config = loadConfig(EnvSchema, env);
  const issues: ConfigIssue[] = [];
  if (config.SESSION_IDLE_TTL_MS > config.SESSION_ABSOLUTE_TTL_MS) {
    issues.push({
      variable: 'SESSION_IDLE_TTL_MS',
      message: `must not exceed SESSION_ABSOLUTE_TTL_MS (${config.SESSION_ABSOLUTE_TTL_MS})`,
    });
  }
  // The registry's settings matter only once the instances share it.
  if (config.INSTANCE_ADVERTISE_URL !== undefined) {
    if (config.TUNNEL_INTERNAL_TOKEN === undefined) {
      issues.push({
        variable: 'TUNNEL_INTERNAL_TOKEN',
        message:
          'is required with INSTANCE_ADVERTISE_URL (the instances authenticate each other with it; the same value of at least 32 characters on every instance)',
      });
    }
    if (config.REDIS_URL === undefined) {
      issues.push({
        variable: 'REDIS_URL',
        message: 'is required with INSTANCE_ADVERTISE_URL (the instances share the tunnel registry in Redis)',
      });
    }
    if (config.TUNNEL_REGISTRY_TTL_MS <= config.TUNNEL_HEARTBEAT_INTERVAL_MS) {
      issues.push({
        variable: 'TUNNEL_REGISTRY_TTL_MS',
        message: `must exceed TUNNEL_HEARTBEAT_INTERVAL_MS (${config.TUNNEL_HEARTBEAT_INTERVAL_MS}): each heartbeat refreshes the entry`,
      });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** Just the database settings: `migrate` runs without the rest. */
export const DatabaseEnvSchema = Type.Object({
  DATABASE_URL: EnvSchema.properties.DATABASE_URL,
  DATABASE_CONNECT_TIMEOUT_MS: EnvSchema.properties.DATABASE_CONNECT_TIMEOUT_MS,
});

/** The database settings of `migrate`; a missing DATABASE_URL is a ConfigError (nothing to migrate). */
export function loadMigrateConfig(env: EnvSource = process.env): Static<typeof DatabaseEnvSchema> & {
  DATABASE_URL: string;
} {
  const config = loadConfig(DatabaseEnvSchema, env);
  if (config.DATABASE_URL === undefined)
    throw new ConfigError([
      { variable: 'DATABASE_URL', message: 'is required by migrate (without it the stores live in memory)' },
    ]);
  return { ...config, DATABASE_URL: config.DATABASE_URL };
}
