// What the download reads from HTTP answers and how it words network failures. Pure functions
// over headers and errors, so the download flow stays about the transfer itself.
import type { IncomingHttpHeaders } from 'node:http';
import { networkErrorCode } from '@upgrade/core';

/** Statuses worth asking again: the server or a proxy is overloaded or restarting. */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

/**
 * One attempt ended early for a reason the next attempt may not meet (reset, stall, 5xx): the
 * download goes on with Range from the bytes already on disk.
 */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(
    readonly reason: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

/** A `Content-Range: bytes a-b/total` header; `total` is null for `*`. */
export interface ContentRange {
  start: number;
  end: number;
  total: number | null;
}

/** The value of a single-valued header, when present. */
export function headerOf(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Content-Length as a number; null when absent (chunked) or not a number. */
export function contentLengthOf(headers: IncomingHttpHeaders): number | null {
  const raw = headerOf(headers, 'content-length');
  return raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw) : null;
}

/** The Content-Range of a 206; null when absent or malformed. */
export function contentRangeOf(headers: IncomingHttpHeaders): ContentRange | null {
  const raw = headerOf(headers, 'content-range');
  const match = raw === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(raw.trim());
  if (match === null) return null;
  const [, start, end, total] = match;
  return {
    start: Number(start),
    end: Number(end),
    total: total === '*' || total === undefined ? null : Number(total),
  };
}

/** The ETag, when the server sent one. */
export function etagOf(headers: IncomingHttpHeaders): string | null {
  return headerOf(headers, 'etag')?.trim() ?? null;
}

/** An ETag If-Range may carry: RFC 9110 forbids weak validators there. */
export function strongEtag(etag: string | null): string | null {
  return etag !== null && etag.startsWith('"') ? etag : null;
}

/** A short reason for a failed connection or request, from the client's and Node's error codes. */
export function describeNetworkError(
  error: unknown,
  limits: { connectTimeoutMs: number; headersTimeoutMs: number; stallTimeoutMs: number },
): string {
  const code = networkErrorCode(error);
  switch (code) {
    case 'CONNECT_TIMEOUT':
      return `could not connect within ${limits.connectTimeoutMs} ms`;
    case 'HEADERS_TIMEOUT':
      return `no answer headers within ${limits.headersTimeoutMs} ms`;
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name not resolved (${code})`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `connection lost (${code})`;
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return `the server's answer is not valid HTTP (${code})`;
    default:
      break;
  }
  const text = error instanceof Error ? error.message : String(error);
  return code === undefined ? `request failed (${text})` : `request failed (${code}: ${text})`;
}
