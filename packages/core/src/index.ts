export { systemClock, FakeClock, type Clock } from './clock.js';
export {
  ERROR_CODES,
  UpgradeError,
  abortError,
  describeError,
  networkErrorCode,
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
export {
  defineMachine,
  type Machine,
  type MachineDefinition,
  type Transition,
  type TransitionListener,
  type TransitionTable,
} from './machine.js';
export { poll, pollUntil, withTimeout, type PollOptions, type PollResult } from './poll.js';
export {
  createProgressReporter,
  type ProgressReporter,
  type ProgressReporterOptions,
  type ProgressSink,
  type ProgressUpdate,
} from './progress.js';
export { createRotation, initialRotationState, type RotationPolicy, type RotationState } from './rotation.js';
export { unsafePackagePathReason } from './package-path.js';
