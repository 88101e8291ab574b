// The agent tunnel: edge agents dial out to GET /api/agent/connect over a WebSocket and the API
// forwards HTTP requests for their device over it, as HTTP/2 streams on the WebSocket's bytes.
export type {
  AgentConnection,
  FastifyBaseLogger,
  TunnelDeps,
  TunnelHub,
  TunnelRequest,
  TunnelResponse,
} from './types.js';
/** Registers GET /api/agent/connect (WebSocket upgrade, authenticated by the session token) on the app and returns the hub. */
export { registerTunnel } from './register.js';
/** The route and the WebSocket close codes the agent acts on. */
export { AGENT_CONNECT_PATH, CLOSE_CODES, type CloseCode } from './protocol.js';
