// The service's outbound HTTP/1.1, on node:http / node:https: the package download, the device API
// reports and the services' health URLs. One connection per request (no pool, nothing left to
// misbehave between requests), every phase bounded, and every 'error' of the request, the socket
// and the response caught here: whatever a server does (short bodies, resets after FIN, lies),
// the caller sees a rejected promise or a failed body iteration, never an unhandled event.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';

/** A request that could not get an answer's headers; `code` is stable (see {@link HTTP_CLIENT_CODES}). */
export class HttpClientError extends Error {
  override readonly name = 'HttpClientError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Codes this client adds to Node's own (ECONNREFUSED, ECONNRESET, ENOTFOUND...). */
export const HTTP_CLIENT_CODES = {
  connectTimeout: 'CONNECT_TIMEOUT',
  headersTimeout: 'HEADERS_TIMEOUT',
  aborted: 'ABORTED',
} as const;

export interface SendOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** TCP (+ TLS) connect limit. */
  connectTimeoutMs: number;
  /** From the connection to the answer's headers. */
  headersTimeoutMs: number;
  /** Destroys the request, or the body once it streams, with the signal's reason. */
  signal?: AbortSignal;
}

/** An answer whose body is still to be read (iterate it, or {@link discardBody}). */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Errors (a reset mid-body, the abort) come out of its iteration; none is ever unhandled. */
  body: AsyncIterable<Buffer>;
  /** Ends the answer and its connection; safe to call at any time, more than once. */
  close(): void;
}

/**
 * Sends one request and resolves with the answer's status and headers. Rejects with an
 * HttpClientError (timeouts, abort) or Node's network error (ECONNREFUSED, ECONNRESET...).
 */
export function sendRequest(url: URL, options: SendOptions): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted === true) {
      reject(abortedBy(signal));
      return;
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = send(url, { method: options.method ?? 'GET', headers, agent: false });
    let answer: IncomingMessage | null = null;
    let timer: NodeJS.Timeout | null = null;
    let settled = false;
    const arm = (ms: number, code: string, text: string): void => {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => req.destroy(new HttpClientError(code, text)), ms);
    };
    const disarm = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    };
    const onAbort = (): void => {
      const reason = signal === undefined ? new Error('aborted') : abortedBy(signal);
      if (answer === null) req.destroy(reason);
      else answer.destroy(reason);
    };
    const unlink = (): void => signal?.removeEventListener('abort', onAbort);
    signal?.addEventListener('abort', onAbort, { once: true });

    // Every error of the request and its socket lands here; after the answer arrived they also
    // reach the body (Node destroys it), whose reader sees them.
    req.on('error', (error: Error) => {
      disarm();
      if (settled) return;
      settled = true;
      unlink();
      reject(error);
    });
    arm(
      options.connectTimeoutMs,
      HTTP_CLIENT_CODES.connectTimeout,
      `could not connect within ${options.connectTimeoutMs} ms`,
    );
    req.on('socket', (socket: Socket) => {
      socket.on('error', () => undefined);
      const connected = (): void =>
        arm(
          options.headersTimeoutMs,
          HTTP_CLIENT_CODES.headersTimeout,
          `no answer headers within ${options.headersTimeoutMs} ms`,
        );
      if (url.protocol === 'https:') socket.once('secureConnect', connected);
      else socket.once('connect', connected);
    });
    req.on('response', (res: IncomingMessage) => {
      disarm();
      answer = res;
      // Reported through the body's iteration or ignored by a caller that has given up on it.
      res.on('error', () => undefined);
      res.once('close', unlink);
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: res,
        close: () => {
          res.destroy();
          req.destroy();
        },
      });
    });
    req.end(options.body);
  });
}

/**
 * Reads and drops up to `limit` bytes of a body (its end lets the server finish cleanly), closing
 * it beyond that. Never rejects: the body of an answer nobody needs cannot fail anything.
 */
export async function discardBody(answer: HttpAnswer, limit = 64 * 1024): Promise<void> {
  let seen = 0;
  try {
    for await (const chunk of answer.body) {
      seen += chunk.length;
      if (seen > limit) break;
    }
  } catch {
    // A reset or an abort of an unwanted body changes nothing.
  } finally {
    answer.close();
  }
}

function abortedBy(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new HttpClientError(HTTP_CLIENT_CODES.aborted, 'request aborted');
}
