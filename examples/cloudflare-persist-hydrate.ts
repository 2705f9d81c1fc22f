/**
 * Persist and hydrate a workspace (the hybrid pattern: a fresh sandbox started from saved work).
 * Cloudflare's bridge saves `/workspace` as a tar (`persistWorkspace`) and extracts one into
 * another sandbox (`hydrateWorkspace`); it has no snapshots of the whole filesystem. On other
 * providers the same tar is made and unpacked by a command.
 *   CLOUDFLARE_SANDBOX_BRIDGE_URL=https://… CLOUDFLARE_SANDBOX_BRIDGE_TOKEN=… npx tsx examples/cloudflare-persist-hydrate.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { Sandbox, SandboxProvider } from 'sandport';
import { readBytes } from 'sandport';

const provider: SandboxProvider = (await import('sandport/cloudflare')).createCloudflareSandboxProvider();

interface WorkspaceArchives {
  persistWorkspace(): Promise<ReadableStream<Uint8Array>>;
  hydrateWorkspace(archive: Uint8Array): Promise<void>;
}
const archives = (sandbox: Sandbox): WorkspaceArchives | undefined =>
  'persistWorkspace' in sandbox ? (sandbox as Sandbox & WorkspaceArchives) : undefined;

async function saveWorkspace(sandbox: Sandbox): Promise<Uint8Array> {
  const bridge = archives(sandbox);
  if (bridge) return readBytes(await bridge.persistWorkspace());
  await sandbox.run(['tar', 'cf', '/tmp/workspace.tar', '-C', '/workspace', '.'], { throwOnNonZeroExit: true });
  return sandbox.files.read('/tmp/workspace.tar');
}

async function restoreWorkspace(sandbox: Sandbox, archive: Uint8Array): Promise<void> {
  const bridge = archives(sandbox);
  if (bridge) return bridge.hydrateWorkspace(archive);
  await sandbox.files.write('/tmp/workspace.tar', archive);
  await sandbox.run(['/bin/sh', '-c', 'mkdir -p /workspace && tar xf /tmp/workspace.tar -C /workspace'], { throwOnNonZeroExit: true });
}

let archive: Uint8Array;
{
  await using first = await provider.create();
  await first.files.write('/workspace/app/state.json', '{"turn": 7}');
  await first.run(['/bin/sh', '-c', 'echo "history line" >> /workspace/app/history.log']);
  archive = await saveWorkspace(first);
  console.log(`saved the workspace: a ${archive.byteLength}-byte tar`);
}

await using second = await provider.create();
await restoreWorkspace(second, archive);
console.log(`restored state: ${await second.files.readText('/workspace/app/state.json')}`);
console.log(`restored history: ${(await second.files.readText('/workspace/app/history.log')).trim()}`);
