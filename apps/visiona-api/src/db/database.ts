import type { Database } from '@upgrade/db';
import type * as schema from './schema.js';

/** The drizzle database (or a transaction on it) visiona-api's PostgreSQL stores are written against. */
export type VisionaDatabase = Database<typeof schema>;
