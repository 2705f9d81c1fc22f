import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModalClient, type Sandbox as ModalSdkSandbox } from 'modal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxCapabilityUnsupportedError, type SandboxError, SandboxProviderError } from '../../src/errors/index.js';
import { loadOptionalPeer } from '../../src/kit/index.js';
import { createModalSandboxProvider } from '../../adapters/modal/index.js';

// A project directory with hand-made packages, so that a missing peer, a peer whose own
// dependency is missing and a peer that throws while loading are all real loader failures.
let project: string;
const requireInProject = () => createRequire(join(project, 'app.js'));

function writePackage(name: string, files: Record<string, string>): void {
  const dir = join(project, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
}

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'sandport-optional-peer-'));
  writePackage('needs-absent-dep', {
    'package.json': JSON.stringify({ name: 'needs-absent-dep', version: '1.0.0', type: 'module', exports: './index.js' }),
    'index.js': "import 'absent-dep-of-needs-absent-dep';\nexport const value = 1;\n",
  });
  writePackage('bad-main', { 'package.json': JSON.stringify({ name: 'bad-main', version: '1.0.0', main: './missing.js' }) });
  writePackage('throws-on-load', {
    'package.json': JSON.stringify({ name: 'throws-on-load', version: '1.0.0', main: './index.js' }),
    'index.js': "throw new Error('throws-on-load exploded');\n",
  });
  writePackage('fine-peer', {
    'package.json': JSON.stringify({ name: 'fine-peer', version: '1.0.0', main: './index.js' }),
    'index.js': 'exports.answer = 42;\n',
  });
});

afterAll(() => rmSync(project, { recursive: true, force: true }));

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('loadOptionalPeer', () => {
  it('a package that is not installed (import) is a capability error naming it and its install line', async () => {
    const error = await failure(
      loadOptionalPeer('sandport-no-such-peer', { provider: 'docker', installLine: 'npm install sandport-no-such-peer@^4' }),
    );
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
    const typed = error as SandboxCapabilityUnsupportedError;
    expect(typed.capability).toBe('peer:sandport-no-such-peer');
    expect(typed.provider).toBe('docker');
    expect(typed.retryable).toBe(false);
    expect(typed.message).toBe(
      'sandport/docker needs the optional peer dependency "sandport-no-such-peer": npm install sandport-no-such-peer@^4',
    );
    expect((typed.cause as { code?: string }).code).toBe('ERR_MODULE_NOT_FOUND');
  });

  it('a package that is not installed (require) is the same error; the install line defaults to npm install <name>', async () => {
    const error = await failure(
      loadOptionalPeer('not-in-project', { provider: 'modal', load: async () => requireInProject()('not-in-project') }),
    );
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe('sandport/modal needs the optional peer dependency "not-in-project": npm install not-in-project');
    expect(((error as Error).cause as { code?: string }).code).toBe('MODULE_NOT_FOUND');
  });

  it('neededBy names a consumer that is not a provider, and the error then has no provider', async () => {
    const error = await failure(loadOptionalPeer('sandport-no-such-sdk', { neededBy: 'AgentSession' }));
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
    expect((error as SandboxError).provider).toBeUndefined();
    expect((error as Error).message).toBe(
      'AgentSession needs the optional peer dependency "sandport-no-such-sdk": npm install sandport-no-such-sdk',
    );
  });

  it("an installed package whose own dependency is missing is a provider error with the loader's error as cause", async () => {
    const entry = pathToFileURL(join(project, 'node_modules', 'needs-absent-dep', 'index.js')).href;
    const error = await failure(loadOptionalPeer('needs-absent-dep', { provider: 'docker', load: () => import(entry) }));
    expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(false);
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    const cause = (error as Error).cause as { code?: string; message?: string };
    expect(cause.code).toBe('ERR_MODULE_NOT_FOUND');
    expect(cause.message).toContain("'absent-dep-of-needs-absent-dep'");
    expect((error as Error).message).toContain('sandport/docker could not load "needs-absent-dep"');
  });

  it('an installed package whose main file is missing is a provider error, not a missing peer', async () => {
    const error = await failure(loadOptionalPeer('bad-main', { provider: 'docker', load: async () => requireInProject()('bad-main') }));
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect(((error as Error).cause as { code?: string }).code).toBe('MODULE_NOT_FOUND');
  });

  it('an installed package that throws while loading is a provider error keeping the thrown error', async () => {
    const error = await failure(
      loadOptionalPeer('throws-on-load', { provider: 'modal', load: async () => requireInProject()('throws-on-load') }),
    );
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect(((error as Error).cause as Error).message).toBe('throws-on-load exploded');
    expect((error as Error).message).toContain('throws-on-load exploded');
  });

  it('resolves to the module when the package loads, through the default import and a given loader', async () => {
    const zod = await loadOptionalPeer<typeof import('zod')>('zod', { provider: 'docker' });
    expect(typeof zod.z.object).toBe('function');
    const fine = await loadOptionalPeer('fine-peer', {
      provider: 'docker',
      load: async () => requireInProject()('fine-peer') as { answer: number },
    });
    expect(fine.answer).toBe(42);
  });
});

describe('an adapter loads its SDK on the first operation', () => {
  it('modal: the client exists only after an operation loaded the SDK, then it is a ModalClient', async () => {
    // Wrap-existing mode: create() loads the SDK and makes the client without any request.
    const existing = { sandboxId: 'sb-optional-peer-test' } as unknown as ModalSdkSandbox;
    const provider = createModalSandboxProvider({ sandbox: existing, tokenId: 'ak-test', tokenSecret: 'as-test' });
    expect(() => provider.client).toThrow(/first operation/);
    const sandbox = await provider.create();
    expect(sandbox.id).toBe('sb-optional-peer-test');
    expect(provider.client).toBeInstanceOf(ModalClient);
  });

  it('modal: a client passed in is used as is', () => {
    const client = new ModalClient({ tokenId: 'ak-test', tokenSecret: 'as-test' });
    expect(createModalSandboxProvider({ client }).client).toBe(client);
  });
});
