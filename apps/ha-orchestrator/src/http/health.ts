// GET /health: the database (critical) and each node through its agent (non-critical: a node down
// makes the report `degraded`, since the orchestrator itself still serves and records). Open to
// every caller, like the kit's /healthz, so load balancers and scripts need no token.
import { UpgradeError, healthHttpStatus, runChecks, type HealthCheck } from '@upgrade/core';
import { HEALTH_REPORT_ID, Type, type ServicePlugin } from '@upgrade/service';
import type { NodeClient } from '../ports.js';

export interface HealthDeps {
  database: HealthCheck;
  nodes: readonly NodeClient[];
  /** Per check, nodes included. */
  timeoutMs: number;
}

/** A node is healthy when its agent says so; the detail names its version, role and VRRP state. */
export function nodeHealthCheck(node: NodeClient, timeoutMs: number): HealthCheck {
  return {
    name: `node:${node.id}`,
    critical: false,
    async check(signal) {
      const health = await node.call('health', {}, { timeoutMs, signal });
      const detail = [
        `version ${health.version ?? 'unknown'}`,
        `database ${health.database.role}`,
        `keepalived ${health.keepalived.state}${health.keepalived.holdsVip ? ' (holds the VIP)' : ''}`,
      ].join(', ');
      if (!health.ok) {
        const failing = [
          ...(health.database.ok ? [] : ['database']),
          ...health.ports.filter((p) => !p.ok).map((p) => `port ${p.port} (${p.service})`),
          ...(health.keepalived.ok ? [] : ['keepalived']),
          ...(health.http.ok ? [] : ['http']),
        ];
        throw new UpgradeError(
          'HEALTH_CHECK_FAILED',
          `unhealthy: ${failing.join(', ') || 'see agent'}; ${detail}`,
        );
      }
      return detail;
    },
  };
}

export const healthRoutes: ServicePlugin<HealthDeps> = async (app, deps) => {
  const report = Type.Ref(HEALTH_REPORT_ID);
  app.get(
    '/health',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Health of the orchestrator: its database, and each node through its agent',
        description:
          'ok: all checks pass; degraded (200): a node check fails; down (503): the database fails. ' +
          'Each check reports its response time in durationMs. Needs no token.',
        tags: ['system'],
        response: { 200: report, 503: report },
      },
    },
    async (request, reply) => {
      const result = await runChecks(
        [deps.database, ...deps.nodes.map((n) => nodeHealthCheck(n, deps.timeoutMs))],
        {
          timeout: deps.timeoutMs,
          onError: (name, err) => request.log.warn({ check: name, err }, 'health check failed'),
        },
      );
      return reply.code(healthHttpStatus(result.status)).send(result);
    },
  );
};
