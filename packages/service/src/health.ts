import { healthHttpStatus, runChecks, type HealthCheck, type HealthReport } from '@upgrade/core';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';

/** Checks, or a function returning them when the set depends on what is configured at the time. */
export type HealthChecks = readonly HealthCheck[] | (() => readonly HealthCheck[]);

export interface HealthOptions {
  checks?: HealthChecks;
  /** Per check attempt. Default 2000 ms: a load balancer must get an answer before its own timeout. */
  timeoutMs?: number;
  /** Extra attempts per failing check. Default 0. */
  retries?: number;
  /**
   * Add `GET /healthz` with the core's report as its body. Default true; false for a service whose
   * clients already read another body there and which adds its own route on `app.checkHealth()`.
   */
  route?: boolean;
}

/** The OpenAPI component name of the health report. */
export const HEALTH_REPORT_ID = 'HealthReport';

/** The body of `GET /healthz`: the core's `HealthReport`. */
export const HealthReportSchema = Type.Object(
  {
    status: Type.Enum(['ok', 'degraded', 'down']),
    timestamp: Type.String({ format: 'date-time' }),
    checks: Type.Array(
      Type.Object({
        name: Type.String(),
        status: Type.Enum(['ok', 'down']),
        durationMs: Type.Number(),
        detail: Type.Union([Type.String(), Type.Null()], {
          description: 'A stable reason, never a raw error',
        }),
        attempts: Type.Integer(),
      }),
    ),
  },
  { $id: HEALTH_REPORT_ID, description: 'ok and degraded answer 200, down answers 503' },
);

// Compiles only while core's HealthReport still fits the documented schema.
const _reportMatchesSchema: HealthReport extends Static<typeof HealthReportSchema> ? true : never = true;

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs the configured health checks; raw errors go to `log`, never into the report. */
    checkHealth(log?: FastifyBaseLogger): Promise<HealthReport>;
  }
}

/** Adds `app.checkHealth()` and (unless `route: false`) `GET /healthz` answering its report. */
export function registerHealth(app: FastifyInstance, options: HealthOptions = {}): void {
  const { checks = [], timeoutMs = 2000, retries = 0, route = true } = options;
  app.decorate('checkHealth', (log: FastifyBaseLogger = app.log) =>
    runChecks(typeof checks === 'function' ? checks() : checks, {
      timeout: timeoutMs,
      retries,
      onError: (name, err) => log.warn({ check: name, err }, 'health check failed'),
    }),
  );
  if (!route) return;
  app.addSchema(HealthReportSchema);
  const report = Type.Ref(HEALTH_REPORT_ID);
  app.get(
    '/healthz',
    {
      // Probes hit this every few seconds; their request lines would drown the log. Failures still
      // log at warn.
      logLevel: 'warn',
      schema: {
        tags: ['system'],
        summary: 'Health of the service and its dependencies',
        response: { 200: report, 503: report },
      },
    },
    async (request, reply) => {
      const result = await app.checkHealth(request.log);
      return reply.code(healthHttpStatus(result.status)).send(result);
    },
  );
}
