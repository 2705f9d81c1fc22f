/**
 * The Modal and E2B examples whose provider is picked on one line run on the local provider with
 * only that line changed, as their header says. Each is copied with the line swapped (next to the
 * others, so `sandport` resolves the same way), run, and removed. They import `sandport`, which
 * resolves to dist/ (built by `npm test`'s pretest).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { e2bExamples } from './e2b-examples-expected.js';

const root = join(import.meta.dirname, '..', '..');
const modalLine =
  "const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });";
const e2bLine = "const provider: SandboxProvider = (await import('sandport/e2b')).createE2bSandboxProvider();";
const providerLines = [modalLine, e2bLine];
const localLine = "const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();";
const built = existsSync(join(root, 'dist', 'local', 'index.js'));

// Construction does no I/O: this only reads what the local provider can do.
const local = createLocalSandboxProvider().capabilities;

const examples: Array<[string, RegExp, string?]> = [
  [
    'modal-pty.ts',
    /terminal: \/dev\/pts\/\d+, TERM=xterm-256color\nsize: 30 100\nafter resize: 40 120\ninterrupted: sleep ended with 130\nshell exited 0/,
  ],
  [
    'modal-watch.ts',
    /create \/tmp\/inbox\/notes\.txt[\s\S]*rename \/tmp\/inbox\/sub\/notes\.txt \(from \/tmp\/inbox\/notes\.txt\)[\s\S]*remove \/tmp\/inbox\/sub\/scratch\.txt[\s\S]*create \/tmp\/inbox\/done\nthe writer exited 0/,
  ],
  [
    'modal-server-logs.ts',
    /server says: Serving HTTP on 127\.0\.0\.1 port 8000[\s\S]*log: .*"GET \/ HTTP\/1\.1" 200[\s\S]*log: .*"GET \/missing HTTP\/1\.1" 404/,
  ],
  ...e2bExamples.map(({ file, expected, needs }): [string, RegExp, string?] => [
    file,
    expected,
    needs && !local[needs] ? `the local provider lacks capabilities.${needs}` : undefined,
  ]),
];

describe.skipIf(!built)(
  `examples on the local provider by changing one line${built ? '' : ' (skipped: dist/ is missing, run npm run build)'}`,
  () => {
    for (const [file, expected, lacking] of examples) {
      it.skipIf(lacking !== undefined)(`examples/${file} with the local provider${lacking ? ` (skipped: ${lacking})` : ''}`, () => {
        const source = readFileSync(join(root, 'examples', file), 'utf8');
        const found = source.split('\n').filter((line) => providerLines.includes(line));
        expect(found, 'the one provider line').toHaveLength(1);
        const copy = join(root, 'examples', `.tmp-local-${process.pid}-${file}`);
        writeFileSync(copy, source.replace(found[0]!, localLine));
        try {
          const result = spawnSync(process.execPath, ['--import', 'tsx', copy], { cwd: root, encoding: 'utf8', timeout: 90_000 });
          expect(result.stderr).not.toMatch(/Error/);
          expect(result.status).toBe(0);
          expect(result.stdout).toMatch(expected);
        } finally {
          rmSync(copy, { force: true });
        }
      });
    }
  },
);
