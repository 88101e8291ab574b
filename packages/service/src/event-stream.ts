import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceApp } from './types.js';

/** A server-sent event stream to one client (`text/event-stream`). */
export interface EventStream {
  /** Sends one event; `data` is sent as JSON. False once the client is gone. */
  send(event: string, data: unknown, id?: string): boolean;
  /** Ends the stream from the server side. */
  close(): void;
  /** Runs once when the stream ends, whoever ended it. */
  onClose(listener: () => void): void;
  readonly closed: boolean;
  /** The client's `Last-Event-ID` on a reconnect, to resume after it. */
  readonly lastEventId: string | undefined;
}

/** Options of `openEventStream`. */
export interface EventStreamOptions {
  /** A comment line this often keeps proxies from closing a quiet stream. Default 15000 ms. */
  keepAliveMs?: number;
  /** The client's reconnect delay sent as `retry:`. Default 2000 ms. */
  retryMs?: number;
}

/** Open streams by the app's HTTP server, which the root app and every plugin context share. */
const openStreams = new WeakMap<object, Set<EventStream>>();

/**
 * Every open event stream of `app` ends when the app closes: a stream is a request that never
 * finishes, so without this a graceful shutdown would wait for each client to leave. `createService`
 * calls it; hooks can only be added before the app starts.
 */
export function registerEventStreams(app: ServiceApp): void {
  if (openStreams.has(app.server)) return;
  const streams = new Set<EventStream>();
  openStreams.set(app.server, streams);
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.close();
  });
}

/**
 * Turns the reply into an event stream. Call from a route handler after its checks (auth, params)
 * and return the reply. Authorization stays in headers: pages read the stream with `fetch` rather
 * than `EventSource`, which cannot send them.
 */
export function openEventStream(
  app: ServiceApp,
  request: FastifyRequest,
  reply: FastifyReply,
  options: EventStreamOptions = {},
): EventStream {
  const streams = openStreams.get(app.server);
  if (!streams) throw new Error('event streams need registerEventStreams(app) before the app starts');
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': String(request.id),
  });
  raw.write(`retry: ${options.retryMs ?? 2_000}\n\n`);

  const listeners: (() => void)[] = [];
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(keepAlive);
    streams.delete(stream);
    if (!raw.writableEnded) raw.end();
    for (const listener of listeners.splice(0)) listener();
  };
  const keepAlive = setInterval(() => {
    if (!closed) raw.write(': keep-alive\n\n');
  }, options.keepAliveMs ?? 15_000);
  keepAlive.unref();

  const lastEventIdHeader = request.headers['last-event-id'];
  const stream: EventStream = {
    send(event, data, id) {
      if (closed) return false;
      const lines = [`event: ${singleLine(event)}`];
      if (id !== undefined) lines.push(`id: ${singleLine(id)}`);
      // JSON never contains a raw newline, so the data is one `data:` line.
      lines.push(`data: ${JSON.stringify(data)}`);
      raw.write(`${lines.join('\n')}\n\n`);
      return true;
    },
    close: finish,
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
    get closed() {
      return closed;
    },
    lastEventId: typeof lastEventIdHeader === 'string' ? lastEventIdHeader : undefined,
  };
  streams.add(stream);
  raw.on('close', finish);
  raw.on('error', finish);
  return stream;
}

function singleLine(value: string): string {
  return value.replace(/[\r\n]/g, ' ');
}
