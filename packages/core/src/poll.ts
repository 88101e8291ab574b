import { systemClock, type Clock } from './clock.js';
import { UpgradeError, abortError } from './errors.js';

export interface PollOptions<T> {
  /** Reads the current observation. A throw ends the poll unless `retryProbeErrors` accepts it. */
  probe(signal: AbortSignal): Promise<T>;
  /** True when the observation is final. */
  done(observation: T): boolean;
  /** Wait before the first probe. Default 0. */
  initialDelay?: number;
  /** Wait between probes. */
  interval: number;
  /** Overall budget from the start of the poll, initial delay included. */
  timeout: number;
  signal?: AbortSignal;
  clock?: Clock;
  /** Called with every observation, final or not (progress display, logging). */
  onObservation?(observation: T, attempt: number): void;
  /** Return true to keep polling after a probe error (transient outage); default: never. */
  retryProbeErrors?(error: unknown, attempt: number): boolean;
}

export type PollResult<T> =
  | { status: 'done'; observation: T; attempts: number; elapsedMs: number }
  | { status: 'timeout'; observation: T | undefined; attempts: number; elapsedMs: number };

/**
 * Polls until `done`, the timeout or an abort. A timeout is a result, not an exception, because
 * callers usually still need the last observation (hosts still running at the deadline are logged
 * as timeout). An abort rejects with an ABORTED UpgradeError.
 *
 * A probe starting at exactly the deadline is still made: a deadline of 5 min with a 30 s interval
 * gives the probe at 5:00 its say, then stops.
 */
export async function poll<T>(options: PollOptions<T>): Promise<PollResult<T>> {
  const clock = options.clock ?? systemClock;
  const { signal } = options;
  const start = clock.now();
  const deadline = start + options.timeout;
  const elapsed = (): number => clock.now() - start;
  let last: T | undefined;
  let attempts = 0;

  if (signal?.aborted) throw abortError(signal);
  const initialDelay = Math.min(options.initialDelay ?? 0, options.timeout);
  if (initialDelay > 0) await clock.sleep(initialDelay, signal);

  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    attempts++;
    try {
      last = await options.probe(signal ?? new AbortController().signal);
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      if (!(options.retryProbeErrors?.(error, attempts) ?? false)) throw error;
      if (clock.now() >= deadline)
        return { status: 'timeout', observation: last, attempts, elapsedMs: elapsed() };
      await clock.sleep(Math.min(options.interval, deadline - clock.now()), signal);
      continue;
    }
    options.onObservation?.(last, attempts);
    if (options.done(last)) return { status: 'done', observation: last, attempts, elapsedMs: elapsed() };
    const remaining = deadline - clock.now();
    if (remaining <= 0) return { status: 'timeout', observation: last, attempts, elapsedMs: elapsed() };
    await clock.sleep(Math.min(options.interval, remaining), signal);
  }
}

/** Like `poll`, but a timeout throws a TIMEOUT UpgradeError naming `what`. */
export async function pollUntil<T>(what: string, options: PollOptions<T>): Promise<T> {
  const result = await poll(options);
  if (result.status === 'done') return result.observation;
  throw new UpgradeError(
    'TIMEOUT',
    `${what} not reached within ${options.timeout} ms (${result.attempts} checks)`,
    {
      details: { attempts: result.attempts, timeoutMs: options.timeout },
    },
  );
}

/**
 * Runs `fn` with a deadline: its signal aborts at the deadline and the promise rejects with
 * TIMEOUT, even when `fn` ignores the signal.
 */
export async function withTimeout<T>(
  what: string,
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
  options: { clock?: Clock; signal?: AbortSignal } = {},
): Promise<T> {
  const clock = options.clock ?? systemClock;
  const controller = new AbortController();
  const timer = new AbortController();
  const onOuter = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) throw abortError(options.signal);
  options.signal?.addEventListener('abort', onOuter, { once: true });
  const timeoutError = new UpgradeError('TIMEOUT', `${what} did not finish within ${ms} ms`, {
    details: { timeoutMs: ms },
  });
  try {
    return await Promise.race([
      fn(controller.signal),
      clock.sleep(ms, timer.signal).then(
        () => {
          controller.abort(timeoutError);
          throw timeoutError;
        },
        () => new Promise<never>(() => undefined),
      ),
    ]);
  } finally {
    timer.abort();
    options.signal?.removeEventListener('abort', onOuter);
  }
}
