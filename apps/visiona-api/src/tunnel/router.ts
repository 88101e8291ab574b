// Where a request for a device goes: over this instance's connection when the agent is here, else
// through the instance the registry names, else nowhere (UNAVAILABLE). A registry that cannot be
// read is UNAVAILABLE too: a request is never reported as sent when it was not.
import { UpgradeError } from '@upgrade/core';
import type { TunnelSessionStore } from '../ports.js';
import { isNotHeld } from './internal-protocol.js';
import type { TunnelHolder, TunnelRegistry } from './registry.js';
import type {
  AgentConnection,
  FastifyBaseLogger,
  TunnelPeers,
  TunnelPresence,
  TunnelRequest,
  TunnelResponse,
} from './types.js';

export interface TunnelRouterDeps {
  tunnels: TunnelSessionStore<AgentConnection>;
  registry: TunnelRegistry;
  /** Absent with a registry that is not shared: every tunnel is local. */
  peers: TunnelPeers | undefined;
  defaultTimeoutMs: number;
  logger: FastifyBaseLogger;
}

export interface TunnelRouter {
  forward: (deviceId: string, request: TunnelRequest) => Promise<TunnelResponse>;
  /** Over this instance's connection only; NOT_FOUND when the agent is not connected here. */
  forwardLocal: (deviceId: string, request: TunnelRequest) => Promise<TunnelResponse>;
  presence: (deviceId: string) => Promise<TunnelPresence>;
  presenceMany: (deviceIds: readonly string[]) => Promise<TunnelPresence[]>;
}

export function createTunnelRouter(deps: TunnelRouterDeps): TunnelRouter {
  const { tunnels, registry, peers, defaultTimeoutMs, logger } = deps;
  const notConnected = (deviceId: string): UpgradeError =>
    new UpgradeError(
      'UNAVAILABLE',
      `the agent of device ${deviceId} is not connected; retry once it is online`,
    );

  /** Removes an entry that names a connection known to be gone; it would expire anyway. */
  const dropStale = (deviceId: string, holder: TunnelHolder): void => {
    registry.release(deviceId, holder.connectionId).catch((error: unknown) => {
      logger.debug({ err: error, deviceId }, 'could not remove a stale tunnel registry entry');
    });
  };

  /** The holder elsewhere, or undefined when no other instance holds the device. */
  const holderElsewhere = (deviceId: string, holder: TunnelHolder | undefined): TunnelHolder | undefined => {
    if (holder === undefined) return undefined;
    if (holder.instanceId !== registry.instanceId) return holder;
    // Names this instance, yet no connection is here: the connection closed and its release failed.
    if (tunnels.get(deviceId) === undefined) dropStale(deviceId, holder);
    return undefined;
  };

  const forwardLocal = async (deviceId: string, request: TunnelRequest): Promise<TunnelResponse> => {
    const connection = tunnels.get(deviceId);
    if (connection === undefined) {
      throw new UpgradeError(
        'NOT_FOUND',
        `the agent of device ${deviceId} is not connected to this instance`,
      );
    }
    return connection.send(request, request.timeoutMs ?? defaultTimeoutMs);
  };

  const forward = async (deviceId: string, request: TunnelRequest): Promise<TunnelResponse> => {
    const timeoutMs = request.timeoutMs ?? defaultTimeoutMs;
    const connection = tunnels.get(deviceId);
    if (connection !== undefined) return connection.send(request, timeoutMs);
    if (!registry.shared || peers === undefined) throw notConnected(deviceId);
    const holder = holderElsewhere(deviceId, await registry.locate(deviceId));
    if (holder === undefined) throw notConnected(deviceId);
    try {
      return await peers.forward(holder, deviceId, { ...request, timeoutMs }, timeoutMs);
    } catch (error) {
      if (isNotHeld(error)) dropStale(deviceId, holder);
      throw error;
    }
  };

  const here = (deviceId: string): TunnelPresence => ({
    connected: true,
    here: true,
    lastSeenAt: tunnels.lastSeenAt(deviceId),
    instanceId: registry.instanceId,
  });
  const elsewhereOrNot = (deviceId: string, holder: TunnelHolder | undefined): TunnelPresence => {
    const other = holderElsewhere(deviceId, holder);
    if (other === undefined)
      return { connected: false, here: false, lastSeenAt: tunnels.lastSeenAt(deviceId) };
    return { connected: true, here: false, lastSeenAt: other.lastSeenAt, instanceId: other.instanceId };
  };

  const presence = async (deviceId: string): Promise<TunnelPresence> => {
    if (tunnels.get(deviceId) !== undefined) return here(deviceId);
    if (!registry.shared) return elsewhereOrNot(deviceId, undefined);
    return elsewhereOrNot(deviceId, await registry.locate(deviceId));
  };

  const presenceMany = async (deviceIds: readonly string[]): Promise<TunnelPresence[]> => {
    const remote = deviceIds.filter((id) => tunnels.get(id) === undefined);
    const holders = new Map<string, TunnelHolder | undefined>();
    if (registry.shared && remote.length > 0) {
      const found = await registry.locateMany(remote);
      remote.forEach((id, i) => holders.set(id, found[i]));
    }
    return deviceIds.map((id) =>
      tunnels.get(id) !== undefined ? here(id) : elsewhereOrNot(id, holders.get(id)),
    );
  };

  return { forward, forwardLocal, presence, presenceMany };
}
