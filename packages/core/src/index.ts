export { systemClock, FakeClock, type Clock } from './clock.js';
export {
  ERROR_CODES,
  UpgradeError,
  abortError,
  describeError,
  httpStatusOf,
  isUpgradeError,
  type ErrorCode,
  type UpgradeErrorOptions,
} from './errors.js';
export {
  healthHttpStatus,
  runChecks,
  type CheckResult,
  type HealthCheck,
  type HealthReport,
  type HealthStatus,
  type RunChecksOptions,
} from './health.js';
