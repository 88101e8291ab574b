// Which instance holds which device's tunnel. One instance keeps it in memory (nothing to share);
// several instances behind a load balancer share it in Redis (registry.redis.ts), so a request that
// lands on any of them can be sent on to the instance the agent is connected to.
import { randomUUID } from 'node:crypto';

/** One device's tunnel as the registry records it. */
export interface TunnelClaim {
  /** Unique per connection: a newer connection of the same device, on any instance, has another. */
  connectionId: string;
  connectedAt: Date;
  lastSeenAt: Date;
}

/** Who holds a device's tunnel. */
export interface TunnelHolder extends TunnelClaim {
  instanceId: string;
  /** Base URL other instances reach the holder at (`INSTANCE_ADVERTISE_URL`); empty in memory. */
  url: string;
}

/**
 * Where each device's tunnel lives. Entries expire unless refreshed (the heartbeat does), so the
 * devices of an instance that died without cleaning up are freed after the TTL.
 */
export interface TunnelRegistry {
  /** This instance. */
  readonly instanceId: string;
  /** True when other instances share the registry: requests for their devices are sent on to them. */
  readonly shared: boolean;
  /** Records this instance as the holder; whoever held the device before (here or elsewhere) no longer does. */
  claim(deviceId: string, claim: TunnelClaim): Promise<void>;
  /**
   * Pushes the entry's expiry back and records `lastSeenAt`, or writes it again when it expired
   * meanwhile. False when another connection claimed the device: this one is stale.
   */
  refresh(deviceId: string, claim: TunnelClaim): Promise<boolean>;
  /** Removes the entry only while it is still `connectionId`'s (compare-and-delete). */
  release(deviceId: string, connectionId: string): Promise<boolean>;
  locate(deviceId: string): Promise<TunnelHolder | undefined>;
  /** `locate` for many devices in one round trip, in the order given. */
  locateMany(deviceIds: readonly string[]): Promise<(TunnelHolder | undefined)[]>;
  /** Told of every claim, by any instance, as soon as it is made (best effort: the heartbeat's refresh is the backstop). */
  onClaim(listener: (deviceId: string, connectionId: string) => void): void;
  close(): Promise<void>;
}

/** The registry of a single instance: every tunnel is local, nothing is shared. */
export function createLocalTunnelRegistry(instanceId: string = randomUUID()): TunnelRegistry {
  const entries = new Map<string, TunnelHolder>();
  const listeners: ((deviceId: string, connectionId: string) => void)[] = [];
  const locate = async (deviceId: string): Promise<TunnelHolder | undefined> => entries.get(deviceId);
  return {
    instanceId,
    shared: false,
    claim: async (deviceId, claim) => {
      entries.set(deviceId, { ...claim, instanceId, url: '' });
      for (const listener of listeners) listener(deviceId, claim.connectionId);
    },
    refresh: async (deviceId, claim) => {
      const current = entries.get(deviceId);
      if (current !== undefined && current.connectionId !== claim.connectionId) return false;
      entries.set(deviceId, { ...claim, instanceId, url: '' });
      return true;
    },
    release: async (deviceId, connectionId) =>
      entries.get(deviceId)?.connectionId === connectionId && entries.delete(deviceId),
    locate,
    locateMany: (deviceIds) => Promise.all(deviceIds.map(locate)),
    onClaim: (listener) => {
      listeners.push(listener);
    },
    close: async () => {
      entries.clear();
    },
  };
}
