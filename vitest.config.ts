import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/*.live.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Sandboxes are real processes; a few files at a time keeps a 2-core machine responsive.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ['default'],
  },
});
