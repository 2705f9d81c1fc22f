import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
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
  ['docker-quickstart.ts', /done: both sandboxes terminated, the snapshot deleted/],
  [
    'egress-allowlist.ts',
    /docs\.internal +-> docs\.internal says hello[\s\S]*billing\.internal -> sandport egress proxy: billing\.internal is not in allowDomains[\s\S]*proxy ignored -> curl: \(6\)[\s\S]*after updateNetwork, billing\.internal -> billing\.internal says hello[\s\S]*after 'block', docs\.internal -> sandport egress proxy/,
  ],
];

// Why an example cannot run on this machine, or undefined when it can; the reason goes in the title.
function skipReason(file: string): string | undefined {
  if (file.includes('limits') && process.getuid?.() !== 0) return 'limits need root';
  if (file.startsWith('docker') && !dockerAvailable()) return 'no Docker engine or base image (scripts/setup-docker.sh)';
  return undefined;
}

describe('examples run', () => {
  for (const [file, expected] of examples) {
    const reason = skipReason(file);
    it.skipIf(reason !== undefined)(`examples/${file}${reason === undefined ? '' : ` (skipped: ${reason})`}`, () => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'examples', file)], {
        cwd: root,
        encoding: 'utf8',
        timeout: 90_000,
      });
      expect(result.stderr).not.toMatch(/Error/);
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(expected);
      if (file === 'docker-quickstart.ts') {
        // Its snapshot (an image labelled with the creating process) is gone with it, not left on the engine.
        const images = spawnSync(
          'docker',
          [
            'images',
            '-q',
            '--filter',
            'label=dev.sandport.managed=snapshot',
            '--filter',
            `label=dev.sandport.creator=${hostname()}:${result.pid}`,
          ],
          {
            encoding: 'utf8',
          },
        );
        expect(images.status).toBe(0);
        expect(images.stdout.trim()).toBe('');
      }
    });
  }
});
