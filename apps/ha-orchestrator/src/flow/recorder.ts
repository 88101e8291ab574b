// Writes a task's progress: its row (state, percent, current step), a StepRecord when each step
// starts and ends, and a LogRecord for each transition and notable event. On the way forward a
// failed write stops the flow (a step is not taken before it is recorded); during a rollback
// (`bestEffort`) a failed write is logged and the rollback goes on, as stopping would be worse.
import { describeError, type Clock, type Machine } from '@upgrade/core';
import {
  DEFAULT_LOG_SOURCE,
  type AuditTrail,
  type HaState,
  type LogLevel,
  type StepRecord,
  type TaskPatch,
  type TaskStore,
  type UpgradeTask,
} from '../ports.js';

/** The small logger the flow mirrors its records to; pino fits. */
export interface FlowLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RecorderDeps {
  tasks: TaskStore;
  audit: AuditTrail;
  clock: Clock;
  logger?: FlowLogger;
}

export interface StepSpec {
  /** e.g. `standby.install`. */
  name: string;
  nodeId?: string | null;
  /** Task percent once the step starts; omitted during rollbacks (the percent stays). */
  percent?: number;
  message: string;
}

export class TaskRecorder {
  /** Set for rollbacks: audit writes that fail are logged instead of thrown. */
  bestEffort = false;
  /** Source of the lines not written for one node (`recovery` when a restart reconciles the task). */
  source: string = DEFAULT_LOG_SOURCE;
  private current: UpgradeTask;
  /** Node of the step running or last finished: the `source` of log lines written meanwhile. */
  private stepNode: string | null = null;

  constructor(
    private readonly deps: RecorderDeps,
    task: UpgradeTask,
    private readonly machine: Machine<HaState> | null,
  ) {
    this.current = task;
  }

  get task(): UpgradeTask {
    return this.current;
  }

  get state(): HaState {
    return this.machine?.state ?? this.current.state;
  }

  get machineState(): Machine<HaState> | null {
    return this.machine;
  }

  now(): Date {
    return new Date(this.deps.clock.now());
  }

  /** Reads the row again: another writer (the cancel request) may have set fields since. */
  async refresh(): Promise<void> {
    await this.write('task read', async () => {
      const stored = await this.deps.tasks.get(this.current.id);
      if (stored !== null) this.current = { ...stored, state: this.current.state };
    });
  }

  async patch(patch: TaskPatch): Promise<void> {
    this.current = { ...this.current, ...patch };
    await this.write('task update', async () => {
      this.current = await this.deps.tasks.update(this.current.id, patch);
    });
  }

  async log(
    level: LogLevel,
    message: string,
    details?: Record<string, unknown>,
    source: string = this.stepNode ?? this.source,
  ): Promise<void> {
    this.mirror(level, message, details);
    await this.write('log', () =>
      this.deps.audit.log({
        taskId: this.current.id,
        level,
        source,
        message,
        fromState: null,
        toState: null,
        at: this.now(),
        ...(details === undefined ? {} : { details }),
      }),
    );
  }

  /** Moves the machine (ILLEGAL_TRANSITION leaves everything unchanged), then records the move. */
  async transition(
    to: HaState,
    reason: string,
    level: LogLevel = 'INFO',
    patch: TaskPatch = {},
  ): Promise<void> {
    if (this.machine === null) throw new Error('this recorder has no state machine');
    const t = this.machine.transition(to, reason);
    this.mirror(level, `${t.from} -> ${t.to}: ${reason}`, undefined);
    await this.patch({ ...patch, state: to, lastMessage: reason });
    await this.write('transition log', () =>
      this.deps.audit.log({
        taskId: this.current.id,
        level,
        source: this.source,
        message: reason,
        fromState: t.from,
        toState: t.to,
        at: new Date(t.at),
      }),
    );
  }

  /** Runs one step between a `started` and a `succeeded` / `failed` record. */
  async step<T>(spec: StepSpec, fn: () => Promise<T>): Promise<T> {
    const started = this.deps.clock.now();
    this.stepNode = spec.nodeId ?? null;
    await this.patch({
      currentStep: spec.name,
      lastMessage: spec.message,
      ...(spec.percent === undefined ? {} : { percent: Math.max(this.current.percent, spec.percent) }),
    });
    await this.record(spec, 'started', spec.message, null);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      await this.record(spec, 'failed', describeError(error), this.deps.clock.now() - started);
      throw error;
    }
    await this.record(spec, 'succeeded', spec.message, this.deps.clock.now() - started);
    return result;
  }

  /** Records a step that was not run and why. */
  async skip(spec: StepSpec, reason: string, level: LogLevel = 'WARNING'): Promise<void> {
    await this.record(spec, 'skipped', reason, 0);
    await this.log(
      level,
      `${spec.name}${spec.nodeId ? ` on ${spec.nodeId}` : ''} skipped: ${reason}`,
      undefined,
      spec.nodeId ?? this.source,
    );
  }

  private async record(
    spec: StepSpec,
    status: StepRecord['status'],
    message: string,
    durationMs: number | null,
  ): Promise<void> {
    await this.write('step', () =>
      this.deps.audit.step({
        taskId: this.current.id,
        step: spec.name,
        nodeId: spec.nodeId ?? null,
        status,
        message,
        percent: this.current.percent,
        at: this.now(),
        durationMs,
      }),
    );
  }

  /** Any other audit write (backups, VIP attempts, health checks...), under the same policy. */
  async write(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (error) {
      if (!this.bestEffort) throw error;
      this.deps.logger?.error({ taskId: this.current.id, err: error }, `could not record ${what}`);
    }
  }

  private mirror(level: LogLevel, message: string, details: Record<string, unknown> | undefined): void {
    const logger = this.deps.logger;
    if (logger === undefined) return;
    const obj = { taskId: this.current.id, state: this.state, ...details };
    switch (level) {
      case 'INFO':
        logger.info(obj, message);
        break;
      case 'WARNING':
        logger.warn(obj, message);
        break;
      case 'ERROR':
        logger.error(obj, message);
        break;
    }
  }
}
