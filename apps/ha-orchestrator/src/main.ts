// Wiring only: configuration -> adapters -> task runner + API -> listen. Used by `ha-orchestrator serve`
// and by the demo (which passes in-process nodes instead of the SSH ones).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { Counter, createRotatingFile, listenAndServe, type LoggerOption } from '@upgrade/service';

import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from './adapters/pg-store.js';
import { createSshNodeClient } from './adapters/ssh-node-client.js';
import { buildApp } from './app.js';
import type { HaConfig } from './config.js';
import * as schema from './db/schema.js';
import { loadPublicKeys } from './package.js';
import { migrationsFolder } from './paths.js';
import type { Cluster, NodeClient, UpgradeTask } from './ports.js';
import { restoreFromBackup, type RestoreOptions } from './restore.js';
import { recoverInterrupted, runRollingUpgrade } from './rolling-upgrade.js';
import {
  cleanWorkDir,
  createTaskRunner,
  type FlowDeps,
  type RunnerLogger,
  type RunUpgrade,
  type TaskRunner,
} from './task-runner.js';

export type HaDatabaseHandle = DatabaseHandle<typeof schema>;

/** Opens the configured database (PGlite in $DATA_DIR/pglite without DATABASE_URL) and migrates it. */
export async function openHaDatabase(
  config: Pick<HaConfig, 'DATABASE_URL' | 'DATA_DIR' | 'MIGRATE_ON_START'>,
): Promise<HaDatabaseHandle> {
  const db = await openDatabase({
    url: config.DATABASE_URL,
    dataDir: join(config.DATA_DIR, 'pglite'),
    schema,
  });
  try {
    if (config.MIGRATE_ON_START) await migrate(db, migrationsFolder);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}

/** The pair over SSH, from HA_NODES: the first node listed is the one expected to hold the VIP. */
export function createSshCluster(config: HaConfig): Cluster {
  const [a, b] = config.HA_NODES.map((node): NodeClient =>
    createSshNodeClient({
      id: node.id,
      host: node.host,
      port: node.port,
      username: node.username,
      privateKey: config.privateKeys.get(node.id) ?? Buffer.alloc(0),
      knownHosts: config.knownHosts,
      agentCommand: node.agentCommand,
      connectTimeoutMs: config.SSH_CONNECT_TIMEOUT_MS,
      callTimeoutMs: config.SSH_CALL_TIMEOUT_MS,
      keepaliveIntervalMs: config.SSH_KEEPALIVE_INTERVAL_MS,
    }),
  );
  if (a === undefined || b === undefined) throw new Error('HA_NODES must list two nodes');
  return { nodes: [a, b], vip: config.VIP };
}

export interface StartOptions {
  /** The nodes; default the SSH ones from HA_NODES. */
  cluster?: Cluster;
  /** The flow; default runRollingUpgrade. */
  run?: RunUpgrade;
  restore?: (deps: FlowDeps, taskId: string, options?: RestoreOptions) => Promise<UpgradeTask>;
  clock?: Clock;
  logger?: LoggerOption;
  handleSignals?: boolean;
}

export interface RunningService {
  address: string;
  db: HaDatabaseHandle;
  runner: TaskRunner;
  /** Tasks a crash had left non-final, failed at start-up. */
  recovered: UpgradeTask[];
  stop(): Promise<void>;
}

/** Starts the whole service: database, crash recovery, task runner, API. */
export async function startHaOrchestrator(
  config: HaConfig,
  options: StartOptions = {},
): Promise<RunningService> {
  const keys = await loadPublicKeys({
    ...(config.SIGNING_PUBLIC_KEYS_DIR === undefined ? {} : { dir: config.SIGNING_PUBLIC_KEYS_DIR }),
    ...(config.SIGNING_PUBLIC_KEYS === undefined ? {} : { pems: config.SIGNING_PUBLIC_KEYS }),
  });
  await mkdir(config.workDir, { recursive: true, mode: 0o700 });
  const db = await openHaDatabase(config);
  const clock = options.clock ?? systemClock;
  const now = (): Date => new Date(clock.now());
  const tasks = createPgTaskStore(db.db, now);
  const audit = createPgAuditTrail(db.db);
  const configStore = createPgUpgradeConfigStore(db.db, now);
  const cluster = options.cluster ?? createSshCluster(config);
  const restore = options.restore ?? restoreFromBackup;

  const logFile = config.LOG_FILE === undefined ? null : createRotatingFile({ path: config.LOG_FILE });
  const logger: LoggerOption =
    options.logger ??
    (logFile === null
      ? config.LOG_LEVEL
      : {
          level: config.LOG_LEVEL,
          stream: {
            write(line) {
              process.stdout.write(line);
              logFile.write(line);
            },
          },
        });

  // The app's logger once it exists; the reconciliation at start-up runs before it and is
  // reported below from its result (each of its steps is in the task's audit trail).
  let appLog: RunnerLogger | null = null;
  const runner = createTaskRunner({
    tasks,
    audit,
    configStore,
    cluster,
    clock,
    run: options.run ?? runRollingUpgrade,
    reconcile: (deps, task, journal, message) =>
      recoverInterrupted(deps, task, journal, message, config.RECOVERY_POLICY),
    instanceId: config.instanceId,
    // Called only once tasks run, after `app` below exists.
    onFinished: (task) => finished.inc({ state: task.state }),
    logger: {
      info: (o, m) => appLog?.info(o, m),
      warn: (o, m) => appLog?.warn(o, m),
      error: (o, m) => appLog?.error(o, m),
    },
  });
  const { recovered, leftAlone, rolledBack, finishedForward } = await runner.recover();
  await cleanWorkDir(config.workDir);

  const app = await buildApp({
    tasks,
    audit,
    runner,
    restore: async (taskId, restoreOptions) =>
      restore(
        { cluster, tasks, audit, config: await configStore.get(), clock, logger: app.log },
        taskId,
        restoreOptions,
      ),
    nodeVersions: () =>
      Promise.all(
        cluster.nodes.map((node) =>
          node
            .call('health', {}, { timeoutMs: config.HEALTH_NODE_TIMEOUT_MS })
            .then((h) => h.version)
            .catch(() => null),
        ),
      ),
    packages: {
      workDir: config.workDir,
      keys,
      maxPackageBytes: config.MAX_PACKAGE_BYTES,
      unpackLimits: {
        maxEntries: 1_000,
        maxEntryBytes: config.MAX_UNPACKED_BYTES,
        maxTotalBytes: config.MAX_UNPACKED_BYTES,
      },
    },
    now: () => clock.now(),
    auth: { tokens: config.tokens, allowedIps: config.API_ALLOWED_IPS },
    health: {
      database: db.healthCheck('database'),
      nodes: cluster.nodes,
      timeoutMs: config.HEALTH_NODE_TIMEOUT_MS,
      tasks,
      audit,
      config: configStore,
      now: () => clock.now(),
    },
    requestLog: createPgApiRequestLog(db.db),
    logger,
    trustProxy: config.TRUST_PROXY,
  });
  const finished = new Counter({
    name: 'ha_upgrade_tasks_total',
    help: 'Upgrade tasks run by this process, by the state they ended in',
    labelNames: ['state'] as const,
    registers: [app.metrics.registry],
  });
  appLog = app.log;
  for (const task of recovered)
    app.log.warn(
      { taskId: task.id, state: task.state, error: task.error, lastMessage: task.lastMessage },
      finishedForward.includes(task.id)
        ? 'an upgrade task interrupted by a restart was past the VIP switch and was finished forward (COMPLETE)'
        : !rolledBack.includes(task.id)
          ? 'an upgrade task interrupted by a restart was marked FAILED; it had no journal to roll back from'
          : task.error?.code === 'ROLLBACK_FAILED'
            ? 'an upgrade task interrupted by a restart was rolled back from its journal, incompletely (see its error)'
            : 'an upgrade task interrupted by a restart was rolled back from its journal and marked FAILED',
    );
  for (const task of leftAlone)
    app.log.info(
      { taskId: task.id, state: task.state },
      'an upgrade task is run by another orchestrator instance (its lease is held); left alone',
    );

  // Order matters: let a running upgrade reach a safe point and record it before the pool closes.
  app.addHook('onClose', async () => {
    await runner.stop();
    await Promise.all(cluster.nodes.map((n) => n.close()));
    await db.close();
    logFile?.close();
  });
  const { address, stop: removeSignalHandlers } = await listenAndServe(
    app,
    { port: config.PORT, host: config.HOST },
    {
      shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      ...(options.handleSignals === false ? { signals: [] } : {}),
    },
  );
  app.log.info({ docs: `${address}/docs`, database: db.target }, 'ha-orchestrator listening');
  return {
    address,
    db,
    runner,
    recovered,
    stop: async () => {
      removeSignalHandlers();
      await app.close();
    },
  };
}
