import type { SuiteContext } from './context.js';

export function snapshotTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  describe('snapshots', () => {
    context.test(
      'snapshots.round-trip',
      'a sandbox created from a snapshot sees the change; the original is untouched',
      async () => {
        const original = await context.create();
        await original.files.write('/workspace/snap.txt', 'v1');
        await original.files.write('/workspace/keep.txt', 'kept');
        await original.run(['/bin/sh', '-c', 'echo system > /root/in-root.txt']);
        const snapshot = await original.snapshot!();
        expect(snapshot.type).toBe('snapshot');
        expect(snapshot.provider).toBe(context.provider.id);
        await original.files.write('/workspace/snap.txt', 'v2-original');
        await original.files.remove('/workspace/keep.txt');
        const copy = await context.create({ image: snapshot });
        expect(await copy.files.readText('/workspace/snap.txt')).toBe('v1');
        expect(await copy.files.readText('/workspace/keep.txt')).toBe('kept');
        expect(await copy.files.readText('/root/in-root.txt')).toBe('system\n');
        await copy.files.write('/workspace/snap.txt', 'v3-copy');
        expect(await original.files.readText('/workspace/snap.txt')).toBe('v2-original');
        expect(await original.files.exists('/workspace/keep.txt')).toBe(false);
        await copy.terminate();
        await original.terminate();
        // Providers that can delete snapshots do, so repeated runs leave nothing behind.
        await context.provider.deleteSnapshot?.(snapshot);
        await context.provider.deleteSnapshot?.(snapshot);
      },
      !context.capabilities.snapshot
        ? 'provider has no snapshots'
        : !context.capabilities.images.snapshot
          ? 'provider cannot start from a snapshot (images.snapshot false)'
          : undefined,
    );
  });
}
