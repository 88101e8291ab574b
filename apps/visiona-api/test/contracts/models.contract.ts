import { randomUUID } from 'node:crypto';
import { rejectionOf } from '@upgrade/testkit';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ModelInput, User } from '../../src/ports.js';
import type { Fresh } from './target.js';

/** The ModelStore contract. */
export function modelsContract(current: Fresh): void {
  describe('models', () => {
    let ada: User;
    let bob: User;
    beforeEach(async () => {
      ada = await current().stores.users.create({ email: 'ada@example.com', passwordHash: 'h' });
      bob = await current().stores.users.create({ email: 'bob@example.com', passwordHash: 'h' });
    });
    const model = (over: Partial<ModelInput> = {}): ModelInput => ({
      id: randomUUID(),
      ownerId: ada.id,
      name: 'yolov8n',
      chip: 'hailo8',
      source: 'upload',
      labels: ['person', 'car'],
      inputShape: [1, 3, 640, 640],
      ...over,
    });

    it('inserts a model with its array columns and reads it back for its owner only', async () => {
      const { stores, clock } = current();
      const input = model({ faaObjectKey: 'models/a.hef' });
      const created = await stores.models.upsert(input);
      expect(created).toEqual({
        ...input,
        createdAt: new Date(clock.now()),
        updatedAt: new Date(clock.now()),
      });
      expect(await stores.models.get(input.id, ada.id)).toEqual(created);
      expect(await stores.models.get(input.id, bob.id)).toBeNull();
      expect(await stores.models.get('nope', ada.id)).toBeNull();
    });

    it('updates on upsert, keeping created_at and the stored faa_object_key unless a new one is given', async () => {
      const { stores, clock } = current();
      const input = model({ faaObjectKey: 'models/a.hef' });
      const created = await stores.models.upsert(input);
      await clock.advance(60_000);
      const updated = await stores.models.upsert({
        ...input,
        name: 'yolov8s',
        labels: ['cat'],
        faaObjectKey: undefined,
      });
      expect(updated).toMatchObject({ name: 'yolov8s', labels: ['cat'], faaObjectKey: 'models/a.hef' });
      expect(updated.createdAt).toEqual(created.createdAt);
      expect(updated.updatedAt).toEqual(new Date(clock.now()));
      const rekeyed = await stores.models.upsert({ ...input, faaObjectKey: 'models/b.hef' });
      expect(rekeyed.faaObjectKey).toBe('models/b.hef');
      expect((await stores.models.list({}, { limit: 10, offset: 0 })).total).toBe(1);
    });

    it("refuses an upsert of another owner's model id with NOT_FOUND and leaves it unchanged", async () => {
      const { stores } = current();
      const input = model();
      const created = await stores.models.upsert(input);
      const error = await rejectionOf(stores.models.upsert({ ...input, ownerId: bob.id, name: 'stolen' }));
      expect(error.code).toBe('NOT_FOUND');
      expect(await stores.models.get(input.id, ada.id)).toEqual(created);
    });

    it('refuses a model of an unknown owner with CONFLICT', async () => {
      const error = await rejectionOf(current().stores.models.upsert(model({ ownerId: randomUUID() })));
      expect(error.code).toBe('CONFLICT');
      expect(error.details).toMatchObject({ constraint: 'models_owner_id_users_id_fk' });
    });

    it('lists by any of owner, chip and source, newest first, with paging and total', async () => {
      const { stores, clock } = current();
      const specs: Partial<ModelInput>[] = [
        { name: 'a', chip: 'hailo8', source: 'upload' },
        { name: 'b', chip: 'rk3588', source: 'upload' },
        { name: 'c', chip: 'hailo8', source: 'zoo' },
        { name: 'd', chip: 'hailo8', source: 'upload', ownerId: bob.id },
        { name: 'e', chip: 'hailo8', source: 'upload' },
      ];
      for (const spec of specs) {
        await stores.models.upsert(model(spec));
        await clock.advance(1000);
      }
      const names = async (filter: Parameters<typeof stores.models.list>[0], limit = 10, offset = 0) => {
        const page = await stores.models.list(filter, { limit, offset });
        return { names: page.items.map((m) => m.name), total: page.total };
      };
      expect(await names({})).toEqual({ names: ['e', 'd', 'c', 'b', 'a'], total: 5 });
      expect(await names({ ownerId: ada.id })).toEqual({ names: ['e', 'c', 'b', 'a'], total: 4 });
      expect(await names({ chip: 'hailo8' })).toEqual({ names: ['e', 'd', 'c', 'a'], total: 4 });
      expect(await names({ source: 'zoo' })).toEqual({ names: ['c'], total: 1 });
      expect(await names({ ownerId: ada.id, chip: 'hailo8', source: 'upload' })).toEqual({
        names: ['e', 'a'],
        total: 2,
      });
      expect(await names({ ownerId: ada.id }, 2, 1)).toEqual({ names: ['c', 'b'], total: 4 });
      expect(await names({ ownerId: ada.id }, 2, 10)).toEqual({ names: [], total: 4 });
      expect(await names({ ownerId: 'not-a-uuid' })).toEqual({ names: [], total: 0 });
    });

    it('soft-deletes: gone from get and list, not deletable twice or by another owner, not revivable by upsert', async () => {
      const { stores } = current();
      const input = model();
      await stores.models.upsert(input);
      expect(await stores.models.softDelete(input.id, bob.id)).toBe(false);
      expect(await stores.models.softDelete(input.id, ada.id)).toBe(true);
      expect(await stores.models.softDelete(input.id, ada.id)).toBe(false);
      expect(await stores.models.get(input.id, ada.id)).toBeNull();
      expect(await stores.models.list({ ownerId: ada.id }, { limit: 10, offset: 0 })).toEqual({
        items: [],
        total: 0,
      });
      expect((await rejectionOf(stores.models.upsert(input))).code).toBe('NOT_FOUND');
    });

    it('refuses a negative page with VALIDATION_FAILED', async () => {
      const error = await rejectionOf(current().stores.models.list({}, { limit: -1, offset: 0 }));
      expect(error.code).toBe('VALIDATION_FAILED');
    });
  });
}
