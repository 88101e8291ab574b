import { randomUUID } from 'node:crypto';
import type { Clock } from '@upgrade/core';
import type { User, UserStore } from '../ports.js';
import type { MemoryTables } from './memory-tables.js';
import { constraintViolated, isUuid } from './rules.js';

/** UserStore in memory; the email rule mirrors `users_email_lower_unique`. */
export function createMemoryUserStore(tables: MemoryTables, clock: Clock): UserStore {
  const byEmail = (email: string): User | undefined =>
    [...tables.users.values()].find((u) => u.email.toLowerCase() === email.toLowerCase());
  return {
    create: async ({ email, passwordHash }) => {
      if (byEmail(email) !== undefined) throw constraintViolated('users_email_lower_unique', 'unique');
      const user: User = { id: randomUUID(), email, passwordHash, createdAt: new Date(clock.now()) };
      tables.users.set(user.id, user);
      return { ...user };
    },
    get: async (id) => {
      const user = isUuid(id) ? tables.users.get(id) : undefined;
      return user === undefined ? null : { ...user };
    },
    findByEmail: async (email) => {
      const user = byEmail(email);
      return user === undefined ? null : { ...user };
    },
  };
}
