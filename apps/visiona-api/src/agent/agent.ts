// The reference agent: dials the API's tunnel with its session token and serves the API's
// requests as an HTTP/2 server over the WebSocket's bytes. It keeps one connection, pings the API
// to notice a dead link, and reconnects with exponential backoff; a refused token stops it.
import http2, { type ServerHttp2Session } from 'node:http2';
import { UpgradeError } from '@upgrade/core';
import { WebSocket } from 'ws';
import { AGENT_CONNECT_PATH, CLOSE_CODES } from '../tunnel/protocol.js';
import { webSocketDuplex } from '../tunnel/ws-duplex.js';
import { createDefaultAgentHandler, type AgentHandler } from './handler.js';

/** The log calls the agent makes (a pino logger fits). */
export interface AgentLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ReferenceAgentOptions {
  /** The API's base URL (`http(s)://`); the agent dials `ws(s)://…/api/agent/connect`. */
  apiUrl: string;
  sessionToken: string;
  /** Serves forwarded requests. Default: GET /health, /deps, /info. */
  handler?: AgentHandler;
  /** Backoff between attempts, doubling from `minMs` up to `maxMs`, with jitter. Default 500 ms to 30 s. */
  reconnect?: { minMs: number; maxMs: number };
  /** How often the agent pings the API; an unanswered ping by the next one drops the link. Default 15 000 ms. */
  heartbeatIntervalMs?: number;
  logger?: AgentLogger;
}

export type AgentState = 'connecting' | 'connected' | 'stopped';

export interface ReferenceAgent {
  /** Resolves at the first connection; rejects with UNAUTHORIZED when the API refuses the token. */
  readonly connected: Promise<void>;
  state(): AgentState;
  /** How many times the agent has connected (reconnects included). */
  connections(): number;
  /** Why the agent stopped, once it has: `closed`, `unauthorized` (pair again) or `replaced`. */
  readonly stopped: Promise<string>;
  /** Disconnects and stops reconnecting. */
  close(): Promise<void>;
}

const STREAM_WINDOW = 1 << 20;
const SESSION_WINDOW = 16 << 20;
const MAX_SESSION_MEMORY_MB = 64;
const MAX_CONCURRENT_STREAMS = 1000;
const silent: AgentLogger = { info: () => undefined, warn: () => undefined };

/** Connects to the API and keeps connecting until closed or refused. */
export function startReferenceAgent(options: ReferenceAgentOptions): ReferenceAgent {
  const logger = options.logger ?? silent;
  const handler = options.handler ?? createDefaultAgentHandler();
  const { minMs, maxMs } = options.reconnect ?? { minMs: 500, maxMs: 30_000 };
  const heartbeatMs = options.heartbeatIntervalMs ?? 15_000;
  const url = new URL(AGENT_CONNECT_PATH, options.apiUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';

  const server = http2.createServer(
    {
      settings: { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    },
    (req, res) => void serve(handler, req, res),
  );

  let state: AgentState = 'connecting';
  let connections = 0;
  let failures = 0;
  let socket: WebSocket | undefined;
  let retry: NodeJS.Timeout | undefined;
  let resolveConnected: () => void = () => undefined;
  let rejectConnected: (error: Error) => void = () => undefined;
  const connected = new Promise<void>((resolve, reject) => {
    resolveConnected = resolve;
    rejectConnected = reject;
  });
  // Callers that never await `connected` must not see an unhandled rejection.
  connected.catch(() => undefined);
  let resolveStopped: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    resolveStopped = resolve;
  });

  const stop = (reason: string, error: Error): void => {
    if (state === 'stopped') return;
    state = 'stopped';
    clearTimeout(retry);
    rejectConnected(error);
    server.close();
    resolveStopped(reason);
  };

  const connect = (): void => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${options.sessionToken}` },
      perMessageDeflate: false,
    });
    socket = ws;
    let session: ServerHttp2Session | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let refusedWith: number | undefined;

    ws.on('unexpected-response', (_request, response) => {
      refusedWith = response.statusCode;
      response.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      state = 'connected';
      connections += 1;
      failures = 0;
      const duplex = webSocketDuplex(ws);
      duplex.on('error', () => undefined);
      server.once('session', (created: ServerHttp2Session) => {
        session = created;
        created.on('error', () => undefined);
        created.once('connect', () => created.setLocalWindowSize(SESSION_WINDOW));
      });
      server.emit('connection', duplex);
      heartbeat = startHeartbeat(() => session, ws, heartbeatMs);
      logger.info({ url: url.origin }, 'connected to the API');
      resolveConnected();
    });
    // Every failure is followed by 'close', which decides what comes next.
    ws.on('error', (error) => logger.warn({ err: error.message }, 'tunnel connection failed'));
    ws.on('close', (code, reason) => {
      clearInterval(heartbeat);
      session?.destroy();
      if (socket === ws) socket = undefined;
      if (state === 'stopped') return;
      if (code === CLOSE_CODES.replaced) {
        logger.warn({}, 'another agent of this device connected; this one stops');
        stop('replaced', new UpgradeError('CONFLICT', 'another agent of this device connected'));
        return;
      }
      if (refusedWith === 401 || refusedWith === 403 || code === CLOSE_CODES.revoked) {
        logger.warn({ status: refusedWith }, 'the API refused the session token; pair the device again');
        stop(
          'unauthorized',
          new UpgradeError('UNAUTHORIZED', 'the API refused the session token; pair the device again'),
        );
        return;
      }
      state = 'connecting';
      const delay = backoff(failures, minMs, maxMs);
      failures += 1;
      logger.info(
        { code, reason: reason.toString(), status: refusedWith, retryInMs: delay },
        'disconnected; reconnecting',
      );
      retry = setTimeout(connect, delay);
    });
  };

  connect();

  return {
    connected,
    stopped,
    state: () => state,
    connections: () => connections,
    close: async () => {
      const open = socket;
      stop('closed', new UpgradeError('ABORTED', 'the agent was closed before it connected'));
      if (open === undefined || open.readyState === WebSocket.CLOSED) return;
      const gone = new Promise<void>((resolve) => open.once('close', () => resolve()));
      open.close(1000, 'agent closing');
      const cut = setTimeout(() => open.terminate(), 1_000);
      await gone;
      clearTimeout(cut);
    },
  };
}

/** Pings the API over HTTP/2; a ping still unanswered at the next beat means the link is dead. */
function startHeartbeat(
  session: () => ServerHttp2Session | undefined,
  ws: WebSocket,
  intervalMs: number,
): NodeJS.Timeout {
  let awaiting = false;
  const timer = setInterval(() => {
    const current = session();
    if (awaiting || current === undefined || current.destroyed) {
      ws.terminate();
      return;
    }
    awaiting = true;
    current.ping(() => {
      awaiting = false;
    });
  }, intervalMs);
  timer.unref();
  return timer;
}

/** Exponential backoff with jitter (half to full of the step), so a fleet does not reconnect in step. */
function backoff(failures: number, minMs: number, maxMs: number): number {
  const step = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
  return Math.round(step / 2 + (Math.random() * step) / 2);
}

/** Runs the handler; a throwing handler answers 500 instead of leaving the stream open. */
async function serve(
  handler: AgentHandler,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
): Promise<void> {
  try {
    await handler(req, res);
  } catch {
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'the agent handler failed' }));
    } else {
      res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }
}
