import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the simulator received it, body already read as text. */
export interface RecordedRequest {
  readonly method: string;
  /** Path without the query string, e.g. `/api/v1/upgrade`. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Answers one request. Throwing answers 500 with the error message, so a broken handler fails loudly. */
export type SimulatorHandler = (
  request: RecordedRequest,
  response: ServerResponse,
  raw: IncomingMessage,
) => void | Promise<void>;

/** Handlers keyed by `'METHOD /path'` or `'/path'` (any method); anything else answers 404. */
export type SimulatorRoutes = Readonly<Record<string, SimulatorHandler>>;

export interface HttpSimulator {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order; clear it with `requests.length = 0`. */
  readonly requests: RecordedRequest[];
  /** Stops listening and destroys open sockets, including ones a handler left hanging on purpose. */
  close(): Promise<void>;
}

/**
 * Starts an HTTP server on an ephemeral loopback port. The base of the repo's simulators of
 * outside systems: they add their own routes and error modes (hang, 5xx, malformed bodies).
 *
 * @example const sim = await startHttpSimulator({ 'GET /health': (_req, res) => sendJson(res, 200, { ok: true }) })
 */
export async function startHttpSimulator(
  handler: SimulatorHandler | SimulatorRoutes,
): Promise<HttpSimulator> {
  const dispatch = typeof handler === 'function' ? handler : routeTable(handler);
  const requests: RecordedRequest[] = [];
  const server = createServer((raw, response) => {
    void readBody(raw)
      .then(async (body) => {
        const url = new URL(raw.url ?? '/', 'http://simulator');
        const request: RecordedRequest = {
          method: raw.method ?? 'GET',
          path: url.pathname,
          query: url.searchParams,
          headers: raw.headers,
          body,
        };
        requests.push(request);
        await dispatch(request, response, raw);
      })
      .catch((error: unknown) => {
        if (response.headersSent) {
          response.destroy();
          return;
        }
        sendText(
          response,
          500,
          `simulator handler failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // close() alone waits for keep-alive and hanging sockets, which would stall the test run.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Writes a JSON response with the right content type and length. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** Writes a plain-text response. */
export function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

function routeTable(routes: SimulatorRoutes): SimulatorHandler {
  return (request, response, raw) => {
    const route = routes[`${request.method} ${request.path}`] ?? routes[request.path];
    if (route === undefined) {
      sendJson(response, 404, { error: `no route for ${request.method} ${request.path}` });
      return;
    }
    return route(request, response, raw);
  };
}

async function readBody(raw: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of raw) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
