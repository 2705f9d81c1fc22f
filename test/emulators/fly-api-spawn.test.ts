/**
 * The Fly emulator in a child process (test/emulators/fly/spawn.ts), as the adapter's suite runs
 * it: the parent gets the API URL, the token and the edge domain, and the child's machines go with
 * it on close.
 */
import { describe, expect, it } from 'vitest';
import { spawnFlyEmulator } from './fly/spawn.js';
import { flyTestClient } from './fly/fly-test-client.js';

describe('spawnFlyEmulator', () => {
  it('reports url, token and edgeDomain of a child that serves the Machines API', async () => {
    const emulator = await spawnFlyEmulator({ token: 'spawned-token', region: 'ams' });
    try {
      expect(emulator.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(emulator.token).toBe('spawned-token');
      expect(emulator.edgeDomain).toBe('fly.localhost');
      expect(emulator.pid).not.toBe(process.pid);
      const fly = flyTestClient(emulator.url, emulator.token);
      const app = await fly.app();
      const machine = await fly.machine(app, { config: { image: 'debian' } });
      expect(machine.region).toBe('ams');
      await fly.waitFor(app, machine.id, 'started');
      const exec = await fly.call('POST', `/v1/apps/${app}/machines/${machine.id}/exec`, { command: ['echo', 'from the child'] });
      expect(exec.body.stdout).toBe('from the child\n');
    } finally {
      await emulator.close();
    }
    await expect(fetch(`${emulator.url}/v1/apps`)).rejects.toThrow();
  });
});
