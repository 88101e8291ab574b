// What instances agree on when one sends a request on to the instance holding the device's tunnel:
// `POST /internal/tunnel/:deviceId/forward` with the shared token, the request's method, path,
// headers and timeout in one header and its body as the raw request body; the agent's status and
// headers come back in one header, its body as the raw response body. Any other status than 200 is
// the holder's own error envelope, whose `code` says what happened.
import { createHash, timingSafeEqual } from 'node:crypto';
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import type { TunnelRequest, TunnelResponse } from './types.js';

/** The internal route; not in the public API description. */
export const INTERNAL_FORWARD_PATH = '/internal/tunnel/:deviceId/forward';
/** The request's method, path, headers and timeout: base64url of JSON. */
export const FORWARD_REQUEST_HEADER = 'x-tunnel-request';
/** The agent's status and headers: base64url of JSON. */
export const FORWARD_RESPONSE_HEADER = 'x-tunnel-response';

/** The request as it travels between instances (its body separately). */
export interface ForwardedRequestMeta {
  method: string;
  path: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

export function internalForwardUrl(baseUrl: string, deviceId: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${INTERNAL_FORWARD_PATH.replace(':deviceId', encodeURIComponent(deviceId))}`;
}

export function encodeRequestMeta(request: TunnelRequest, timeoutMs: number): string {
  const meta: ForwardedRequestMeta = {
    method: request.method,
    path: request.path,
    headers: request.headers ?? {},
    timeoutMs,
  };
  return Buffer.from(JSON.stringify(meta)).toString('base64url');
}

export function decodeRequestMeta(header: string | string[] | undefined): ForwardedRequestMeta {
  const meta = decode(header) as Partial<ForwardedRequestMeta> | undefined;
  if (
    meta === undefined ||
    typeof meta.method !== 'string' ||
    typeof meta.path !== 'string' ||
    !meta.path.startsWith('/') ||
    typeof meta.timeoutMs !== 'number' ||
    !(meta.timeoutMs > 0) ||
    !isStringRecord(meta.headers)
  ) {
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `send the request as ${FORWARD_REQUEST_HEADER}: base64url JSON`,
    );
  }
  return { method: meta.method, path: meta.path, headers: meta.headers, timeoutMs: meta.timeoutMs };
}

export function encodeResponseMeta(response: TunnelResponse): string {
  return Buffer.from(JSON.stringify({ status: response.status, headers: response.headers })).toString(
    'base64url',
  );
}

/** The agent's status and headers, or undefined when the header is missing or malformed. */
export function decodeResponseMeta(
  header: string | string[] | undefined,
): Omit<TunnelResponse, 'body'> | undefined {
  const meta = decode(header) as { status?: unknown; headers?: unknown } | undefined;
  if (meta === undefined || typeof meta.status !== 'number' || !isStringRecord(meta.headers))
    return undefined;
  return { status: meta.status, headers: meta.headers };
}

/** Compares an `Authorization` header with the shared token in constant time. */
export function isInternalTokenValid(authorization: string | undefined, token: string): boolean {
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  if (presented === undefined) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(token));
}

function decode(header: string | string[] | undefined): unknown {
  if (typeof header !== 'string') return undefined;
  try {
    return JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string')
  );
}

/** The details of the UNAVAILABLE a forward fails with when the holder no longer holds the device. */
export const NOT_HELD = { notHeld: true } as const;

/** Whether a forward failed because the holder said it no longer holds the device: its entry is stale. */
export function isNotHeld(error: unknown): boolean {
  return isUpgradeError(error, 'UNAVAILABLE') && error.details?.notHeld === true;
}
