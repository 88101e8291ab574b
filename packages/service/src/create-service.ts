import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { ErrorResponse } from './error-response.js';
import { registerDraining } from './draining.js';
import { registerErrorHandling, sendError } from './error-handler.js';
import { registerEventStreams } from './event-stream.js';
import { registerHealth, type HealthChecks } from './health.js';
import { loggerOptions, type LoggerOption } from './logger.js';
import { registerMetrics, type MetricsOptions } from './metrics.js';
import { registerOpenApi, type OpenApiOptions } from './openapi.js';
import { registerRequestIdHeader, requestIdOf } from './request-id.js';
import type { ServiceApp } from './types.js';

/** Everything `createService` needs; only `name` and `version` are required. */
export interface ServiceOptions {
  /** Service name: log field `service`, default OpenAPI title. */
  name: string;
  /** Release version: log field `version`, OpenAPI `info.version`. */
  version: string;
  /** Default `info` to stdout; `false` in tests. */
  logger?: LoggerOption;
  /** What `GET /healthz` checks: database pings, Redis, upstreams. Default none (always ok). */
  healthChecks?: HealthChecks;
  /** Per health check attempt. Default 2000 ms. */
  healthTimeoutMs?: number;
  /**
   * false: no kit `GET /healthz` (the service adds its own body there on `app.checkHealth()`, which
   * stays). Default true.
   */
  healthRoute?: boolean;
  /** Title, description, servers of the OpenAPI document; Swagger UI path. */
  openapi?: OpenApiOptions;
  /** Registry to use, process metrics on/off, latency buckets. */
  metrics?: MetricsOptions;
  /** Behind a reverse proxy, which hops to trust for the client address (fastify `trustProxy`). */
  trustProxy?: FastifyServerOptions['trustProxy'];
  /** Largest accepted body in bytes. Default 1 MiB (fastify's); upload routes set their own. */
  bodyLimit?: number;
  /** Socket-level limit for receiving a whole request, in ms. Default none (fastify's). */
  requestTimeout?: number;
  /** Limit for handling a request (routing to response) in ms; answers 503 when passed. Default none. */
  handlerTimeout?: number;
  /**
   * Longest path parameter the router matches (fastify's `maxParamLength`, default 100); a longer
   * one answers 414. Raise it to let a route's schema answer an over-long id with 400 naming it.
   */
  maxParamLength?: number;
}

/**
 * A fastify instance with everything a service of this repo shares: pino JSON logs carrying a request
 * id, the `{ error: { code, message, requestId } }` envelope for every failure, `GET /healthz`,
 * OpenAPI 3.1 with Swagger UI at `/docs`, Prometheus at `GET /metrics`. Never listens: `main.ts`
 * does, with `listenAndServe`. Register routes after awaiting it, so they appear in the OpenAPI document.
 */
export async function createService(options: ServiceOptions): Promise<ServiceApp> {
  const app = Fastify({
    logger: loggerOptions(options.logger, options),
    // The header is validated by requestIdOf, not trusted as-is (fastify's requestIdHeader would).
    requestIdHeader: false,
    genReqId: requestIdOf,
    // registerDraining answers requests that arrive while closing, in the shared envelope.
    return503OnClosing: false,
    // Malformed URLs never reach a route or the error handler unless routed through here.
    frameworkErrors: (error, request, reply) => {
      sendError(error, request, reply);
    },
    ...definedOnly({
      trustProxy: options.trustProxy,
      bodyLimit: options.bodyLimit,
      requestTimeout: options.requestTimeout,
      handlerTimeout: options.handlerTimeout,
    }),
    ...(options.maxParamLength === undefined
      ? {}
      : { routerOptions: { maxParamLength: options.maxParamLength } }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  registerRequestIdHeader(app);
  registerErrorHandling(app);
  registerDraining(app);
  registerEventStreams(app);
  app.addSchema(ErrorResponse);
  registerMetrics(app, options.metrics);
  // Before any documented route: @fastify/swagger only sees routes added after it.
  await registerOpenApi(app, { title: options.name, version: options.version }, options.openapi);
  registerHealth(app, {
    ...definedOnly({
      checks: options.healthChecks,
      timeoutMs: options.healthTimeoutMs,
      route: options.healthRoute,
    }),
  });
  return app;
}

/** Drops undefined entries so fastify's own defaults apply instead of `undefined`. */
function definedOnly<T extends Record<string, unknown>>(record: T): Partial<T> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as Partial<T>;
}
