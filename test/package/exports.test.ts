import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { entries } from '../../tsup.config.js';

const root = join(import.meta.dirname, '..', '..');
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, { import: { types: string; default: string }; require: { types: string; default: string } } | string>;
};

describe('package surface', () => {
  it('package.json exports, tsup entries and adapters/*/index.ts agree', () => {
    const adapters = readdirSync(join(root, 'adapters')).filter((name) => existsSync(join(root, 'adapters', name, 'index.ts')));
    for (const adapter of adapters) expect(entries[`${adapter}/index`]).toBe(`adapters/${adapter}/index.ts`);
    const exported = Object.keys(packageJson.exports).filter((key) => key !== './package.json');
    const fromEntries = Object.keys(entries).map((entry) => (entry === 'index' ? '.' : `./${entry.replace(/\/index$/, '')}`));
    expect(exported.sort()).toEqual(fromEntries.sort());
    for (const [entry, source] of Object.entries(entries)) {
      expect(existsSync(join(root, source))).toBe(true);
      const key = entry === 'index' ? '.' : `./${entry.replace(/\/index$/, '')}`;
      const conditions = packageJson.exports[key];
      if (conditions === undefined || typeof conditions === 'string') throw new Error(`${key} needs import/require conditions`);
      expect(conditions.import).toEqual({ types: `./dist/${entry}.d.ts`, default: `./dist/${entry}.js` });
      expect(conditions.require).toEqual({ types: `./dist/${entry}.d.cts`, default: `./dist/${entry}.cjs` });
    }
  });

  it('the provider-neutral core imports no adapter and no provider SDK', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (/\.ts$/.test(entry.name)) {
          const text = readFileSync(path, 'utf8');
          if (/from ['"](\.\.\/)+adapters\//.test(text) || /from ['"](modal|e2b|dockerode|@daytonaio\/sdk|@vercel\/sandbox)['"]/.test(text))
            offenders.push(path);
        }
      }
    };
    walk(join(root, 'src'));
    expect(offenders).toEqual([]);
  });

  it('the built ESM and CJS entries load, and errors are recognised across the two copies', async () => {
    const distIndex = join(root, 'dist', 'index.js');
    if (!existsSync(distIndex)) throw new Error('dist/ is missing: `npm test` builds it first (pretest); run `npm run build`');
    const esm = (await import(distIndex)) as typeof import('../../src/index.js');
    const cjs = createRequire(import.meta.url)(join(root, 'dist', 'index.cjs')) as typeof import('../../src/index.js');
    expect(esm.SandboxError).not.toBe(cjs.SandboxError);
    const fromCjs = new cjs.SandboxTimeoutError({ message: 'x', operation: 'exec' });
    expect(esm.SandboxError.isInstance(fromCjs)).toBe(true);
    expect(esm.SandboxTimeoutError.isInstance(fromCjs)).toBe(true);
    const localCjs = createRequire(import.meta.url)(
      join(root, 'dist', 'local', 'index.cjs'),
    ) as typeof import('../../adapters/local/index.js');
    expect(typeof localCjs.createLocalSandboxProvider).toBe('function');
    const testing = (await import(join(root, 'dist', 'testing', 'index.js'))) as typeof import('../../src/testing/index.js');
    expect(typeof testing.defineSandboxConformanceSuite).toBe('function');
  });
});
