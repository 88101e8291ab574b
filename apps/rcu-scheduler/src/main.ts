// Wiring only: configuration -> adapters -> scheduler + API -> listen. Used by `rcu-scheduler serve`.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { systemClock, type HealthCheck } from '@upgrade/core';
import { hostname } from 'node:os';
import {
  ensureDatabase,
  migrate,
  openDatabase,
  redactUrl,
  tryAdvisoryLock,
  type DatabaseHandle,
  type DbLogger,
} from '@upgrade/db';
import { Counter, listenAndServe, type Registry } from '@upgrade/service';

import { buildApp } from './app.js';
import type { Env } from './config.js';
import { createFileSpool } from './adapters/file-spool.js';
import { createPgStore } from './adapters/pg-store.js';
import { createPgTrends } from './adapters/pg-trends.js';
import { VENDOR_DEVIATIONS, createVendorApi, type VendorDeviation } from './adapters/vendor-api.js';
import * as schema from './db/schema.js';
import { createLiveRounds } from './live-round.js';
import { migrationsFolder } from './paths.js';
import type { RoundEvent, RoundSettings } from './rounds.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';
import { StartupError, databaseName, databaseStartupError } from './startup.js';

/** The default database name when DATABASE_URL names none. */
export const DEFAULT_DATABASE = 'test_upgrade';

/** Adds the default database name to a server URL that has none. */
export function withDefaultDatabase(url: string): string {
  const parsed = new URL(url);
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = `/${DEFAULT_DATABASE}`;
  return parsed.toString();
}

/**
 * Opens the configured database and migrates it (or, with migrations off, checks it answers). A
 * missing PostgreSQL database is created only when it is the default `test_upgrade` or
 * `DATABASE_CREATE` is set: a mistyped name must fail, not start an empty history. Failures are
 * StartupErrors: one line naming host:port (or the data directory) and the cause.
 */
export async function openRcuDatabase(
  config: Pick<Env, 'DATABASE_URL' | 'DATA_DIR' | 'MIGRATE_ON_START'> & { DATABASE_CREATE?: boolean },
  options: { logger?: DbLogger } = {},
) {
  const url = config.DATABASE_URL === undefined ? undefined : withDefaultDatabase(config.DATABASE_URL);
  const dataDir = join(config.DATA_DIR, 'pglite');
  let db: DatabaseHandle<typeof schema> | undefined;
  try {
    if (url !== undefined && (config.DATABASE_CREATE === true || databaseName(url) === DEFAULT_DATABASE))
      await ensureDatabase(url);
    // The logger gets the pool's idle-connection failures (a server restart, a failover).
    db = await openDatabase({ url, dataDir, schema, logger: options.logger });
    if (config.MIGRATE_ON_START) await migrate(db, migrationsFolder);
    else await db.ping();
    return db;
  } catch (error) {
    await db?.close().catch(() => undefined);
    throw databaseStartupError(error, url === undefined ? { dataDir } : { url });
  }
}

export function roundSettings(config: Env): RoundSettings {
  return {
    files: config.FIRMWARE_FILES,
    repeats: config.ROTATION_REPEATS,
    groups: config.RCU_GROUPS,
    initialDelayMs: config.INITIAL_WAIT_MS,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    pollTimeoutMs: config.POLL_TIMEOUT_MS,
    concurrency: config.VENDOR_CONCURRENCY,
    storeRetryMaxMs: config.STORE_RETRY_MAX_MS,
  };
}

export interface RunningService {
  address: string;
  scheduler: Scheduler;
  db: DatabaseHandle<typeof schema>;
  stop(): Promise<void>;
}

/** Starts the whole service: database, vendor client, scheduler, API. */
export async function startRcuScheduler(
  config: Env,
  options: { onEvent?: (event: RoundEvent) => void; handleSignals?: boolean } = {},
): Promise<RunningService> {
  // Before the API's logger exists: an embedded database's first start runs initdb and the
  // migrations (~20 s on a small machine), which would otherwise be silence before "listening".
  const log = startupLogger(config.LOG_LEVEL);
  let started = false; // true once `app` (and its logger) exists
  const openedAt = Date.now();
  log(
    config.DATABASE_URL === undefined
      ? { database: join(config.DATA_DIR, 'pglite'), embedded: true }
      : { database: redactUrl(withDefaultDatabase(config.DATABASE_URL)) },
    config.DATABASE_URL === undefined
      ? 'opening the embedded database (its first start creates it: up to ~20 s)'
      : 'opening the database',
  );
  const db = await openRcuDatabase(config, {
    logger: { warn: (o, m) => (started ? app.log.warn(o, m) : log(o, m, 40)) },
  });
  log(
    { database: db.target, ms: Date.now() - openedAt, migrated: config.MIGRATE_ON_START },
    'database ready',
  );
  const store = createPgStore(db.db);
  const vendor = createVendorApi({
    baseUrl: config.VENDOR_BASE_URL,
    username: config.VENDOR_USERNAME,
    password: config.VENDOR_PASSWORD,
    connectTimeoutMs: config.VENDOR_CONNECT_TIMEOUT_MS,
    responseTimeoutMs: config.VENDOR_RESPONSE_TIMEOUT_MS,
    retries: config.VENDOR_RETRIES,
    // Both are called only once rounds or health checks run, after `app` and `metrics` below exist.
    logger: { warn: (o, m) => app.log.warn(o, m) },
    onDeviation: (kind) => metrics.deviation(kind),
  });
  const spool = createFileSpool(join(config.DATA_DIR, 'spool'));
  const healthChecks: HealthCheck[] = [db.healthCheck('database'), vendor.healthCheck('vendor-api')];

  const live = createLiveRounds(() => systemClock.now());
  const onEvent = (event: RoundEvent): void => {
    metrics.record(event);
    live.record(event);
    options.onEvent?.(event);
  };
  const scheduler = createScheduler(
    {
      vendor,
      store,
      spool,
      clock: systemClock,
      logger: {
        // Called only once rounds run, after `app` below exists.
        info: (o, m) => app.log.info(o, m),
        warn: (o, m) => app.log.warn(o, m),
        error: (o, m) => app.log.error(o, m),
      },
      newId: randomUUID,
      onEvent,
      lock: { tryAcquire: () => tryAdvisoryLock(db, 'rcu-scheduler:rounds') },
    },
    roundSettings(config),
    { intervalMs: config.ROUND_INTERVAL_MS, roundOnStart: config.ROUND_ON_START },
  );
  const app = await buildApp({
    queries: store,
    store,
    scheduler,
    trends: createPgTrends(db.db),
    live,
    files: config.FIRMWARE_FILES,
    repeats: config.ROTATION_REPEATS,
    now: () => systemClock.now(),
    healthChecks,
    logger: config.LOG_LEVEL,
  });
  started = true;
  const metrics = roundMetrics(app.metrics.registry);
  // Order matters: stop rounds (spooling what they hold) before the pools they write to close.
  app.addHook('onClose', async () => {
    await scheduler.stop();
    await vendor.close();
    await db.close();
  });
  let listening: Awaited<ReturnType<typeof listenAndServe>>;
  try {
    listening = await listenAndServe(
      app,
      { port: config.PORT, host: config.HOST },
      {
        shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
        ...(options.handleSignals === false ? { signals: [] } : {}),
      },
    );
  } catch (error) {
    await app.close().catch(() => undefined);
    throw listenStartupError(error, config);
  }
  const { address, stop: removeSignalHandlers } = listening;
  app.log.info({ docs: `${address}/docs`, database: db.target }, 'rcu-scheduler listening');
  scheduler.start();
  return {
    address,
    scheduler,
    db,
    stop: async () => {
      removeSignalHandlers();
      await app.close();
    },
  };
}

/** One pino-shaped JSON line at info level, for the steps before the service's logger exists. */
function startupLogger(level: Env['LOG_LEVEL']): (fields: object, msg: string, value?: 30 | 40) => void {
  const threshold = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }[
    level
  ];
  const base = { service: SERVICE_NAME, version: SERVICE_VERSION, pid: process.pid, hostname: hostname() };
  return (fields, msg, value = 30) => {
    if (value >= threshold)
      process.stdout.write(
        `${JSON.stringify({ level: value, time: Date.now(), ...base, ...fields, msg })}\n`,
      );
  };
}

/** EADDRINUSE may pass (an old instance still stopping): 1; a bad address or privileged port: 2. */
function listenStartupError(error: unknown, config: Pick<Env, 'HOST' | 'PORT'>): StartupError {
  const code = (error as { code?: unknown } | null)?.code;
  const where = `cannot listen on ${config.HOST}:${config.PORT} (HOST, PORT)`;
  if (code === 'EADDRINUSE') return new StartupError(`${where}: the port is in use by another process`, 1);
  if (code === 'EACCES') return new StartupError(`${where}: not permitted (a port below 1024?)`, 2);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new StartupError(`${where}: this machine has no such address`, 2);
  return new StartupError(`${where}: ${error instanceof Error ? error.message : String(error)}`, 1);
}

function roundMetrics(registry: Registry) {
  const rounds = new Counter({
    name: 'rcu_rounds_total',
    help: 'Finished upgrade rounds by whether their results reached the database',
    labelNames: ['stored'] as const,
    registers: [registry],
  });
  const hosts = new Counter({
    name: 'rcu_host_results_total',
    help: 'Host upgrade results by final status',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const storeRetries = new Counter({
    name: 'rcu_store_retries_total',
    help: 'Failed attempts to store round results',
    registers: [registry],
  });
  const deviations = new Counter({
    name: 'rcu_vendor_answer_deviations_total',
    help: 'Vendor answers read through a tolerated deviation from the spec, per host entry and kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of VENDOR_DEVIATIONS) deviations.inc({ kind }, 0);
  return {
    deviation(kind: VendorDeviation): void {
      deviations.inc({ kind });
    },
    record(event: RoundEvent): void {
      if (event.type === 'finished') {
        rounds.inc({ stored: String(event.stored) });
        for (const status of ['completed', 'failed', 'timeout'] as const)
          hosts.inc({ status }, event.summary[status]);
      } else if (event.type === 'store-retry') storeRetries.inc();
    },
  };
}
