// Builds the HTTP app from a ready updater; never listens (main.ts does).
import type { HealthCheck } from '@upgrade/core';
import { createService, Gauge, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { diskSpaceOf } from './disk-space.js';
import { otaRoutes } from './http/routes.js';
import type { Updater } from './updater.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

export interface AppDeps {
  updater: Updater;
  healthChecks?: HealthCheck[];
  logger?: LoggerOption;
  /** A path on the install file system: its free space is the `ota_disk_free_bytes` gauge. */
  diskPath?: string;
}

/** The ota-updater API plus the kit's /healthz, /metrics and /docs. */
export async function buildApp(deps: AppDeps): Promise<ServiceApp> {
  const app = await createService({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    logger: deps.logger ?? 'info',
    healthChecks: deps.healthChecks ?? [],
    openapi: {
      title: 'ota-updater',
      description:
        'Device-side OTA updates: verified streaming download, version snapshots behind an atomic symlink, systemd restart with health checks, rollback to previous then factory.',
    },
  });
  new Gauge({
    name: 'ota_progress_reports_failed',
    help: 'Progress reports the device API did not accept since start',
    registers: [app.metrics.registry],
    collect() {
      this.set(deps.updater.reportStats.failed);
    },
  });
  // What the bench's memory budget is broken down by; read on scrape, nothing runs in between.
  new Gauge({
    name: 'ota_memory_bytes',
    help: 'process.memoryUsage() of the service: rss, heap_total, heap_used, external, array_buffers',
    labelNames: ['kind'],
    registers: [app.metrics.registry],
    collect() {
      const m = process.memoryUsage();
      this.set({ kind: 'rss' }, m.rss);
      this.set({ kind: 'heap_total' }, m.heapTotal);
      this.set({ kind: 'heap_used' }, m.heapUsed);
      this.set({ kind: 'external' }, m.external);
      this.set({ kind: 'array_buffers' }, m.arrayBuffers);
    },
  });
  const { diskPath } = deps;
  if (diskPath !== undefined) {
    new Gauge({
      name: 'ota_disk_free_bytes',
      help: 'Free bytes on the file system versions are installed to',
      registers: [app.metrics.registry],
      async collect() {
        // A root that cannot be read shows no value rather than failing the whole scrape.
        const space = await diskSpaceOf(diskPath).catch(() => null);
        if (space !== null) this.set(space.free);
      },
    });
    new Gauge({
      name: 'ota_disk_size_bytes',
      help: 'Size of the file system versions are installed to',
      registers: [app.metrics.registry],
      async collect() {
        const space = await diskSpaceOf(diskPath).catch(() => null);
        if (space !== null) this.set(space.total);
      },
    });
  }
  await app.register(otaRoutes, { updater: deps.updater });
  return app;
}
