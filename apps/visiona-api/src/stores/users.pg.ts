import { randomUUID } from 'node:crypto';
import type { Clock } from '@upgrade/core';
import { translateDbErrors } from './db-errors.js';
import { eq, sql } from 'drizzle-orm';
import type { VisionaDatabase } from '../db/database.js';
import { users } from '../db/schema.js';
import type { UserStore } from '../ports.js';
import { isUuid } from './rules.js';

/** UserStore on PostgreSQL or PGlite; a duplicate email surfaces as CONFLICT from `mapPgError`. */
export function createPgUserStore(db: VisionaDatabase, clock: Clock): UserStore {
  return {
    create: ({ email, passwordHash }) =>
      translateDbErrors(async () => {
        const [row] = await db
          .insert(users)
          .values({ id: randomUUID(), email, passwordHash, createdAt: new Date(clock.now()) })
          .returning();
        if (row === undefined) throw new Error('insert into users returned no row');
        return row;
      }),
    get: (id) =>
      translateDbErrors(async () => {
        if (!isUuid(id)) return null;
        const [row] = await db.select().from(users).where(eq(users.id, id));
        return row ?? null;
      }),
    findByEmail: (email) =>
      translateDbErrors(async () => {
        // Written as the index's expression so `users_email_lower_unique` serves it.
        const [row] = await db
          .select()
          .from(users)
          .where(sql`lower(${users.email}) = lower(${email})`);
        return row ?? null;
      }),
  };
}
