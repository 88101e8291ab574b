import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['lab/**/*.test.ts', 'e2e/**/*.test.ts'],
    // The lab is one set of namespaces on the machine: one file at a time.
    fileParallelism: false,
    // ... and one run at a time per machine (lab/machine-lock.ts).
    globalSetup: ['lab/machine-lock.ts'],
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
});
