// Ports of the rolling upgrade. The flow (rolling-upgrade.ts) sees nodes only through NodeClient:
// the SSH transport (adapters/ssh-node-client.ts, running the node agent) and the in-process fake
// nodes (tests, demo) implement it, and the two-node lab uses the SSH one unchanged.
import type { AgentOp, ArgsOf, BackupFile, ResultOf } from './agent/protocol.js';

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

// ---------------------------------------------------------------------------------------------
// The task and its audit trail. rolling-upgrade.ts writes through these ports; the PostgreSQL
// store (adapters/pg-store.ts, PGlite when DATABASE_URL is unset) and the memory store used by
// the fast tests implement them. Every write is awaited: a step is not taken before it is recorded.

/** The 13 states of an upgrade task. */
export const HA_STATES = [
  'IDLE',
  'PREPARE',
  'BACKUP',
  'UPGRADE_BACKUP',
  'VIP_SWITCH',
  'UPGRADE_MASTER',
  'VERIFY',
  'COMPLETE',
  'ROLLBACK',
  'CANCELLED',
  'FAILED',
  'TIMEOUT',
  'UNREACHABLE',
] as const;
export type HaState = (typeof HA_STATES)[number];

/** States a task never leaves (a new upgrade may start). */
export const FINAL_STATES: readonly HaState[] = ['COMPLETE', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE'];

export type LogLevel = 'INFO' | 'WARNING' | 'ERROR';

/** The `source` of a log line written by the flow itself. */
export const DEFAULT_LOG_SOURCE = 'orchestrator';

/** Timeouts and health parameters, from the `upgrade_config` table (defaults in parentheses). */
export interface UpgradeConfig {
  /** Whole upgrade (15 min). */
  upgradeTimeoutMs: number;
  /** VIP must have moved within this (30 s). */
  vipSwitchTimeoutMs: number;
  /** VIP switch attempts after the first (2). */
  vipSwitchRetries: number;
  /** One health check call (30 s). */
  healthCheckTimeoutMs: number;
  /** Failed checks tolerated before giving up (3), spaced by healthRetryIntervalMs (10 s). */
  healthRetries: number;
  healthRetryIntervalMs: number;
  /** Consecutive healthy checks a node needs after its upgrade (3). */
  healthyChecksRequired: number;
  /** Backups kept per node (1). */
  backupRetention: number;
  /** Replication must be in sync within this before services stop (60 s). */
  replicationTimeoutMs: number;
}

export const DEFAULT_UPGRADE_CONFIG: UpgradeConfig = {
  upgradeTimeoutMs: 15 * 60_000,
  vipSwitchTimeoutMs: 30_000,
  vipSwitchRetries: 2,
  healthCheckTimeoutMs: 30_000,
  healthRetries: 3,
  healthRetryIntervalMs: 10_000,
  healthyChecksRequired: 3,
  backupRetention: 1,
  replicationTimeoutMs: 60_000,
};

/**
 * Replication bounds, backup space and who moves the database primary. Part of the upgrade
 * parameters like the rest (upgrade_config columns since migration 0002); a caller that passes
 * the flow only an UpgradeConfig gets their defaults (resolveFlowConfig).
 */
export interface SafetySettings {
  /**
   * "In sync" means: a standby streams from the primary (seen on both sides) and its replay is at
   * most this many bytes (16 MiB) and this many milliseconds (10 s) behind. The pre-checks refuse
   * to start beyond these; every later replication step waits for them.
   */
  replicationMaxLagBytes: number;
  replicationMaxLagMs: number;
  /** Free space each node keeps in its backup dir beyond the backup's estimated size (256 MiB). */
  backupSpaceMarginBytes: number;
  /**
   * 1 (default): the orchestrator moves the database primary with the VIP (planned switchover).
   * 0: the database is managed elsewhere; the orchestrator only verifies replication.
   */
  databaseSwitchover: number;
}

export const DEFAULT_SAFETY_SETTINGS: SafetySettings = {
  replicationMaxLagBytes: 16 * 1024 * 1024,
  replicationMaxLagMs: 10_000,
  backupSpaceMarginBytes: 256 * 1024 * 1024,
  databaseSwitchover: 1,
};

/** Every parameter the flow reads: what the upgrade_config store holds. */
export type FlowConfig = UpgradeConfig & SafetySettings;

export const DEFAULT_FLOW_CONFIG: FlowConfig = { ...DEFAULT_UPGRADE_CONFIG, ...DEFAULT_SAFETY_SETTINGS };

/** The largest value of an integer column (the timeouts and counts of upgrade_config). */
const INT4_MAX = 2_147_483_647;

/** Parameters that must be > 0 (a zero bound or margin would refuse every upgrade or none). */
const POSITIVE_KEYS: ReadonlySet<keyof FlowConfig> = new Set<keyof FlowConfig>([
  'replicationMaxLagBytes',
  'replicationMaxLagMs',
  'backupSpaceMarginBytes',
]);

/**
 * Why `value` cannot be stored as parameter `key`, or undefined when it can: databaseSwitchover
 * is 0 or 1, the lag bounds and the backup margin are whole numbers > 0 (up to
 * Number.MAX_SAFE_INTEGER), every other parameter a whole number from 0 to 2147483647 (its column).
 *
 * @example flowConfigValueProblem('databaseSwitchover', 2) // 'databaseSwitchover must be 0 or 1, got 2'
 */
export function flowConfigValueProblem(key: keyof FlowConfig, value: number): string | undefined {
  if (key === 'databaseSwitchover')
    return value === 0 || value === 1 ? undefined : `${key} must be 0 or 1, got ${value}`;
  if (POSITIVE_KEYS.has(key))
    return Number.isSafeInteger(value) && value > 0
      ? undefined
      : `${key} must be a whole number > 0, got ${value}`;
  return Number.isInteger(value) && value >= 0 && value <= INT4_MAX
    ? undefined
    : `${key} must be a whole number from 0 to ${INT4_MAX}, got ${value}`;
}

/** The parameters as given, with every missing or non-numeric value set to its default. */
export function resolveFlowConfig(config: Partial<FlowConfig>): FlowConfig {
  const resolved = { ...DEFAULT_FLOW_CONFIG };
  for (const key of Object.keys(DEFAULT_FLOW_CONFIG) as (keyof FlowConfig)[]) {
    const value = config[key];
    if (typeof value === 'number' && Number.isFinite(value)) resolved[key] = value;
  }
  return resolved;
}

export interface SchemaScript {
  path: string;
  sha256: string;
  /**
   * `content`: the rollback script's text when it is small enough to keep in the task's journal
   * (MAX_JOURNALLED_SCRIPT_BYTES), so undoing it never depends on WORK_DIR surviving a reboot.
   */
  rollback: { path: string; sha256: string; content?: string };
}

/** What the unpacked upload holds (see package.ts). */
export interface UpgradePackage {
  version: string;
  /** Local path of the jar in the task's temp dir, and its SHA-256. */
  jarPath: string;
  jarSha256: string;
  /**
   * Schema-change scripts in the order they run (may be empty), each with the script that undoes
   * it (expand/contract: the rollback keeps every row written meanwhile).
   */
  schemaScripts: SchemaScript[];
  /** SHA-256 of the uploaded package file as received. */
  packageSha256: string;
  /** Temp dir holding the unpacked files; removed when the task ends. */
  workDir: string;
}

export interface TaskError {
  code: string;
  message: string;
  /** The step that failed (e.g. `standby.replication`), when the error came from one. */
  step?: string | null;
}

export interface UpgradeTask {
  id: string;
  state: HaState;
  fromVersion: string | null;
  toVersion: string;
  packageSha256: string;
  /** Node ids: who held the VIP and the database primary when the task started / at the end. */
  primaryBefore: string | null;
  primaryAfter: string | null;
  /** 0-100. */
  percent: number;
  /** Step running or last finished (e.g. `standby.install`). */
  currentStep: string | null;
  lastMessage: string | null;
  error: TaskError | null;
  /** Longest time no node served (measured by the flow), once known. */
  downtimeMs: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  cancelRequestedAt: Date | null;
  cancelReason: string | null;
  /** Who asked (API client id / address). */
  requestedBy: string | null;
}

export interface NewTask {
  id: string;
  toVersion: string;
  packageSha256: string;
  requestedBy: string | null;
  /** Created leased to the instance that will run it, so no other instance takes it over meanwhile. */
  lease?: LeaseRequest;
}

/**
 * What a run changed on the pair, written to the task store before each change is made, so a
 * restarted orchestrator can undo it: nodes by id, everything plain JSON.
 */
export interface TaskJournal {
  fromVersion: string | null;
  /** Node that held the VIP at the start. */
  primary: string | null;
  databasePrimary: string | null;
  /** Node the run last saw holding the VIP. */
  vipHolder: string | null;
  /** keepalived priorities at the start, by node id. */
  priorities: Record<string, number>;
  /** backupId by node id. */
  backups: Record<string, string>;
  /** Nodes that may hold staged files of the task. */
  staged: string[];
  /** The agent's services the run stops and starts, in start order. */
  services: string[];
  /** Oldest first; undone from the end. */
  changes: JournalChange[];
  /**
   * The package being installed, for finishing the upgrade forward after a restart: its jar on this
   * host (WORK_DIR) and checksum. Absent in journals written before it was recorded.
   */
  package?: { version: string; jarPath: string; jarSha256: string };
  /** Downtime intervals measured so far (epoch ms), so a finished-forward task reports them all. */
  downtime?: { reason: string; from: number; to: number }[];
}

export type JournalChange =
  | { kind: 'rsync'; node: string }
  | { kind: 'config_lock'; node: string }
  /**
   * A schema script (about to be) applied; undone by its rollback script (`localPath` on this host,
   * staged as `stagedName`). `content` is the rollback script itself (UTF-8, when small enough), so
   * the undo does not depend on WORK_DIR surviving a reboot.
   */
  | { kind: 'schema'; index: number; stagedName: string; localPath: string; sha256: string; content?: string }
  | { kind: 'software'; node: string; role: 'standby' | 'master' }
  | { kind: 'vip'; from: string; to: string; high: number; low: number }
  | { kind: 'db_fence'; node: string }
  | { kind: 'db_promote'; from: string; to: string };

/** The code of the error a task is failed with when the orchestrator stopped in the middle of it. */
export const INTERRUPTED = 'INTERRUPTED';

/** A claim on a task by one orchestrator instance, valid `ttlMs` from the store's clock. */
export interface LeaseRequest {
  owner: string;
  ttlMs: number;
}

export type TaskPatch = Partial<
  Pick<
    UpgradeTask,
    | 'state'
    | 'fromVersion'
    | 'primaryBefore'
    | 'primaryAfter'
    | 'percent'
    | 'currentStep'
    | 'lastMessage'
    | 'error'
    | 'downtimeMs'
    | 'startedAt'
    | 'finishedAt'
    | 'cancelRequestedAt'
    | 'cancelReason'
  >
>;

export interface PageResult<T> {
  items: T[];
  total: number;
}

/** upgrade_task. `create` is CONFLICT while another task is not in a final state. */
export interface TaskStore {
  create(task: NewTask): Promise<UpgradeTask>;
  get(id: string): Promise<UpgradeTask | null>;
  /** Newest first. */
  list(page: { limit: number; offset: number }): Promise<PageResult<UpgradeTask>>;
  update(id: string, patch: TaskPatch): Promise<UpgradeTask>;
  /** The task not in a final state, if any (there is at most one). */
  active(): Promise<UpgradeTask | null>;
  /**
   * Leases a task that is not final to `lease.owner` when its lease is free, expired or already
   * that owner's, in one conditional write: of instances racing for it exactly one gets true.
   */
  claimLease(id: string, lease: LeaseRequest): Promise<boolean>;
  /** Extends the owner's lease; false once it is no longer the owner's (another instance took it). */
  renewLease(id: string, lease: LeaseRequest): Promise<boolean>;
  /** Clears the lease if `owner` still holds it. */
  releaseLease(id: string, owner: string): Promise<void>;
  /** Replaces the task's journal (NOT_FOUND for an unknown task). */
  writeJournal(id: string, journal: TaskJournal): Promise<void>;
  /** The task's journal; null when its run recorded none. */
  readJournal(id: string): Promise<TaskJournal | null>;
}

/** One step of the flow (upgrade_progress). */
export interface StepRecord {
  taskId: string;
  /** e.g. `prepare.rsync_pause`, `standby.install`, `vip.switch`, `rollback.restore`. */
  step: string;
  nodeId: string | null;
  status: 'started' | 'succeeded' | 'failed' | 'skipped';
  message: string;
  percent: number;
  at: Date;
  durationMs: number | null;
}

/** One log line of a task (upgrade_history): transitions and messages. */
export interface LogRecord {
  taskId: string;
  level: LogLevel;
  /**
   * Who wrote the line: `orchestrator` (the flow; the default), a node id (a step on that node),
   * `api` (a request, e.g. cancel), `recovery` (start-up after a crash).
   */
  source?: string;
  message: string;
  /** Set for state transitions. */
  fromState: HaState | null;
  toState: HaState | null;
  at: Date;
  details?: Record<string, unknown>;
}

export interface BackupRecord {
  taskId: string;
  nodeId: string;
  backupId: string;
  dir: string;
  files: BackupFile[];
  verified: boolean;
  at: Date;
}

export interface VipSwitchRecord {
  taskId: string;
  fromNode: string;
  toNode: string;
  attempt: number;
  ok: boolean;
  durationMs: number;
  message: string;
  at: Date;
}

export interface HealthCheckRecord {
  taskId: string;
  nodeId: string;
  ok: boolean;
  /** The agent's health answer, as received (no raw errors: the agent gives stable details). */
  details: Record<string, unknown>;
  durationMs: number;
  at: Date;
}

export interface RsyncStatusRecord {
  taskId: string;
  nodeId: string;
  action: 'pause' | 'resume' | 'status';
  paused: boolean;
  ok: boolean;
  message: string;
  at: Date;
}

export interface ConfigSyncRecord {
  taskId: string;
  /** node id -> config digest. */
  digests: Record<string, string>;
  inSync: boolean;
  at: Date;
}

/** Everything a task leaves behind besides its row; each table is append-only. */
export interface AuditTrail {
  step(record: StepRecord): Promise<void>;
  log(record: LogRecord): Promise<void>;
  backup(record: BackupRecord): Promise<void>;
  vipSwitch(record: VipSwitchRecord): Promise<void>;
  healthCheck(record: HealthCheckRecord): Promise<void>;
  rsync(record: RsyncStatusRecord): Promise<void>;
  configSync(record: ConfigSyncRecord): Promise<void>;
  /** Backups of a task (for POST /rollback/{id}). */
  backups(taskId: string): Promise<BackupRecord[]>;
  /** Newest first; `level` filters exactly. */
  logs(
    taskId: string,
    query: { level?: LogLevel; limit: number; offset: number },
  ): Promise<PageResult<LogRecord>>;
  /** Oldest first. */
  steps(taskId: string): Promise<StepRecord[]>;
}

/**
 * upgrade_config: one row of parameters (defaults when absent). `set` refuses a value
 * flowConfigValueProblem names (VALIDATION_FAILED, nothing stored).
 */
export interface UpgradeConfigStore {
  get(): Promise<FlowConfig>;
  set(patch: Partial<FlowConfig>): Promise<FlowConfig>;
}
