import { randomUUID } from 'node:crypto';
import { rejectionOf } from '@upgrade/testkit';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Device, User } from '../../src/ports.js';
import { newToken } from '../../src/tokens.js';
import type { Fresh } from './target.js';

const MINUTE = 60_000;

/** The PairingTokenStore and SessionTokenStore contracts. */
export function tokensContract(current: Fresh): void {
  describe('tokens', () => tokenSuites(current));
}

function tokenSuites(current: Fresh): void {
  let ada: User;
  let device: Device;
  beforeEach(async () => {
    const { stores } = current();
    ada = await stores.users.create({ email: 'ada@example.com', passwordHash: 'h' });
    device = await stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
  });

  describe('pairing tokens', () => {
    it('redeems once: the second redeem finds nothing', async () => {
      const { stores, clock } = current();
      const { hash } = newToken();
      await stores.pairingTokens.create({
        tokenHash: hash,
        ownerId: ada.id,
        expiresAt: new Date(clock.now() + 10 * MINUTE),
      });
      expect(await stores.pairingTokens.redeem(hash)).toEqual({ ownerId: ada.id });
      expect(await stores.pairingTokens.redeem(hash)).toBeNull();
      expect(await stores.pairingTokens.redeem(newToken().hash)).toBeNull();
    });

    it('lets exactly one of two concurrent redeems win', async () => {
      const { stores, clock } = current();
      const { hash } = newToken();
      await stores.pairingTokens.create({
        tokenHash: hash,
        ownerId: ada.id,
        expiresAt: new Date(clock.now() + MINUTE),
      });
      const results = await Promise.all([
        stores.pairingTokens.redeem(hash),
        stores.pairingTokens.redeem(hash),
      ]);
      expect(results.filter((r) => r !== null)).toHaveLength(1);
    });

    it('refuses an expired token', async () => {
      const { stores, clock } = current();
      const { hash } = newToken();
      await stores.pairingTokens.create({
        tokenHash: hash,
        ownerId: ada.id,
        expiresAt: new Date(clock.now() + MINUTE),
      });
      await clock.advance(MINUTE);
      expect(await stores.pairingTokens.redeem(hash)).toBeNull();
    });

    it('refuses a hash twice (CONFLICT), a raw-looking token (VALIDATION_FAILED) and an unknown owner (CONFLICT)', async () => {
      const { stores, clock } = current();
      const { raw, hash } = newToken();
      const expiresAt = new Date(clock.now() + MINUTE);
      await stores.pairingTokens.create({ tokenHash: hash, ownerId: ada.id, expiresAt });
      const twice = await rejectionOf(
        stores.pairingTokens.create({ tokenHash: hash, ownerId: ada.id, expiresAt }),
      );
      expect([twice.code, twice.status, twice.details?.constraint]).toEqual([
        'CONFLICT',
        409,
        'pairing_tokens_pkey',
      ]);
      const rawError = await rejectionOf(
        stores.pairingTokens.create({ tokenHash: raw, ownerId: ada.id, expiresAt }),
      );
      expect(rawError.code).toBe('VALIDATION_FAILED');
      const orphan = await rejectionOf(
        stores.pairingTokens.create({ tokenHash: newToken().hash, ownerId: randomUUID(), expiresAt }),
      );
      expect(orphan.code).toBe('CONFLICT');
    });
  });

  describe('session tokens', () => {
    it('finds a token by its hash until it is revoked', async () => {
      const { stores, clock } = current();
      const { hash } = newToken();
      const token = await stores.sessionTokens.create({ tokenHash: hash, deviceId: device.id });
      expect(token).toEqual({
        tokenHash: hash,
        deviceId: device.id,
        createdAt: new Date(clock.now()),
        expiresAt: null,
      });
      expect(await stores.sessionTokens.find(hash)).toEqual(token);
      expect(await stores.sessionTokens.revoke(hash)).toBe(true);
      expect(await stores.sessionTokens.revoke(hash)).toBe(false);
      expect(await stores.sessionTokens.find(hash)).toBeNull();
    });

    it('stops finding a token once it expires', async () => {
      const { stores, clock } = current();
      const { hash } = newToken();
      await stores.sessionTokens.create({
        tokenHash: hash,
        deviceId: device.id,
        expiresAt: new Date(clock.now() + MINUTE),
      });
      await clock.advance(MINUTE - 1);
      expect(await stores.sessionTokens.find(hash)).not.toBeNull();
      await clock.advance(1);
      expect(await stores.sessionTokens.find(hash)).toBeNull();
    });

    it("revokes every token of a device and no other device's", async () => {
      const { stores } = current();
      const other = await stores.devices.create({ ownerId: ada.id, serial: 'SN-2', name: 'b' });
      const [a, b, c] = [newToken(), newToken(), newToken()];
      await stores.sessionTokens.create({ tokenHash: a.hash, deviceId: device.id });
      await stores.sessionTokens.create({ tokenHash: b.hash, deviceId: device.id });
      await stores.sessionTokens.create({ tokenHash: c.hash, deviceId: other.id });
      expect(await stores.sessionTokens.revokeForDevice(device.id)).toBe(2);
      expect(await stores.sessionTokens.find(a.hash)).toBeNull();
      expect(await stores.sessionTokens.find(c.hash)).not.toBeNull();
    });

    it('refuses a token for a missing device and a hash twice with CONFLICT', async () => {
      const { stores } = current();
      const { hash } = newToken();
      const missing = await rejectionOf(
        stores.sessionTokens.create({ tokenHash: hash, deviceId: randomUUID() }),
      );
      expect(missing.code).toBe('CONFLICT');
      await stores.sessionTokens.create({ tokenHash: hash, deviceId: device.id });
      const twice = await rejectionOf(stores.sessionTokens.create({ tokenHash: hash, deviceId: device.id }));
      expect(twice.details).toMatchObject({ constraint: 'session_tokens_pkey' });
    });
  });
}
