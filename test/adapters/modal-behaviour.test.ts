/**
 * Modal-specific behaviour beyond the conformance suite, real SDK against the emulator: where
 * Modal's own semantics (output kept on its side, a terminal opened at 80x24) would otherwise
 * leak through the contract.
 */
import { ModalClient } from 'modal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModalSandboxProvider, type ModalSandbox, type ModalSandboxProvider } from '../../adapters/modal/index.js';
import { readText } from '../../src/index.js';
import { startModalEmulator, type ModalEmulator } from '../emulators/modal/index.js';

describe('modal provider behaviour (real SDK against the emulator)', () => {
  let emulator: ModalEmulator;
  let client: ModalClient;
  let provider: ModalSandboxProvider;
  const sandboxes: ModalSandbox[] = [];
  const create = async (options: Parameters<ModalSandboxProvider['create']>[0] = {}) => {
    const sandbox = await provider.create(options);
    sandboxes.push(sandbox);
    return sandbox;
  };
  beforeAll(async () => {
    emulator = await startModalEmulator();
    // The SDK reads its server URL from the environment when a client is made.
    process.env.MODAL_SERVER_URL = emulator.url;
    client = new ModalClient({ tokenId: 'ak-behaviour', tokenSecret: 'as-behaviour', logLevel: 'error' });
    provider = createModalSandboxProvider({ client, appName: 'sandport-behaviour', encryptPortsByDefault: false });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    client?.close();
    await emulator?.close();
  }, 120_000);

  it('the entrypoint’s output is still read after wait() reported its exit (Modal keeps it)', async () => {
    const sandbox = await create({ command: ['/bin/sh', '-c', 'echo hello; echo oops >&2; exit 2'] });
    expect(await sandbox.wait()).toMatchObject({ reason: 'entrypoint-exited', exitCode: 2 });
    expect(await readText(sandbox.stdout!)).toBe('hello\n');
    expect(await readText(sandbox.stderr!)).toBe('oops\n');
    // Nothing can read stdin any more: a write resolves and is dropped.
    const writer = sandbox.stdin!.getWriter();
    await writer.write(new TextEncoder().encode('late\n'));
    await writer.close();
  });

  it('a sandbox found by id reads the entrypoint’s output from the start', async () => {
    const sandbox = await create({ command: ['/bin/sh', '-c', 'echo first; echo second; exec sleep 100000'] });
    const found = await provider.fromId(sandbox.id);
    const reader = found.stdout!.getReader();
    let text = '';
    while (!text.includes('second\n')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toBe('first\nsecond\n');
    await reader.cancel();
  });

  it('a terminal asked for at another size than Modal’s 80x24 has that size from its first output', async () => {
    const sandbox = await create();
    const result = await sandbox.run(['stty', 'size'], { pty: { cols: 132, rows: 43 } });
    expect(result.stdout).toBe('43 132\r\n');
  });
});
