import { abortError } from './errors.js';

/** Time as the domain sees it. Inject it; never read Date.now() or setTimeout in domain code. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with an ABORTED UpgradeError as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The wall clock, backed by Date.now and setTimeout. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortError(signal as AbortSignal));
      };
      const timer = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

interface Sleeper {
  due: number;
  seq: number;
  resolve: () => void;
}

/**
 * A clock that only moves when told to. `advance(ms)` fires every sleeper due within that span,
 * in due order, letting promise continuations run between them, so code that loops on `sleep`
 * behaves exactly as it would in real time.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private sleepers: Sleeper[] = [];

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.current;
  }

  /** Number of sleeps still waiting. */
  get pending(): number {
    return this.sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const sleeper: Sleeper = {
        due: this.current + Math.max(0, ms),
        seq: this.seq++,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(abortError(signal as AbortSignal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** Moves time forward by `ms`, waking sleepers in order as their time comes. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.nextDue(target);
      if (next === undefined) break;
      this.sleepers = this.sleepers.filter((s) => s !== next);
      this.current = next.due;
      next.resolve();
      await flushMicrotasks();
    }
    this.current = target;
    await flushMicrotasks();
  }

  /** Advances to the next pending sleeper, if any; returns whether one fired. */
  async tick(): Promise<boolean> {
    await flushMicrotasks();
    const next = this.nextDue(Number.POSITIVE_INFINITY);
    if (next === undefined) return false;
    await this.advance(next.due - this.current);
    return true;
  }

  /** Advances until nothing sleeps any more or `limitMs` of fake time has passed. */
  async runAll(limitMs = 24 * 60 * 60 * 1000): Promise<void> {
    const end = this.current + limitMs;
    while (this.current < end && (await this.tickUntil(end))) {
      // keep going
    }
  }

  private async tickUntil(end: number): Promise<boolean> {
    await flushMicrotasks();
    const next = this.nextDue(end);
    if (next === undefined) return false;
    await this.advance(next.due - this.current);
    return true;
  }

  private nextDue(limit: number): Sleeper | undefined {
    let best: Sleeper | undefined;
    for (const s of this.sleepers) {
      if (s.due > limit) continue;
      if (best === undefined || s.due < best.due || (s.due === best.due && s.seq < best.seq)) best = s;
    }
    return best;
  }
}

/** Lets queued promise continuations run; a macrotask hop drains every pending microtask. */
function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
