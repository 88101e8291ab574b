// The tunnel's public types: what the HTTP API forwards to a device's agent and gets back.
import type { Clock } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';
import type { DeviceStore, SessionTokenStore, TunnelSessionStore } from '../ports.js';
import type { CloseCode } from './protocol.js';
import type { TunnelHolder, TunnelRegistry } from './registry.js';

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
  /** Per forwarded request unless the request sets its own. Default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Largest response body an agent may send back, in bytes. Default 64 MiB. */
  maxResponseBytes?: number;
  /** Stamps presence records. Default the wall clock. */
  clock?: Clock;
  /**
   * Which instance holds which device's tunnel. Default: this instance only (in memory), so a
   * request reaches only the agents connected here. A shared one (Redis) sends requests for the
   * other instances' agents on to them, and registers their internal forward route.
   */
  registry?: TunnelRegistry;
  /** `TUNNEL_INTERNAL_TOKEN`, the instances' shared secret for the internal route; required with a shared registry. */
  internalToken?: string;
  /** How requests reach another instance. Default: undici to the holder's advertised URL. */
  peers?: TunnelPeers;
}

/** How this instance sends a request on to the instance that holds the device's tunnel. */
export interface TunnelPeers {
  /**
   * The agent's answer through `holder`. UNAVAILABLE when the holder cannot be reached, or no longer
   * holds the device (`details.notHeld`); TIMEOUT and UNREACHABLE as the holder met them.
   */
  forward(
    holder: TunnelHolder,
    deviceId: string,
    request: TunnelRequest,
    timeoutMs: number,
  ): Promise<TunnelResponse>;
  close(): Promise<void>;
}

/** Where a device's tunnel is, across every instance sharing the registry. */
export interface TunnelPresence {
  /** Some instance holds the agent's connection now. */
  connected: boolean;
  /** This instance holds it. */
  here: boolean;
  /** The last heartbeat answered (from the holder's registry entry when it is elsewhere). */
  lastSeenAt: Date | undefined;
  /** The holding instance, when connected. */
  instanceId?: string;
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

/** The agent connections of this instance, and the way to reach them and the other instances' ones. */
export interface TunnelHub {
  /**
   * Forwards one HTTP request to the device's agent, over this instance's connection or through the
   * instance holding it; UpgradeError UNAVAILABLE (503) when the agent is not connected anywhere,
   * its instance cannot be reached or the registry (Redis) is down, TIMEOUT (504) when it does not
   * answer in time.
   */
  forward(deviceId: string, request: TunnelRequest): Promise<TunnelResponse>;
  /** Whether the agent is connected to this instance. */
  isConnected(deviceId: string): boolean;
  /** The agent's last answered heartbeat on this instance. */
  lastSeenAt(deviceId: string): Date | undefined;
  /** Whether and where the agent is connected, on any instance; UNAVAILABLE when the registry is down and the agent is not here. */
  presence(deviceId: string): Promise<TunnelPresence>;
  /** `presence` for many devices in one registry round trip, in the order given. */
  presenceMany(deviceIds: readonly string[]): Promise<TunnelPresence[]>;
  /** The latest answered heartbeat among the agents connected to this instance; null with none. */
  latestSeenAt(): Date | null;
  /** Agents connected to this instance. */
  count(): number;
  /**
   * Closes the device's connection now (e.g. right after unpairing, instead of waiting for the
   * next heartbeat's token check). Returns false when the device had none.
   */
  disconnect(deviceId: string, reason?: string): boolean;
  /** Closes every connection and stops heartbeats; later agents are refused with 503. */
  close(): Promise<void>;
}
