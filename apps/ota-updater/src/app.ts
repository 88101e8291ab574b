// Builds the HTTP API from a ready updater; never listens (main.ts does).
import { fileURLToPath } from 'node:url';
import type { HealthCheck } from '@upgrade/core';
import { diskSpaceOf } from './disk-space.js';
import { createApiServer, type ApiServer } from './http/api-server.js';
import { createMetrics, type ServiceMetrics } from './http/metrics.js';
import type { Logger } from './log.js';
import type { Updater } from './updater.js';

export interface AppDeps {
  updater: Updater;
  log: Logger;
  healthChecks?: HealthCheck[];
  /** A path on the install file system: its free space is the `ota_disk_free_bytes` gauge. */
  diskPath?: string;
  /** Default: openapi.json of the app directory (beside dist/ and src/). */
  openapiPath?: string;
}

export interface App extends ApiServer {
  readonly metrics: ServiceMetrics;
}

/** The ota-updater API plus /healthz, /metrics and the OpenAPI document at /docs/json. */
export function buildApp(deps: AppDeps): App {
  const { diskPath } = deps;
  // A root that cannot be read shows no value rather than failing the whole scrape.
  const disk = async () => (diskPath === undefined ? null : await diskSpaceOf(diskPath).catch(() => null));
  const metrics = createMetrics([
    {
      name: 'ota_progress_reports_failed',
      help: 'Progress reports the device API did not accept since start',
      read: () => deps.updater.reportStats.failed,
    },
    {
      // What the bench's memory budget is broken down by; read on scrape, nothing runs in between.
      name: 'ota_memory_bytes',
      help: 'process.memoryUsage() of the service: rss, heap_total, heap_used, external, array_buffers',
      label: 'kind',
      read: () => {
        const m = process.memoryUsage();
        return new Map([
          ['rss', m.rss],
          ['heap_total', m.heapTotal],
          ['heap_used', m.heapUsed],
          ['external', m.external],
          ['array_buffers', m.arrayBuffers],
        ]);
      },
    },
    ...(diskPath === undefined
      ? []
      : [
          {
            name: 'ota_disk_free_bytes',
            help: 'Free bytes on the file system versions are installed to',
            read: async () => (await disk())?.free ?? null,
          },
          {
            name: 'ota_disk_size_bytes',
            help: 'Size of the file system versions are installed to',
            read: async () => (await disk())?.total ?? null,
          },
        ]),
  ]);
  const api = createApiServer({
    updater: deps.updater,
    log: deps.log,
    metrics,
    healthChecks: deps.healthChecks ?? [],
    openapiPath: deps.openapiPath ?? fileURLToPath(new URL('../openapi.json', import.meta.url)),
  });
  return { ...api, metrics };
}
