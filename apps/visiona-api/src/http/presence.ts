// Whether each device's agent holds a tunnel now, on any instance, for the routes that show it. The
// registry (Redis) answers for the agents of other instances; while it cannot, a page of devices
// still loads: agents connected here are known for sure, the others are as their holder's last
// heartbeat recorded them (the device's stored online status), rather than the whole page failing.
import { isUpgradeError } from '@upgrade/core';
import type { Device } from '../ports.js';
import type { FastifyBaseLogger, TunnelHub } from '../tunnel/index.js';

/** What a route shows of a device's tunnel. */
export interface DevicePresence {
  connected: boolean;
  /** The agent's last answered heartbeat, from the holder or else as stored. */
  lastSeenAt: Date | null;
}

/** The presence of `devices`, in their order, in one registry round trip. */
export async function presenceOf(
  hub: TunnelHub,
  devices: readonly Device[],
  log: FastifyBaseLogger,
): Promise<DevicePresence[]> {
  if (devices.length === 0) return [];
  try {
    const found = await hub.presenceMany(devices.map((d) => d.id));
    return devices.map((device, i) => ({
      connected: found[i]?.connected ?? false,
      lastSeenAt: found[i]?.lastSeenAt ?? device.agentLastSeenAt,
    }));
  } catch (error) {
    if (!isUpgradeError(error, 'UNAVAILABLE')) throw error;
    log.warn(
      { err: error },
      'tunnel registry unavailable: device presence from this instance and the stored online status',
    );
    return devices.map((device) =>
      hub.isConnected(device.id)
        ? { connected: true, lastSeenAt: hub.lastSeenAt(device.id) ?? device.agentLastSeenAt }
        : { connected: device.onlineStatus === 'online', lastSeenAt: device.agentLastSeenAt },
    );
  }
}
