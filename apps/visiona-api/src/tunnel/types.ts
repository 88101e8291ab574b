// The tunnel's public types: what the HTTP API forwards to a device's agent and gets back.
import type { Clock } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';
import type { DeviceStore, SessionTokenStore, TunnelSessionStore } from '../ports.js';
import type { CloseCode } from './protocol.js';

/** fastify's logger (pino), as the service's app carries it. */
export type FastifyBaseLogger = ServiceApp['log'];

/** The live connection of one agent, as the tunnel session store keeps it. */
export interface AgentConnection {
  readonly deviceId: string;
  readonly connectedAt: Date;
  /** Forwards one request over this connection (the hub's `forward` picks the connection). */
  send(request: TunnelRequest, timeoutMs: number): Promise<TunnelResponse>;
  /**
   * Ends the connection; its in-flight requests fail with UNAVAILABLE. Safe to call twice. `code`
   * (a WebSocket close code from protocol.ts) tells the agent whether to reconnect.
   */
  close(reason: string, code?: CloseCode): void;
  /** Resolves once the connection is fully closed. */
  readonly closed: Promise<void>;
}

/** What the tunnel needs. */
export interface TunnelDeps {
  sessionTokens: SessionTokenStore;
  devices: DeviceStore;
  tunnels: TunnelSessionStore<AgentConnection>;
  logger: FastifyBaseLogger;
  /**
   * How often the API pings each agent (HTTP/2 PING), records its presence and re-checks its
   * session token. A ping unanswered by the next beat closes the connection. Default 15 000 ms.
   */
  heartbeatIntervalMs?: number;
  /** Per forwarded request unless the request sets its own. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Largest response body an agent may send back, in bytes. Default 64 MiB. */
  maxResponseBytes?: number;
  /** Stamps presence records. Default the wall clock. */
  clock?: Clock;
}

/** One HTTP request for a device's agent. */
export interface TunnelRequest {
  method: string;
  /** Path and query on the agent, starting with `/`. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Overrides the hub's `requestTimeoutMs`. */
  timeoutMs?: number;
}

/** The agent's answer. Header names are lowercase; repeated headers are joined with `, `. */
export interface TunnelResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** The agent connections of this instance, and the way to reach them. */
export interface TunnelHub {
  /** Forwards one HTTP request to the device's agent; UpgradeError UNAVAILABLE (503) when the agent is not connected, TIMEOUT (504) when it does not answer in time. */
  forward(deviceId: string, request: TunnelRequest): Promise<TunnelResponse>;
  isConnected(deviceId: string): boolean;
  lastSeenAt(deviceId: string): Date | undefined;
  count(): number;
  /**
   * Closes the device's connection now (e.g. right after unpairing, instead of waiting for the
   * next heartbeat's token check). Returns false when the device had none.
   */
  disconnect(deviceId: string, reason?: string): boolean;
  /** Closes every connection and stops heartbeats; later agents are refused with 503. */
  close(): Promise<void>;
}
