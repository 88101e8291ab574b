import { defineConfig } from 'drizzle-kit';

// Generate with `pnpm --filter @upgrade/ha-orchestrator db:generate --name <what>` (no database
// needed); the SQL in ./drizzle is what `migrate` applies.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
