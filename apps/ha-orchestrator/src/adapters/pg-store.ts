// TaskStore, AuditTrail and UpgradeConfigStore on PostgreSQL or PGlite (the same drizzle code on both
// drivers). Read and write only: the rules of the flow live in rolling-upgrade.ts.
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import { translatePgErrors } from '@upgrade/db';
import { and, asc, count, desc, eq, isNull, lte, or, sql } from 'drizzle-orm';
import type { HaDatabase } from '../db/database.js';
import {
  apiRequestLog,
  backupRecord,
  configSyncRecord,
  healthCheckRecord,
  rsyncStatusRecord,
  upgradeConfig,
  upgradeHistory,
  upgradeProgress,
  upgradeTask,
  vipSwitchRecord,
} from '../db/schema.js';
import type { ApiRequestLog, ApiRequestRecord } from '../http/request-log.js';
import {
  DEFAULT_LOG_SOURCE,
  DEFAULT_FLOW_CONFIG,
  flowConfigValueProblem,
  type AuditTrail,
  type BackupRecord,
  type LogRecord,
  type StepRecord,
  type TaskPatch,
  type TaskStore,
  type FlowConfig,
  type UpgradeConfigStore,
  type UpgradeTask,
} from '../ports.js';

type TaskRow = typeof upgradeTask.$inferSelect;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Same predicate as the partial unique index, so the planner can use it. */
const NOT_FINAL = sql.raw(`state not in ('COMPLETE', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE')`);

const taskNotFound = (id: string): UpgradeError =>
  new UpgradeError('NOT_FOUND', `no upgrade task with id ${id}; list tasks with GET /api/v1/upgrade/history`);

/**
 * upgrade_task on drizzle. `create` answers CONFLICT while another task is not final (the partial
 * unique index `upgrade_task_single_active` decides, so two racing triggers cannot both win).
 *
 * @example const tasks = createPgTaskStore(handle.db)
 */
export function createPgTaskStore(db: HaDatabase, now: () => Date = () => new Date()): TaskStore {
  return {
    create: async (task) => {
      try {
        const [row] = await translatePgErrors(() =>
          db
            .insert(upgradeTask)
            .values({
              id: task.id,
              state: 'IDLE',
              toVersion: task.toVersion,
              packageSha256: task.packageSha256,
              requestedBy: task.requestedBy,
              createdAt: now(),
              ...(task.lease === undefined
                ? {}
                : {
                    leaseOwner: task.lease.owner,
                    leaseExpiresAt: new Date(now().getTime() + task.lease.ttlMs),
                  }),
            })
            .returning(),
        );
        return toTask(row as TaskRow);
      } catch (error) {
        if (isUpgradeError(error, 'CONFLICT')) throw await conflictFor(db, task.id, error);
        throw error;
      }
    },

    get: (id) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) return null;
        const [row] = await db.select().from(upgradeTask).where(eq(upgradeTask.id, id));
        return row === undefined ? null : toTask(row);
      }),

    list: ({ limit, offset }) =>
      translatePgErrors(async () => {
        const rows = await db
          .select({ task: upgradeTask, total: sql<number>`count(*) over ()`.mapWith(Number) })
          .from(upgradeTask)
          .orderBy(desc(upgradeTask.createdAt), desc(upgradeTask.id))
          .limit(limit)
          .offset(offset);
        // An offset past the end returns no row and so no window count: count separately then.
        const total =
          rows[0]?.total ?? (offset === 0 ? 0 : await countRows(db.select({ n: count() }).from(upgradeTask)));
        return { items: rows.map((r) => toTask(r.task)), total };
      }),

    update: (id, patch) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) throw taskNotFound(id);
        const set = toRowPatch(patch);
        const query =
          Object.keys(set).length === 0
            ? db.select().from(upgradeTask).where(eq(upgradeTask.id, id))
            : db.update(upgradeTask).set(set).where(eq(upgradeTask.id, id)).returning();
        const [row] = await query;
        if (row === undefined) throw taskNotFound(id);
        return toTask(row);
      }),

    active: () =>
      translatePgErrors(async () => {
        const [row] = await db.select().from(upgradeTask).where(NOT_FINAL).limit(1);
        return row === undefined ? null : toTask(row);
      }),

    // One UPDATE with the whole condition in its WHERE: PostgreSQL re-checks it on the row it
    // locks, so of two instances racing the second sees the first one's lease and updates nothing.
    claimLease: (id, { owner, ttlMs }) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) return false;
        const at = now();
        const rows = await db
          .update(upgradeTask)
          .set({ leaseOwner: owner, leaseExpiresAt: new Date(at.getTime() + ttlMs) })
          .where(
            and(
              eq(upgradeTask.id, id),
              NOT_FINAL,
              or(
                isNull(upgradeTask.leaseOwner),
                eq(upgradeTask.leaseOwner, owner),
                lte(upgradeTask.leaseExpiresAt, at),
              ),
            ),
          )
          .returning({ id: upgradeTask.id });
        return rows.length === 1;
      }),

    renewLease: (id, { owner, ttlMs }) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) return false;
        const rows = await db
          .update(upgradeTask)
          .set({ leaseExpiresAt: new Date(now().getTime() + ttlMs) })
          .where(and(eq(upgradeTask.id, id), eq(upgradeTask.leaseOwner, owner)))
          .returning({ id: upgradeTask.id });
        return rows.length === 1;
      }),

    writeJournal: (id, journal) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) throw taskNotFound(id);
        const rows = await db
          .update(upgradeTask)
          .set({ journal })
          .where(eq(upgradeTask.id, id))
          .returning({ id: upgradeTask.id });
        if (rows.length === 0) throw taskNotFound(id);
      }),

    readJournal: (id) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) return null;
        const [row] = await db
          .select({ journal: upgradeTask.journal })
          .from(upgradeTask)
          .where(eq(upgradeTask.id, id));
        return row?.journal ?? null;
      }),

    releaseLease: (id, owner) =>
      translatePgErrors(async () => {
        if (!UUID.test(id)) return;
        await db
          .update(upgradeTask)
          .set({ leaseOwner: null, leaseExpiresAt: null })
          .where(and(eq(upgradeTask.id, id), eq(upgradeTask.leaseOwner, owner)));
      }),
  };
}

async function conflictFor(db: HaDatabase, id: string, original: UpgradeError): Promise<UpgradeError> {
  const [running] = await db
    .select({ id: upgradeTask.id, state: upgradeTask.state })
    .from(upgradeTask)
    .where(NOT_FINAL);
  if (running !== undefined && running.id !== id) {
    return new UpgradeError(
      'CONFLICT',
      `upgrade task ${running.id} is still in state ${running.state}; wait for it to finish or cancel it first`,
      { details: { activeTaskId: running.id, state: running.state }, cause: original },
    );
  }
  return new UpgradeError('CONFLICT', `an upgrade task with id ${id} already exists`, { cause: original });
}

async function countRows(query: PromiseLike<{ n: number }[]>): Promise<number> {
  const [row] = await query;
  return row?.n ?? 0;
}

function toTask(row: TaskRow): UpgradeTask {
  return {
    id: row.id,
    state: row.state,
    fromVersion: row.fromVersion,
    toVersion: row.toVersion,
    packageSha256: row.packageSha256,
    primaryBefore: row.primaryBefore,
    primaryAfter: row.primaryAfter,
    percent: row.percent,
    currentStep: row.currentStep,
    lastMessage: row.lastMessage,
    error:
      row.errorCode === null
        ? null
        : { code: row.errorCode, message: row.errorMessage ?? row.errorCode, step: row.errorStep },
    downtimeMs: row.downtimeMs,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    cancelRequestedAt: row.cancelRequestedAt,
    cancelReason: row.cancelReason,
    requestedBy: row.requestedBy,
  };
}

function toRowPatch(patch: TaskPatch): Partial<typeof upgradeTask.$inferInsert> {
  const { error, percent, ...rest } = patch;
  const set: Partial<typeof upgradeTask.$inferInsert> = {};
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined) (set as Record<string, unknown>)[key] = value;
  }
  if (percent !== undefined) set.percent = Math.round(Math.min(100, Math.max(0, percent)));
  if (error !== undefined) {
    set.errorCode = error?.code ?? null;
    set.errorMessage = error?.message ?? null;
    set.errorStep = error?.step ?? null;
  }
  return set;
}

/**
 * The audit tables of a task on drizzle: each write is one INSERT, awaited by the flow.
 *
 * @example const audit = createPgAuditTrail(handle.db)
 */
export function createPgAuditTrail(db: HaDatabase): AuditTrail {
  const insert = (fn: () => PromiseLike<unknown>): Promise<void> =>
    translatePgErrors(async () => {
      await fn();
    });
  return {
    step: (r) =>
      insert(() =>
        db.insert(upgradeProgress).values({
          taskId: r.taskId,
          step: r.step,
          nodeId: r.nodeId,
          status: r.status,
          message: r.message,
          percent: Math.round(Math.min(100, Math.max(0, r.percent))),
          at: r.at,
          durationMs: r.durationMs === null ? null : Math.round(r.durationMs),
        }),
      ),
    log: (r) =>
      insert(() =>
        db.insert(upgradeHistory).values({
          taskId: r.taskId,
          level: r.level,
          source: r.source ?? DEFAULT_LOG_SOURCE,
          message: r.message,
          fromState: r.fromState,
          toState: r.toState,
          at: r.at,
          details: r.details ?? null,
        }),
      ),
    backup: (r) =>
      insert(() =>
        db.insert(backupRecord).values({
          taskId: r.taskId,
          nodeId: r.nodeId,
          backupId: r.backupId,
          dir: r.dir,
          files: r.files,
          verified: r.verified,
          at: r.at,
        }),
      ),
    vipSwitch: (r) =>
      insert(() => db.insert(vipSwitchRecord).values({ ...r, durationMs: Math.round(r.durationMs) })),
    healthCheck: (r) =>
      insert(() => db.insert(healthCheckRecord).values({ ...r, durationMs: Math.round(r.durationMs) })),
    rsync: (r) => insert(() => db.insert(rsyncStatusRecord).values(r)),
    configSync: (r) => insert(() => db.insert(configSyncRecord).values(r)),

    backups: (taskId) =>
      translatePgErrors(async () => {
        if (!UUID.test(taskId)) return [];
        const rows = await db
          .select()
          .from(backupRecord)
          .where(eq(backupRecord.taskId, taskId))
          .orderBy(asc(backupRecord.id));
        return rows.map((row): BackupRecord => ({
          taskId: row.taskId,
          nodeId: row.nodeId,
          backupId: row.backupId,
          dir: row.dir,
          files: row.files,
          verified: row.verified,
          at: row.at,
        }));
      }),

    logs: (taskId, { level, limit, offset }) =>
      translatePgErrors(async () => {
        if (!UUID.test(taskId)) return { items: [], total: 0 };
        const where =
          level === undefined
            ? eq(upgradeHistory.taskId, taskId)
            : and(eq(upgradeHistory.taskId, taskId), eq(upgradeHistory.level, level));
        const rows = await db
          .select({ log: upgradeHistory, total: sql<number>`count(*) over ()`.mapWith(Number) })
          .from(upgradeHistory)
          .where(where)
          .orderBy(desc(upgradeHistory.at), desc(upgradeHistory.id))
          .limit(limit)
          .offset(offset);
        const total =
          rows[0]?.total ??
          (offset === 0 ? 0 : await countRows(db.select({ n: count() }).from(upgradeHistory).where(where)));
        return {
          items: rows.map(({ log }): LogRecord => ({
            taskId: log.taskId,
            level: log.level,
            source: log.source,
            message: log.message,
            fromState: log.fromState,
            toState: log.toState,
            at: log.at,
            ...(log.details === null ? {} : { details: log.details }),
          })),
          total,
        };
      }),

    steps: (taskId) =>
      translatePgErrors(async () => {
        if (!UUID.test(taskId)) return [];
        const rows = await db
          .select()
          .from(upgradeProgress)
          .where(eq(upgradeProgress.taskId, taskId))
          .orderBy(asc(upgradeProgress.at), asc(upgradeProgress.id));
        return rows.map((row): StepRecord => ({
          taskId: row.taskId,
          step: row.step,
          nodeId: row.nodeId,
          status: row.status,
          message: row.message,
          percent: row.percent,
          at: row.at,
          durationMs: row.durationMs,
        }));
      }),
  };
}

const CONFIG_ROW = 1;
const CONFIG_KEYS = Object.keys(DEFAULT_FLOW_CONFIG) as (keyof FlowConfig)[];

type ConfigRow = typeof upgradeConfig.$inferSelect;
type ConfigColumns = Partial<Omit<ConfigRow, 'id' | 'updatedAt'>>;

/** A stored column as the parameter (databaseSwitchover's boolean as 1 / 0); null when unset. */
function fromColumn(row: ConfigRow, key: keyof FlowConfig): number | null {
  if (key === 'databaseSwitchover')
    return row.databaseSwitchover === null ? null : Number(row.databaseSwitchover);
  return row[key];
}

/**
 * upgrade_config on drizzle: one row; a column left null (or no row at all) reads as the default.
 * Every value of a patch is checked (flowConfigValueProblem) before anything is written.
 *
 * @example await createPgUpgradeConfigStore(handle.db).set({ vipSwitchTimeoutMs: 45_000 })
 */
export function createPgUpgradeConfigStore(
  db: HaDatabase,
  now: () => Date = () => new Date(),
): UpgradeConfigStore {
  const read = async (): Promise<FlowConfig> => {
    const [row] = await db.select().from(upgradeConfig).where(eq(upgradeConfig.id, CONFIG_ROW));
    const config = { ...DEFAULT_FLOW_CONFIG };
    if (row !== undefined) {
      for (const key of CONFIG_KEYS) {
        const value = fromColumn(row, key);
        if (value !== null) config[key] = value;
      }
    }
    return config;
  };
  return {
    get: () => translatePgErrors(read),
    set: (patch) =>
      translatePgErrors(async () => {
        const values: ConfigColumns = {};
        for (const key of CONFIG_KEYS) {
          const value = patch[key];
          if (value === undefined) continue;
          const problem = flowConfigValueProblem(key, value);
          if (problem !== undefined) throw new UpgradeError('VALIDATION_FAILED', problem);
          if (key === 'databaseSwitchover') values.databaseSwitchover = value === 1;
          else values[key] = value;
        }
        const updatedAt = now();
        await db
          .insert(upgradeConfig)
          .values({ id: CONFIG_ROW, ...values, updatedAt })
          .onConflictDoUpdate({ target: upgradeConfig.id, set: { ...values, updatedAt } });
        return read();
      }),
  };
}

/** api_request_log on drizzle. */
export function createPgApiRequestLog(db: HaDatabase): ApiRequestLog {
  return {
    record: (r: ApiRequestRecord) =>
      translatePgErrors(async () => {
        await db.insert(apiRequestLog).values({ ...r, durationMs: Math.round(r.durationMs) });
      }),
  };
}
