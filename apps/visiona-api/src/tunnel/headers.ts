// HTTP/1.1 and HTTP/2 headers differ: HTTP/2 forbids connection-specific headers (RFC 9113
// section 8.2.2) and carries the method, path and status as pseudo-headers.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { UpgradeError } from '@upgrade/core';
import type { TunnelRequest } from './types.js';

/** What `:authority` says on the agent: it only ever serves its own device. */
const AGENT_AUTHORITY = 'agent';
/** Headers that describe one hop, not the message; an HTTP/2 peer rejects a stream carrying them. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'host',
  'http2-settings',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The HTTP/2 request headers for a tunnel request; VALIDATION_FAILED for a malformed one. */
export function toRequestHeaders(request: TunnelRequest, bodyLength: number): OutgoingHttpHeaders {
  if (!TOKEN.test(request.method)) {
    throw new UpgradeError('VALIDATION_FAILED', `"${request.method}" is not an HTTP method`);
  }
  if (!request.path.startsWith('/')) {
    throw new UpgradeError('VALIDATION_FAILED', `the agent path must start with "/", got "${request.path}"`);
  }
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower.startsWith(':')) continue;
    if (!TOKEN.test(lower)) throw new UpgradeError('VALIDATION_FAILED', `"${name}" is not a header name`);
    headers[lower] = value;
  }
  headers[':method'] = request.method.toUpperCase();
  headers[':path'] = request.path;
  headers[':authority'] = AGENT_AUTHORITY;
  if (bodyLength > 0) headers['content-length'] = String(bodyLength);
  return headers;
}

/** The response headers without pseudo-headers, repeated ones joined with `, `. */
export function fromResponseHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    result[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return result;
}
