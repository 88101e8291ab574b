import { randomUUID } from 'node:crypto';
import { rejectionOf } from '@upgrade/testkit';
import { beforeEach, describe, expect, it } from 'vitest';
import type { User } from '../../src/ports.js';
import { newToken } from '../../src/tokens.js';
import type { Fresh, StoresTarget } from './target.js';

/** The DeviceStore contract, unpairing included. */
export function devicesContract(current: Fresh, target: () => StoresTarget): void {
  describe('devices', () => {
    let ada: User;
    let bob: User;
    beforeEach(async () => {
      ada = await current().stores.users.create({ email: 'ada@example.com', passwordHash: 'h' });
      bob = await current().stores.users.create({ email: 'bob@example.com', passwordHash: 'h' });
    });

    it('creates a pending, offline device and reads it for its owner only', async () => {
      const { stores, clock } = current();
      const device = await stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'door cam' });
      expect(device).toEqual({
        id: expect.any(String) as string,
        ownerId: ada.id,
        serial: 'SN-1',
        name: 'door cam',
        pairingStatus: 'pending',
        onlineStatus: 'offline',
        agentLastSeenAt: null,
        createdAt: new Date(clock.now()),
        updatedAt: new Date(clock.now()),
      });
      expect(await stores.devices.get(device.id, ada.id)).toEqual(device);
      expect(await stores.devices.get(device.id, bob.id)).toBeNull();
      expect(await stores.devices.getById(device.id)).toEqual(device);
      expect(await stores.devices.get('x', ada.id)).toBeNull();
    });

    it('refuses a serial a live device holds with CONFLICT (409), whoever asks', async () => {
      const { devices } = current().stores;
      await devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
      const error = await rejectionOf(devices.create({ ownerId: bob.id, serial: 'SN-1', name: 'b' }));
      expect(error.code).toBe('CONFLICT');
      expect(error.status).toBe(409);
      expect(error.details).toMatchObject({ constraint: 'devices_serial_live' });
    });

    it('lets an unpaired serial register again', async () => {
      const { devices } = current().stores;
      const first = await devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
      expect(await devices.unpair(first.id, ada.id)).toBe(true);
      const again = await devices.create({ ownerId: bob.id, serial: 'SN-1', name: 'b' });
      expect(again.id).not.toBe(first.id);
      expect(await devices.getById(first.id)).toBeNull();
    });

    it('lists an owner’s live devices oldest first with paging and total', async () => {
      const { stores, clock } = current();
      for (const serial of ['A', 'B', 'C', 'D']) {
        await stores.devices.create({ ownerId: ada.id, serial, name: serial });
        await clock.advance(1000);
      }
      await stores.devices.create({ ownerId: bob.id, serial: 'E', name: 'E' });
      const all = await stores.devices.list(ada.id, { limit: 10, offset: 0 });
      expect(all.items.map((d) => d.serial)).toEqual(['A', 'B', 'C', 'D']);
      const page = await stores.devices.list(ada.id, { limit: 2, offset: 1 });
      expect({ serials: page.items.map((d) => d.serial), total: page.total }).toEqual({
        serials: ['B', 'C'],
        total: 4,
      });
      const b = all.items[1];
      if (b === undefined) throw new Error('no device B');
      await stores.devices.unpair(b.id, ada.id);
      expect((await stores.devices.list(ada.id, { limit: 10, offset: 0 })).total).toBe(3);
    });

    it('renames for the owner only and records pairing and presence', async () => {
      const { stores, clock } = current();
      const device = await stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
      expect(await stores.devices.rename(device.id, bob.id, 'mine now')).toBeNull();
      await clock.advance(5000);
      const renamed = await stores.devices.rename(device.id, ada.id, 'porch');
      expect(renamed).toMatchObject({ name: 'porch', updatedAt: new Date(clock.now()) });
      expect(await stores.devices.markPaired(device.id)).toMatchObject({ pairingStatus: 'paired' });
      const seenAt = new Date(clock.now() + 1);
      expect(await stores.devices.recordPresence(device.id, 'online', seenAt)).toMatchObject({
        onlineStatus: 'online',
        agentLastSeenAt: seenAt,
      });
      expect(await stores.devices.recordPresence(randomUUID(), 'online', seenAt)).toBeNull();
    });

    it('unpairs: the device is gone and its session tokens with it, other devices keep theirs', async () => {
      const { stores } = current();
      const device = await stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
      const other = await stores.devices.create({ ownerId: ada.id, serial: 'SN-2', name: 'b' });
      const [t1, t2, t3] = [newToken(), newToken(), newToken()];
      await stores.sessionTokens.create({ tokenHash: t1.hash, deviceId: device.id });
      await stores.sessionTokens.create({ tokenHash: t2.hash, deviceId: device.id });
      await stores.sessionTokens.create({ tokenHash: t3.hash, deviceId: other.id });
      expect(await stores.devices.unpair(device.id, bob.id)).toBe(false);
      expect(await stores.devices.unpair(device.id, ada.id)).toBe(true);
      expect(await stores.devices.unpair(device.id, ada.id)).toBe(false);
      expect(await stores.devices.get(device.id, ada.id)).toBeNull();
      expect(await stores.sessionTokens.find(t1.hash)).toBeNull();
      expect(await stores.sessionTokens.find(t2.hash)).toBeNull();
      expect(await stores.sessionTokens.find(t3.hash)).toMatchObject({ deviceId: other.id });
      const late = await rejectionOf(
        stores.sessionTokens.create({ tokenHash: newToken().hash, deviceId: device.id }),
      );
      expect(late.code).toBe('CONFLICT');
    });

    it('unpairs both or neither: a failing token revocation leaves the device and its tokens', async () => {
      const { stores } = current();
      const device = await stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'a' });
      const token = newToken();
      await stores.sessionTokens.create({ tokenHash: token.hash, deviceId: device.id });
      await target().breakTokenRevocation();
      const error = await rejectionOf(stores.devices.unpair(device.id, ada.id));
      expect(error.code).toBe('INTERNAL');
      expect(await stores.devices.get(device.id, ada.id)).toEqual(device);
      expect(await stores.sessionTokens.find(token.hash)).toMatchObject({ deviceId: device.id });
      const clash = await rejectionOf(stores.devices.create({ ownerId: ada.id, serial: 'SN-1', name: 'b' }));
      expect(clash.code).toBe('CONFLICT');
    });
    describe('pair', () => {
      const MINUTE = 60_000;
      const issue = async (ownerId: string, ttlMs = 10 * MINUTE): Promise<string> => {
        const { stores, clock } = current();
        const code = newToken();
        await stores.pairingTokens.create({
          tokenHash: code.hash,
          ownerId,
          expiresAt: new Date(clock.now() + ttlMs),
        });
        return code.hash;
      };

      it('redeems the code and creates the paired device and its session token, once', async () => {
        const { stores, clock } = current();
        const code = await issue(ada.id);
        const session = newToken();
        const paired = await stores.devices.pair({
          pairingTokenHash: code,
          serial: 'SN-1',
          name: 'door cam',
          sessionTokenHash: session.hash,
        });
        expect(paired?.device).toMatchObject({ ownerId: ada.id, serial: 'SN-1', pairingStatus: 'paired' });
        expect(paired?.sessionToken).toEqual({
          tokenHash: session.hash,
          deviceId: paired?.device.id,
          createdAt: new Date(clock.now()),
          expiresAt: null,
        });
        expect(await stores.devices.get(paired?.device.id ?? '', ada.id)).toEqual(paired?.device);
        expect(await stores.sessionTokens.find(session.hash)).toEqual(paired?.sessionToken);
        const again = await stores.devices.pair({
          pairingTokenHash: code,
          serial: 'SN-2',
          name: 'b',
          sessionTokenHash: newToken().hash,
        });
        expect(again).toBeNull();
        expect(await stores.pairingTokens.redeem(code)).toBeNull();
      });

      it('refuses an expired or unknown code and creates nothing', async () => {
        const { stores, clock } = current();
        const code = await issue(ada.id, MINUTE);
        await clock.advance(MINUTE);
        const session = newToken();
        for (const hash of [code, newToken().hash])
          expect(
            await stores.devices.pair({
              pairingTokenHash: hash,
              serial: 'SN-1',
              name: 'a',
              sessionTokenHash: session.hash,
            }),
          ).toBeNull();
        expect((await stores.devices.list(ada.id, { limit: 10, offset: 0 })).total).toBe(0);
        expect(await stores.sessionTokens.find(session.hash)).toBeNull();
      });

      it('all or nothing: a serial a live device holds is CONFLICT and leaves the code usable', async () => {
        const { stores } = current();
        await stores.devices.create({ ownerId: bob.id, serial: 'SN-1', name: 'taken' });
        const code = await issue(ada.id);
        const session = newToken();
        const clash = await rejectionOf(
          stores.devices.pair({
            pairingTokenHash: code,
            serial: 'SN-1',
            name: 'a',
            sessionTokenHash: session.hash,
          }),
        );
        expect([clash.code, clash.details?.constraint]).toEqual(['CONFLICT', 'devices_serial_live']);
        expect(await stores.sessionTokens.find(session.hash)).toBeNull();
        expect((await stores.devices.list(ada.id, { limit: 10, offset: 0 })).total).toBe(0);
        const paired = await stores.devices.pair({
          pairingTokenHash: code,
          serial: 'SN-2',
          name: 'a',
          sessionTokenHash: session.hash,
        });
        expect(paired?.device.ownerId).toBe(ada.id);
      });

      it('lets exactly one of two concurrent pairings with one code win', async () => {
        const { stores } = current();
        const code = await issue(ada.id);
        const results = await Promise.all(
          ['SN-1', 'SN-2'].map((serial) =>
            stores.devices.pair({
              pairingTokenHash: code,
              serial,
              name: serial,
              sessionTokenHash: newToken().hash,
            }),
          ),
        );
        expect(results.filter((r) => r !== null)).toHaveLength(1);
        expect((await stores.devices.list(ada.id, { limit: 10, offset: 0 })).total).toBe(1);
      });
    });
  });
}
