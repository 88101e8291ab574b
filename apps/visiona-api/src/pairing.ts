// Pairing a device: the owner issues a one-time code, the device's agent redeems it and receives
// the session token it connects its tunnel with. Both secrets are shown once; only hashes are stored.
import { UpgradeError, isUpgradeError, type Clock } from '@upgrade/core';
import type { Device, DeviceStore, PairingTokenStore } from './ports.js';
import { hashToken, newToken } from './tokens.js';

/** What pairing needs. */
export interface PairingDeps {
  devices: DeviceStore;
  pairingTokens: PairingTokenStore;
  clock: Clock;
  /** How long a code can be redeemed. */
  codeTtlMs: number;
}

/** The pairing use cases. */
export interface Pairing {
  /** A fresh code for `ownerId`, shown this once. */
  issueCode(ownerId: string): Promise<{ code: string; expiresAt: Date }>;
  /**
   * Redeems the code: the device is created (paired to the code's owner) with its session token,
   * in one transaction. UNAUTHORIZED for an unknown, used or expired code; CONFLICT when a live
   * device holds the serial (the code stays usable).
   */
  pair(input: {
    code: string;
    serial: string;
    name: string;
  }): Promise<{ device: Device; sessionToken: string }>;
}

/** The pairing use cases over the device and pairing-token stores. */
export function createPairing(deps: PairingDeps): Pairing {
  return {
    issueCode: async (ownerId) => {
      const { raw, hash } = newToken();
      const expiresAt = new Date(deps.clock.now() + deps.codeTtlMs);
      await deps.pairingTokens.create({ tokenHash: hash, ownerId, expiresAt });
      return { code: raw, expiresAt };
    },
    pair: async ({ code, serial, name }) => {
      const session = newToken();
      const paired = await deps.devices
        .pair({ pairingTokenHash: hashToken(code), serial, name, sessionTokenHash: session.hash })
        .catch((error: unknown) => {
          if (isUpgradeError(error, 'CONFLICT') && error.details?.constraint === 'devices_serial_live')
            throw new UpgradeError(
              'CONFLICT',
              `a paired device already has serial ${serial}: unpair it first, then pair again with this code`,
              { cause: error, details: { serial } },
            );
          throw error;
        });
      if (paired === null)
        throw new UpgradeError(
          'UNAUTHORIZED',
          'pairing code is unknown, already used or expired: issue a new one from the device list',
        );
      return { device: paired.device, sessionToken: session.raw };
    },
  };
}
