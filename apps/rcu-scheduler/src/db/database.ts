import type { Database } from '@upgrade/db';
import type * as schema from './schema.js';

/** The drizzle database (or a transaction on it) the rcu-scheduler's adapters are written against. */
export type RcuDatabase = Database<typeof schema>;
