/**
 * Docker pause beyond the conformance suite: the lifetime is held inside the container (so it
 * keeps across processes), another process sees, tags, lists and resumes a paused sandbox, the
 * engine's "is paused" refusal is SandboxPausedError, and cleanup() spares paused containers
 * under the cap. A second provider instance stands for another process: it shares nothing with
 * the first but the engine.
 */
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider, mapDockerError, type DockerSandbox } from '../../adapters/docker/index.js';
import { SandboxPausedError } from '../../src/kit/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('docker pause without an engine', () => {
  it("maps the engine's 409 for a paused container to SandboxPausedError", () => {
    const message = 'Container 0123abcd is paused, unpause the container before exec';
    const cause = Object.assign(new Error(`(HTTP code 409) ${message}`), { statusCode: 409, reason: message, json: { message } });
    const error = mapDockerError(cause, { operation: 'exec', sandboxId: '0123abcd' });
    expect(SandboxPausedError.isInstance(error)).toBe(true);
    expect((error as SandboxPausedError).sandboxId).toBe('0123abcd');
    expect(error.cause).toBe(cause);
  });

  it('cleanup keeps a paused container under the cap (its lifetime stands still) and removes one past it, without exec', async () => {
    const now = Date.now();
    const day = 24 * 60 * 60 * 1000;
    const container = (id: string, state: string, createdAt: number, expiresAt: number) => ({
      Id: id,
      State: state,
      Created: Math.floor(createdAt / 1000),
      Labels: {
        'dev.sandport.managed': 'true',
        'dev.sandport.created-at': String(createdAt),
        'dev.sandport.expires-at': String(expiresAt),
      },
    });
    const listed = [
      // Past its create-time expiry, but paused: the time left was held at the pause.
      container('paused-expired-label', 'paused', now - 60 * 60_000, now - 30 * 60_000),
      container('paused-over-cap', 'paused', now - day - 60_000, now - day + 60_000),
    ];
    const removed: string[] = [];
    const docker = {
      listContainers: async () => listed,
      getContainer: (id: string) => ({
        remove: async () => void removed.push(id),
        exec: async () => {
          throw new Error(`no exec expected (asked of ${id}): a paused container runs none`);
        },
      }),
    };
    const provider = createDockerSandboxProvider({ docker: docker as unknown as Docker });
    expect(await provider.cleanup()).toBe(1);
    expect(removed).toEqual(['paused-over-cap']);
  });
});

const available = dockerAvailable();
if (!available)
  console.warn(`skipping the docker pause tests: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`);

describe.skipIf(!available)('docker pause on the engine', () => {
  const provider = createDockerSandboxProvider({ defaultImage: baseImage });
  const sandboxes: DockerSandbox[] = [];
  const create = async (options: Parameters<typeof provider.create>[0] = {}) => {
    const sandbox = await provider.create({ network: 'block', ...options });
    sandboxes.push(sandbox);
    return sandbox;
  };
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
  });

  const deadlineOf = async (sandbox: DockerSandbox) => Number((await sandbox.run(['cat', '/.sandport/deadline'])).stdout.trim());

  it('the deadline inside the container moves by the pause, so the lifetime holds without the creator', async () => {
    const sandbox = await create({ timeoutMs: 60_000 });
    const before = await deadlineOf(sandbox);
    await sandbox.pause();
    await sleep(3_000);
    await sandbox.resume();
    const after = await deadlineOf(sandbox);
    // Whole seconds on both sides: at least the 3 s held, less one for the rounding.
    expect(after - before, 'seconds the deadline moved').toBeGreaterThanOrEqual(2);
    expect((await sandbox.native.inspect()).State.Paused).toBe(false);
  }, 60_000);

  it('another process sees a paused sandbox, reads, writes and lists its tags, and resumes it; the creator follows', async () => {
    const tag = `pause-${Date.now().toString(36)}`;
    const sandbox = await create({ tags: { run: tag, role: 'created' } });
    await sandbox.setTags({ run: tag, role: 'set-before-pause' });
    await sandbox.pause();
    expect((await sandbox.native.inspect()).State.Paused).toBe(true);

    const elsewhere = createDockerSandboxProvider({ defaultImage: baseImage });
    const found = await elsewhere.fromId(sandbox.id);
    expect(found).not.toBe(sandbox);
    expect(await found.poll()).toEqual({ state: 'paused' });
    await expect(found.run(['true'])).rejects.toSatisfy((error) => SandboxPausedError.isInstance(error));
    expect(await found.getTags()).toEqual({ run: tag, role: 'set-before-pause' });
    await found.setTags({ run: tag, role: 'set-while-paused' });
    expect(await sandbox.getTags()).toEqual({ run: tag, role: 'set-while-paused' });
    const listed = await elsewhere.list({ tags: { run: tag } });
    expect(listed.map((info) => [info.id, info.tags.role])).toEqual([[sandbox.id, 'set-while-paused']]);

    await found.resume();
    expect(await found.poll()).toEqual({ state: 'running' });
    // The creator's object learns of the resume from the engine at its next poll.
    expect(await sandbox.poll()).toEqual({ state: 'running' });
    expect((await sandbox.run(['echo', 'resumed elsewhere'])).stdout).toBe('resumed elsewhere\n');
    // The tags written while paused are the running sandbox's tags now.
    expect(await sandbox.getTags()).toEqual({ run: tag, role: 'set-while-paused' });
    expect((await sandbox.run(['/bin/sh', '-c', 'test -e /.sandport-paused && echo left || echo gone'])).stdout).toBe('gone\n');
  }, 60_000);

  it('a container paused with `docker pause` reports paused, refuses exec with SandboxPausedError, and resume() continues it', async () => {
    const sandbox = await create();
    await sandbox.native.pause();
    await expect(sandbox.run(['true'])).rejects.toSatisfy((error) => SandboxPausedError.isInstance(error));
    // resume() asks the engine first: no poll needed to learn of the outside pause.
    await sandbox.resume();
    expect((await sandbox.run(['echo', 'ok'])).stdout).toBe('ok\n');
    await sandbox.native.pause();
    expect(await sandbox.poll()).toEqual({ state: 'paused' });
    await sandbox.native.unpause();
    // Nor is a pause skipped because this object last saw the sandbox paused.
    await sandbox.pause();
    expect((await sandbox.native.inspect()).State.Paused).toBe(true);
    await sandbox.resume();
    expect((await sandbox.run(['echo', 'again'])).stdout).toBe('again\n');
  }, 60_000);

  it('a start refused by a paused container sends no kill exec into it afterwards (a freeze that catches an exec starting wedges the engine)', async () => {
    const sandbox = await create();
    const events = await new Docker().getEvents({ filters: { container: [sandbox.native.id], event: ['exec_create'] } });
    const created: string[] = [];
    events.on('data', (chunk: Buffer) => created.push(chunk.toString('utf8')));
    try {
      await sandbox.native.pause();
      await expect(sandbox.run(['true'])).rejects.toSatisfy((error) => SandboxPausedError.isInstance(error));
      await sandbox.native.unpause();
      // Long enough for a kill that the failed start fired to have reached the engine.
      await sleep(1_500);
      expect(created, 'execs created after the refused start').toEqual([]);
      expect((await sandbox.run(['echo', 'still fine'])).stdout).toBe('still fine\n');
    } finally {
      (events as unknown as { destroy(): void }).destroy();
    }
  }, 60_000);
});
