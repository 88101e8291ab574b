// The tunnel's whole flow: an agent dials GET /api/agent/connect with its session token, the API
// checks the token before upgrading, registers the connection (closing the one it replaces, here or
// on another instance), heartbeats it (PING, presence, token re-check, registry refresh) and
// forwards requests over it until it closes. Requests for agents held by other instances go through
// them (router.ts).
import { randomUUID } from 'node:crypto';
import fastifyWebsocket from '@fastify/websocket';
import { UpgradeError, systemClock } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';
import type { WebSocket } from 'ws';
import { hashToken } from '../tokens.js';
import { openAgentConnection, type LiveAgentConnection } from './connection.js';
import { registerInternalTunnelRoutes } from './internal-routes.js';
import { createUndiciTunnelPeers } from './peers.undici.js';
import { AGENT_CONNECT_PATH, CLOSE_CODES } from './protocol.js';
import { createLocalTunnelRegistry, type TunnelClaim } from './registry.js';
import { createTunnelRouter } from './router.js';
import type { AgentConnection, TunnelDeps, TunnelHub } from './types.js';

const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 64 << 20;
/** Upper bound of one WebSocket message; HTTP/2 frames are at most 16 KiB plus a header by default. */
const MAX_WS_PAYLOAD = 1 << 20;

/** What the auth hook reads of the upgrade request. */
interface AgentUpgradeRequest {
  headers: { authorization?: string | undefined };
}

/** Who an authenticated upgrade request is, between the auth hook and the WebSocket handler. */
interface AgentIdentity {
  deviceId: string;
  tokenHash: string;
}

export async function registerTunnel(app: ServiceApp, deps: TunnelDeps): Promise<TunnelHub> {
  const { sessionTokens, devices, tunnels, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const heartbeatMs = deps.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
  const defaultTimeoutMs = deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const maxResponseBytes = deps.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const identities = new WeakMap<object, AgentIdentity>();
  const live = new Set<LiveAgentConnection>();
  const connectionIds = new WeakMap<AgentConnection, string>();
  let closing = false;

  // Which instance holds which device: this one only, unless a shared registry (Redis) is given.
  const registry = deps.registry ?? createLocalTunnelRegistry();
  if (registry.shared && deps.internalToken === undefined) {
    throw new UpgradeError('CONFIG_INVALID', 'a shared tunnel registry needs TUNNEL_INTERNAL_TOKEN');
  }
  const ownPeers =
    registry.shared && deps.peers === undefined && deps.internalToken !== undefined
      ? createUndiciTunnelPeers({ internalToken: deps.internalToken })
      : undefined;
  const router = createTunnelRouter({
    tunnels,
    registry,
    peers: deps.peers ?? ownPeers,
    defaultTimeoutMs,
    logger,
  });
  // Registry writes still running, awaited on close before the caller closes Redis under them.
  const registryWrites = new Set<Promise<unknown>>();
  const trackWrite = <T>(write: Promise<T>): Promise<T | undefined> => {
    const settled = write.catch((error: unknown) => {
      logger.warn({ err: error }, 'could not write the tunnel registry');
      return undefined;
    });
    registryWrites.add(settled);
    void settled.then(() => registryWrites.delete(settled));
    return settled;
  };

  // Before the WebSocket plugin's own preClose (when this adds it), so agents hear "going away".
  app.addHook('preClose', async () => closeAll());
  if (!app.hasPlugin('@fastify/websocket')) {
    await app.register(fastifyWebsocket, { options: { maxPayload: MAX_WS_PAYLOAD } });
  }

  // Presence writes of one device run one after another, so a quick connect-disconnect cannot
  // leave "online" written last. They are best effort: a database hiccup must not cut a tunnel.
  const presenceWrites = new Map<string, Promise<void>>();
  const recordPresence = (
    deviceId: string,
    status: 'online' | 'offline',
    stillApplies: () => boolean | Promise<boolean>,
  ): void => {
    const previous = presenceWrites.get(deviceId) ?? Promise.resolve();
    const next = previous.then(async () => {
      if (!(await stillApplies())) return;
      try {
        await devices.recordPresence(deviceId, status, new Date(clock.now()));
      } catch (error) {
        logger.warn({ err: error, deviceId, status }, 'could not record agent presence');
      }
    });
    presenceWrites.set(deviceId, next);
    void next.then(() => {
      if (presenceWrites.get(deviceId) === next) presenceWrites.delete(deviceId);
    });
  };

  // 1. Authenticate before upgrading: a refused agent gets a plain 401 response, never a socket.
  const authenticate = async (request: AgentUpgradeRequest): Promise<void> => {
    if (closing) throw new UpgradeError('UNAVAILABLE', 'the API is shutting down; reconnect shortly');
    const raw = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (raw === undefined) {
      throw new UpgradeError('UNAUTHORIZED', 'send the session token as "Authorization: Bearer <token>"');
    }
    const tokenHash = hashToken(raw);
    const token = await sessionTokens.find(tokenHash);
    // Unpairing revokes the device's tokens in the same transaction, so an unpaired device lands here.
    if (token === null) {
      throw new UpgradeError(
        'UNAUTHORIZED',
        'the session token is unknown, expired or revoked; pair the device again',
      );
    }
    identities.set(request, { deviceId: token.deviceId, tokenHash });
  };

  // 2. Register the connection, replacing (and closing) the device's previous one.
  const accept = (socket: WebSocket, request: object): void => {
    const identity = identities.get(request);
    if (identity === undefined || closing) {
      socket.terminate();
      return;
    }
    const { deviceId, tokenHash } = identity;
    const connectionId = randomUUID();
    const log = logger.child({ deviceId });
    // Beats start with the connection; `beat` (below) runs only once the first interval passes.
    const heartbeat = setInterval(() => void beat(), heartbeatMs);
    heartbeat.unref();
    const isCurrent = (): boolean => tunnels.get(deviceId) === connection;
    const connection = openAgentConnection(socket, {
      deviceId,
      connectedAt: new Date(clock.now()),
      maxResponseBytes,
      onClose: (reason) => {
        clearInterval(heartbeat);
        live.delete(connection);
        // Only while the entry is still this connection's: a newer one may hold it already.
        const released = trackWrite(registry.release(deviceId, connectionId));
        // A replaced connection closing late must not mark the device offline under its successor,
        // here or on another instance.
        if (tunnels.unregister(deviceId, connection)) {
          recordPresence(deviceId, 'offline', async () => {
            await released;
            return tunnels.get(deviceId) === undefined && !(await heldElsewhere(deviceId, connectionId));
          });
        }
        log.info({ reason }, 'agent disconnected');
      },
    });
    live.add(connection);
    connectionIds.set(connection, connectionId);
    const replaced = tunnels.register(deviceId, connection);
    replaced?.close('replaced by a newer connection of the same device', CLOSE_CODES.replaced);
    // Claiming tells the instance holding an older connection of this device to close it. Redis
    // being down does not refuse the agent: local requests work and the heartbeat claims again.
    const claim = (): TunnelClaim => ({
      connectionId,
      connectedAt: connection.connectedAt,
      lastSeenAt: tunnels.lastSeenAt(deviceId) ?? connection.connectedAt,
    });
    void trackWrite(registry.claim(deviceId, claim()));
    log.info({ replaced: replaced !== undefined }, 'agent connected');
    recordPresence(deviceId, 'online', isCurrent);

    // Each beat pushes the registry entry's expiry back; finding it claimed by another connection
    // (the agent reconnected to another instance) means this one is stale.
    let registryDown = false;
    const refreshClaim = async (): Promise<void> => {
      if (!isCurrent()) return;
      try {
        const stillHeld = await registry.refresh(deviceId, claim());
        if (registryDown) log.info('tunnel registry reachable again');
        registryDown = false;
        if (!stillHeld)
          connection.close('replaced by a newer connection on another instance', CLOSE_CODES.replaced);
      } catch (error) {
        if (!registryDown) log.warn({ err: error }, 'could not refresh the tunnel registry entry');
        registryDown = true;
      }
    };

    // 3. Heartbeat: each beat sends a PING; a beat that finds the previous PING unanswered and no
    // traffic since closes the connection (a long transfer can queue a PING ack behind DATA frames,
    // so traffic counts as life). Each answered PING re-checks the token, so an unpaired device's
    // connection ends at the latest one beat after unpairing.
    let awaitingPong = false;
    let activityAtBeat = -1;
    const beat = async (): Promise<void> => {
      void refreshClaim();
      if (awaitingPong) {
        // After the event loop stalled for longer than a beat, timers run before the socket is read:
        // the PING ack may be waiting in it. The verdict comes once pending input has been read.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const activity = connection.activity();
        if (awaitingPong && activity === activityAtBeat) connection.close('heartbeat missed');
        activityAtBeat = activity;
        return;
      }
      const activity = connection.activity();
      activityAtBeat = activity;
      awaitingPong = true;
      try {
        await connection.ping();
      } catch {
        connection.close('heartbeat failed');
        return;
      } finally {
        awaitingPong = false;
      }
      tunnels.markSeen(deviceId);
      recordPresence(deviceId, 'online', isCurrent);
      let stillValid = true;
      try {
        stillValid = (await sessionTokens.find(tokenHash)) !== null;
      } catch (error) {
        // The store being down is no proof of revocation; the next beat checks again.
        log.warn({ err: error }, 'could not re-check the agent session token');
      }
      if (!stillValid) connection.close('session token revoked', CLOSE_CODES.revoked);
    };
  };

  app.route({
    method: 'GET',
    url: AGENT_CONNECT_PATH,
    schema: { hide: true },
    preValidation: authenticate,
    handler: async () => {
      throw new UpgradeError('VALIDATION_FAILED', 'connect with a WebSocket upgrade', { status: 426 });
    },
    wsHandler: accept,
  });

  // 4. Another instance claimed a device connected here: close the stale connection at once (the
  // next heartbeat's refresh would too), once the registry confirms the claim still stands.
  registry.onClaim((deviceId, claimedBy) => {
    const local = tunnels.get(deviceId);
    if (local === undefined || connectionIds.get(local) === claimedBy) return;
    void registry.locate(deviceId).then(
      (holder) => {
        if (tunnels.get(deviceId) === local && holder?.connectionId !== connectionIds.get(local)) {
          local.close('replaced by a newer connection on another instance', CLOSE_CODES.replaced);
        }
      },
      () => undefined,
    );
  });

  // 5. Other instances send requests for the agents connected here through an internal route.
  if (registry.shared && deps.internalToken !== undefined) {
    await registerInternalTunnelRoutes(app, {
      internalToken: deps.internalToken,
      forwardLocal: router.forwardLocal,
      bodyLimit: maxResponseBytes,
    });
  }

  const hub: TunnelHub = {
    forward: router.forward,
    isConnected: (deviceId) => tunnels.get(deviceId) !== undefined,
    lastSeenAt: (deviceId) => tunnels.lastSeenAt(deviceId),
    presence: router.presence,
    presenceMany: router.presenceMany,
    latestSeenAt: () => tunnels.latestSeenAt() ?? null,
    count: () => tunnels.count(),
    disconnect: (deviceId, reason = 'disconnected by the API') => {
      const connection = tunnels.get(deviceId);
      connection?.close(reason);
      return connection !== undefined;
    },
    close: closeAll,
  };
  return hub;

  async function closeAll(): Promise<void> {
    closing = true;
    const all = [...live];
    for (const connection of all) connection.close('the API is shutting down', CLOSE_CODES.goingAway);
    await Promise.all(all.map((connection) => connection.closed));
    // The registry releases and "offline" writes, before the caller closes Redis and the database.
    await Promise.all(registryWrites);
    await Promise.all(presenceWrites.values());
    await ownPeers?.close();
  }

  /** Whether the registry names another connection of the device (here or elsewhere) than `connectionId`. */
  async function heldElsewhere(deviceId: string, connectionId: string): Promise<boolean> {
    try {
      const holder = await registry.locate(deviceId);
      return holder !== undefined && holder.connectionId !== connectionId;
    } catch {
      // Unknown: the device is written offline as on a single instance; the holder's heartbeat
      // writes it online again.
      return false;
    }
  }
}
