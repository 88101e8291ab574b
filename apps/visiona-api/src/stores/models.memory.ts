import type { Clock } from '@upgrade/core';
import type { Model, ModelStore } from '../ports.js';
import type { MemoryTables, ModelRow } from './memory-tables.js';
import { checkPage, constraintViolated, isUuid, modelNotFound } from './rules.js';

/** ModelStore in memory, with the same upsert, ordering and soft-delete rules as PostgreSQL. */
export function createMemoryModelStore(tables: MemoryTables, clock: Clock): ModelStore {
  const live = (id: string, ownerId: string): ModelRow | undefined => {
    const row = tables.models.get(id);
    return row !== undefined && row.ownerId === ownerId && row.deletedAt === null ? row : undefined;
  };
  return {
    upsert: async (input) => {
      const now = new Date(clock.now());
      const existing = tables.models.get(input.id);
      if (existing !== undefined && live(input.id, input.ownerId) === undefined)
        throw modelNotFound(input.id);
      if (existing === undefined && !tables.users.has(input.ownerId))
        throw constraintViolated('models_owner_id_users_id_fk', 'foreign key');
      const row: ModelRow = {
        ...input,
        labels: [...input.labels],
        inputShape: [...input.inputShape],
        faaObjectKey: input.faaObjectKey ?? existing?.faaObjectKey ?? null,
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
        deletedAt: null,
      };
      tables.models.set(row.id, row);
      return toModel(row);
    },
    get: async (id, ownerId) => {
      const row = live(id, ownerId);
      return row === undefined ? null : toModel(row);
    },
    list: async (filter, page) => {
      checkPage(page);
      const matching = [...tables.models.values()]
        .filter(
          (m) =>
            m.deletedAt === null &&
            (filter.ownerId === undefined || m.ownerId === filter.ownerId) &&
            (filter.chip === undefined || m.chip === filter.chip) &&
            (filter.source === undefined || m.source === filter.source),
        )
        .sort(
          (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
        );
      return {
        items: matching.slice(page.offset, page.offset + page.limit).map(toModel),
        total: matching.length,
      };
    },
    softDelete: async (id, ownerId) => {
      const row = isUuid(id) ? live(id, ownerId) : undefined;
      if (row === undefined) return false;
      row.deletedAt = new Date(clock.now());
      return true;
    },
  };
}

function toModel(row: ModelRow): Model {
  const { deletedAt: _deletedAt, ...model } = row;
  return { ...model, labels: [...model.labels], inputShape: [...model.inputShape] };
}
