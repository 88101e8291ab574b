import type { Database } from '@upgrade/db';
import type * as schema from './schema.js';

/** The drizzle database (or a transaction on it) the ha-orchestrator's adapters are written against. */
export type HaDatabase = Database<typeof schema>;
