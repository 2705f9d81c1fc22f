import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Live tests (*.live.test.ts) run too: without provider credentials they skip and say so.
    exclude: ['**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Sandboxes are real processes; a few files at a time keeps a 2-core machine responsive.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
});
