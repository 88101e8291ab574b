import { defineConfig } from 'tsup';

// No `clean`: the two builds run side by side and one must not empty dist/ under the other.
export default defineConfig([
  {
    entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    sourcemap: true,
  },
  {
    // The node agent is copied to each node on its own: one file, @upgrade/core bundled in, only
    // Node built-ins at run time.
    entry: { agent: 'src/agent/cli.ts' },
    format: ['esm'],
    target: 'node20',
    sourcemap: true,
    noExternal: ['@upgrade/core'],
  },
]);
