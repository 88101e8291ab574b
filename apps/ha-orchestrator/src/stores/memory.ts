// Memory implementations of the task, audit trail and upgrade_config ports: the fast tests and
// the demo run on them, and the same contract suite holds them to the PostgreSQL store.
// Everything handed in or out is copied, so a caller can never change stored rows in place.
import { UpgradeError, systemClock, type Clock } from '@upgrade/core';
import {
  DEFAULT_LOG_SOURCE,
  DEFAULT_FLOW_CONFIG,
  FINAL_STATES,
  flowConfigValueProblem,
  type AuditTrail,
  type BackupRecord,
  type ConfigSyncRecord,
  type HealthCheckRecord,
  type LogLevel,
  type LogRecord,
  type NewTask,
  type PageResult,
  type RsyncStatusRecord,
  type StepRecord,
  type TaskJournal,
  type TaskPatch,
  type TaskStore,
  type FlowConfig,
  type UpgradeConfigStore,
  type UpgradeTask,
  type VipSwitchRecord,
} from '../ports.js';

export interface MemoryStoreOptions {
  /** Stamps `createdAt` of new tasks. Default: the system clock. */
  clock?: Clock;
}

/** upgrade_task in memory: at most one task outside a final state, like the partial unique index. */
export function createMemoryTaskStore(options: MemoryStoreOptions = {}): TaskStore {
  const clock = options.clock ?? systemClock;
  // Insertion order breaks ties between tasks created in the same millisecond.
  const rows = new Map<
    string,
    { task: UpgradeTask; seq: number; lease: Lease | null; journal: TaskJournal | null }
  >();
  let seq = 0;
  const isActive = (task: UpgradeTask): boolean => !FINAL_STATES.includes(task.state);

  return {
    async create(input: NewTask) {
      if (rows.has(input.id)) throw new UpgradeError('CONFLICT', `task ${input.id} already exists`);
      const running = [...rows.values()].find((r) => isActive(r.task));
      if (running !== undefined)
        throw new UpgradeError(
          'CONFLICT',
          `task ${running.task.id} is still ${running.task.state}; wait for it to end or cancel it`,
          { details: { activeTaskId: running.task.id } },
        );
      const task: UpgradeTask = {
        id: input.id,
        state: 'IDLE',
        fromVersion: null,
        toVersion: input.toVersion,
        packageSha256: input.packageSha256,
        primaryBefore: null,
        primaryAfter: null,
        percent: 0,
        currentStep: null,
        lastMessage: null,
        error: null,
        downtimeMs: null,
        createdAt: new Date(clock.now()),
        startedAt: null,
        finishedAt: null,
        cancelRequestedAt: null,
        cancelReason: null,
        requestedBy: input.requestedBy,
      };
      const lease =
        input.lease === undefined
          ? null
          : { owner: input.lease.owner, expiresAt: clock.now() + input.lease.ttlMs };
      rows.set(task.id, { task, seq: seq++, lease, journal: null });
      return copyTask(task);
    },
    async get(id) {
      const row = rows.get(id);
      return row === undefined ? null : copyTask(row.task);
    },
    async list(page) {
      const sorted = [...rows.values()].sort(
        (a, b) => b.task.createdAt.getTime() - a.task.createdAt.getTime() || b.seq - a.seq,
      );
      return {
        items: sorted.slice(page.offset, page.offset + page.limit).map((r) => copyTask(r.task)),
        total: sorted.length,
      };
    },
    async update(id, patch: TaskPatch) {
      const row = rows.get(id);
      if (row === undefined) throw new UpgradeError('NOT_FOUND', `task ${id} does not exist`);
      const defined: TaskPatch = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      // As the error_step column: a missing step reads back as null.
      if (defined.error) defined.error = { ...defined.error, step: defined.error.step ?? null };
      row.task = copyTask({ ...row.task, ...defined });
      return copyTask(row.task);
    },
    async active() {
      const row = [...rows.values()].find((r) => isActive(r.task));
      return row === undefined ? null : copyTask(row.task);
    },
    async claimLease(id, { owner, ttlMs }) {
      const row = rows.get(id);
      if (row === undefined || !isActive(row.task)) return false;
      const now = clock.now();
      if (row.lease !== null && row.lease.owner !== owner && row.lease.expiresAt > now) return false;
      row.lease = { owner, expiresAt: now + ttlMs };
      return true;
    },
    async renewLease(id, { owner, ttlMs }) {
      const row = rows.get(id);
      if (row?.lease?.owner !== owner) return false;
      row.lease = { owner, expiresAt: clock.now() + ttlMs };
      return true;
    },
    async releaseLease(id, owner) {
      const row = rows.get(id);
      if (row?.lease?.owner === owner) row.lease = null;
    },
    async writeJournal(id, journal) {
      const row = rows.get(id);
      if (row === undefined) throw new UpgradeError('NOT_FOUND', `task ${id} does not exist`);
      row.journal = structuredClone(journal);
    },
    async readJournal(id) {
      const journal = rows.get(id)?.journal ?? null;
      return journal === null ? null : structuredClone(journal);
    },
  };
}

interface Lease {
  owner: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** The append-only audit tables in memory. */
export function createMemoryAuditTrail(): AuditTrail {
  let seq = 0;
  const steps: { record: StepRecord; seq: number }[] = [];
  const logs: { record: LogRecord; seq: number }[] = [];
  const backups: BackupRecord[] = [];
  const vipSwitches: VipSwitchRecord[] = [];
  const healthChecks: HealthCheckRecord[] = [];
  const rsyncs: RsyncStatusRecord[] = [];
  const configSyncs: ConfigSyncRecord[] = [];

  return {
    async step(record) {
      steps.push({ record: structuredClone(record), seq: seq++ });
    },
    async log(record) {
      const stored = { ...structuredClone(record), source: record.source ?? DEFAULT_LOG_SOURCE };
      logs.push({ record: stored, seq: seq++ });
    },
    async backup(record) {
      backups.push(structuredClone(record));
    },
    async vipSwitch(record) {
      vipSwitches.push(structuredClone(record));
    },
    async healthCheck(record) {
      healthChecks.push(structuredClone(record));
    },
    async rsync(record) {
      rsyncs.push(structuredClone(record));
    },
    async configSync(record) {
      configSyncs.push(structuredClone(record));
    },
    async backups(taskId) {
      return backups.filter((b) => b.taskId === taskId).map((b) => structuredClone(b));
    },
    async logs(taskId, query: { level?: LogLevel; limit: number; offset: number }) {
      const matching = logs
        .filter(
          (l) => l.record.taskId === taskId && (query.level === undefined || l.record.level === query.level),
        )
        .sort((a, b) => b.record.at.getTime() - a.record.at.getTime() || b.seq - a.seq);
      const page: PageResult<LogRecord> = {
        items: matching.slice(query.offset, query.offset + query.limit).map((l) => structuredClone(l.record)),
        total: matching.length,
      };
      return page;
    },
    async steps(taskId) {
      return steps
        .filter((s) => s.record.taskId === taskId)
        .sort((a, b) => a.record.at.getTime() - b.record.at.getTime() || a.seq - b.seq)
        .map((s) => structuredClone(s.record));
    },
  };
}

/** upgrade_config in memory: the defaults until a patch is set; a bad value is refused like in PostgreSQL. */
export function createMemoryConfigStore(initial: Partial<FlowConfig> = {}): UpgradeConfigStore {
  let config: FlowConfig = { ...DEFAULT_FLOW_CONFIG, ...definedOnly(initial) };
  return {
    async get() {
      return { ...config };
    },
    async set(patch) {
      const defined = definedOnly(patch);
      for (const [key, value] of Object.entries(defined) as [keyof FlowConfig, number][]) {
        const problem = flowConfigValueProblem(key, value);
        if (problem !== undefined) throw new UpgradeError('VALIDATION_FAILED', problem);
      }
      config = { ...config, ...defined };
      return { ...config };
    },
  };
}

/** The three memory stores together, sharing one clock. */
export function createMemoryStores(options: MemoryStoreOptions & { config?: Partial<FlowConfig> } = {}): {
  tasks: TaskStore;
  audit: AuditTrail;
  config: UpgradeConfigStore;
} {
  return {
    tasks: createMemoryTaskStore(options),
    audit: createMemoryAuditTrail(),
    config: createMemoryConfigStore(options.config),
  };
}

function copyTask(task: UpgradeTask): UpgradeTask {
  return structuredClone(task);
}

function definedOnly<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
}
