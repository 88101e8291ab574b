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
  });
}
