import type { Clock } from '@upgrade/core';
import { translateDbErrors } from './db-errors.js';
import { and, count, desc, eq, isNull, sql, type SQL } from 'drizzle-orm';
import type { VisionaDatabase } from '../db/database.js';
import { models } from '../db/schema.js';
import type { Model, ModelFilter, ModelStore } from '../ports.js';
import { checkPage, isUuid, modelNotFound } from './rules.js';

/** The columns a Model is made of: everything but the soft-delete mark. */
const MODEL = {
  id: models.id,
  ownerId: models.ownerId,
  name: models.name,
  chip: models.chip,
  source: models.source,
  labels: models.labels,
  inputShape: models.inputShape,
  faaObjectKey: models.faaObjectKey,
  createdAt: models.createdAt,
  updatedAt: models.updatedAt,
};

const excluded = (column: string): SQL => sql.raw(`excluded.${column}`);

/** ModelStore on PostgreSQL or PGlite. */
export function createPgModelStore(db: VisionaDatabase, clock: Clock): ModelStore {
  return {
    upsert: (input) =>
      translateDbErrors(async () => {
        if (!isUuid(input.id)) throw modelNotFound(input.id);
        const now = new Date(clock.now());
        const [row] = await db
          .insert(models)
          .values({ ...input, faaObjectKey: input.faaObjectKey ?? null, createdAt: now, updatedAt: now })
          .onConflictDoUpdate({
            target: models.id,
            // created_at is left out on purpose: an update keeps it.
            set: {
              name: excluded('name'),
              chip: excluded('chip'),
              source: excluded('source'),
              labels: excluded('labels'),
              inputShape: excluded('input_shape'),
              faaObjectKey: sql`coalesce(excluded.faa_object_key, ${models.faaObjectKey})`,
              updatedAt: excluded('updated_at'),
            },
            // Another owner's id, or a deleted model's, updates nothing and returns no row.
            setWhere: sql`${models.ownerId} = excluded.owner_id and ${models.deletedAt} is null`,
          })
          .returning(MODEL);
        if (row === undefined) throw modelNotFound(input.id);
        return row;
      }),

    get: (id, ownerId) =>
      translateDbErrors(async () => {
        if (!isUuid(id) || !isUuid(ownerId)) return null;
        const [row] = await db
          .select(MODEL)
          .from(models)
          .where(and(eq(models.id, id), eq(models.ownerId, ownerId), isNull(models.deletedAt)));
        return row ?? null;
      }),

    list: (filter, page) =>
      translateDbErrors(async () => {
        checkPage(page);
        if (filter.ownerId !== undefined && !isUuid(filter.ownerId)) return { items: [], total: 0 };
        const where = liveMatching(filter);
        const [items, [counted]] = await Promise.all([
          db
            .select(MODEL)
            .from(models)
            .where(where)
            .orderBy(desc(models.createdAt), desc(models.id))
            .limit(page.limit)
            .offset(page.offset),
          db.select({ total: count() }).from(models).where(where),
        ]);
        return { items: items satisfies Model[], total: counted?.total ?? 0 };
      }),

    softDelete: (id, ownerId) =>
      translateDbErrors(async () => {
        if (!isUuid(id) || !isUuid(ownerId)) return false;
        const rows = await db
          .update(models)
          .set({ deletedAt: new Date(clock.now()) })
          .where(and(eq(models.id, id), eq(models.ownerId, ownerId), isNull(models.deletedAt)))
          .returning({ id: models.id });
        return rows.length > 0;
      }),
  };
}

function liveMatching(filter: ModelFilter): SQL | undefined {
  return and(
    isNull(models.deletedAt),
    filter.ownerId === undefined ? undefined : eq(models.ownerId, filter.ownerId),
    filter.chip === undefined ? undefined : eq(models.chip, filter.chip),
    filter.source === undefined ? undefined : eq(models.source, filter.source),
  );
}
