import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnEmulator } from './spawn-emulator.js';

const module = join(import.meta.dirname, 'fixtures', 'echo-emulator.ts');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('spawnEmulator', () => {
  it('runs the emulator in its own process, passes its options, and stops it on close', async () => {
    const emulator = await spawnEmulator({ module, exportName: 'startEchoEmulator', options: { greeting: 'hi there' } });
    try {
      const body = (await (await fetch(emulator.url)).json()) as { greeting: string; pid: number };
      expect(body.greeting).toBe('hi there');
      expect(body.pid).toBe(emulator.pid);
      expect(body.pid).not.toBe(process.pid);
    } finally {
      await emulator.close();
    }
    expect(alive(emulator.pid)).toBe(false);
    await emulator.close(); // idempotent
  });

  it('rejects when the emulator fails to start', async () => {
    await expect(
      spawnEmulator({ module, exportName: 'startEchoEmulator', options: { fail: true }, label: 'the echo emulator' }),
    ).rejects.toThrow(/the echo emulator exited during start/);
  });
});
