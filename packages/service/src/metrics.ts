import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

type HttpLabels = 'method' | 'route' | 'status_code';

/** The service's metrics: its own registry, where the app adds its counters too. */
export interface ServiceMetrics {
  registry: Registry;
  httpRequests: Counter<HttpLabels>;
  httpDuration: Histogram<HttpLabels>;
}

/** How `createService` sets up metrics. */
export interface MetricsOptions {
  /** Pass one to share it with code built before the app; default a fresh one. */
  registry?: Registry;
  /** Process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
  /** Seconds. Default spans 5 ms to 10 s, where API latencies of these services live. */
  buckets?: number[];
}

/** The `route` label of requests no route matched: raw URLs would make one series per scanner probe. */
export const UNMATCHED_ROUTE = 'unmatched';

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus registry and HTTP metrics of this service. */
    metrics: ServiceMetrics;
  }
}

/**
 * Counts every response by route pattern (`/devices/:id`, not `/devices/42`) and serves the registry at
 * `GET /metrics`. A registry per app, not prom-client's global one, so several apps can live in one
 * process (tests) without "metric already registered" errors.
 */
export function registerMetrics(app: FastifyInstance, options: MetricsOptions = {}): ServiceMetrics {
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const labelNames: HttpLabels[] = ['method', 'route', 'status_code'];
  const metrics: ServiceMetrics = {
    registry,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP responses sent, by method, route pattern and status code',
      labelNames,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from request received to response sent, by method, route pattern and status code',
      labelNames,
      buckets: options.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
  app.decorate('metrics', metrics);
  app.addHook('onResponse', (request, reply, done) => {
    const labels = {
      method: request.method,
      route: request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE),
      status_code: String(reply.statusCode),
    };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    done();
  });
  app.get('/metrics', { logLevel: 'warn', schema: { hide: true } }, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
  return metrics;
}
