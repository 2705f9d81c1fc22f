import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const unprivilegedUid = 65534;

function readableByOthers(): boolean {
  // The checkout must be traversable by the unprivileged user for it to load the sources.
  const probe = spawnSync('setpriv', [
    `--reuid=${unprivilegedUid}`,
    `--regid=${unprivilegedUid}`,
    '--clear-groups',
    'test',
    '-r',
    join(root, 'package.json'),
  ]);
  return probe.status === 0;
}

const isRoot = process.getuid?.() === 0;
const possible = isRoot && readableByOthers();
if (!possible) {
  console.warn(
    isRoot
      ? `skipping the unprivileged run: ${root} is not readable by uid ${unprivilegedUid}`
      : 'skipping the unprivileged run: it is started from a root test run (this run already is unprivileged)',
  );
}

describe.skipIf(!possible)('local provider without root', () => {
  it('passes the conformance suite as an unprivileged user', () => {
    accessSync(join(root, 'node_modules', 'vitest', 'vitest.mjs'), constants.R_OK);
    const result = spawnSync(
      'setpriv',
      [
        `--reuid=${unprivilegedUid}`,
        `--regid=${unprivilegedUid}`,
        '--clear-groups',
        '--',
        process.execPath,
        join(root, 'node_modules', 'vitest', 'vitest.mjs'),
        'run',
        // The default loader writes a temporary file next to the config, in a root-owned tree.
        '--configLoader',
        'runner',
        'test/unprivileged/local-conformance.test.ts',
      ],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 240_000,
        env: { PATH: process.env.PATH, HOME: '/tmp', TMPDIR: '/tmp', SANDPORT_UNPRIVILEGED_RUN: '1' },
      },
    );
    const output = `${result.stdout}\n${result.stderr}`;
    if (result.status !== 0) console.error(output.slice(-6000));
    expect(result.status).toBe(0);
    expect(output).toMatch(/Tests\s.*\d+ passed/);
    expect(output).not.toMatch(/\d+ failed/);
  }, 300_000);
});
