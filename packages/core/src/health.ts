import { systemClock, type Clock } from './clock.js';
import { describeError, isUpgradeError } from './errors.js';

export type HealthStatus = 'ok' | 'degraded' | 'down';

/** One thing to check. `check` resolves when healthy and rejects (or returns a detail) otherwise. */
export interface HealthCheck {
  name: string;
  /** A failing non-critical check makes the report `degraded` instead of `down`. Default true. */
  critical?: boolean;
  /** Resolves when healthy, optionally with a short detail for the report; rejects when not. */
  check(signal: AbortSignal): Promise<string | void>;
}

export interface CheckResult {
  name: string;
  status: 'ok' | 'down';
  durationMs: number;
  /** A stable, client-safe reason: `timeout after 2000 ms`, `failed`, or the check's own detail. */
  detail: string | null;
  attempts: number;
}

export interface HealthReport {
  status: HealthStatus;
  timestamp: string;
  checks: CheckResult[];
}

export interface RunChecksOptions {
  /** Per attempt of one check. Default 2000 ms. */
  timeout?: number;
  /** Extra attempts after a failure. Default 0. */
  retries?: number;
  /** Wait between attempts. Default 0. */
  retryDelay?: number;
  clock?: Clock;
  signal?: AbortSignal;
  /**
   * Receives the raw error of every failed attempt, for logs. Raw errors never enter the report:
   * driver messages can hold hosts, users or SQL.
   */
  onError?: (name: string, error: unknown) => void;
}

/**
 * Runs all checks concurrently, each bounded by its timeout even when it ignores its signal, and
 * aggregates: every check ok -> ok; only non-critical ones down -> degraded; a critical one down -> down.
 */
export async function runChecks(
  checks: readonly HealthCheck[],
  options: RunChecksOptions = {},
): Promise<HealthReport> {
  const clock = options.clock ?? systemClock;
  const results = await Promise.all(checks.map((c) => runOne(c, options, clock)));
  const failing = checks.filter((_, i) => results[i]?.status === 'down');
  const status: HealthStatus =
    failing.length === 0 ? 'ok' : failing.some((c) => c.critical !== false) ? 'down' : 'degraded';
  return { status, timestamp: new Date(clock.now()).toISOString(), checks: results };
}

/** ok and degraded still serve traffic (200); down does not (503). */
export function healthHttpStatus(status: HealthStatus): 200 | 503 {
  return status === 'down' ? 503 : 200;
}

async function runOne(check: HealthCheck, options: RunChecksOptions, clock: Clock): Promise<CheckResult> {
  const timeout = options.timeout ?? 2000;
  const attemptsAllowed = 1 + Math.max(0, options.retries ?? 0);
  const started = clock.now();
  let detail: string | null = null;
  for (let attempt = 1; attempt <= attemptsAllowed; attempt++) {
    const outcome = await attemptOnce(check, timeout, clock, options.signal);
    if (outcome.ok) {
      return {
        name: check.name,
        status: 'ok',
        durationMs: clock.now() - started,
        detail: outcome.detail,
        attempts: attempt,
      };
    }
    options.onError?.(check.name, outcome.error);
    detail = outcome.timedOut ? `timeout after ${timeout} ms` : safeReason(outcome.error);
    if (attempt < attemptsAllowed && (options.retryDelay ?? 0) > 0) {
      try {
        await clock.sleep(options.retryDelay ?? 0, options.signal);
      } catch {
        break;
      }
    }
    if (options.signal?.aborted) break;
  }
  return {
    name: check.name,
    status: 'down',
    durationMs: clock.now() - started,
    detail,
    attempts: attemptsAllowed,
  };
}

type Attempt = { ok: true; detail: string | null } | { ok: false; timedOut: boolean; error: unknown };

async function attemptOnce(
  check: HealthCheck,
  timeout: number,
  clock: Clock,
  outer: AbortSignal | undefined,
): Promise<Attempt> {
  const controller = new AbortController();
  const onOuterAbort = (): void => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const timer = new AbortController();
  const timedOut = clock.sleep(timeout, timer.signal).then(
    () => 'timeout' as const,
    () => 'cancelled' as const,
  );
  try {
    const result = await Promise.race([
      check.check(controller.signal).then(
        (detail) => ({ ok: true as const, detail: typeof detail === 'string' ? detail : null }),
        (error: unknown) => ({ ok: false as const, timedOut: false, error }),
      ),
      timedOut.then((t) =>
        t === 'timeout'
          ? { ok: false as const, timedOut: true, error: new Error(`timeout after ${timeout} ms`) }
          : new Promise<never>(() => undefined),
      ),
    ]);
    if (!result.ok && result.timedOut) controller.abort(new Error('health check timed out'));
    return result;
  } finally {
    timer.abort();
    outer?.removeEventListener('abort', onOuterAbort);
  }
}

/** Only our own error messages are considered safe to show; anything else becomes `failed`. */
function safeReason(error: unknown): string {
  return isUpgradeError(error) ? describeError(error) : 'failed';
}
