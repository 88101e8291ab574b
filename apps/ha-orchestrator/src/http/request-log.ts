// The API request log: one row per request to /api/*, with what was sent and what was answered,
// written after the answer is sent, so a slow or failing log write never delays or fails the
// request itself (its failure is logged instead). Bodies are kept as JSON with every field that
// names a secret (token, password, key, ...) redacted; an upload is kept as its size and SHA-256
// (the route says so with `setLoggedRequestBody`), and a body over MAX_LOGGED_BODY_BYTES likewise.
import { createHash } from 'node:crypto';
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
  /** What the client sent, redacted; null when the request had no body. */
  requestBody: unknown;
  /** What the API answered, redacted; null when the answer had no body. */
  responseBody: unknown;
}

/** Where request records go (api_request_log). */
export interface ApiRequestLog {
  record(entry: ApiRequestRecord): Promise<void>;
}

/** Requests under this prefix are recorded. Probes (/health) and the docs UI are not. */
export const LOGGED_PREFIX = '/api/';

/** Bodies larger than this (as JSON) are kept as their size and SHA-256 only. */
export const MAX_LOGGED_BODY_BYTES = 64 * 1024;

/** What replaces the value of a field that names a secret. */
export const REDACTED = '[redacted]';

/** Field names (lower case, without `_` and `-`) whose values are secrets: `api_token`, `rootKey`... */
const SECRET_SUFFIXES = [
  'token',
  'secret',
  'password',
  'passwd',
  'passphrase',
  'authorization',
  'credential',
  'cookie',
  'apikey',
  'privatekey',
  'secretkey',
  'accesskey',
  'signingkey',
  'rootkey',
];

function isSecretField(name: string): boolean {
  const flat = name.toLowerCase().replace(/[_-]/g, '').replace(/s$/, '');
  return flat === 'key' || SECRET_SUFFIXES.some((suffix) => flat.endsWith(suffix));
}

const loggedBodies = new WeakMap<object, unknown>();
const sentPayloads = new WeakMap<object, unknown>();

/**
 * Sets what the log keeps as the request body, for a route that reads its body itself (the
 * multipart upload: its size and SHA-256, never its bytes).
 */
export function setLoggedRequestBody(request: object, body: unknown): void {
  loggedBodies.set(request, body);
}

/** Adds the hooks that record every /api/* request, rejected ones included. */
export function registerRequestLog(
  app: ServiceApp,
  log: ApiRequestLog,
  now: () => Date = () => new Date(),
): void {
  app.addHook('onSend', async (request, _reply, payload) => {
    if (pathOf(request).startsWith(LOGGED_PREFIX)) sentPayloads.set(request, payload);
    return payload;
  });
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
      requestBody: loggedBodies.has(request)
        ? loggableBody(loggedBodies.get(request))
        : loggableBody(request.body ?? null),
      responseBody: loggablePayload(sentPayloads.get(request)),
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

/** A body as the log keeps it: JSON with secrets redacted, or its size and SHA-256 when large or binary. */
export function loggableBody(body: unknown): unknown {
  if (body === null || body === undefined) return null;
  if (Buffer.isBuffer(body)) return digestOf(body);
  if (typeof body === 'string') return loggablePayload(body);
  const redacted = redactSecrets(body);
  const text = JSON.stringify(redacted) ?? 'null';
  return Buffer.byteLength(text) > MAX_LOGGED_BODY_BYTES ? digestOf(Buffer.from(text)) : redacted;
}

/** The payload fastify sent (a JSON string, text, a buffer or a stream) as the log keeps it. */
function loggablePayload(payload: unknown): unknown {
  if (payload === null || payload === undefined || payload === '') return null;
  if (Buffer.isBuffer(payload)) return digestOf(payload);
  if (typeof payload !== 'string') return { stream: true };
  if (Buffer.byteLength(payload) > MAX_LOGGED_BODY_BYTES) return digestOf(Buffer.from(payload));
  try {
    return redactSecrets(JSON.parse(payload) as unknown);
  } catch {
    return { text: true, ...digestOf(Buffer.from(payload)) };
  }
}

function digestOf(bytes: Buffer): { size_bytes: number; sha256: string } {
  return { size_bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A deep copy of `value` with the value of every field that names a secret replaced by REDACTED. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [key, isSecretField(key) ? REDACTED : redactSecrets(field)]),
  );
}
