// The ha-orchestrator's tables: one row per upgrade task, append-only audit tables beside it (every
// step, log line, backup, VIP switch, health check, rsync action and config comparison of a task),
// the API request log, and the single row of upgrade parameters.
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { BackupFile } from '../agent/protocol.js';
import type { HaState, LogLevel, RsyncStatusRecord, StepRecord, TaskJournal } from '../ports.js';

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const identity = () => bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity();
const taskRef = () =>
  uuid('task_id')
    .notNull()
    .references(() => upgradeTask.id, { onDelete: 'cascade' });

/** Written out rather than derived from FINAL_STATES: a migration must not change when code does. */
const NOT_FINAL = sql.raw(`state not in ('COMPLETE', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE')`);
const ALL_STATES = sql.raw(
  `state in ('IDLE', 'PREPARE', 'BACKUP', 'UPGRADE_BACKUP', 'VIP_SWITCH', 'UPGRADE_MASTER', 'VERIFY', 'COMPLETE', 'ROLLBACK', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE')`,
);

/** One rolling upgrade of the pair. */
export const upgradeTask = pgTable(
  'upgrade_task',
  {
    id: uuid('id').primaryKey(),
    state: text('state').$type<HaState>().notNull(),
    fromVersion: text('from_version'),
    toVersion: text('to_version').notNull(),
    packageSha256: text('package_sha256').notNull(),
    primaryBefore: text('primary_before'),
    primaryAfter: text('primary_after'),
    percent: smallint('percent').notNull().default(0),
    currentStep: text('current_step'),
    lastMessage: text('last_message'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    /** The step that failed (e.g. `standby.replication`), when the error came from one. */
    errorStep: text('error_step'),
    downtimeMs: integer('downtime_ms'),
    createdAt: timestamptz('created_at').notNull(),
    startedAt: timestamptz('started_at'),
    finishedAt: timestamptz('finished_at'),
    cancelRequestedAt: timestamptz('cancel_requested_at'),
    cancelReason: text('cancel_reason'),
    requestedBy: text('requested_by'),
    /**
     * The orchestrator instance running or reconciling the task, and until when: renewed while it
     * works, cleared when it ends. Another instance takes the task over only once it expired.
     */
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamptz('lease_expires_at'),
    /** What the run changed on the pair, written before each change (rollback after a crash). */
    journal: jsonb('journal').$type<TaskJournal>(),
  },
  (t) => [
    // At most one task that is not final: a second trigger fails here (CONFLICT -> 409), even when
    // two requests race past the API's own check.
    uniqueIndex('upgrade_task_single_active')
      .on(sql`(true)`)
      .where(NOT_FINAL),
    // History pages, newest first (scanned backwards).
    index('upgrade_task_created_at_idx').on(t.createdAt, t.id),
    check('upgrade_task_state_check', ALL_STATES),
    check('upgrade_task_percent_check', sql`${t.percent} between 0 and 100`),
    check('upgrade_task_error_check', sql`(${t.errorCode} is null) = (${t.errorMessage} is null)`),
  ],
);

/** upgrade_history: the task's log lines, state transitions included (from_state / to_state set). */
export const upgradeHistory = pgTable(
  'upgrade_history',
  {
    id: identity(),
    taskId: taskRef(),
    level: text('level').$type<LogLevel>().notNull(),
    /** Who wrote the line: `orchestrator` (the flow), a node id (a step on that node), `api`, `recovery`. */
    source: text('source').notNull().default('orchestrator'),
    message: text('message').notNull(),
    fromState: text('from_state').$type<HaState>(),
    toState: text('to_state').$type<HaState>(),
    at: timestamptz('at').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>(),
  },
  (t) => [
    index('upgrade_history_task_at_idx').on(t.taskId, t.at, t.id),
    index('upgrade_history_task_level_at_idx').on(t.taskId, t.level, t.at, t.id),
    check('upgrade_history_level_check', sql`${t.level} in ('INFO', 'WARNING', 'ERROR')`),
  ],
);

/** upgrade_progress: every step of the flow as it starts and ends. */
export const upgradeProgress = pgTable(
  'upgrade_progress',
  {
    id: identity(),
    taskId: taskRef(),
    step: text('step').notNull(),
    nodeId: text('node_id'),
    status: text('status').$type<StepRecord['status']>().notNull(),
    message: text('message').notNull(),
    percent: smallint('percent').notNull(),
    at: timestamptz('at').notNull(),
    durationMs: integer('duration_ms'),
  },
  (t) => [
    index('upgrade_progress_task_idx').on(t.taskId, t.id),
    check('upgrade_progress_status_check', sql`${t.status} in ('started', 'succeeded', 'failed', 'skipped')`),
  ],
);

/** One backup of one node: where it lives and the MD5 + SHA-256 of each file. */
export const backupRecord = pgTable(
  'backup_record',
  {
    id: identity(),
    taskId: taskRef(),
    nodeId: text('node_id').notNull(),
    backupId: text('backup_id').notNull(),
    dir: text('dir').notNull(),
    files: jsonb('files').$type<BackupFile[]>().notNull(),
    verified: boolean('verified').notNull(),
    at: timestamptz('at').notNull(),
  },
  (t) => [index('backup_record_task_idx').on(t.taskId, t.id)],
);

export const vipSwitchRecord = pgTable(
  'vip_switch_record',
  {
    id: identity(),
    taskId: taskRef(),
    fromNode: text('from_node').notNull(),
    toNode: text('to_node').notNull(),
    attempt: integer('attempt').notNull(),
    ok: boolean('ok').notNull(),
    durationMs: integer('duration_ms').notNull(),
    message: text('message').notNull(),
    at: timestamptz('at').notNull(),
  },
  (t) => [index('vip_switch_record_task_idx').on(t.taskId, t.id)],
);

export const healthCheckRecord = pgTable(
  'health_check_record',
  {
    id: identity(),
    taskId: taskRef(),
    nodeId: text('node_id').notNull(),
    ok: boolean('ok').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull(),
    durationMs: integer('duration_ms').notNull(),
    at: timestamptz('at').notNull(),
  },
  (t) => [index('health_check_record_task_idx').on(t.taskId, t.id)],
);

export const rsyncStatusRecord = pgTable(
  'rsync_status_record',
  {
    id: identity(),
    taskId: taskRef(),
    nodeId: text('node_id').notNull(),
    action: text('action').$type<RsyncStatusRecord['action']>().notNull(),
    paused: boolean('paused').notNull(),
    ok: boolean('ok').notNull(),
    message: text('message').notNull(),
    at: timestamptz('at').notNull(),
  },
  (t) => [
    index('rsync_status_record_task_idx').on(t.taskId, t.id),
    check('rsync_status_record_action_check', sql`${t.action} in ('pause', 'resume', 'status')`),
  ],
);

export const configSyncRecord = pgTable(
  'config_sync_record',
  {
    id: identity(),
    taskId: taskRef(),
    digests: jsonb('digests').$type<Record<string, string>>().notNull(),
    inSync: boolean('in_sync').notNull(),
    at: timestamptz('at').notNull(),
  },
  (t) => [index('config_sync_record_task_idx').on(t.taskId, t.id)],
);

/** Every request to /api/*: who asked what, from where, what they sent and what they were answered. */
export const apiRequestLog = pgTable(
  'api_request_log',
  {
    id: identity(),
    at: timestamptz('at').notNull(),
    requestId: text('request_id').notNull(),
    method: text('method').notNull(),
    /** The route pattern (`/api/v1/upgrade/progress/:id`) or, when no route matched, the path. */
    route: text('route').notNull(),
    /** The path as requested, without its query string. */
    path: text('path').notNull(),
    status: smallint('status').notNull(),
    durationMs: integer('duration_ms').notNull(),
    clientIp: text('client_ip').notNull(),
    /** The name of the API token used; null when none was accepted. */
    caller: text('caller'),
    userAgent: text('user_agent'),
    /** The request body as received, secrets redacted; an upload as its size and SHA-256. */
    requestBody: jsonb('request_body'),
    /** The answer as sent, secrets redacted; a large one as its size and SHA-256. */
    responseBody: jsonb('response_body'),
  },
  (t) => [index('api_request_log_at_idx').on(t.at)],
);

/**
 * upgrade_config: one row (id 1) of upgrade parameters. A null column means "the built-in default"
 * (DEFAULT_FLOW_CONFIG), so a release can improve a default that was never set explicitly.
 */
export const upgradeConfig = pgTable(
  'upgrade_config',
  {
    id: smallint('id').primaryKey().default(1),
    upgradeTimeoutMs: integer('upgrade_timeout_ms'),
    vipSwitchTimeoutMs: integer('vip_switch_timeout_ms'),
    vipSwitchRetries: integer('vip_switch_retries'),
    healthCheckTimeoutMs: integer('health_check_timeout_ms'),
    healthRetries: integer('health_retries'),
    healthRetryIntervalMs: integer('health_retry_interval_ms'),
    healthyChecksRequired: integer('healthy_checks_required'),
    backupRetention: integer('backup_retention'),
    replicationTimeoutMs: integer('replication_timeout_ms'),
    // The safety settings (SafetySettings): byte and ms bounds as bigint, so every value the
    // store accepts (a safe integer) fits; the switchover as boolean (read as 1 / 0).
    replicationMaxLagBytes: bigint('replication_max_lag_bytes', { mode: 'number' }),
    replicationMaxLagMs: bigint('replication_max_lag_ms', { mode: 'number' }),
    backupSpaceMarginBytes: bigint('backup_space_margin_bytes', { mode: 'number' }),
    databaseSwitchover: boolean('database_switchover'),
    updatedAt: timestamptz('updated_at').notNull(),
  },
  (t) => [check('upgrade_config_single_row', sql`${t.id} = 1`)],
);
