/**
 * E2B adapter behaviours the conformance suite leaves to the adapter, through the real `e2b` SDK
 * against the emulator: lookups from a provider that shares nothing with the creator (what another
 * process sees), name uniqueness under concurrent creates, and a paused sandbox found by id
 * staying paused.
 */
import { Sandbox as E2bSdkSandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createE2bSandboxProvider, type E2bSandboxProvider } from '../../adapters/e2b/index.js';
import { SandboxAlreadyExistsError, type Sandbox } from '../../src/kit/index.js';
import { spawnE2bEmulator, type E2bEmulatorProcess } from '../emulators/e2b/spawn.js';

let emulator: E2bEmulatorProcess | undefined;
const made: Sandbox[] = [];

const provider = (): E2bSandboxProvider =>
  createE2bSandboxProvider({ apiKey: 'e2b_emulator', apiUrl: emulator!.url, sandboxUrl: emulator!.sandboxUrl, domain: emulator!.domain });
const connection = () => ({ apiKey: 'e2b_emulator', apiUrl: emulator!.url, sandboxUrl: emulator!.sandboxUrl, domain: emulator!.domain });

describe('e2b adapter behaviours (real SDK against the emulator)', () => {
  beforeAll(async () => {
    emulator = await spawnE2bEmulator();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(made.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    await emulator?.close();
  }, 120_000);

  it('another provider (no state shared: what another process sees) finds a sandbox by id, name and tags, with tags set later', async () => {
    const run = `b${Date.now().toString(36)}`;
    const sandbox = await provider().create({ name: `${run}-named`, tags: { suite: run } });
    made.push(sandbox);
    await sandbox.setTags({ suite: run, step: 'changed' });
    const other = provider();
    expect((await other.fromId(sandbox.id)).id).toBe(sandbox.id);
    const byName = await other.fromName(`${run}-named`);
    expect(byName.id).toBe(sandbox.id);
    expect(byName.name).toBe(`${run}-named`);
    expect(await byName.getTags()).toEqual({ suite: run, step: 'changed' });
    const listed = await other.list({ tags: { suite: run, step: 'changed' } });
    expect(listed.map((info) => [info.id, info.name])).toEqual([[sandbox.id, `${run}-named`]]);
    // E2B's own metadata keeps what create set: the SDK sees the tags and the name there.
    const info = await E2bSdkSandbox.getInfo(sandbox.id, connection());
    expect(info.metadata).toMatchObject({ suite: run, 'sandport.name': `${run}-named` });
  }, 120_000);

  it('two concurrent creates of one name: exactly one keeps it, the other is SandboxAlreadyExistsError and leaves no sandbox', async () => {
    const name = `race-${Date.now().toString(36)}`;
    const outcomes = await Promise.allSettled([provider().create({ name }), provider().create({ name })]);
    const kept = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    made.push(...kept);
    const refused = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    expect(kept).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(SandboxAlreadyExistsError.isInstance(refused[0])).toBe(true);
    const holders = await provider().list();
    expect(holders.filter((info) => info.name === name).map((info) => info.id)).toEqual([kept[0]!.id]);
  }, 120_000);

  it('fromId of a paused sandbox does not resume it; resume() through the found object does', async () => {
    const sandbox = await provider().create();
    made.push(sandbox);
    await sandbox.pause!();
    const found = await provider().fromId(sandbox.id);
    expect(await found.poll()).toEqual({ state: 'paused' });
    expect((await E2bSdkSandbox.getInfo(sandbox.id, connection())).state).toBe('paused');
    await found.resume!();
    expect((await E2bSdkSandbox.getInfo(sandbox.id, connection())).state).toBe('running');
    expect((await found.run(['echo', 'back'])).stdout).toBe('back\n');
  }, 120_000);
});
