// The agent tunnel: edge agents dial out to GET /api/agent/connect over a WebSocket and the API
// forwards HTTP requests for their device over it, as HTTP/2 streams on the WebSocket's bytes.
export type {
  AgentConnection,
  FastifyBaseLogger,
  TunnelDeps,
  TunnelHub,
  TunnelPeers,
  TunnelPresence,
  TunnelRequest,
  TunnelResponse,
} from './types.js';
/** Which instance holds which device's tunnel: this one only (memory), or shared by every instance (Redis). */
export {
  createLocalTunnelRegistry,
  type TunnelClaim,
  type TunnelHolder,
  type TunnelRegistry,
} from './registry.js';
export {
  createRedisTunnelRegistry,
  type RedisTunnelRegistry,
  type RedisTunnelRegistryOptions,
} from './registry.redis.js';
/** How an instance sends requests on to the one holding the tunnel (the default of a shared registry). */
export { createUndiciTunnelPeers, type UndiciTunnelPeersOptions } from './peers.undici.js';
/** Registers GET /api/agent/connect (WebSocket upgrade, authenticated by the session token) on the app and returns the hub. */
export { registerTunnel } from './register.js';
/** The route and the WebSocket close codes the agent acts on. */
export { AGENT_CONNECT_PATH, CLOSE_CODES, type CloseCode } from './protocol.js';
