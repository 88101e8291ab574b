import { defineConfig } from 'drizzle-kit';

// Generate with `pnpm --filter @upgrade/rcu-scheduler db:generate -- --name <what>` (no database
// needed); the SQL in ./drizzle is applied by `rcu-scheduler migrate` and at start-up.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
