import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLocalSandboxProvider, localCapabilities } from '../../adapters/local/index.js';
import { defineSandboxConformanceSuite } from '../../src/testing/index.js';

// Built by scripts/build-rootfs.sh (debootstrap minbase), which .ci/run runs.
const rootfs = process.env.SANDPORT_ROOTFS_DIR ?? '/var/cache/sandport/rootfs/bookworm';
const available = process.getuid?.() === 0 && existsSync(`${rootfs}/.sandport-complete`);
if (!available) console.warn(`skipping rootfs-image tests: needs root and ${rootfs} (run: sudo bash scripts/build-rootfs.sh)`);

describe.skipIf(!available)('local provider with a rootfs image', () => {
  defineSandboxConformanceSuite({
    name: 'local (debootstrap rootfs image)',
    describe,
    it,
    expect,
    beforeAll,
    afterAll,
    onTestFailed,
    capabilities: localCapabilities,
    createProvider: () => createLocalSandboxProvider(),
    createOptions: { image: rootfs },
    skip: {
      'tunnels.http-and-websocket': 'the minbase image has neither node nor python3; the host-image run covers tunnels',
    },
  });

  it('writes go to the per-sandbox overlay; the image directory is untouched; deletions survive snapshots', async () => {
    const provider = createLocalSandboxProvider();
    const before = readdirSync(`${rootfs}/etc`).length;
    const sandbox = await provider.create({ image: rootfs, network: 'block' });
    const changed = await sandbox.run('echo added > /etc/sandport-added && rm /etc/hostname && apt-get --version >/dev/null && echo ok');
    expect(changed.stdout).toBe('ok\n');
    expect(existsSync(`${rootfs}/etc/sandport-added`)).toBe(false);
    expect(existsSync(`${rootfs}/etc/hostname`)).toBe(true);
    const snapshot = await sandbox.snapshot!();
    const copy = await provider.create({ image: snapshot, network: 'block' });
    expect((await copy.run('cat /etc/sandport-added; test -e /etc/hostname || echo hostname-deleted')).stdout).toBe(
      'added\nhostname-deleted\n',
    );
    await copy.terminate();
    await sandbox.terminate();
    expect(readdirSync(`${rootfs}/etc`).length).toBe(before);
  });
});
