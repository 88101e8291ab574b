// A node is healthy after `required` consecutive healthy answers of its agent; up to healthRetries
// failed checks are tolerated (each resets the count), spaced by healthRetryIntervalMs. Every
// check lands in health_check_record, with the agent's answer or the stable reason it failed.
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import type { NodeClient, ResultOf } from '../ports.js';
import type { FlowContext } from './context.js';

export type HealthAnswer = ResultOf<'health'>;

export interface AwaitHealthyOptions {
  /** Consecutive healthy checks needed. */
  required: number;
  /** Version the node must report; null accepts any. */
  version: string | null;
  /** Called on every healthy check (the downtime meter closes on the first one). */
  onHealthy?: () => void;
}

/**
 * Resolves with the last answer once `node` is healthy; throws HEALTH_CHECK_FAILED, or
 * UNREACHABLE / the TIMEOUT of the run.
 */
export async function awaitHealthy(
  ctx: FlowContext,
  node: NodeClient,
  options: AwaitHealthyOptions,
): Promise<HealthAnswer> {
  const { config, clock } = ctx;
  let consecutive = 0;
  let failures = 0;
  for (;;) {
    const check = await checkHealth(ctx, node, options.version);
    if (check.ok && check.answer !== null) {
      options.onHealthy?.();
      consecutive++;
      if (consecutive >= options.required) return check.answer;
    } else {
      consecutive = 0;
      failures++;
      if (failures > config.healthRetries)
        throw new UpgradeError(
          'HEALTH_CHECK_FAILED',
          `${node.id} failed ${failures} health checks (${config.healthRetries} tolerated): ${check.reason}`,
          { details: { nodeId: node.id, failures } },
        );
    }
    await clock.sleep(config.healthRetryIntervalMs, ctx.signal);
  }
}

/**
 * One recorded health check. A call that fails counts as an unhealthy answer, except UNREACHABLE
 * (the node itself is gone, not its services) and the deadline of the run, which are thrown.
 */
export async function checkHealth(
  ctx: FlowContext,
  node: NodeClient,
  version: string | null,
): Promise<{ ok: boolean; reason: string; answer: HealthAnswer | null }> {
  const started = ctx.clock.now();
  let answer: HealthAnswer | null = null;
  let failure: UpgradeError | null = null;
  try {
    answer = await ctx.nodes.call(node, 'health', {}, ctx.signal);
  } catch (error) {
    if (ctx.signal.aborted || isUpgradeError(error, 'UNREACHABLE')) throw error;
    failure = isUpgradeError(error) ? error : new UpgradeError('INTERNAL', 'health check failed');
  }
  const reason =
    failure !== null
      ? `${failure.code}: ${failure.message}`
      : unhealthyReason(answer as HealthAnswer, version);
  const ok = reason === null;
  await ctx.rec.write('health check', () =>
    ctx.audit.healthCheck({
      taskId: ctx.rec.task.id,
      nodeId: node.id,
      ok,
      details:
        answer !== null
          ? { ...answer, ...(reason === null ? {} : { reason }) }
          : { error: failure?.code ?? 'INTERNAL', reason },
      durationMs: ctx.clock.now() - started,
      at: new Date(ctx.clock.now()),
    }),
  );
  return { ok, reason: reason ?? 'healthy', answer };
}

/** Why an answer is not healthy, or null when it is. */
export function unhealthyReason(answer: HealthAnswer, version: string | null): string | null {
  const problems: string[] = [];
  if (!answer.database.ok) problems.push(`database ${answer.database.detail ?? 'down'}`);
  for (const p of answer.ports)
    if (!p.ok) problems.push(`${p.service} port ${p.port} ${p.detail ?? 'not answering'}`);
  if (!answer.keepalived.ok) problems.push(`keepalived ${answer.keepalived.state}`);
  if (!answer.http.ok) problems.push(`http /health ${answer.http.status ?? 'no answer'}`);
  if (problems.length === 0 && !answer.ok) problems.push('agent reports unhealthy');
  if (problems.length === 0 && version !== null && answer.version !== version)
    problems.push(`reports version ${answer.version ?? 'none'}, expected ${version}`);
  return problems.length === 0 ? null : problems.join('; ');
}
