import { cpSync, readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export default defineConfig({
  // cli: the service; index: the library (stores, ports) other packages and tests import.
  entry: ['src/cli.ts', 'src/index.ts'],
  format: ['esm'],
  target: 'node20',
  sourcemap: true,
  clean: true,
  // The version /api/system/info and the logs report is the one this build was made from.
  define: { __VISIONA_API_VERSION__: JSON.stringify(pkg.version) },
  // The migrations travel inside the build: dist/ alone can run `migrate` and `serve`.
  onSuccess: async () => {
    cpSync('drizzle', 'dist/drizzle', { recursive: true });
  },
});
