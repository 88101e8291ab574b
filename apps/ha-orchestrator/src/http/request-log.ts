// The API request log: one row per request to /api/*, written after the answer is sent, so a slow
// or failing log write never delays or fails the request itself (its failure is logged instead).
import type { ServiceApp } from '@upgrade/service';
import { callerOf } from '../auth.js';

/** One answered API request. */
export interface ApiRequestRecord {
  at: Date;
  requestId: string;
  method: string;
  /** The route pattern, or the path when no route matched. */
  route: string;
  path: string;
  status: number;
  durationMs: number;
  clientIp: string;
  /** Name of the accepted API token; null when the request was not authenticated. */
  caller: string | null;
  userAgent: string | null;
}

/** Where request records go (api_request_log). */
export interface ApiRequestLog {
  record(entry: ApiRequestRecord): Promise<void>;
}

/** Requests under this prefix are recorded. Probes (/health) and the docs UI are not. */
export const LOGGED_PREFIX = '/api/';

/** Adds an onResponse hook that records every /api/* request, rejected ones included. */
export function registerRequestLog(
  app: ServiceApp,
  log: ApiRequestLog,
  now: () => Date = () => new Date(),
): void {
  app.addHook('onResponse', async (request, reply) => {
    const path = pathOf(request);
    if (!path.startsWith(LOGGED_PREFIX)) return;
    const entry: ApiRequestRecord = {
      at: now(),
      requestId: request.id,
      method: request.method,
      route: request.routeOptions.url ?? path,
      path,
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      clientIp: request.ip,
      caller: callerOf(request),
      userAgent: request.headers['user-agent'] ?? null,
    };
    try {
      await log.record(entry);
    } catch (error) {
      request.log.warn({ err: error }, 'could not write the API request log');
    }
  });
}

export function pathOf(request: { url: string }): string {
  return request.url.split('?', 1)[0] ?? '';
}
