// Files the service ships beside its code. The build copies drizzle/ into dist/ (so dist/ alone is
// deployable); from src/ (tsx, vitest) the package's own drizzle/ one level up is used.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundled = fileURLToPath(new URL('./drizzle', import.meta.url));

/** drizzle-kit's generated SQL migrations. */
export const migrationsFolder = existsSync(bundled)
  ? bundled
  : fileURLToPath(new URL('../drizzle', import.meta.url));
