/**
 * The conformance suite through the Cloudflare adapter, against the bridge emulator
 * (test/emulators/cloudflare) for both bridge versions: 0.12 (`/exec` with server-sent events)
 * and 0.13 (`/processes`). Each emulator runs in its own process (so the suite's memory checks
 * see the client only) and runs every container in the local bubblewrap provider.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  cloudflareBridgeFeatures,
  cloudflareCapabilitiesFor,
  createCloudflareSandboxProvider,
  type CloudflareBridgeVersion,
  type CloudflareSandbox,
} from '../../adapters/cloudflare/index.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  readBytes,
} from '../../src/kit/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';
import { installLocalhostResolution } from '../emulators/cloudflare/index.js';
import { spawnCloudflareBridgeEmulator, type CloudflareBridgeEmulatorProcess } from '../emulators/cloudflare/spawn.js';

for (const version of ['0.12', '0.13'] as const satisfies readonly CloudflareBridgeVersion[]) {
  describe(`cloudflare provider, bridge ${version} (against the emulator)`, () => {
    let emulator: CloudflareBridgeEmulatorProcess | undefined;
    let uninstallResolution: (() => void) | undefined;
    beforeAll(async () => {
      emulator = await spawnCloudflareBridgeEmulator({ version });
      // Tunnel host names are `<x>.trycloudflare.localhost`: this process resolves them to loopback.
      uninstallResolution = installLocalhostResolution();
    }, 120_000);
    afterAll(async () => {
      await emulator?.close();
      uninstallResolution?.();
    }, 120_000);

    defineSandboxConformanceSuite({
      name: `cloudflare-${version}`,
      describe,
      it,
      expect,
      beforeAll,
      afterAll,
      onTestFailed,
      capabilities: cloudflareCapabilitiesFor(version),
      // No version option: the adapter detects it from the emulator's OpenAPI document.
      createProvider: async () => {
        const provider = createCloudflareSandboxProvider({ url: emulator!.url, token: emulator!.token });
        expect(await provider.bridgeVersion()).toBe(version);
        return provider;
      },
      skip: {
        // Real quick tunnels are https on trycloudflare.com; cloudflare.live.test.ts covers this there.
        'capabilities.tunnels-tls': 'the emulator has no TLS terminator: its tunnels are plain HTTP',
      },
    });

    describe('what only the bridge does', () => {
      const made: CloudflareSandbox[] = [];
      const provider = () => createCloudflareSandboxProvider({ url: emulator!.url, token: emulator!.token });
      const create = async (options: Parameters<ReturnType<typeof provider>['create']>[0] = {}) => {
        const sandbox = await provider().create(options);
        made.push(sandbox);
        return sandbox;
      };
      afterAll(async () => {
        await Promise.all(made.map((sandbox) => sandbox.terminate().catch(() => undefined)));
      }, 120_000);

      it('a container that stopped and lost its state is not found by fromId, and poll reports it crashed', async () => {
        const sandbox = await create();
        await sandbox.files.write('/workspace/kept.txt', 'before');
        // Another provider object (no state shared in memory) finds it by id alone.
        expect(await (await provider().fromId(sandbox.id)).files.readText('/workspace/kept.txt')).toBe('before');
        expect(await emulator!.restartContainer(sandbox.id)).toBe(true);
        await expect(provider().fromId(sandbox.id)).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
        expect(await sandbox.poll()).toEqual({ state: 'terminated', reason: 'crashed' });
        await expect(sandbox.run(['true'])).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
      });

      it('stdin is refused, never dropped: run({ stdin }) and a write to stdin are exec.stdin', async () => {
        const sandbox = await create();
        const refused = (error: unknown) => SandboxCapabilityUnsupportedError.isInstance(error) && error.capability === 'exec.stdin';
        await expect(sandbox.run(['cat'], { stdin: 'x' })).rejects.toSatisfy(refused);
        const process = await sandbox.exec(['cat']);
        await expect(process.stdin.getWriter().write(new Uint8Array([1]))).rejects.toSatisfy(refused);
        // Its input is /dev/null: cat ends at once.
        expect((await process.wait()).exitCode).toBe(0);
      });

      it(`output bytes are ${version === '0.12' ? 'decoded as UTF-8 on 0.12 (U+FFFD for invalid bytes)' : 'exact on 0.13'}, as its features say`, async () => {
        const sandbox = await create();
        const process = await sandbox.exec(['printf', '\\377\\376\\000A']);
        const bytes = [...(await readBytes(process.stdout))];
        await process.wait();
        const exact = [0xff, 0xfe, 0x00, 0x41];
        const replaced = [0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd, 0x00, 0x41];
        expect(bytes).toEqual(cloudflareBridgeFeatures(version).byteExactOutput ? exact : replaced);
      });

      it('env of the create and of each exec reaches the command byte for byte', async () => {
        const sandbox = await create({ env: { FROM_CREATE: 'c' }, workdir: '/workspace/sub' });
        const value = "it's $HOME\n`x` ünï = \\ end";
        const result = await sandbox.run(['sh', '-c', 'printf "%s|%s|%s" "$FROM_CREATE" "$K" "$(pwd)"'], { env: { K: value } });
        expect(result.stdout).toBe(`c|${value}|/workspace/sub`);
      });

      it('persistWorkspace and hydrateWorkspace carry /workspace to another sandbox (without the staging files)', async () => {
        const source = await create();
        await source.files.write('/workspace/dir/a.txt', 'persisted');
        await source.files.write('/tmp/outside.txt', 'not in the tar');
        const archive = await readBytes(await source.persistWorkspace());
        const target = await create();
        await target.hydrateWorkspace(archive);
        expect(await target.files.readText('/workspace/dir/a.txt')).toBe('persisted');
        expect(await target.files.exists('/workspace/.sandport-staging')).toBe(false);
        expect(await target.files.exists('/tmp/outside.txt')).toBe(false);
        await expect(target.hydrateWorkspace(new Uint8Array(0))).rejects.toSatisfy((error) =>
          SandboxInvalidArgumentError.isInstance(error),
        );
        await expect(target.hydrateWorkspace(new TextEncoder().encode('not a tar'))).rejects.toSatisfy((error) =>
          SandboxInvalidArgumentError.isInstance(error),
        );
      });
    });
  });

  describe(`cloudflare provider, bridge ${version}, whose missing files answer the documented 404`, () => {
    let emulator: CloudflareBridgeEmulatorProcess | undefined;
    beforeAll(async () => {
      emulator = await spawnCloudflareBridgeEmulator({ version, missingFile: '404' });
    }, 120_000);
    afterAll(() => emulator?.close(), 120_000);

    it('a missing file is SandboxFileNotFoundError and a directory SandboxInvalidArgumentError, as with a dropped connection', async () => {
      const sandbox = await createCloudflareSandboxProvider({ url: emulator!.url, token: emulator!.token }).create();
      try {
        const missing = await sandbox.files.read('/workspace/nope.txt').catch((error: unknown) => error);
        expect(SandboxFileNotFoundError.isInstance(missing) && missing.path).toBe('/workspace/nope.txt');
        await sandbox.files.mkdir('/workspace/dir');
        const directory = await sandbox.files.read('/workspace/dir').catch((error: unknown) => error);
        expect(SandboxInvalidArgumentError.isInstance(directory) && directory.argument).toBe('path');
      } finally {
        await sandbox.terminate();
      }
    });
  });
}
