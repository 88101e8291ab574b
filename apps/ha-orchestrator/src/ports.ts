// Ports of the rolling upgrade. The flow (rolling-upgrade.ts) sees nodes only through NodeClient:
// the SSH transport (adapters/ssh-node-client.ts, running the node agent) and the in-process fake
// nodes (tests, demo) implement it, and the two-node lab uses the SSH one unchanged.
import type { AgentOp, ArgsOf, ResultOf } from './agent/protocol.js';

export type { AgentOp, ArgsOf, ResultOf } from './agent/protocol.js';

export interface CallOptions {
  /** Deadline for this call, end to end (connect + run + answer). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * One node of the pair. Failures are UpgradeErrors: UNREACHABLE (cannot connect, connection lost,
 * host key mismatch), TIMEOUT (no answer in time), or the code the agent answered with.
 */
export interface NodeClient {
  /** Stable node id from the configuration (e.g. `node-a`). */
  readonly id: string;
  /** Address shown in reports (host:port). */
  readonly address: string;
  call<O extends AgentOp>(op: O, args: ArgsOf<O>, options?: CallOptions): Promise<ResultOf<O>>;
  /**
   * Copies a local file into the agent's staging directory as `stagedName` (a plain file name)
   * and returns its SHA-256 as written on the node.
   */
  putFile(localPath: string, stagedName: string, options?: CallOptions): Promise<{ sha256: string }>;
  /** Drops a reused connection; the next call connects again. */
  close(): Promise<void>;
}

/** The pair as configured: which node starts as primary (holds the VIP and the database primary). */
export interface Cluster {
  nodes: readonly [NodeClient, NodeClient];
  vip: string;
}
