// Files the service ships beside its code. Both src/ (tsx, vitest) and dist/ (the bundle) sit one
// level below the package root, so one relative path serves both.
import { fileURLToPath } from 'node:url';

/** drizzle-kit's generated SQL migrations. */
export const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url));
