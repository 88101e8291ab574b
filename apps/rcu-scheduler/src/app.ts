// Builds the HTTP app from ready adapters; never listens (main.ts does).
import type { HealthCheck } from '@upgrade/core';
import { createService, registerStaticAssets, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { registerConsoleRoutes, type ConsoleRoutesDeps } from './http/console-routes.js';
import { roundRoutes, type RoutesDeps } from './http/routes.js';
import { consoleFolder } from './paths.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

export interface AppDeps extends RoutesDeps, Omit<ConsoleRoutesDeps, 'scheduler'> {
  healthChecks: HealthCheck[];
  logger?: LoggerOption;
  /** The built console; default the package's dist/console. */
  consoleRoot?: string;
}

/**
 * The rcu-scheduler API: rounds, stats, status, the console's trends and live events, plus the
 * kit's /healthz, /metrics and /docs; the operator console at `/`.
 */
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
  registerConsoleRoutes(app, deps);
  await registerStaticAssets(app, {
    root: deps.consoleRoot ?? consoleFolder,
    missingHint: 'Build it with `pnpm --filter @upgrade/rcu-scheduler build`.',
  });
  return app;
}
