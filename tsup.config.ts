import { defineConfig, type Options } from 'tsup';

/**
 * One entry per public surface. `package.json#exports` and `adapters/*\/index.ts` must agree with
 * this list; test/package/exports.test.ts checks it.
 */
export const entries: Record<string, string> = {
  index: 'src/index.ts',
  'testing/index': 'src/testing/index.ts',
  'kit/index': 'src/kit/index.ts',
  'telemetry/index': 'src/telemetry/index.ts',
  'local/index': 'adapters/local/index.ts',
  'docker/index': 'adapters/docker/index.ts',
  'modal/index': 'adapters/modal/index.ts',
  'e2b/index': 'adapters/e2b/index.ts',
  'fly/index': 'adapters/fly/index.ts',
  'cloudflare/index': 'adapters/cloudflare/index.ts',
  'daytona/index': 'adapters/daytona/index.ts',
  'vercel/index': 'adapters/vercel/index.ts',
  'kubernetes/index': 'adapters/kubernetes/index.ts',
};

const shared: Options = {
  entry: entries,
  dts: true,
  sourcemap: true,
  splitting: true,
  treeshake: true,
  target: 'node20',
  platform: 'node',
};

export default defineConfig([
  { ...shared, format: ['esm'] },
  // p-retry is published as ESM only; bundling it keeps `require('sandport')` working on every Node 20.
  { ...shared, format: ['cjs'], noExternal: ['p-retry', 'is-network-error'] },
]);
