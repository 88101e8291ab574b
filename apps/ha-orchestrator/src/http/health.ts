// GET /health: the truth about the pair, not only about this process. The database is critical
// (down -> 503); everything else makes the report `degraded` (200) with a reason: a node that
// cannot be reached or is unhealthy, the nodes on different versions, config sync (rsync) paused
// with no upgrade running, replication not streaming, the VIP on no node or on both, a task with
// nothing recorded for longer than any step may take. Each node is probed through its agent
// (health, keepalived, replication, rsync: four calls at once), bounded as a whole by timeoutMs,
// so a frozen node costs one bounded wait. Open to every caller, like the kit's /healthz.
import {
  UpgradeError,
  describeError,
  isUpgradeError,
  runChecks,
  type CheckResult,
  type HealthCheck,
} from '@upgrade/core';
import { Type, type ServicePlugin, type Static } from '@upgrade/service';
import type {
  AuditTrail,
  NodeClient,
  ResultOf,
  TaskStore,
  UpgradeConfigStore,
  UpgradeTask,
} from '../ports.js';

export interface HealthDeps {
  database: HealthCheck;
  nodes: readonly NodeClient[];
  /** Bound of one node's probe (its four calls together), and of the task lookup. */
  timeoutMs: number;
  tasks: Pick<TaskStore, 'active'>;
  audit: Pick<AuditTrail, 'steps'>;
  /** upgradeTimeoutMs: a running task with nothing recorded for longer is reported stuck. */
  config: Pick<UpgradeConfigStore, 'get'>;
  now: () => number;
}

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const NodeHealthView = Type.Object({
  id: Type.String(),
  address: Type.String(),
  reachable: Type.Boolean({
    description: 'false when the agent could not be reached or did not answer in time',
  }),
  error: Nullable(Type.String({ description: 'why the node (or a part of its probe) did not answer' })),
  version: Nullable(Type.String({ description: "the version the node's application reports" })),
  app: Type.Object({
    healthy: Nullable(
      Type.Boolean({ description: "the agent's health verdict (database, ports, keepalived, HTTP)" }),
    ),
    http_status: Nullable(Type.Integer()),
    detail: Nullable(Type.String()),
  }),
  keepalived: Type.Object({
    role: Nullable(Type.String({ description: 'VRRP state: MASTER, BACKUP, FAULT, STOPPED, UNKNOWN' })),
    priority: Nullable(Type.Integer()),
    holds_vip: Nullable(Type.Boolean()),
  }),
  database: Type.Object({
    role: Nullable(Type.String({ description: 'primary, standby or unknown' })),
    streaming: Nullable(
      Type.Boolean({ description: 'primary: a standby streams from it; standby: it receives WAL' }),
    ),
    in_sync: Nullable(Type.Boolean()),
    lag_bytes: Nullable(Type.Integer()),
    detail: Nullable(Type.String()),
  }),
  rsync: Type.Object({
    paused: Nullable(Type.Boolean()),
    last_sync_at: Nullable(Type.String({ format: 'date-time' })),
    last_result: Nullable(Type.String()),
  }),
  duration_ms: Type.Integer(),
});
export type NodeHealth = Static<typeof NodeHealthView>;

const CheckView = Type.Object({
  name: Type.String(),
  status: Type.Enum(['ok', 'down']),
  durationMs: Type.Number(),
  detail: Nullable(Type.String({ description: 'A stable reason, never a raw error' })),
  attempts: Type.Integer(),
});

export const PairHealthReport = Type.Object(
  {
    status: Type.Enum(['ok', 'degraded', 'down']),
    timestamp: Type.String({ format: 'date-time' }),
    reasons: Type.Array(Type.String(), { description: 'why the report is not ok, one line each' }),
    checks: Type.Array(CheckView),
    nodes: Type.Array(NodeHealthView),
    upgrade: Nullable(
      Type.Object({
        task_id: Type.String(),
        state: Type.String(),
        current_step: Nullable(Type.String()),
        last_activity_at: Type.String({ format: 'date-time' }),
        stuck: Type.Boolean(),
      }),
    ),
  },
  {
    $id: 'PairHealthReport',
    description:
      'ok (200): every check passes; degraded (200): the orchestrator serves but the pair is not as it should be (see reasons); down (503): its database fails',
  },
);
type Report = Static<typeof PairHealthReport>;

type HealthAnswer = ResultOf<'health'>;
type KeepalivedAnswer = ResultOf<'keepalived.status'>;
type ReplicationAnswer = ResultOf<'replication.status'>;
type RsyncAnswer = ResultOf<'rsync.status'>;

/** One node as its agent describes it; the calls run at once, each bounded by `timeoutMs`. */
export async function probeNode(
  node: NodeClient,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<NodeHealth & { cause: unknown }> {
  const started = Date.now();
  const options = { timeoutMs, signal };
  const [health, keepalived, replication, rsync] = await Promise.allSettled([
    node.call('health', {}, options),
    node.call('keepalived.status', {}, options),
    node.call('replication.status', {}, options),
    node.call('rsync.status', {}, options),
  ]);
  const value = <T>(r: PromiseSettledResult<T>): T | null => (r.status === 'fulfilled' ? r.value : null);
  const h: HealthAnswer | null = value(health);
  const k: KeepalivedAnswer | null = value(keepalived);
  const d: ReplicationAnswer | null = value(replication);
  const r: RsyncAnswer | null = value(rsync);
  const failures = [health, keepalived, replication, rsync].flatMap((s, i) =>
    s.status === 'rejected' ? [{ op: PROBE_OPS[i] ?? 'call', error: s.reason as unknown }] : [],
  );
  // Unreachable: the transport says so, or no call answered at all.
  const lost = failures.find((f) => isUpgradeError(f.error, 'UNREACHABLE'));
  const reachable = lost === undefined && failures.length < PROBE_OPS.length;
  const error =
    failures.length === 0
      ? null
      : !reachable
        ? reasonOf((lost ?? failures[0])?.error)
        : failures.map((f) => `${f.op}: ${reasonOf(f.error)}`).join('; ');
  return {
    // Not part of the report: the error that made the node unreachable, for its check's detail.
    cause: reachable ? null : (lost ?? failures[0])?.error,
    id: node.id,
    address: node.address,
    reachable,
    error,
    version: h?.version ?? null,
    app: {
      healthy: h?.ok ?? null,
      http_status: h?.http.status ?? null,
      detail: h === null ? null : appDetail(h),
    },
    keepalived: {
      role: k?.state ?? h?.keepalived.state ?? null,
      priority: k?.priority ?? null,
      holds_vip: k?.holdsVip ?? h?.keepalived.holdsVip ?? null,
    },
    database: {
      role: d?.role ?? h?.database.role ?? null,
      streaming: d === null ? null : isStreaming(d),
      in_sync: d?.inSync ?? null,
      lag_bytes: d?.lagBytes ?? null,
      detail: d?.detail ?? null,
    },
    rsync: {
      paused: r?.paused ?? null,
      last_sync_at: r?.lastSyncAt ?? null,
      last_result: r?.lastResult ?? null,
    },
    duration_ms: Date.now() - started,
  };
}

const PROBE_OPS = ['health', 'keepalived.status', 'replication.status', 'rsync.status'] as const;

/**
 * A streaming replica pair as one node sees it. Agents that report `connected` say it directly;
 * older ones give no lag figure when no standby is connected (primary) or no WAL was received
 * (standby).
 */
function isStreaming(d: ReplicationAnswer): boolean {
  const connected = (d as { connected?: boolean }).connected;
  return connected ?? d.lagBytes !== null;
}

function reasonOf(error: unknown): string {
  return isUpgradeError(error) ? `${error.code}: ${error.message}` : 'failed';
}

function appDetail(h: HealthAnswer): string {
  const failing = [
    ...(h.database.ok ? [] : ['database']),
    ...h.ports.filter((p) => !p.ok).map((p) => `port ${p.port} (${p.service})`),
    ...(h.keepalived.ok ? [] : ['keepalived']),
    ...(h.http.ok ? [] : ['http']),
  ];
  return h.ok ? 'healthy' : `unhealthy: ${failing.join(', ') || 'see agent'}`;
}

/** The one-line detail of a node's check, as before: version, database role, keepalived. */
function nodeDetail(n: NodeHealth): string {
  return [
    `version ${n.version ?? 'unknown'}`,
    `database ${n.database.role ?? 'unknown'}`,
    `keepalived ${n.keepalived.role ?? 'unknown'}${n.keepalived.holds_vip === true ? ' (holds the VIP)' : ''}` +
      `${n.keepalived.priority === null ? '' : ` priority ${n.keepalived.priority}`}`,
    `rsync ${n.rsync.paused === null ? 'unknown' : n.rsync.paused ? 'paused' : 'running'}`,
  ].join(', ');
}

interface ActiveUpgrade {
  task: UpgradeTask;
  lastActivityAt: number;
  stuck: boolean;
}

/** Pair-level checks over the node probes and the running task; each fails with one reason. */
export function pairChecks(
  nodes: readonly NodeHealth[],
  upgrade: ActiveUpgrade | null,
  stuckAfterMs: number,
): CheckResult[] {
  const check = (name: string, problem: string | null): CheckResult => ({
    name,
    status: problem === null ? 'ok' : 'down',
    durationMs: 0,
    detail: problem,
    attempts: 1,
  });
  const seen = nodes.filter((n) => n.reachable);
  const during = upgrade === null ? '' : ` (upgrade task ${upgrade.task.id} is ${upgrade.task.state})`;

  const versions = seen.filter((n) => n.version !== null);
  const differ = new Set(versions.map((n) => n.version)).size > 1;

  const paused = seen.filter((n) => n.rsync.paused === true);

  const primaries = seen.filter((n) => n.database.role === 'primary');
  const notStreaming = seen.filter((n) => n.database.streaming === false);
  const replication =
    seen.length < nodes.length && primaries.length === 0
      ? null // the node that cannot be seen may be the primary: reported as unreachable
      : primaries.length === 0
        ? 'no node runs the database primary'
        : primaries.length > 1
          ? `both nodes run a database primary (${primaries.map((n) => n.id).join(', ')})`
          : notStreaming.length > 0
            ? `replication not streaming: ${notStreaming.map((n) => `${n.id} ${n.database.detail ?? n.database.role}`).join('; ')}`
            : null;

  const holders = seen.filter((n) => n.keepalived.holds_vip === true);
  const vip =
    seen.length < nodes.length && holders.length === 0
      ? null
      : holders.length === 0
        ? 'no node holds the VIP'
        : holders.length > 1
          ? `both nodes hold the VIP (${holders.map((n) => n.id).join(', ')})`
          : null;

  return [
    check(
      'versions',
      differ
        ? `nodes run different versions: ${versions.map((n) => `${n.id} ${n.version}`).join(', ')}${during}`
        : null,
    ),
    check(
      'rsync',
      paused.length > 0 && upgrade === null
        ? `config sync (rsync) paused on ${paused.map((n) => n.id).join(', ')} with no upgrade running`
        : null,
    ),
    check('replication', replication),
    check('vip', vip),
    check(
      'upgrade_task',
      upgrade?.stuck === true
        ? `upgrade task ${upgrade.task.id} stuck in ${upgrade.task.state}${upgrade.task.currentStep === null ? '' : ` (step ${upgrade.task.currentStep})`}: nothing recorded for over ${Math.round(stuckAfterMs / 1000)} s`
        : null,
    ),
  ];
}

/** The running task, when there is one, and whether anything was recorded for it lately. */
async function activeUpgrade(
  deps: HealthDeps,
): Promise<{ upgrade: ActiveUpgrade | null; stuckAfterMs: number }> {
  const stuckAfterMs = (await deps.config.get()).upgradeTimeoutMs;
  const task = await deps.tasks.active();
  if (task === null) return { upgrade: null, stuckAfterMs };
  const steps = await deps.audit.steps(task.id);
  const lastActivityAt = Math.max(
    task.createdAt.getTime(),
    task.startedAt?.getTime() ?? 0,
    ...steps.map((s) => s.at.getTime()),
  );
  return {
    upgrade: { task, lastActivityAt, stuck: deps.now() - lastActivityAt > stuckAfterMs },
    stuckAfterMs,
  };
}

/** Runs `fn` bounded by `ms`; null when it fails or takes longer. */
async function bounded<T>(
  fn: () => Promise<T>,
  ms: number,
  onError: (error: unknown) => void,
): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new UpgradeError('TIMEOUT', `no answer within ${ms} ms`)), ms);
      }),
    ]);
  } catch (error) {
    onError(error);
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** The whole report: the database and node checks, the pair checks, the per-node fields. */
export async function pairHealth(
  deps: HealthDeps,
  onError: (name: string, error: unknown) => void,
): Promise<Report> {
  const probes = new Map<string, NodeHealth>();
  const nodeChecks = deps.nodes.map((node): HealthCheck => ({
    name: `node:${node.id}`,
    critical: false,
    async check(signal) {
      const { cause, ...probe } = await probeNode(node, deps.timeoutMs, signal);
      probes.set(node.id, probe);
      if (!probe.reachable)
        throw isUpgradeError(cause) ? cause : new UpgradeError('UNREACHABLE', 'no answer');
      if (probe.app.healthy !== true)
        throw new UpgradeError(
          'HEALTH_CHECK_FAILED',
          `${probe.app.detail ?? 'health unknown'}; ${nodeDetail(probe)}`,
        );
      if (probe.error !== null)
        throw new UpgradeError('HEALTH_CHECK_FAILED', `${probe.error}; ${nodeDetail(probe)}`);
      return nodeDetail(probe);
    },
  }));
  const [base, active] = await Promise.all([
    runChecks([deps.database, ...nodeChecks], { timeout: deps.timeoutMs, onError }),
    bounded(
      () => activeUpgrade(deps),
      deps.timeoutMs,
      (error) => onError('upgrade_task', error),
    ),
  ]);
  const nodes = deps.nodes.map(
    (node, i): NodeHealth =>
      probes.get(node.id) ?? {
        id: node.id,
        address: node.address,
        reachable: false,
        error: base.checks[i + 1]?.detail ?? 'no answer',
        version: null,
        app: { healthy: null, http_status: null, detail: null },
        keepalived: { role: null, priority: null, holds_vip: null },
        database: { role: null, streaming: null, in_sync: null, lag_bytes: null, detail: null },
        rsync: { paused: null, last_sync_at: null, last_result: null },
        duration_ms: Math.round(base.checks[i + 1]?.durationMs ?? deps.timeoutMs),
      },
  );
  const pair = pairChecks(nodes, active?.upgrade ?? null, active?.stuckAfterMs ?? 0);
  const checks = [...base.checks, ...pair];
  const reasons = checks.filter((c) => c.status === 'down').map((c) => `${c.name}: ${c.detail ?? 'failed'}`);
  const upgrade = active?.upgrade ?? null;
  return {
    status: base.status === 'down' ? 'down' : reasons.length > 0 ? 'degraded' : 'ok',
    timestamp: base.timestamp,
    reasons,
    checks,
    nodes,
    upgrade:
      upgrade === null
        ? null
        : {
            task_id: upgrade.task.id,
            state: upgrade.task.state,
            current_step: upgrade.task.currentStep,
            last_activity_at: new Date(upgrade.lastActivityAt).toISOString(),
            stuck: upgrade.stuck,
          },
  };
}

export const healthRoutes: ServicePlugin<HealthDeps> = async (app, deps) => {
  app.addSchema(PairHealthReport);
  const report = Type.Ref('PairHealthReport');
  app.get(
    '/health',
    {
      logLevel: 'warn',
      schema: {
        summary:
          'Health of the pair: the database of the orchestrator, each node through its agent, and the pair',
        description:
          'ok: all checks pass; degraded (200): a node is unreachable or unhealthy, the nodes run different ' +
          'versions, config sync is paused with no upgrade running, replication is not streaming, the VIP is on no ' +
          'node or on both, or the running task has recorded nothing for longer than upgradeTimeoutMs (each in ' +
          '`reasons`); down (503): the database fails. `nodes` gives per node its version, app health, keepalived ' +
          'role and priority, database role and lag, rsync state. Each node probe is bounded by ' +
          'HEALTH_NODE_TIMEOUT_MS. Needs no token.',
        tags: ['system'],
        response: { 200: report, 503: report },
      },
    },
    async (request, reply) => {
      const result = await pairHealth(deps, (name, err) =>
        request.log.warn({ check: name, err: describeError(err) }, 'health check failed'),
      );
      return reply.code(result.status === 'down' ? 503 : 200).send(result);
    },
  );
};
