// What the reference agent serves over the tunnel. A real agent puts its own API here; the
// handler is a plain node request handler (the HTTP/2 compatibility API mirrors node:http's).
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { arch, platform } from 'node:os';

/** A node-style request handler for requests the API forwards to this agent. */
export type AgentHandler = (req: Http2ServerRequest, res: Http2ServerResponse) => void | Promise<void>;

/** What the default handler reports. */
export interface DefaultHandlerOptions {
  /** `GET /deps`: the agent's dependencies and their state. */
  deps?: Record<string, string>;
  /** Merged into `GET /info`. */
  info?: Record<string, unknown>;
}

const DEFAULT_DEPS = { npu_runtime: 'ok', camera: 'ok', model_store: 'ok' };
const STARTED_AT = Date.now();

/** Serves GET /health, GET /deps and GET /info as JSON; anything else is 404. */
export function createDefaultAgentHandler(options: DefaultHandlerOptions = {}): AgentHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'only GET is served' });
    switch (path) {
      case '/health':
        return sendJson(res, 200, { status: 'ok' });
      case '/deps':
        return sendJson(res, 200, options.deps ?? DEFAULT_DEPS);
      case '/info':
        return sendJson(res, 200, {
          agent: 'visiona-reference-agent',
          node: process.version,
          platform: platform(),
          arch: arch(),
          uptimeSeconds: Math.round((Date.now() - STARTED_AT) / 1000),
          ...options.info,
        });
      default:
        return sendJson(res, 404, { error: `no route ${req.method} ${path}` });
    }
  };
}

function sendJson(res: Http2ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
