import { rejectionOf } from '@upgrade/testkit';
import { describe, expect, it } from 'vitest';
import type { Fresh } from './target.js';

/** The UserStore contract. */
export function usersContract(current: Fresh): void {
  describe('users', () => {
    it('creates a user and reads it back by id and by email in any case', async () => {
      const { users } = current().stores;
      const user = await users.create({ email: 'Ada@Example.com', passwordHash: 'scrypt$x' });
      expect(user).toMatchObject({ email: 'Ada@Example.com', passwordHash: 'scrypt$x' });
      expect(await users.get(user.id)).toEqual(user);
      expect(await users.findByEmail('ada@example.COM')).toEqual(user);
      expect(await users.findByEmail('bob@example.com')).toBeNull();
      expect(await users.get('not-a-uuid')).toBeNull();
    });

    it('refuses an email registered in another case with CONFLICT (409)', async () => {
      const { users } = current().stores;
      await users.create({ email: 'ada@example.com', passwordHash: 'h' });
      const error = await rejectionOf(users.create({ email: 'ADA@example.com', passwordHash: 'h2' }));
      expect(error.code).toBe('CONFLICT');
      expect(error.status).toBe(409);
      expect(error.details).toMatchObject({ constraint: 'users_email_lower_unique' });
      expect(error.message).not.toMatch(/ada@/i);
    });
  });
}
