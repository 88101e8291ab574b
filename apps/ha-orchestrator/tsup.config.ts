import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/ports.ts' },
  format: ['esm'],
  target: 'node20',
  sourcemap: true,
  clean: true,
});
