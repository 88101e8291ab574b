// The upgrade API: thin routes over the task store, the audit trail, the task runner and restore.
import { randomUUID, type KeyObject } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import { callerOf } from '../auth.js';
import {
  PACKAGE_REJECTIONS,
  compareVersions,
  decodeSignature,
  packageError,
  toUpgradePackage,
  unpackUpgradePackage,
  verifyPackageSignature,
  type UnpackLimits,
} from '../package.js';
import {
  DEFAULT_LOG_SOURCE,
  FINAL_STATES,
  type AuditTrail,
  type StepRecord,
  type TaskStore,
  type UpgradeTask,
} from '../ports.js';
import type { RestoreOptions } from '../restore.js';
import { WORK_PREFIX, type TaskRunner } from '../task-runner.js';
import {
  CancelBody,
  HistoryResponse,
  Level,
  LogsResponse,
  PageQuery,
  ProgressResponse,
  RollbackQuery,
  TaskIdParams,
  TaskView,
  TriggerBody,
  TriggerResponse,
  type TaskViewBody,
} from './schemas.js';
import { setLoggedRequestBody } from './request-log.js';
import { receiveUpload } from './upload.js';

export interface PackageSettings {
  /** Uploads are received and unpacked under here, one `pkg-<task id>` directory each. */
  workDir: string;
  /** Trusted ed25519 public keys. */
  keys: readonly KeyObject[];
  maxPackageBytes: number;
  unpackLimits: UnpackLimits;
}

export interface RoutesDeps {
  tasks: TaskStore;
  audit: Pick<AuditTrail, 'logs' | 'steps'>;
  runner: Pick<TaskRunner, 'start' | 'cancel' | 'lease'>;
  /** restore.ts's `restoreFromBackup` bound to its dependencies. */
  restore: (taskId: string, options?: RestoreOptions) => Promise<UpgradeTask>;
  /** The version each node reports now (null when unknown), for a package's `minFromVersion`. */
  nodeVersions: () => Promise<(string | null)[]>;
  packages: PackageSettings;
  now: () => number;
}

const PREFIX = '/api/v1/upgrade';

export const upgradeRoutes: ServicePlugin<RoutesDeps> = async (app, deps) => {
  app.addSchema(TaskView);
  // A restore runs outside any task state; no upgrade may start on the pair while it does.
  let restoring = false;

  app.post(
    `${PREFIX}/trigger`,
    {
      schema: {
        summary: 'Upload a signed upgrade package and start a rolling upgrade of the pair',
        description:
          'multipart/form-data with the file field `package` (a ZIP holding manifest.json, the jar and the schema scripts) ' +
          'and the text field `signature` (base64 ed25519 over the ZIP bytes). 400 names why a package is refused in ' +
          `\`error.details.reason\` (${PACKAGE_REJECTIONS.join(', ')}); ` +
          '403 a signature no configured key verifies; 409 another task is not final; 413 the upload is too large.',
        tags: ['upgrade'],
        consumes: ['multipart/form-data'],
        body: TriggerBody,
        response: { 201: TriggerResponse, ...errorResponses(400, 401, 403, 409, 413) },
      },
      // The body is a multipart stream read by the handler; the schema above only documents it.
      validatorCompiler: () => () => true,
    },
    async (request, reply) => {
      const active = await deps.tasks.active();
      if (active !== null) throw activeConflict(active);
      if (restoring)
        throw new UpgradeError(
          'CONFLICT',
          'a restore from backup is running; trigger the upgrade once it ended',
        );
      const id = randomUUID();
      const workDir = join(deps.packages.workDir, `${WORK_PREFIX}${id}`);
      await mkdir(workDir, { recursive: true, mode: 0o700 });
      let started = false;
      try {
        const upload = await receiveUpload(request, workDir, deps.packages.maxPackageBytes);
        setLoggedRequestBody(request, {
          package: { size_bytes: upload.sizeBytes, sha256: upload.packageSha256 },
          signature: upload.signature,
        });
        const signature = decodeSignature(upload.signature);
        await verifyPackageSignature(upload.packagePath, signature, deps.packages.keys);
        const unpacked = await unpackUpgradePackage(
          upload.packagePath,
          join(workDir, 'files'),
          deps.packages.unpackLimits,
        );
        await checkMinFromVersion(unpacked.manifest.minFromVersion, deps.nodeVersions);
        const task = await deps.tasks.create({
          id,
          toVersion: unpacked.manifest.version,
          packageSha256: upload.packageSha256,
          requestedBy: callerOf(request) ?? request.ip,
          lease: deps.runner.lease,
        });
        deps.runner.start(task, toUpgradePackage(unpacked, upload.packageSha256, workDir));
        started = true;
        request.log.info({ taskId: id, toVersion: task.toVersion }, 'upgrade task accepted');
        return reply.code(201).send({
          task_id: task.id,
          state: task.state,
          to_version: task.toVersion,
          package_sha256: task.packageSha256,
          progress_url: `${PREFIX}/progress/${task.id}`,
        });
      } finally {
        if (!started) await rm(workDir, { recursive: true, force: true });
      }
    },
  );

  app.get(
    `${PREFIX}/progress/:id`,
    {
      schema: {
        summary: "A task's state, percent, finished steps, last message and estimated completion",
        tags: ['upgrade'],
        params: TaskIdParams,
        response: { 200: ProgressResponse, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const task = await getTask(deps.tasks, request.params.id);
      const steps = await deps.audit.steps(task.id);
      return toProgress(task, steps, deps.now());
    },
  );

  app.post(
    `${PREFIX}/rollback/:id`,
    {
      schema: {
        summary: "Restore both nodes from a task's backups",
        description:
          'Runs the restore to its end and answers with the task. By default a rolling rollback that clients do not ' +
          'notice: the node without the VIP is restored (jar, config, root key) and checked first, the database primary ' +
          'and the VIP move to it, then the other node is restored; for a completed upgrade the schema change is undone ' +
          "by the package's rollback scripts and no row is lost. With `?restore_database=true` the database is also " +
          "replaced from the backup's dump: both nodes are stopped first and writes made since the backup are lost. " +
          '400: the task has no usable backup, or its schema change cannot be undone without the dump; ' +
          '409: another task is running or this one is not final; 500: the restore failed (see the task logs).',
        tags: ['upgrade'],
        params: TaskIdParams,
        querystring: RollbackQuery,
        response: { 200: Type.Ref('UpgradeTask'), ...errorResponses(400, 401, 403, 404, 409, 500) },
      },
    },
    async (request) => {
      request.log.info({ taskId: request.params.id, caller: callerOf(request) }, 'rollback requested');
      if (restoring) throw new UpgradeError('CONFLICT', 'a restore from backup is already running');
      restoring = true;
      try {
        return toTaskView(
          await deps.restore(request.params.id, { restoreDatabase: request.query.restore_database === true }),
        );
      } finally {
        restoring = false;
      }
    },
  );

  app.post(
    `${PREFIX}/cancel/:id`,
    {
      schema: {
        summary: 'Ask a running task to stop at its next safe point',
        description:
          'Answers 200 with the task once the request is recorded (cancel_requested_at and cancel_reason set); the task ' +
          'then stops at its next safe point, rolls back what it changed and ends CANCELLED. 409 when it already ended.',
        tags: ['upgrade'],
        params: TaskIdParams,
        body: CancelBody,
        response: { 200: Type.Ref('UpgradeTask'), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const task = await deps.runner.cancel(request.params.id, request.body.reason, callerOf(request));
      return toTaskView(task);
    },
  );

  app.get(
    `${PREFIX}/history`,
    {
      schema: {
        summary: 'Upgrade tasks, newest first',
        tags: ['upgrade'],
        querystring: PageQuery,
        response: { 200: HistoryResponse, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const { page, page_size: pageSize } = request.query;
      const { items, total } = await deps.tasks.list({ limit: pageSize, offset: (page - 1) * pageSize });
      return { items: items.map(toTaskView), page, page_size: pageSize, total };
    },
  );

  app.get(
    `${PREFIX}/logs/:id`,
    {
      schema: {
        summary: "A task's log lines (state transitions included), newest first",
        tags: ['upgrade'],
        params: TaskIdParams,
        querystring: Type.Intersect([PageQuery, Type.Object({ level: Type.Optional(Level) })]),
        response: { 200: LogsResponse, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const task = await getTask(deps.tasks, request.params.id);
      const { page, page_size: pageSize, level } = request.query;
      const { items, total } = await deps.audit.logs(task.id, {
        ...(level === undefined ? {} : { level }),
        limit: pageSize,
        offset: (page - 1) * pageSize,
      });
      return {
        task_id: task.id,
        items: items.map((l) => ({
          at: l.at.toISOString(),
          level: l.level,
          source: l.source ?? DEFAULT_LOG_SOURCE,
          message: l.message,
          from_state: l.fromState,
          to_state: l.toState,
          details: l.details ?? null,
        })),
        page,
        page_size: pageSize,
        total,
      };
    },
  );
};

async function getTask(tasks: TaskStore, id: string): Promise<UpgradeTask> {
  const task = await tasks.get(id);
  if (task === null)
    throw new UpgradeError(
      'NOT_FOUND',
      `no upgrade task with id ${id}; list tasks with GET ${PREFIX}/history`,
    );
  return task;
}

function activeConflict(active: UpgradeTask): UpgradeError {
  return new UpgradeError(
    'CONFLICT',
    `upgrade task ${active.id} is still in state ${active.state}; wait for it to finish or cancel it first`,
    { details: { activeTaskId: active.id, state: active.state } },
  );
}

async function checkMinFromVersion(
  minFromVersion: string | null,
  nodeVersions: () => Promise<(string | null)[]>,
): Promise<void> {
  if (minFromVersion === null) return;
  // Unknown versions (a node not answering) do not refuse here: the flow's own checks stop an
  // upgrade of an unhealthy pair with a clearer error.
  const older = (await nodeVersions()).filter(
    (v): v is string => v !== null && compareVersions(v, minFromVersion) < 0,
  );
  if (older.length > 0)
    throw packageError(
      'VERSION_TOO_OLD',
      `the package upgrades from ${minFromVersion} or later, but a node runs ${older.join(', ')}; install an intermediate release first`,
      { details: { minFromVersion, nodeVersions: older } },
    );
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function toTaskView(task: UpgradeTask): TaskViewBody {
  return {
    task_id: task.id,
    state: task.state,
    final: FINAL_STATES.includes(task.state),
    percent: Math.round(task.percent),
    current_step: task.currentStep,
    last_message: task.lastMessage,
    error: task.error === null ? null : { ...task.error, step: task.error.step ?? null },
    from_version: task.fromVersion,
    to_version: task.toVersion,
    package_sha256: task.packageSha256,
    primary_before: task.primaryBefore,
    primary_after: task.primaryAfter,
    downtime_ms: task.downtimeMs === null ? null : Math.round(task.downtimeMs),
    created_at: task.createdAt.toISOString(),
    started_at: iso(task.startedAt),
    finished_at: iso(task.finishedAt),
    cancel_requested_at: iso(task.cancelRequestedAt),
    cancel_reason: task.cancelReason,
    requested_by: task.requestedBy,
  };
}

/**
 * The progress view. The estimate extrapolates the elapsed time linearly over the percent done:
 * the flow's percents are weighted by typical step durations, so this is as good as a per-step
 * model and needs no history.
 */
export function toProgress(task: UpgradeTask, steps: readonly StepRecord[], now: number) {
  const final = FINAL_STATES.includes(task.state);
  const start = task.startedAt?.getTime() ?? null;
  const end = final ? (task.finishedAt?.getTime() ?? now) : now;
  const elapsed = start === null ? null : Math.max(0, end - start);
  const estimate =
    final || elapsed === null || task.percent <= 0
      ? null
      : new Date(
          now + Math.round((elapsed * (100 - Math.min(100, task.percent))) / task.percent),
        ).toISOString();
  return {
    ...toTaskView(task),
    finished_steps: steps
      .filter((s) => s.status !== 'started')
      .map((s) => ({
        step: s.step,
        node_id: s.nodeId,
        status: s.status,
        message: s.message,
        percent: Math.round(s.percent),
        at: s.at.toISOString(),
        duration_ms: s.durationMs === null ? null : Math.round(s.durationMs),
      })),
    elapsed_ms: elapsed,
    estimated_completion_at: estimate,
  };
}
