// Builds the HTTP app from ready adapters; never listens (main.ts does).
import type { HealthCheck } from '@upgrade/core';
import { createService, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { roundRoutes, type RoutesDeps } from './http/routes.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

export interface AppDeps extends RoutesDeps {
  healthChecks: HealthCheck[];
  logger?: LoggerOption;
}

/** The rcu-scheduler API: rounds, stats, status, plus the kit's /healthz, /metrics and /docs. */
export async function buildApp(deps: AppDeps): Promise<ServiceApp> {
  const app = await createService({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    logger: deps.logger ?? 'info',
    healthChecks: deps.healthChecks,
    openapi: {
      title: 'rcu-scheduler',
      description:
        'Scheduled firmware upgrade rounds of hotel room-control units through the vendor cloud, rotating two firmware files, with a permanent per-host upgrade log.',
    },
  });
  await app.register(roundRoutes, deps);
  return app;
}
