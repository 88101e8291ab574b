/** Service: the fastify bootstrap and start-up helpers every HTTP service of the repo uses. */
export { createService, type ServiceOptions } from './create-service.js';
export type { ServiceApp, ServicePlugin } from './types.js';

/** Configuration from env. */
export { ConfigError, isConfigError, loadConfig, type ConfigIssue } from './config.js';
export { isSecretName } from './config-messages.js';
export { loadDotenv } from './dotenv.js';
export { EXIT_CODES, runMain, type RunMainOptions } from './run-main.js';
export {
  crashLine,
  installCrashPolicy,
  type CrashKind,
  type CrashLine,
  type CrashPolicyOptions,
} from './crash-policy.js';
export { UsageError, runCli, usageError, type CliCommand, type CliSpec, type RunCliOptions } from './cli.js';

/** Errors on the wire. */
export {
  ERROR_RESPONSE_ID,
  ErrorResponse,
  errorResponses,
  type ErrorBody,
  type HttpErrorCode,
  type ResponseErrorCode,
} from './error-response.js';
export { mapError, sendError, type MappedError } from './error-handler.js';
export { REQUEST_ID_HEADER } from './request-id.js';

/** Operations: health, metrics, OpenAPI, logging, shutdown. */
export { HEALTH_REPORT_ID, HealthReportSchema, type HealthChecks } from './health.js';
export { UNMATCHED_ROUTE, type MetricsOptions, type ServiceMetrics } from './metrics.js';
export {
  formatOpenApi,
  generateOpenApi,
  writeOpenApi,
  type OpenApiDocument,
  type OpenApiOptions,
} from './openapi.js';
export type { LogLevel, LoggerOption, LoggerOptions } from './logger.js';
export {
  closeGracefully,
  exitOnSignals,
  listenAndServe,
  type CloseOptions,
  type ListenOptions,
  type ShutdownOutcome,
  type SignalOptions,
  type SignalSource,
} from './shutdown.js';

/** One typebox for the whole repo: apps import `Type` and `Static` from here. */
export { Type, type Static, type TSchema } from 'typebox';

/** One prom-client for the whole repo: apps add their own metrics to `app.metrics.registry`. */
export { Counter, Gauge, Histogram, type Registry } from 'prom-client';
/** A size-rotated log file (e.g. 10 MB x 3) for devices without a log collector. */
export { createRotatingFile, type RotatingFile } from './rotating-file.js';
/** An operator console: the page a package built, served with caching, and live updates as server-sent events. */
export { registerStaticAssets, type StaticAssetsOptions } from './static-assets.js';
export { openEventStream, type EventStream, type EventStreamOptions } from './event-stream.js';
