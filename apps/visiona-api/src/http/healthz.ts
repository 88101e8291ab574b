// GET /healthz in the body existing visionA probes read: {"status":"ok"|"unavailable","checks":
// {"postgres":"ok"|"down","redis":"ok"|"down"}}, only the configured dependencies listed ("ok" with
// no checks when none is), 503 when one is down. Each ping is bounded by the kit's 2 s per check.
//
// The kit's own /healthz is switched off (healthRoute: false); its checks, timeout and logging of a
// failed ping (never in the body) are reused through app.checkHealth().
import { Type, type ServiceApp, type Static } from '@upgrade/service';

const Check = Type.Enum(['ok', 'down']);

export const HealthzBody = Type.Object(
  {
    status: Type.Enum(['ok', 'unavailable']),
    checks: Type.Object(
      { postgres: Type.Optional(Check), redis: Type.Optional(Check) },
      { description: 'Only the configured dependencies: none when both live in memory' },
    ),
  },
  { $id: 'Healthz', description: 'ok answers 200, unavailable answers 503' },
);
export type HealthzBody = Static<typeof HealthzBody>;

export function registerHealthz(app: ServiceApp): void {
  app.addSchema(HealthzBody);
  app.get(
    '/healthz',
    {
      // Probes hit this every few seconds; failures still log at warn.
      logLevel: 'warn',
      schema: {
        summary: 'Health of the service and its configured dependencies (PostgreSQL, Redis)',
        description:
          'Pings each configured dependency, each bounded at 2 s. A dependency that is not configured (kept in memory) is not listed; with none, the answer is {"status":"ok","checks":{}}. Why a ping failed is logged, never answered.',
        tags: ['system'],
        response: { 200: Type.Ref('Healthz'), 503: Type.Ref('Healthz') },
      },
    },
    async (request, reply) => {
      const report = await app.checkHealth(request.log);
      const checks: HealthzBody['checks'] = {};
      for (const check of report.checks) {
        if (check.name === 'postgres' || check.name === 'redis') checks[check.name] = check.status;
      }
      const healthy = report.checks.every((check) => check.status === 'ok');
      return reply
        .code(healthy ? 200 : 503)
        .send({ status: healthy ? ('ok' as const) : ('unavailable' as const), checks });
    },
  );
}
