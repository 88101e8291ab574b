import type { Clock } from '@upgrade/core';
import type { TunnelSessionStore } from '../ports.js';

/**
 * The agent connections this instance holds. In memory by nature: a connection is a socket of
 * this process. With several instances, which one holds a device is a routing question (README).
 */
export function createTunnelSessionStore<H>(clock: Clock): TunnelSessionStore<H> {
  const live = new Map<string, H>();
  const seen = new Map<string, number>();
  return {
    register: (deviceId, handle) => {
      const previous = live.get(deviceId);
      live.set(deviceId, handle);
      seen.set(deviceId, clock.now());
      return previous;
    },
    get: (deviceId) => live.get(deviceId),
    unregister: (deviceId, handle) => live.get(deviceId) === handle && live.delete(deviceId),
    markSeen: (deviceId) => {
      if (live.has(deviceId)) seen.set(deviceId, clock.now());
    },
    // Kept after a disconnect: "last seen" is most useful exactly when the agent is gone.
    lastSeenAt: (deviceId) => {
      const at = seen.get(deviceId);
      return at === undefined ? undefined : new Date(at);
    },
    latestSeenAt: () => {
      let latest: number | undefined;
      for (const deviceId of live.keys()) {
        const at = seen.get(deviceId);
        if (at !== undefined && (latest === undefined || at > latest)) latest = at;
      }
      return latest === undefined ? undefined : new Date(latest);
    },
    count: () => live.size,
  };
}
