// Runs accepted upgrade tasks in the background, one at a time, each with its own AbortController
// so a cancel request reaches the flow, which stops at its next safe point.
//
// Start-up after a crash: a task left in a working state (or in ROLLBACK) is reconciled from the
// journal its run wrote before each change (`reconcile`, rolling-upgrade.ts `recoverInterrupted`):
// past the VIP switch it is finished forward when the pair and the package allow it (COMPLETE),
// otherwise rolled back (FAILED with INTERRUPTED, ROLLBACK_FAILED when something could not be
// undone). Steps are never replayed blindly: the pair is inspected first, and the steps that run
// again (the former primary's install, the checks) are safe to repeat. A task without a journal
// (it stopped before changing anything, or no `reconcile` is given) is only marked FAILED with a
// message saying what to check by hand.
//
// Leases: the instance running a task holds a lease on it in the task store (created with it,
// renewed every `leaseRenewMs`, released when the run ends). `recover` takes over only a task whose
// lease is free or expired, by one conditional write (waiting up to one TTL for a held lease), so
// with two instances on one database a task another instance still runs is left alone and a
// crashed one is recovered by exactly one.
import { randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UpgradeError, describeError, type Clock } from '@upgrade/core';
import { WORKING_STATES } from './machine.js';
import {
  DEFAULT_LOG_SOURCE,
  FINAL_STATES,
  INTERRUPTED,
  type AuditTrail,
  type Cluster,
  type FlowConfig,
  type LeaseRequest,
  type TaskJournal,
  type TaskStore,
  type UpgradeConfigStore,
  type UpgradePackage,
  type UpgradeTask,
} from './ports.js';

export interface RunnerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What the rolling upgrade needs (rolling-upgrade.ts's `UpgradeDeps`). */
export interface FlowDeps {
  cluster: Cluster;
  tasks: TaskStore;
  audit: AuditTrail;
  config: FlowConfig;
  clock: Clock;
  logger?: RunnerLogger;
  /** Aborted when the runner lost its lease on the task (see UpgradeDeps.leaseLost). */
  leaseLost?: AbortSignal;
}

/** `runRollingUpgrade`'s shape: never throws, resolves with the task in its final state. */
export type RunUpgrade = (
  deps: FlowDeps,
  task: UpgradeTask,
  pkg: UpgradePackage,
  signal: AbortSignal,
) => Promise<UpgradeTask>;

/**
 * `recoverInterrupted`'s shape: finishes forward or undoes what `journal` recorded for a task a
 * stopped orchestrator left non-final, and ends it (COMPLETE, FAILED with INTERRUPTED, or
 * ROLLBACK_FAILED).
 */
export type Reconcile = (
  deps: FlowDeps,
  task: UpgradeTask,
  journal: TaskJournal,
  message: string,
) => Promise<UpgradeTask>;

export interface TaskRunnerDeps {
  tasks: TaskStore;
  audit: AuditTrail;
  configStore: UpgradeConfigStore;
  cluster: Cluster;
  clock: Clock;
  run: RunUpgrade;
  logger?: RunnerLogger;
  /** Called with each task once its run ended (metrics). */
  onFinished?: (task: UpgradeTask) => void;
  /**
   * Finishes forward or rolls back a crashed task from its journal at start-up. Without it (or without a journal) the
   * task is only marked FAILED with a message saying what to do by hand.
   */
  reconcile?: Reconcile;
  /**
   * This instance's name in task leases. Default: a random UUID, so a restarted process is a new
   * owner and waits for the dead one's lease to expire. A name stable across restarts of one
   * installation (main.ts: host and data dir) lets the restarted process take its own lease at once.
   */
  instanceId?: string;
  /** How long a lease holds without renewal. Default 30 s. */
  leaseTtlMs?: number;
  /** How often a running task's lease is renewed (on `clock`). Default 10 s. */
  leaseRenewMs?: number;
}

export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_LEASE_RENEW_MS = 10_000;

export interface TaskRunner {
  /** The lease a task this runner will start is created with (`TaskStore.create`). */
  readonly lease: LeaseRequest;
  /**
   * Starts the flow for a freshly created task; returns at once. A task leased to another
   * instance is not run.
   */
  start(task: UpgradeTask, pkg: UpgradePackage): void;
  /**
   * Asks a task to stop. NOT_FOUND for an unknown id, CONFLICT when it is already final. Repeated
   * requests keep the first reason.
   */
  cancel(id: string, reason: string, requestedBy: string | null): Promise<UpgradeTask>;
  /**
   * Recovers tasks a crash left non-final (finished forward or rolled back from their journal with
   * `reconcile`, else only marked FAILED); call once before serving. A task whose lease is held is waited for up to
   * one lease TTL, so the lease of a process that died just before expires; one another live
   * instance keeps renewing is left alone.
   */
  recover(): Promise<Recovery>;
  isRunning(id: string): boolean;
  /** Resolves when no task runs. */
  settled(): Promise<void>;
  /** Asks running tasks to stop (shutdown) and waits for them. */
  stop(reason?: string): Promise<void>;
}

export interface Recovery {
  /** Tasks a crash had left non-final, now failed (INTERRUPTED). */
  recovered: UpgradeTask[];
  /** Non-final tasks another live instance holds the lease on, as they were. */
  leftAlone: UpgradeTask[];
  /** Ids of the recovered tasks that were rolled back from their journal. */
  rolledBack: string[];
  /** Ids of the recovered tasks that were finished forward from their journal (COMPLETE). */
  finishedForward: string[];
}

export { INTERRUPTED } from './ports.js';

const isFinal = (task: UpgradeTask): boolean => FINAL_STATES.includes(task.state);

export function createTaskRunner(deps: TaskRunnerDeps): TaskRunner {
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const now = (): Date => new Date(deps.clock.now());
  const lease: LeaseRequest = {
    owner: deps.instanceId ?? randomUUID(),
    ttlMs: deps.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
  };
  const renewMs = deps.leaseRenewMs ?? DEFAULT_LEASE_RENEW_MS;

  /**
   * Renews the lease on `id` until the returned function is called, which also releases it.
   * `lost` is aborted when a renewal finds the lease taken over by another instance.
   */
  const holdLease = (id: string, lost?: AbortController): (() => Promise<void>) => {
    const stop = new AbortController();
    const renewing = (async () => {
      for (;;) {
        try {
          await deps.clock.sleep(renewMs, stop.signal);
        } catch {
          return;
        }
        try {
          if (!(await deps.tasks.renewLease(id, lease))) {
            deps.logger?.error(
              { taskId: id, owner: lease.owner },
              'the lease on the task was taken over by another orchestrator instance; the run stops at its next safe point',
            );
            lost?.abort();
            return;
          }
        } catch (error) {
          deps.logger?.warn({ taskId: id, err: error }, 'could not renew the lease on the task; retrying');
        }
      }
    })();
    return async () => {
      stop.abort();
      await renewing;
      await deps.tasks.releaseLease(id, lease.owner).catch((error: unknown) => {
        deps.logger?.warn({ taskId: id, err: error }, 'could not release the lease on the task');
      });
    };
  };

  const execute = async (task: UpgradeTask, pkg: UpgradePackage, signal: AbortSignal): Promise<void> => {
    let release: (() => Promise<void>) | null = null;
    try {
      if (!(await deps.tasks.claimLease(task.id, lease))) {
        deps.logger?.error(
          { taskId: task.id },
          'the task is leased to another orchestrator instance; not running it',
        );
        return;
      }
      const leaseLost = new AbortController();
      release = holdLease(task.id, leaseLost);
      const config = await deps.configStore.get();
      const final = await deps.run(
        {
          cluster: deps.cluster,
          tasks: deps.tasks,
          audit: deps.audit,
          config,
          clock: deps.clock,
          leaseLost: leaseLost.signal,
          ...(deps.logger === undefined ? {} : { logger: deps.logger }),
        },
        task,
        pkg,
        signal,
      );
      if (isFinal(final)) {
        deps.logger?.info(
          { taskId: task.id, state: final.state, error: final.error },
          'upgrade task finished',
        );
        deps.onFinished?.(final);
      } else if (leaseLost.signal.aborted) {
        deps.logger?.warn(
          { taskId: task.id, state: final.state },
          'upgrade task left to the instance holding its lease',
        );
      }
    } catch (error) {
      // The flow never throws by contract; if it (or reading the config) does, the task must not
      // stay non-final, or no upgrade could start again until a restart.
      deps.logger?.error({ taskId: task.id, err: error }, 'upgrade task crashed');
      await failTask(
        task.id,
        'INTERNAL',
        `the upgrade stopped unexpectedly: ${describeError(error)}`,
        DEFAULT_LOG_SOURCE,
      );
    } finally {
      await release?.();
      await rm(pkg.workDir, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  const failTask = async (
    id: string,
    code: string,
    message: string,
    source: string,
  ): Promise<UpgradeTask | null> => {
    try {
      const current = await deps.tasks.get(id);
      if (current === null || isFinal(current)) return current;
      const at = now();
      const failed = await deps.tasks.update(id, {
        state: 'FAILED',
        error: { code, message, step: current.currentStep },
        lastMessage: message,
        finishedAt: at,
      });
      await deps.audit.log({
        taskId: id,
        level: 'ERROR',
        source,
        message,
        fromState: current.state,
        toState: 'FAILED',
        at,
        details: { code, step: current.currentStep },
      });
      return failed;
    } catch (error) {
      deps.logger?.error({ taskId: id, err: error }, 'could not mark the task failed');
      return null;
    }
  };

  /**
   * Takes the lease on a non-final task, waiting up to one TTL: the lease of an instance that died
   * expires by then, one a live instance renews does not ('held'). 'ended': the task became final.
   */
  const claimWaiting = async (id: string): Promise<'claimed' | 'held' | 'ended'> => {
    const until = deps.clock.now() + lease.ttlMs;
    for (;;) {
      if (await deps.tasks.claimLease(id, lease)) return 'claimed';
      const current = await deps.tasks.get(id);
      if (current === null || isFinal(current)) return 'ended';
      const left = until - deps.clock.now();
      if (left <= 0) return 'held';
      await deps.clock.sleep(Math.min(renewMs, left));
    }
  };

  /** Reconciles `task` from its journal under a renewed lease; null when that could not be done. */
  const reconcile = async (task: UpgradeTask, interrupted: string): Promise<UpgradeTask | null> => {
    if (deps.reconcile === undefined) return null;
    if (!WORKING_STATES.includes(task.state) && task.state !== 'ROLLBACK') return null;
    const release = holdLease(task.id);
    try {
      const journal = await deps.tasks.readJournal(task.id);
      // Nothing changed on the pair yet: only failed, with the message saying what to check.
      if (journal === null || (journal.changes.length === 0 && journal.staged.length === 0)) return null;
      const final = await deps.reconcile(
        {
          cluster: deps.cluster,
          tasks: deps.tasks,
          audit: deps.audit,
          config: await deps.configStore.get(),
          clock: deps.clock,
          ...(deps.logger === undefined ? {} : { logger: deps.logger }),
        },
        task,
        journal,
        interrupted,
      );
      return isFinal(final) ? final : null;
    } catch (error) {
      deps.logger?.error({ taskId: task.id, err: error }, 'could not roll back the interrupted task');
      return null;
    } finally {
      await release();
    }
  };

  return {
    lease,

    start(task, pkg) {
      if (running.has(task.id)) throw new UpgradeError('CONFLICT', `task ${task.id} is already running`);
      const controller = new AbortController();
      const done = execute(task, pkg, controller.signal).finally(() => running.delete(task.id));
      running.set(task.id, { controller, done });
    },

    async cancel(id, reason, requestedBy) {
      const task = await deps.tasks.get(id);
      if (task === null)
        throw new UpgradeError(
          'NOT_FOUND',
          `no upgrade task with id ${id}; list tasks with GET /api/v1/upgrade/history`,
        );
      if (isFinal(task))
        throw new UpgradeError(
          'CONFLICT',
          `task ${id} already ended in state ${task.state}; nothing to cancel`,
          {
            details: { state: task.state },
          },
        );
      const entry = running.get(id);
      if (entry === undefined && task.state !== 'IDLE')
        throw new UpgradeError(
          'CONFLICT',
          `task ${id} is in state ${task.state} and is not run by this orchestrator; a rollback in progress cannot be cancelled`,
          { details: { state: task.state } },
        );
      if (task.cancelRequestedAt !== null) {
        entry?.controller.abort(cancelled(task.cancelReason ?? reason));
        return task;
      }
      const at = now();
      const updated = await deps.tasks.update(id, {
        cancelRequestedAt: at,
        cancelReason: reason,
        ...(entry === undefined
          ? { state: 'CANCELLED', finishedAt: at, lastMessage: `cancelled: ${reason}` }
          : {}),
      });
      await deps.audit.log({
        taskId: id,
        level: 'WARNING',
        source: 'api',
        message: `cancel requested${requestedBy === null ? '' : ` by ${requestedBy}`}: ${reason}`,
        fromState: entry === undefined ? task.state : null,
        toState: entry === undefined ? 'CANCELLED' : null,
        at,
        details: { reason, requestedBy },
      });
      entry?.controller.abort(cancelled(reason));
      return updated;
    },

    async recover() {
      const recovered: UpgradeTask[] = [];
      const leftAlone: UpgradeTask[] = [];
      const rolledBack: string[] = [];
      const finishedForward: string[] = [];
      for (
        let task = await deps.tasks.active();
        task !== null && !running.has(task.id);
        task = await deps.tasks.active()
      ) {
        const claim = await claimWaiting(task.id);
        if (claim === 'ended') continue;
        if (claim === 'held') {
          leftAlone.push(task);
          break;
        }
        const interrupted =
          `the orchestrator stopped while this task was in state ${task.state}` +
          `${task.currentStep === null ? '' : ` (step ${task.currentStep})`}`;
        const reconciled = await reconcile(task, interrupted);
        if (reconciled !== null) {
          recovered.push(reconciled);
          (reconciled.state === 'COMPLETE' ? finishedForward : rolledBack).push(reconciled.id);
          continue;
        }
        const message =
          `${interrupted}; it was not resumed. ` +
          'Check both nodes with GET /health; if one is half-upgraded, roll back with POST /api/v1/upgrade/rollback/' +
          `${task.id}. Config sync (rsync) may still be paused and the config files read-only (config.lock) on the nodes.`;
        const failed = await failTask(task.id, INTERRUPTED, message, 'recovery');
        await deps.tasks.releaseLease(task.id, lease.owner).catch(() => undefined);
        if (failed === null || !isFinal(failed)) break;
        recovered.push(failed);
      }
      return { recovered, leftAlone, rolledBack, finishedForward };
    },

    isRunning: (id) => running.has(id),

    async settled() {
      while (running.size > 0) await Promise.all([...running.values()].map((r) => r.done));
    },

    async stop(reason = 'the orchestrator is shutting down') {
      for (const entry of running.values()) entry.controller.abort(cancelled(reason));
      await this.settled();
    },
  };
}

function cancelled(reason: string): UpgradeError {
  return new UpgradeError('ABORTED', `cancelled: ${reason}`);
}

/** Prefix of the per-upload directories under WORK_DIR. */
export const WORK_PREFIX = 'pkg-';

/** Removes upload directories a crash left in WORK_DIR (call before serving, after `recover`). */
export async function cleanWorkDir(
  workDir: string,
  keep: ReadonlySet<string> = new Set(),
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(workDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(WORK_PREFIX) || keep.has(name)) continue;
    await rm(join(workDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
