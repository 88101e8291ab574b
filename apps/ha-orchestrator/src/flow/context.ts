// What every step of a run shares: the pair, the parameters, the recorder, the downtime meter,
// the deadline signal of the current phase, and node calls with their timeouts. A node that
// answers UNREACHABLE once is remembered as such, so the rollback can skip it and say so.
import { UpgradeError, abortError, describeError, isUpgradeError, type Clock } from '@upgrade/core';
import {
  resolveFlowConfig,
  type AgentOp,
  type ArgsOf,
  type AuditTrail,
  type Cluster,
  type FlowConfig,
  type NodeClient,
  type ResultOf,
  type SafetySettings,
  type UpgradeConfig,
} from '../ports.js';
import { DowntimeMeter } from './downtime.js';
import type { TaskRecorder } from './recorder.js';

/**
 * Operations that only read or flip a setting: bounded by healthCheckTimeoutMs each. The others
 * (backups, installs, schema changes, service stop/start, file copies) take as long as the jar,
 * the database or the service needs, and are bounded only by the deadline of the whole run.
 */
const QUICK_OPS: ReadonlySet<AgentOp> = new Set<AgentOp>([
  'health',
  'keepalived.set_priority',
  'keepalived.status',
  'rsync.pause',
  'rsync.resume',
  'rsync.status',
  'config.checksums',
  'config.lock',
  'config.unlock',
  'service.status',
  'replication.status',
  'backup.space',
  'staging.clean',
]);

export interface FlowContext {
  readonly cluster: Cluster;
  readonly config: FlowConfig;
  readonly clock: Clock;
  readonly rec: TaskRecorder;
  readonly audit: AuditTrail;
  readonly nodes: NodeCalls;
  readonly meter: DowntimeMeter;
  /** Aborts at the deadline of the current phase (the run, or the rollback after it). */
  readonly signal: AbortSignal;
  /** Names of the agent's services, in start order. */
  services: readonly string[];
}

/** What a flow context is built from: the parts of UpgradeDeps every phase uses. */
export interface FlowDeps {
  readonly cluster: Cluster;
  /** The upgrade parameters; safety settings a store does not hold yet take their defaults. */
  readonly config: UpgradeConfig & Partial<SafetySettings>;
  readonly clock: Clock;
  readonly audit: AuditTrail;
  readonly services?: readonly string[];
}

/** A fresh context for one run (upgrade or restore): its own node bookkeeping and downtime meter. */
export function createFlowContext(deps: FlowDeps, rec: TaskRecorder, signal: AbortSignal): FlowContext {
  const config = resolveFlowConfig(deps.config);
  return {
    cluster: deps.cluster,
    config,
    clock: deps.clock,
    rec,
    audit: deps.audit,
    nodes: new NodeCalls(config),
    meter: new DowntimeMeter(deps.clock),
    signal,
    services: deps.services ?? [],
  };
}

export class NodeCalls {
  private readonly lost = new Set<string>();

  constructor(private readonly config: UpgradeConfig) {}

  /** Calls `op` on `node`; any failure comes out as an UpgradeError. */
  async call<O extends AgentOp>(
    node: NodeClient,
    op: O,
    args: ArgsOf<O>,
    signal: AbortSignal,
    timeoutMs?: number,
  ): Promise<ResultOf<O>> {
    if (signal.aborted) throw abortError(signal);
    const timeout = timeoutMs ?? (QUICK_OPS.has(op) ? this.config.healthCheckTimeoutMs : undefined);
    try {
      return await node.call(op, args, timeout === undefined ? { signal } : { signal, timeoutMs: timeout });
    } catch (error) {
      throw this.seen(node, error, signal, `${op} on ${node.id}`);
    }
  }

  async putFile(
    node: NodeClient,
    localPath: string,
    stagedName: string,
    signal: AbortSignal,
  ): Promise<{ sha256: string }> {
    if (signal.aborted) throw abortError(signal);
    try {
      return await node.putFile(localPath, stagedName, { signal });
    } catch (error) {
      throw this.seen(node, error, signal, `copying ${stagedName} to ${node.id}`);
    }
  }

  isUnreachable(node: NodeClient): boolean {
    return this.lost.has(node.id);
  }

  markUnreachable(node: NodeClient): void {
    this.lost.add(node.id);
  }

  get unreachable(): string[] {
    return [...this.lost];
  }

  private seen(node: NodeClient, error: unknown, signal: AbortSignal, what: string): UpgradeError {
    if (signal.aborted) return abortError(signal);
    const failure = isUpgradeError(error)
      ? error
      : new UpgradeError('INTERNAL', `${what} failed: ${describeError(error)}`, { cause: error });
    if (failure.code === 'UNREACHABLE') this.lost.add(node.id);
    return failure;
  }
}

/** A deadline on the clock: `signal` aborts with a TIMEOUT UpgradeError after `ms`. */
export function startDeadline(clock: Clock, ms: number, what: string): { signal: AbortSignal; stop(): void } {
  const controller = new AbortController();
  const stopper = new AbortController();
  clock.sleep(ms, stopper.signal).then(
    () =>
      controller.abort(
        new UpgradeError('TIMEOUT', `${what} did not finish within ${ms} ms`, { details: { timeoutMs: ms } }),
      ),
    () => undefined,
  );
  return { signal: controller.signal, stop: () => stopper.abort() };
}

/** The other node of the pair. */
export function peerOf(cluster: Cluster, node: NodeClient): NodeClient {
  return cluster.nodes[0].id === node.id ? cluster.nodes[1] : cluster.nodes[0];
}

export function nodeById(cluster: Cluster, id: string | null): NodeClient | null {
  return cluster.nodes.find((n) => n.id === id) ?? null;
}
