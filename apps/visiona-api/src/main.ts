// Wiring only: configuration -> stores (PostgreSQL or memory, Redis or memory) -> API -> listen.
// Used by `visiona-api serve`, the demo and the tests that run several instances.
import { randomUUID } from 'node:crypto';
import { systemClock, type Clock, type HealthCheck } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { createRotatingFile, listenAndServe, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { buildApp, type AppSettings } from './app.js';
import { createLateLogger, type BackendLogger } from './backend-log.js';
import type { Env } from './config.js';
import * as schema from './db/schema.js';
import { migrationsFolder } from './paths.js';
import type { UserSessionStore } from './ports.js';
import { createMemoryStores, createPgStores, type PersistentStores } from './stores/index.js';
import { createRedisRateLimits } from './stores/rate-limits.redis.js';
import { createMemoryUserSessionStore } from './stores/user-sessions.memory.js';
import { createRedisUserSessionStore } from './stores/user-sessions.redis.js';
import { createRedisTunnelRegistry, type TunnelRegistry } from './tunnel/index.js';

/** The settings the backends are opened with. */
export type BackendConfig = Pick<
  Env,
  | 'DATABASE_URL'
  | 'DATABASE_POOL_MAX'
  | 'DATABASE_CONNECT_TIMEOUT_MS'
  | 'DATABASE_QUERY_TIMEOUT_MS'
  | 'DATABASE_STATEMENT_TIMEOUT_MS'
  | 'MIGRATE_ON_START'
  | 'REDIS_URL'
  | 'REDIS_KEY_PREFIX'
  | 'REDIS_TIMEOUT_MS'
  | 'SESSION_IDLE_TTL_MS'
  | 'SESSION_ABSOLUTE_TTL_MS'
  | 'INSTANCE_ID'
  | 'INSTANCE_ADVERTISE_URL'
  | 'TUNNEL_REGISTRY_TTL_MS'
>;

/** The stores of one instance, what /healthz pings, and how to close them. */
export interface Backends {
  stores: PersistentStores;
  sessions: UserSessionStore;
  healthChecks: HealthCheck[];
  rateLimitStore?: new (globalOptions: unknown) => unknown;
  /** Which instance holds which agent, shared in Redis; absent: each instance knows only its own agents. */
  tunnelRegistry?: TunnelRegistry;
  database?: DatabaseHandle<typeof schema>;
  /** Where data lives, safe for logs. */
  where: { database: string; sessions: string };
  /** Things the operator must know at start-up (in-memory fallbacks). */
  warnings: string[];
  close(): Promise<void>;
}

/**
 * Opens PostgreSQL (migrating it unless told not to) or memory stores, Redis or memory user
 * sessions, and with INSTANCE_ADVERTISE_URL the tunnel registry the instances share in Redis. Redis
 * that is down at start does not stop the service: session calls answer 503 until it is back, and
 * /healthz says so.
 */
export async function openBackends(
  config: BackendConfig,
  clock: Clock = systemClock,
  logger?: BackendLogger,
): Promise<Backends> {
  const warnings: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const healthChecks: HealthCheck[] = [];
  const ttl = { idleMs: config.SESSION_IDLE_TTL_MS, absoluteMs: config.SESSION_ABSOLUTE_TTL_MS };
  try {
    let stores: PersistentStores;
    let database: DatabaseHandle<typeof schema> | undefined;
    if (config.DATABASE_URL === undefined) {
      stores = createMemoryStores(clock);
      warnings.push(
        'DATABASE_URL is not set: users, models and devices live in memory and are lost on restart',
      );
    } else {
      database = await openDatabase({
        url: config.DATABASE_URL,
        schema,
        ...(logger === undefined ? {} : { logger }),
        pool: {
          max: config.DATABASE_POOL_MAX,
          connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
          statementTimeoutMillis: config.DATABASE_STATEMENT_TIMEOUT_MS,
          queryTimeoutMillis: config.DATABASE_QUERY_TIMEOUT_MS,
          applicationName: 'visiona-api',
        },
      });
      const db = database;
      closers.push(() => db.close());
      if (config.MIGRATE_ON_START) await migrateOnce(config.DATABASE_URL, config.DATABASE_CONNECT_TIMEOUT_MS);
      stores = createPgStores(db.db, clock);
      healthChecks.push(db.healthCheck('postgres'));
    }

    let sessions: UserSessionStore;
    let rateLimitStore: Backends['rateLimitStore'];
    let tunnelRegistry: TunnelRegistry | undefined;
    if (config.REDIS_URL === undefined) {
      sessions = createMemoryUserSessionStore(ttl, clock);
      warnings.push(
        'REDIS_URL is not set: user sessions and login rate limits live in memory, single instance only',
      );
    } else {
      const redisOptions = {
        url: config.REDIS_URL,
        keyPrefix: config.REDIS_KEY_PREFIX,
        timeoutMs: config.REDIS_TIMEOUT_MS,
        ...(logger === undefined ? {} : { logger }),
      };
      const redisSessions = createRedisUserSessionStore({ ...redisOptions, ttl });
      closers.push(() => redisSessions.close());
      const limits = createRedisRateLimits(redisOptions);
      closers.push(() => limits.close());
      try {
        await redisSessions.ready();
      } catch {
        warnings.push('Redis did not answer at start-up: session calls answer 503 until it does');
      }
      if (config.INSTANCE_ADVERTISE_URL === undefined) {
        warnings.push(
          'INSTANCE_ADVERTISE_URL is not set: tunnel requests reach only the agents connected to this instance',
        );
      } else {
        const registry = createRedisTunnelRegistry({
          ...redisOptions,
          instanceId: config.INSTANCE_ID ?? randomUUID(),
          advertiseUrl: config.INSTANCE_ADVERTISE_URL,
          ttlMs: config.TUNNEL_REGISTRY_TTL_MS,
        });
        closers.push(() => registry.close());
        try {
          await registry.ready();
        } catch {
          warnings.push(
            'Redis did not answer at start-up: requests for agents on other instances answer 503 until it does',
          );
        }
        tunnelRegistry = registry;
      }
      sessions = redisSessions;
      rateLimitStore = limits.Store;
      healthChecks.push({
        name: 'redis',
        critical: true,
        check: async () => {
          await redisSessions.ping();
          return 'redis';
        },
      });
    }
    return {
      stores,
      sessions,
      healthChecks,
      ...(rateLimitStore === undefined ? {} : { rateLimitStore }),
      ...(tunnelRegistry === undefined ? {} : { tunnelRegistry }),
      ...(database === undefined ? {} : { database }),
      where: {
        database: database?.target ?? 'memory',
        sessions: config.REDIS_URL === undefined ? 'memory' : 'redis',
      },
      warnings,
      close: () => closeAll(closers),
    };
  } catch (error) {
    await closeAll(closers);
    throw error;
  }
}

/** Migrations run on a connection of their own, without the request deadlines (an index build takes longer). */
async function migrateOnce(url: string, connectTimeoutMs: number): Promise<void> {
  const handle = await openDatabase({
    url,
    schema,
    pool: { max: 1, connectionTimeoutMillis: connectTimeoutMs, applicationName: 'visiona-api migrate' },
  });
  try {
    await migrate(handle, migrationsFolder);
  } finally {
    await handle.close();
  }
}

async function closeAll(closers: (() => Promise<void>)[]): Promise<void> {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
}

/**
 * Settings that work but surprise: said once at start-up. A Secure session cookie is sent back by
 * browsers over HTTPS only, so with no TLS in front (no TRUST_PROXY declared) sign-in over plain
 * HTTP appears to work and the next call answers 401.
 */
export function configWarnings(config: Env): string[] {
  const warnings: string[] = [];
  if (config.SESSION_COOKIE_SECURE && config.TRUST_PROXY === false) {
    warnings.push(
      'SESSION_COOKIE_SECURE is true and no TLS proxy is declared (TRUST_PROXY): browsers return the session cookie over HTTPS only, so a sign-in over plain http:// is followed by 401. Serve the API over HTTPS, or set SESSION_COOKIE_SECURE=false on a trusted plain-HTTP network',
    );
  }
  return warnings;
}

/** The app's settings from the configuration. */
export function appSettings(config: Env): AppSettings {
  return {
    cookie: {
      name: config.SESSION_COOKIE_NAME,
      secure: config.SESSION_COOKIE_SECURE,
      maxAgeMs: config.SESSION_ABSOLUTE_TTL_MS,
    },
    loginRateLimit: { max: config.LOGIN_RATE_LIMIT_MAX, windowMs: config.LOGIN_RATE_LIMIT_WINDOW_MS },
    pairRateLimit: { max: config.PAIRING_RATE_LIMIT_MAX, windowMs: config.PAIRING_RATE_LIMIT_WINDOW_MS },
    pairingCodeTtlMs: config.PAIRING_CODE_TTL_MS,
    phase: config.PHASE,
    trustProxy: config.TRUST_PROXY,
    tunnel: {
      heartbeatIntervalMs: config.TUNNEL_HEARTBEAT_INTERVAL_MS,
      requestTimeoutMs: config.TUNNEL_REQUEST_TIMEOUT_MS,
      ...(config.TUNNEL_INTERNAL_TOKEN === undefined ? {} : { internalToken: config.TUNNEL_INTERNAL_TOKEN }),
    },
  };
}

function loggerOf(config: Env): LoggerOption {
  if (config.LOG_FILE === undefined) return config.LOG_LEVEL;
  return {
    level: config.LOG_LEVEL,
    stream: createRotatingFile({
      path: config.LOG_FILE,
      maxBytes: config.LOG_FILE_MAX_BYTES,
      files: config.LOG_FILE_COUNT,
    }),
  };
}

export interface RunningVisionaApi {
  address: string;
  app: ServiceApp;
  backends: Backends;
  stop(): Promise<void>;
}

/** Starts the whole service: backends, API, listening. */
export async function startVisionaApi(
  config: Env,
  options: { handleSignals?: boolean; logger?: LoggerOption } = {},
): Promise<RunningVisionaApi> {
  // The backends log connection losses on their own; the lines go to the app's logger once it exists.
  const backendLog = createLateLogger();
  const backends = await openBackends(config, systemClock, backendLog);
  let app: ServiceApp;
  try {
    app = await buildApp({
      stores: backends.stores,
      sessions: backends.sessions,
      healthChecks: backends.healthChecks,
      settings: appSettings(config),
      ...(backends.rateLimitStore === undefined ? {} : { rateLimitStore: backends.rateLimitStore }),
      ...(backends.tunnelRegistry === undefined ? {} : { tunnelRegistry: backends.tunnelRegistry }),
      logger: options.logger ?? loggerOf(config),
    });
  } catch (error) {
    await backends.close();
    throw error;
  }
  backendLog.attach(app.log);
  // After the tunnel and in-flight requests: they may still touch the stores.
  app.addHook('onClose', () => backends.close());
  for (const warning of [...backends.warnings, ...configWarnings(config)]) app.log.warn(warning);
  const { address, stop: removeSignalHandlers } = await listenAndServe(
    app,
    { port: config.PORT, host: config.HOST },
    {
      shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      ...(options.handleSignals === false ? { signals: [] } : {}),
    },
  );
  const instance = backends.tunnelRegistry?.instanceId;
  app.log.info(
    { docs: `${address}/docs`, ...backends.where, ...(instance === undefined ? {} : { instance }) },
    'visiona-api listening',
  );
  return {
    address,
    app,
    backends,
    stop: async () => {
      removeSignalHandlers();
      await app.close();
    },
  };
}
