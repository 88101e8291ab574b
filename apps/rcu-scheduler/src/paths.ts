// Files the service ships beside its code. Both src/ (tsx, vitest) and dist/ (the bundle) sit one
// level below the package root, so one relative path serves both.
import { fileURLToPath } from 'node:url';

/** drizzle-kit's generated SQL migrations. */
export const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url));
/** The vendor API spec and its fixtures. */
export const specFolder = fileURLToPath(new URL('../spec', import.meta.url));
/** The package root: where the service's own `.env` sits (read after the working directory's). */
export const packageRoot = fileURLToPath(new URL('..', import.meta.url));
/** The operator console the package build writes (index.html and assets/). */
export const consoleFolder = fileURLToPath(new URL('../dist/console', import.meta.url));
