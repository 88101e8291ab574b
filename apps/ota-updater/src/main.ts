// Wiring only: configuration -> adapters -> updater -> API -> listen. Used by `ota-updater serve`.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError, systemClock } from '@upgrade/core';
import { createDeviceApiReporter } from './adapters/device-api.js';
import { createSystemdServiceManager } from './adapters/systemd.js';
import { buildApp } from './app.js';
import type { Env } from './config.js';
import { diskSpaceOf } from './disk-space.js';
import { errorLogFields } from './log-fields.js';
import { createLogger, createRotatingFile } from './log.js';
import { createServiceHealthCheck } from './service-health.js';
import { readLinks } from './snapshots.js';
import { createUpdater, type Updater, type UpdaterLogger } from './updater.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

export interface RunningOtaUpdater {
  address: string;
  updater: Updater;
  stop(): Promise<void>;
}

/** Where state.json and downloads/ live. */
export function dataDirOf(config: Pick<Env, 'OTA_ROOT' | 'OTA_DATA_DIR'>): string {
  return config.OTA_DATA_DIR ?? join(config.OTA_ROOT, '.ota');
}

/** Starts the service: finishes what a restart interrupted, then serves the API. */
export async function startOtaUpdater(
  config: Env,
  options: { handleSignals?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningOtaUpdater> {
  const dataDir = dataDirOf(config);
  await mkdir(join(dataDir, 'downloads'), { recursive: true });
  const publicKey =
    config.OTA_PUBLIC_KEY_FILE === undefined ? undefined : await readFile(config.OTA_PUBLIC_KEY_FILE, 'utf8');
  // ISO 8601 times: the log file is read by people on the printer, not only by tooling.
  const logFile =
    config.LOG_FILE === undefined
      ? undefined
      : createRotatingFile({
          path: config.LOG_FILE,
          maxBytes: config.LOG_FILE_MAX_BYTES,
          files: config.LOG_FILE_COUNT,
        });
  const log = createLogger({
    service: SERVICE_NAME,
    version: SERVICE_VERSION,
    level: config.LOG_LEVEL,
    ...(logFile === undefined ? {} : { sink: logFile }),
  });
  const logger: UpdaterLogger = log;
  const services = createSystemdServiceManager({
    command: config.SYSTEMCTL,
    timeoutMs: config.SYSTEMCTL_TIMEOUT_MS,
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  const sink = createDeviceApiReporter({
    url: config.DEVICE_API_URL,
    timeoutMs: config.DEVICE_API_TIMEOUT_MS,
    logger,
  });
  const updater = createUpdater({
    statePath: join(dataDir, 'state.json'),
    downloadsDir: join(dataDir, 'downloads'),
    clock: systemClock,
    sink,
    logger,
    keepLastPackage: config.KEEP_LAST_PACKAGE,
    deploy: {
      root: config.OTA_ROOT,
      services,
      checkHealth: createServiceHealthCheck({
        services,
        timeoutMs: config.HEALTH_TIMEOUT_MS,
        intervalMs: config.HEALTH_INTERVAL_MS,
        consecutiveOk: config.HEALTH_CONSECUTIVE_OK,
        onError: (name, error) => {
          const fields = errorLogFields(error);
          logger.warn(
            { check: name, ...fields },
            `service health check failed: ${fields.code}: ${fields.reason}`,
          );
        },
      }),
      clock: systemClock,
      limits: {
        maxEntryBytes: config.UNPACK_MAX_ENTRY_BYTES,
        maxTotalBytes: config.UNPACK_MAX_TOTAL_BYTES,
        maxEntries: config.UNPACK_MAX_ENTRIES,
      },
      keepVersions: config.KEEP_VERSIONS,
    },
    download: {
      ...(publicKey === undefined ? {} : { publicKey }),
      connectTimeoutMs: config.DOWNLOAD_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: config.DOWNLOAD_HEADERS_TIMEOUT_MS,
      stallTimeoutMs: config.DOWNLOAD_STALL_TIMEOUT_MS,
      totalTimeoutMs: config.DOWNLOAD_TOTAL_TIMEOUT_MS,
      retries: config.DOWNLOAD_RETRIES,
      retryDelayMs: config.DOWNLOAD_RETRY_DELAY_MS,
      checkpointBytes: config.DOWNLOAD_CHECKPOINT_BYTES,
      checkpointIntervalMs: config.DOWNLOAD_CHECKPOINT_INTERVAL_MS,
    },
  });
  const app = buildApp({
    updater,
    log,
    diskPath: config.OTA_ROOT,
    healthChecks: [
      {
        name: 'install-root',
        check: async () => {
          const links = await readLinks(config.OTA_ROOT);
          if (links.current === null) {
            throw new UpgradeError(
              'UNAVAILABLE',
              `${config.OTA_ROOT}/versions/current does not point at a version; run verify_setup.sh ${config.OTA_ROOT}`,
            );
          }
          return `current ${links.current}`;
        },
      },
      {
        name: 'disk',
        check: async () => {
          const { free, total } = await diskSpaceOf(config.OTA_ROOT);
          const detail = `${free} of ${total} bytes free on the file system of ${config.OTA_ROOT}`;
          if (free < config.DISK_MIN_FREE_BYTES)
            throw new UpgradeError(
              'INSUFFICIENT_SPACE',
              `only ${detail} (minimum ${config.DISK_MIN_FREE_BYTES}); remove old versions or logs`,
            );
          return detail;
        },
      },
    ],
  });
  await updater.recover();
  const address = await app.listen(config.PORT, config.HOST);

  // The server first (requests in flight finish, new ones get 503), then background work (a
  // download keeps its partial for the next start), all within SHUTDOWN_TIMEOUT_MS.
  let closing: Promise<'closed' | 'timeout' | 'failed'> | null = null;
  const close = (): Promise<'closed' | 'timeout' | 'failed'> => {
    closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.SHUTDOWN_TIMEOUT_MS);
      });
      const work = (async () => {
        const served = await app.close(config.SHUTDOWN_TIMEOUT_MS);
        await updater.close();
        await sink.close();
        return served;
      })().catch((error: unknown) => {
        log.error(errorLogFields(error), 'shutdown: a close hook failed');
        return 'failed' as const;
      });
      try {
        const outcome = await Promise.race([work, deadline]);
        if (outcome === 'timeout') {
          log.error(
            { timeoutMs: config.SHUTDOWN_TIMEOUT_MS },
            'shutdown: deadline passed with work in flight; cutting connections',
          );
          app.server.closeAllConnections();
        }
        return outcome;
      } finally {
        clearTimeout(timer);
        app.metrics.close();
      }
    })();
    return closing;
  };

  const signals: NodeJS.Signals[] = options.handleSignals === false ? [] : ['SIGTERM', 'SIGINT'];
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal }, 'shutdown: second signal, exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal }, 'shutdown: signal received, draining');
    void close().then((outcome) => {
      log.info({ outcome }, 'shutdown: done');
      logFile?.close();
      process.exit(outcome === 'closed' ? 0 : 1);
    });
  };
  for (const signal of signals) process.on(signal, onSignal);
  log.info({ docs: `${address}/docs`, root: config.OTA_ROOT, dataDir }, 'ota-updater listening');
  return {
    address,
    updater,
    stop: async () => {
      for (const signal of signals) process.off(signal, onSignal);
      await close();
    },
  };
}
