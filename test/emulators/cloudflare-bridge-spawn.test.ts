/**
 * The bridge emulator in a child process (cloudflare/spawn.ts), as the adapter's suite runs it:
 * the token made by the parent works, the restart hook goes through the emulator's test route,
 * tunnel URLs resolve here once `installLocalhostResolution()` is installed, and close ends the
 * child.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installLocalhostResolution, spawnCloudflareBridgeEmulator, type CloudflareBridgeEmulatorProcess } from './cloudflare/index.js';
import { bridgeClient, freshId, type BridgeClient } from './cloudflare/test-client.js';

describe.each(['0.12', '0.13'] as const)('spawned bridge %s', (version) => {
  let emulator: CloudflareBridgeEmulatorProcess;
  let client: BridgeClient;
  let uninstall: () => void;

  beforeAll(async () => {
    uninstall = installLocalhostResolution();
    emulator = await spawnCloudflareBridgeEmulator({ version });
    client = bridgeClient(emulator);
  });
  afterAll(async () => {
    await emulator?.close();
    uninstall?.();
  });

  it('runs in another process with the token the parent chose, and serves that version', async () => {
    expect(emulator.pid).not.toBe(process.pid);
    expect(emulator.version).toBe(version);
    expect((await fetch(`${emulator.url}/v1/sandbox`, { method: 'POST' })).status).toBe(401);
    const paths = Object.keys(((await (await client.call('/v1/openapi.json')).json()) as { paths: object }).paths);
    expect(paths).toContain(version === '0.12' ? '/v1/sandbox/{id}/exec' : '/v1/sandbox/{id}/processes');
  });

  it('restarts a container through the test route: its state is gone', async () => {
    const id = freshId('spawned');
    await client.call(`/v1/sandbox/${id}/file/workspace/marker`, { method: 'PUT', body: 'here' });
    expect(await (await client.call(`/v1/sandbox/${id}/file/workspace/marker`)).text()).toBe('here');
    expect(await emulator.restartContainer(id)).toBe(true);
    const error = await client.call(`/v1/sandbox/${id}/file/workspace/marker`).then(
      (response) => new Error(`answered ${response.status}`),
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(TypeError);
  });

  it('answers tunnel URLs that this process reaches (the edge answers for a port nobody listens on)', async () => {
    const record = (await (await client.call(`/v1/sandbox/${freshId('edge')}/tunnel/8080`, { method: 'POST' })).json()) as { url: string };
    expect((await fetch(record.url)).status).toBe(502);
  });
});
