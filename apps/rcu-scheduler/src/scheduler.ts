// When rounds run: one per schedule slot (every ROUND_INTERVAL_MS), never two at once in this
// process, and never two across instances: a round runs only under the database advisory lock,
// and the slot is unique in the database, so an instance that gets the lock just after another
// finished does not repeat the slot's round.
import { UpgradeError, describeError, isUpgradeError, type Clock } from '@upgrade/core';
import {
  flushSpool,
  resumeRound,
  runRound,
  type RoundDeps,
  type RoundOutcome,
  type RoundSettings,
} from './rounds.js';
import type { RoundTrigger } from './ports.js';

/** The cross-instance lock; `tryAcquire` answers null when another instance holds it. */
export interface RoundLock {
  tryAcquire(): Promise<(() => Promise<void>) | null>;
}

export interface SchedulerOptions {
  intervalMs: number;
  /** Run the current slot's round at start-up instead of waiting for the next slot. */
  roundOnStart: boolean;
}

export interface RunningRound {
  roundId: string;
  trigger: RoundTrigger;
  startedAt: Date;
}

export type TickResult = 'ran' | SkipReason | 'failed';

/** Why a tick ran no round; each is logged as `tick skipped` with the reason. */
export type SkipReason = 'busy' | 'locked' | 'slot-taken' | 'database-unavailable';

const SKIPPED: Readonly<Record<SkipReason, { level: 'info' | 'warn'; detail: string }>> = {
  busy: { level: 'warn', detail: 'the previous round is still running' },
  locked: { level: 'info', detail: 'another instance holds the round lock' },
  'slot-taken': { level: 'info', detail: 'another instance already ran this slot' },
  'database-unavailable': {
    level: 'warn',
    detail: 'the database is unavailable; the next tick tries again',
  },
};

export interface Scheduler {
  /** Starts ticking. */
  start(): void;
  /** Stops ticking and aborts a running round (its results stay spooled); resolves when idle. */
  stop(): Promise<void>;
  /** Runs the round of `slot` now, if nothing else is running. */
  tick(slot: number): Promise<TickResult>;
  /** Starts a round outside the schedule; CONFLICT while one runs here or on another instance. */
  startManualRound(): Promise<{ roundId: string; done: Promise<RoundOutcome | null> }>;
  /** Finishes whatever a crash left behind (spooled results, unfinished rounds). */
  recover(): Promise<void>;
  readonly running: RunningRound | null;
  readonly nextTickAt: Date | null;
}

/** The start of the schedule slot `at` falls into. */
export function slotOf(at: number, intervalMs: number): number {
  return Math.floor(at / intervalMs) * intervalMs;
}

export function createScheduler(
  deps: RoundDeps & { lock: RoundLock },
  settings: RoundSettings,
  options: SchedulerOptions,
): Scheduler {
  const clock: Clock = deps.clock;
  const stopping = new AbortController();
  let running: RunningRound | null = null;
  /**
   * Every attempt not yet settled: stop() waits for all of them. (Keeping only the latest was wrong:
   * a tick that found a long round busy replaced it, and stop() returned while the round still ran.)
   */
  const inFlight = new Set<Promise<unknown>>();
  const track = (attempt: Promise<unknown>): void => {
    const settled = attempt.catch(() => undefined).finally(() => inFlight.delete(settled));
    inFlight.add(settled);
  };
  let loop: Promise<void> | undefined;
  let nextTickAt: Date | null = null;

  /** Runs `work` holding the in-process flag and the database lock, after recovering leftovers. */
  const exclusive = async <T>(
    round: RunningRound,
    work: () => Promise<T>,
  ): Promise<{ status: 'ran'; value: T } | { status: 'busy' | 'locked' }> => {
    if (running !== null) return { status: 'busy' };
    running = round;
    try {
      const release = await deps.lock.tryAcquire();
      if (release === null) return { status: 'locked' };
      try {
        await recoverUnlocked();
        return { status: 'ran', value: await work() };
      } finally {
        await release().catch((error: unknown) =>
          deps.logger.warn({ err: error }, 'releasing the round lock failed'),
        );
      }
    } finally {
      running = null;
    }
  };

  const recoverUnlocked = async (): Promise<void> => {
    await flushSpool(deps);
    for (const round of await deps.store.unfinishedRounds()) {
      await resumeRound(deps, settings, round, stopping.signal);
    }
  };

  const tick = async (slot: number): Promise<TickResult> => {
    const roundId = deps.newId();
    const attempt = exclusive({ roundId, trigger: 'schedule', startedAt: new Date(clock.now()) }, () =>
      runRound(deps, settings, { trigger: 'schedule', slot, roundId, signal: stopping.signal }),
    );
    track(attempt);
    const skipped = (reason: SkipReason, fields: object = {}): SkipReason => {
      const { level, detail } = SKIPPED[reason];
      deps.logger[level]({ slot: new Date(slot).toISOString(), reason, detail, ...fields }, 'tick skipped');
      return reason;
    };
    try {
      const result = await attempt;
      if (result.status !== 'ran') return skipped(result.status, result.status === 'busy' ? { running } : {});
      return result.value === null ? skipped('slot-taken') : 'ran';
    } catch (error) {
      if (stopping.signal.aborted) return 'failed';
      // Vendor failures never leave a round (they end up in its rows), and results the database
      // could not take wait in the spool: UNAVAILABLE here means the lock, the leftovers or the
      // round's first write found no database, so no round started.
      if (isUpgradeError(error, 'UNAVAILABLE', 'TIMEOUT'))
        return skipped('database-unavailable', { error: describeError(error) });
      deps.logger.error({ err: error }, `round failed: ${describeError(error)}`);
      return 'failed';
    }
  };

  const recover = async (): Promise<void> => {
    try {
      const result = await exclusive(
        { roundId: 'recovery', trigger: 'recovery', startedAt: new Date(clock.now()) },
        () => Promise.resolve(),
      );
      if (result.status !== 'ran')
        deps.logger.info({ status: result.status }, 'recovery skipped: a round is running');
    } catch (error) {
      deps.logger.error(
        { err: error },
        `recovery failed: ${describeError(error)}; retried before the next round`,
      );
    }
  };

  const runLoop = async (): Promise<void> => {
    // Either way, leftovers of a crash (spooled results, unfinished rounds) are finished first.
    if (options.roundOnStart) await tick(slotOf(clock.now(), options.intervalMs));
    else await recover();
    while (!stopping.signal.aborted) {
      const next = slotOf(clock.now(), options.intervalMs) + options.intervalMs;
      nextTickAt = new Date(next);
      try {
        await clock.sleep(next - clock.now(), stopping.signal);
      } catch {
        break;
      }
      // Not awaited: a long round must not delay the clock; the next tick finds it busy instead.
      void tick(next);
    }
    nextTickAt = null;
  };

  return {
    start() {
      loop ??= runLoop();
    },
    async stop() {
      stopping.abort(new UpgradeError('ABORTED', 'the scheduler is shutting down'));
      await loop;
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
    tick,
    async startManualRound() {
      if (running !== null) {
        throw new UpgradeError(
          'CONFLICT',
          `a round is already running (round ${running.roundId}, started ${running.startedAt.toISOString()}); try again when it has finished`,
        );
      }
      const roundId = deps.newId();
      let started: (value: boolean) => void = () => undefined;
      const gate = new Promise<boolean>((resolve) => (started = resolve));
      const attempt = exclusive({ roundId, trigger: 'manual', startedAt: new Date(clock.now()) }, () => {
        started(true);
        return runRound(deps, settings, { trigger: 'manual', slot: null, roundId, signal: stopping.signal });
      });
      track(attempt);
      void attempt.then(
        (r) => started(r.status === 'ran'),
        () => started(false),
      );
      const done = attempt.then((r) => (r.status === 'ran' ? r.value : null));
      done.catch((error: unknown) =>
        deps.logger.error({ err: error, roundId }, `manual round failed: ${describeError(error)}`),
      );
      if (!(await gate)) {
        const result = await attempt.catch(() => ({ status: 'failed' as const }));
        throw new UpgradeError(
          result.status === 'failed' ? 'UNAVAILABLE' : 'CONFLICT',
          result.status === 'locked'
            ? 'another instance is running a round; try again when it has finished'
            : result.status === 'busy'
              ? 'a round is already running; try again when it has finished'
              : 'the round could not start; see the service log',
        );
      }
      return { roundId, done };
    },
    recover,
    get running() {
      return running;
    },
    get nextTickAt() {
      return nextTickAt;
    },
  };
}
