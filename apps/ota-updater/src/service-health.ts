// Health of the services a version runs: systemd must call each unit active and, when the manifest
// gives one, its health URL must answer 2xx. Checked in rounds until enough consecutive rounds pass
// or the budget runs out, because a unit that is "active" a moment after start may still crash.
import {
  UpgradeError,
  poll,
  runChecks,
  systemClock,
  type Clock,
  type HealthCheck,
  type HealthReport,
} from '@upgrade/core';
import type { CheckServicesHealth } from './deploy.js';
import { discardBody, sendRequest } from './http-client.js';
import type { ServiceManager, ServiceSpec } from './ports.js';

/** Options of `createServiceHealthCheck`. */
export interface ServiceHealthOptions {
  services: ServiceManager;
  clock?: Clock;
  /** Budget for all services to become healthy after a start. Default 60 s. */
  timeoutMs?: number;
  /** Wait between rounds. Default 1 s. */
  intervalMs?: number;
  /** Bound on one check of one service. Default 3 s. */
  attemptTimeoutMs?: number;
  /** Consecutive healthy rounds required. Default 2. */
  consecutiveOk?: number;
  /** Raw errors of failed checks, for the log; they never enter the report. */
  onError?: (name: string, error: unknown) => void;
}

/**
 * A CheckServicesHealth over systemd and HTTP. Resolves with the last report: `ok` once
 * `consecutiveOk` rounds in a row were healthy, otherwise the failing round at the deadline.
 *
 * @example const checkHealth = createServiceHealthCheck({ services: systemd, timeoutMs: 30_000 })
 */
export function createServiceHealthCheck(options: ServiceHealthOptions): CheckServicesHealth {
  const clock = options.clock ?? systemClock;
  const required = Math.max(1, options.consecutiveOk ?? 2);
  return async (specs, signal) => {
    const checks = serviceHealthChecks(specs, options.services);
    let streak = 0;
    const result = await poll<HealthReport>({
      probe: (probeSignal) =>
        runChecks(checks, {
          timeout: options.attemptTimeoutMs ?? 3000,
          clock,
          signal: probeSignal,
          ...(options.onError === undefined ? {} : { onError: options.onError }),
        }),
      done: (report) => {
        streak = report.status === 'ok' ? streak + 1 : 0;
        return streak >= required;
      },
      interval: options.intervalMs ?? 1000,
      timeout: options.timeoutMs ?? 60_000,
      clock,
      ...(signal === undefined ? {} : { signal }),
    });
    // poll always probes at least once, so a timeout still carries the last round.
    return (
      result.observation ?? { status: 'down', timestamp: new Date(clock.now()).toISOString(), checks: [] }
    );
  };
}

/** One check per unit (`<unit>`: systemd says active) and per health URL (`<unit> <url>`: 2xx). */
export function serviceHealthChecks(specs: readonly ServiceSpec[], services: ServiceManager): HealthCheck[] {
  return specs.flatMap((spec): HealthCheck[] => {
    const unitCheck: HealthCheck = {
      name: spec.unit,
      async check(signal) {
        if (!(await services.isActive(spec.unit, signal)))
          throw new UpgradeError('HEALTH_CHECK_FAILED', 'not active in systemd');
        return 'active';
      },
    };
    if (spec.healthUrl === undefined) return [unitCheck];
    const url = spec.healthUrl;
    return [unitCheck, { name: `${spec.unit} ${url}`, check: (signal) => checkHttp(url, signal) }];
  });
}

async function checkHttp(url: string, signal: AbortSignal): Promise<string> {
  let status: number;
  try {
    // A fresh connection per check (the client never pools): a socket to the process we just
    // restarted would be dead. The caller's signal bounds the whole check.
    const answer = await sendRequest(new URL(url), {
      method: 'GET',
      signal,
      connectTimeoutMs: 60_000,
      headersTimeoutMs: 60_000,
    });
    status = answer.status;
    await discardBody(answer, 16 * 1024);
  } catch (error) {
    if (signal.aborted) throw error;
    throw new UpgradeError('HEALTH_CHECK_FAILED', `no answer (${describeNetworkError(error)})`, {
      cause: error,
    });
  }
  if (status < 200 || status > 299) throw new UpgradeError('HEALTH_CHECK_FAILED', `HTTP ${status}`);
  return `HTTP ${status}`;
}

/** Only the error code (ECONNREFUSED, ECONNRESET...): safe to show and enough to act on. */
function describeNetworkError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'connection failed';
}
