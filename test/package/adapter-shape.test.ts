/**
 * Every adapter has the same shape (the check the AI SDK's repository runs over its providers):
 * the same files, the same named exports, and a factory that returns the contract's interface.
 * A new adapter that skips the options plan or the errors file fails here, not in review.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const adapters = readdirSync(join(root, 'adapters')).filter((name) => existsSync(join(root, 'adapters', name, 'index.ts')));
const pascal = (id: string) => id.replace(/(^|-)([a-z])/g, (_, __, letter: string) => letter.toUpperCase());

describe.each(adapters)('adapter %s', (id) => {
  it('has the files every adapter has', () => {
    for (const file of ['index.ts', `${id}-provider.ts`, `${id}-sandbox.ts`, `${id}-errors.ts`, `${id}-options.ts`]) {
      expect(existsSync(join(root, 'adapters', id, file)), `adapters/${id}/${file}`).toBe(true);
    }
  });

  it('exports the factory, the capabilities and the create plan under the shared names', async () => {
    const entry = (await import(join(root, 'adapters', id, 'index.ts'))) as Record<string, unknown>;
    expect(typeof entry[`create${pascal(id)}SandboxProvider`]).toBe('function');
    expect(typeof entry[`plan${pascal(id)}Create`]).toBe('function');
    const capabilities = entry[`${id}Capabilities`] as { exec?: unknown } | undefined;
    expect(capabilities?.exec).toBeDefined();
    expect(Object.isFrozen(capabilities)).toBe(true);
  });

  it('its factory does no I/O and returns a provider of the contract', async () => {
    const entry = (await import(join(root, 'adapters', id, 'index.ts'))) as Record<string, unknown>;
    const provider = (entry[`create${pascal(id)}SandboxProvider`] as () => Record<string, unknown>)();
    expect(provider.specificationVersion).toBe('sandbox-v1');
    expect(provider.id).toBe(id);
    expect(provider.capabilities).toBe(entry[`${id}Capabilities`]);
    for (const method of ['create', 'fromId']) expect(typeof provider[method]).toBe('function');
  });
});
