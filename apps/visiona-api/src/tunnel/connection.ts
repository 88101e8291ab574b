// One agent's connection as the API holds it: an HTTP/2 client session whose bytes travel in
// WebSocket messages. Each forwarded request is one HTTP/2 stream, so requests run concurrently,
// have their own flow control and can be cancelled (RST_STREAM) one by one.
import http2, { type ClientHttp2Stream } from 'node:http2';
import { UpgradeError } from '@upgrade/core';
import type { WebSocket } from 'ws';
import { fromResponseHeaders, toRequestHeaders } from './headers.js';
import { CLOSE_CODES, type CloseCode } from './protocol.js';
import { webSocketDuplex } from './ws-duplex.js';
import type { AgentConnection, TunnelRequest, TunnelResponse } from './types.js';

/** Per-stream receive window: large enough that a 1 MiB body is not throttled by WINDOW_UPDATEs. */
const STREAM_WINDOW = 1 << 20;
/** Connection-wide receive window, shared by every concurrent stream. */
const SESSION_WINDOW = 16 << 20;
/** nghttp2's buffer limit in MiB; its default (10) refuses streams under many large concurrent bodies. */
const MAX_SESSION_MEMORY_MB = 64;
/** How long a closing agent gets to answer the WebSocket close handshake before the socket is cut. */
const CLOSE_GRACE_MS = 1_000;

/** The API side of an agent connection, with the heartbeat the hub drives. */
export interface LiveAgentConnection extends AgentConnection {
  /** One HTTP/2 PING round trip; rejects when the connection is gone. */
  ping(): Promise<void>;
  /** How many WebSocket messages the agent has sent: traffic proves the link is alive too. */
  activity(): number;
  /** Why the connection closed, once it has. */
  readonly closeReason: string | undefined;
}

export interface OpenConnectionOptions {
  deviceId: string;
  connectedAt: Date;
  maxResponseBytes: number;
  /** Told once, when the connection closes for whatever reason. */
  onClose: (reason: string) => void;
}

/** Starts the HTTP/2 client session over an accepted agent WebSocket. */
export function openAgentConnection(socket: WebSocket, options: OpenConnectionOptions): LiveAgentConnection {
  const { deviceId } = options;
  const duplex = webSocketDuplex(socket);
  const session = http2.connect(`http://${deviceId}.agent`, {
    createConnection: () => duplex,
    settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
  });
  let received = 0;
  socket.on('message', () => {
    received += 1;
  });
  const inFlight = new Set<(error: UpgradeError) => void>();
  let closeReason: string | undefined;
  let resolveClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });

  const unavailable = (cause?: unknown): UpgradeError =>
    new UpgradeError(
      'UNAVAILABLE',
      `the agent of device ${deviceId} disconnected (${closeReason ?? 'connection lost'}); retry once it reconnects`,
      { cause },
    );

  const close = (reason: string, code: CloseCode = CLOSE_CODES.closedByApi): void => {
    if (closeReason !== undefined) return;
    closeReason = reason;
    for (const fail of inFlight) fail(unavailable());
    inFlight.clear();
    if (socket.readyState === socket.OPEN) socket.close(code, reason.slice(0, 120));
    session.destroy();
    const cut = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    cut.unref();
    socket.once('close', () => clearTimeout(cut));
    options.onClose(reason);
  };

  session.on('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
  // 'error' is followed by 'close'; the listener only keeps it from being thrown.
  session.on('error', () => undefined);
  session.on('close', () => close('tunnel session ended'));
  session.on('goaway', () => close('agent went away'));
  duplex.on('error', () => undefined);
  socket.on('close', () => {
    close('agent disconnected');
    resolveClosed();
  });
  // An agent gone before this ran gets no 'close' event; closing later lets the caller register first.
  if (socket.readyState === socket.CLOSED) {
    queueMicrotask(() => {
      close('agent disconnected');
      resolveClosed();
    });
  }

  const send = (request: TunnelRequest, timeoutMs: number): Promise<TunnelResponse> =>
    new Promise<TunnelResponse>((resolve, reject) => {
      const body =
        typeof request.body === 'string' ? Buffer.from(request.body) : (request.body ?? Buffer.alloc(0));
      const headers = toRequestHeaders(request, body.length);
      if (closeReason !== undefined || session.destroyed) {
        reject(unavailable());
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        // GET and HEAD streams are half-closed at once unless told otherwise; a body needs them open.
        stream = session.request(headers, { endStream: body.length === 0 });
      } catch (error) {
        reject(unavailable(error));
        return;
      }
      let settled = false;
      const finish = (outcome: { error: UpgradeError } | { response: TunnelResponse }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        inFlight.delete(fail);
        if ('error' in outcome) {
          // Resets only this stream; the other requests on the connection carry on.
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(outcome.error);
        } else {
          resolve(outcome.response);
        }
      };
      const fail = (error: UpgradeError): void => finish({ error });
      inFlight.add(fail);
      const method = request.method.toUpperCase();
      const timer = setTimeout(() => {
        fail(
          new UpgradeError(
            'TIMEOUT',
            `the agent of device ${deviceId} did not answer ${method} ${request.path} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);

      let status = 0;
      let responseHeaders: Record<string, string> = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (incoming) => {
        status = Number(incoming[':status']);
        responseHeaders = fromResponseHeaders(incoming);
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxResponseBytes) {
          fail(
            new UpgradeError(
              'UNREACHABLE',
              `the agent's response is larger than ${options.maxResponseBytes} bytes`,
              {
                retryable: false,
              },
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      stream.on('end', () =>
        finish({ response: { status, headers: responseHeaders, body: Buffer.concat(chunks) } }),
      );
      stream.on('error', (error) => fail(streamFailure(error)));
      stream.on('close', () => fail(streamFailure(undefined)));
      if (body.length > 0) stream.end(body);

      const streamFailure = (cause: unknown): UpgradeError => {
        if (closeReason !== undefined || session.destroyed) return unavailable(cause);
        if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
          return new UpgradeError(
            'UNAVAILABLE',
            `the agent of device ${deviceId} refused the request; retry`,
            {
              cause,
            },
          );
        }
        return new UpgradeError(
          'UNREACHABLE',
          `the agent of device ${deviceId} reset the request (HTTP/2 error ${stream.rstCode ?? 'unknown'})`,
          { cause, retryable: false },
        );
      };
    });

  const ping = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (closeReason !== undefined || session.destroyed) {
        reject(unavailable());
        return;
      }
      const sent = session.ping((error) => (error ? reject(unavailable(error)) : resolve()));
      if (!sent) reject(unavailable());
    });

  return {
    deviceId,
    connectedAt: options.connectedAt,
    send,
    close,
    ping,
    activity: () => received,
    closed,
    get closeReason() {
      return closeReason;
    },
  };
}
