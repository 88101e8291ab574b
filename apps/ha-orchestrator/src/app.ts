// Builds the HTTP app from ready adapters; never listens (main.ts does).
import multipart from '@fastify/multipart';
import type { HealthCheck } from '@upgrade/core';
import { createService, type LoggerOption, type ServiceApp } from '@upgrade/service';
import { registerAuth, type AuthOptions } from './auth.js';
import { registerConsole } from './console.js';
import { healthRoutes, type HealthDeps } from './http/health.js';
import { registerRequestLog, type ApiRequestLog } from './http/request-log.js';
import { upgradeRoutes, type RoutesDeps } from './http/routes.js';
import { SERVICE_NAME, SERVICE_VERSION } from './version.js';

export interface AppDeps extends RoutesDeps {
  auth: AuthOptions;
  health: HealthDeps;
  requestLog: ApiRequestLog;
  logger?: LoggerOption;
  /** Behind a reverse proxy: take the client address from X-Forwarded-For. */
  trustProxy?: boolean;
}

/** The ha-orchestrator API: the upgrade routes and /health, plus the kit's /healthz, /metrics and /docs. */
export async function buildApp(deps: AppDeps): Promise<ServiceApp> {
  const app = await createService({
    name: SERVICE_NAME,
    version: SERVICE_VERSION,
    logger: deps.logger ?? 'info',
    // The kit's /healthz checks only the database: the liveness of this process, not of the pair.
    healthChecks: [deps.health.database] satisfies HealthCheck[],
    trustProxy: deps.trustProxy ?? false,
    openapi: {
      title: 'ha-orchestrator',
      description:
        'Rolling upgrade of a two-node HA pair (keepalived VIP, primary/standby database, rsync-synced config) with ' +
        'rollback and a full audit trail. Every route except /health, /healthz and /docs needs ' +
        '"Authorization: Bearer <token>"; every route except /health and /healthz needs an allowed client address.',
    },
  });
  registerAuth(app, deps.auth);
  registerRequestLog(app, deps.requestLog, () => new Date(deps.now()));
  await app.register(multipart, { throwFileSizeLimit: true });
  await app.register(healthRoutes, deps.health);
  await app.register(upgradeRoutes, deps);
  await registerConsole(app, deps);
  return app;
}
