/**
 * The option docs reach users: the declarations emitted into dist/ carry the contract's TSDoc,
 * and the TypeScript language service shows it when an app hovers a field. Run after
 * `npm run build` (`npm test` builds first).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dist = join(root, 'dist');
const built = existsSync(join(dist, 'index.d.ts')) && existsSync(join(dist, 'index.d.cts'));

/** An app's file, importing `sandport` by its package name, so resolution goes through `exports`. */
const appSource = `import type { CreateSandboxOptions, RunOptions, Sandbox } from 'sandport';
declare const sandbox: Sandbox;
export const options: CreateSandboxOptions = { timeoutMs: 60_000, network: 'block', memoryMiB: 512 };
export const run: RunOptions = { maxOutputBytes: 1024 };
export const killed = (async () => (await sandbox.exec(['sleep', '1'])).kill('SIGTERM'))();
`;

function declarationFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return declarationFiles(path);
    return /\.d\.c?ts$/.test(entry.name) ? [path] : [];
  });
}

interface Hover {
  display: string;
  documentation: string;
  tags: Record<string, string>;
}

/** A language service over one in-memory app file (the given extension picks ESM or CJS types). */
function hoverIn(extension: '.mts' | '.cts') {
  const appPath = join(root, 'test', 'package', `dts-docs-app${extension}`);
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
    strict: true,
    noEmit: true,
    types: ['node'],
  };
  const host: ts.LanguageServiceHost = {
    getScriptFileNames: () => [appPath],
    getScriptVersion: () => '1',
    getScriptSnapshot: (name) => {
      const text = name === appPath ? appSource : ts.sys.readFile(name);
      return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
    },
    getCurrentDirectory: () => root,
    getCompilationSettings: () => options,
    getDefaultLibFileName: (settings) => ts.getDefaultLibFilePath(settings),
    fileExists: (name) => name === appPath || ts.sys.fileExists(name),
    readFile: (name) => (name === appPath ? appSource : ts.sys.readFile(name)),
    readDirectory: (...args) => ts.sys.readDirectory(...args),
    directoryExists: (name) => ts.sys.directoryExists(name),
    getDirectories: (name) => ts.sys.getDirectories(name),
  };
  const service = ts.createLanguageService(host, ts.createDocumentRegistry());
  return {
    appPath,
    service,
    /** Quick info at the first occurrence of `word` in the app source. */
    hover(word: string): Hover {
      const position = appSource.indexOf(word);
      if (position < 0) throw new Error(`${word} is not in the app source`);
      const info = service.getQuickInfoAtPosition(appPath, position);
      if (!info) throw new Error(`no quick info for ${word}`);
      return {
        display: ts.displayPartsToString(info.displayParts),
        documentation: ts.displayPartsToString(info.documentation),
        tags: Object.fromEntries((info.tags ?? []).map((tag) => [tag.name, ts.displayPartsToString(tag.text)])),
      };
    },
  };
}

const title = built
  ? 'emitted declarations carry the contract docs'
  : 'emitted declarations carry the contract docs (skipped: dist/ is missing; run `npm run build` first)';

describe.skipIf(!built)(title, () => {
  it('the declaration file that declares CreateSandboxOptions has the timeoutMs doc right above the field', () => {
    const declaring = declarationFiles(dist).filter((path) => /interface CreateSandboxOptions\s*\{/.test(readFileSync(path, 'utf8')));
    expect(declaring.length).toBeGreaterThan(0);
    for (const path of declaring) {
      const text = readFileSync(path, 'utf8');
      const body = text.slice(text.search(/interface CreateSandboxOptions\s*\{/));
      const field = body.indexOf('timeoutMs?: number;');
      expect(field).toBeGreaterThan(0);
      const comment = body.slice(body.lastIndexOf('/**', field), field);
      expect(comment).toMatch(/milliseconds/);
      expect(comment).toMatch(/@default 300_000/);
      // The option bag is the hand-written interface, not a zod inference.
      expect(text).not.toMatch(/type CreateSandboxOptions = z\.input/);
    }
  });

  it.each(['.mts', '.cts'] as const)('an app (%s) hovering option fields sees their docs', (extension) => {
    const app = hoverIn(extension);
    const diagnostics = app.service
      .getSemanticDiagnostics(app.appPath)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    expect(diagnostics).toEqual([]);
    const program = app.service.getProgram()!;
    const fromDist = program
      .getSourceFiles()
      .filter((file) => file.fileName.startsWith(dist))
      .map((file) => file.fileName);
    expect(fromDist.some((name) => name.endsWith(extension === '.mts' ? '.d.ts' : '.d.cts'))).toBe(true);

    const timeout = app.hover('timeoutMs');
    expect(timeout.display).toContain('timeoutMs?: number');
    expect(timeout.documentation).toMatch(/milliseconds/);
    expect(timeout.tags.default).toMatch(/300_000/);

    expect(app.hover('network').documentation).toMatch(/Security setting/);
    expect(app.hover('memoryMiB').documentation).toMatch(/mebibytes/);
    const maxOutput = app.hover('maxOutputBytes');
    expect(maxOutput.documentation).toMatch(/bytes/);
    expect(maxOutput.tags.default).toMatch(/64 MiB/);
    expect(app.hover('kill(').documentation).toMatch(/Idempotent/);
  });
});
