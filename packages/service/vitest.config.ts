import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Process tests run the built package; rebuild it when src is newer than dist.
    globalSetup: ['test/global-setup.ts'],
  },
});
