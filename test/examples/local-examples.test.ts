import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerAvailable } from '../docker-environment.js';

// Examples import `sandport` itself, which resolves to dist/ (built by `npm test`'s pretest).
const root = join(import.meta.dirname, '..', '..');
const examples: Array<[string, RegExp]> = [
  ['quickstart.ts', /done: both sandboxes terminated/],
  ['local-server-and-ports.ts', /-> served from sandbox\/hello/],
  ['local-snapshots.ts', /prepared once \+ worker 2/],
  ['local-limits-and-timeouts.ts', /oomKilled: true[\s\S]*its process tree is gone[\s\S]*lifetime-timeout/],
  ['docker-quickstart.ts', /done: both sandboxes terminated/],
];

describe('examples run', () => {
  it.each(examples)('examples/%s', (file, expected) => {
    if (file.includes('limits') && process.getuid?.() !== 0) {
      console.warn(`skipping examples/${file}: limits need root`);
      return;
    }
    if (file.startsWith('docker') && !dockerAvailable()) {
      console.warn(`skipping examples/${file}: no Docker engine or base image (scripts/setup-docker.sh)`);
      return;
    }
    const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'examples', file)], { cwd: root, encoding: 'utf8', timeout: 90_000 });
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(expected);
  });
});
