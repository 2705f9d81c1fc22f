/**
 * Docker-specific behaviour beyond the conformance suite, on a real engine: where the engine's
 * own semantics (archive API, container config, commit, open wait requests) would otherwise leak
 * through the contract.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider, type DockerSandbox } from '../../adapters/docker/index.js';
import { SandboxInvalidArgumentError, type SandboxSnapshotRef } from '../../src/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import { startCreator } from '../creator-process.js';

const available = dockerAvailable();
if (!available)
  console.warn(
    `skipping the docker behaviour tests: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`,
  );

describe.skipIf(!available)('docker provider behaviour', () => {
  const provider = createDockerSandboxProvider({ defaultImage: baseImage });
  const sandboxes: DockerSandbox[] = [];
  const snapshots: SandboxSnapshotRef[] = [];
  const create = async (options: Parameters<typeof provider.create>[0] = {}) => {
    const sandbox = await provider.create({ network: 'block', ...options });
    sandboxes.push(sandbox);
    return sandbox;
  };
  afterAll(async () => {
    await Promise.all(sandboxes.map((sandbox) => sandbox.terminate().catch(() => undefined)));
    await Promise.all(snapshots.map((snapshot) => provider.deleteSnapshot(snapshot).catch(() => undefined)));
  }, 60_000);

  it('writing to a symlink writes through it, as a command would', async () => {
    const sandbox = await create();
    await sandbox.run(['/bin/sh', '-c', 'echo original > /workspace/real && ln -s /workspace/real /workspace/link']);
    await sandbox.files.write('/workspace/link', 'through the link\n');
    expect((await sandbox.files.stat('/workspace/link')).type).toBe('symlink');
    expect((await sandbox.run(['cat', '/workspace/real'])).stdout).toBe('through the link\n');
  });

  it('a streamed write of several parts arrives whole through the archive API, and leaves no scratch files', async () => {
    const sandbox = await create();
    const MiB = 1024 * 1024;
    // 20.5 MiB: several parts, the last one short; every byte says which MiB it is in.
    const total = 20 * MiB + MiB / 2;
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        const size = Math.min(MiB, total - sent);
        controller.enqueue(new Uint8Array(size).fill(sent / MiB));
        sent += size;
      },
    });
    await sandbox.files.write('/workspace/new-dir/parts.bin', source, { mode: 0o640 });
    const info = await sandbox.files.stat('/workspace/new-dir/parts.bin');
    expect([info.size, info.mode]).toEqual([total, 0o640]);
    const check = await sandbox.run([
      '/bin/sh',
      '-c',
      'for i in 0 10 20; do dd if=/workspace/new-dir/parts.bin bs=1048576 skip=$i count=1 2>/dev/null | od -An -tu1 -N1; done; ls -A /workspace/new-dir',
    ]);
    expect(
      check.stdout
        .split('\n')
        .map((line) => line.trim())
        .filter(Boolean),
    ).toEqual(['0', '10', '20', 'parts.bin']);
  });

  it('an aborted streamed write rejects with the reason and leaves no scratch files', async () => {
    const sandbox = await create();
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    let chunks = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(stream) {
        // After 12 MiB (later parts are on their way), the caller aborts.
        if (++chunks === 12) controller.abort(reason);
        stream.enqueue(new Uint8Array(1024 * 1024));
      },
    });
    await expect(sandbox.files.write('/workspace/aborted.bin', source, { signal: controller.signal })).rejects.toBe(reason);
    let left = '';
    for (let attempt = 0; attempt < 50; attempt++) {
      left = (await sandbox.run(['/bin/sh', '-c', 'ls -A /workspace | grep sandport || true'])).stdout;
      if (left === '') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(left).toBe('');
  });

  it('procfs and tmpfs paths work through the files API like any other', async () => {
    const sandbox = await create();
    expect(await sandbox.files.readText('/proc/self/status')).toMatch(/^Name:/m);
    expect((await sandbox.files.stat('/proc/self/status')).type).toBe('file');
    await sandbox.run(['/bin/sh', '-c', 'echo from-a-command > /dev/shm/made-inside']);
    expect(await sandbox.files.readText('/dev/shm/made-inside')).toBe('from-a-command\n');
    await sandbox.files.write('/dev/shm/made-outside', 'from the host');
    expect((await sandbox.run(['cat', '/dev/shm/made-outside'])).stdout).toBe('from the host');
    expect(await sandbox.files.exists('/dev/shm/nope')).toBe(false);
    const interfaces = (await sandbox.files.readText('/proc/net/dev'))
      .split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]!.trim())
      .filter(Boolean);
    expect(interfaces).toEqual(['lo']);
  });

  it('secrets reach commands but never the container config or a snapshot', async () => {
    const secret = `s3cret'with "quotes"\nand $dollars ${Date.now()}`;
    const sandbox = await create({ env: { SHARED: 'from-env' }, secrets: { API_TOKEN: secret, SHARED: 'from-secret' } });
    expect((await sandbox.run(['/bin/sh', '-c', 'printf %s "$API_TOKEN"'])).stdout).toBe(secret);
    // Precedence: create env < secrets < exec env.
    expect((await sandbox.run(['/bin/sh', '-c', 'printf %s "$SHARED"'])).stdout).toBe('from-secret');
    expect((await sandbox.run(['/bin/sh', '-c', 'printf %s "$SHARED"'], { env: { SHARED: 'from-exec' } })).stdout).toBe('from-exec');
    const info = await sandbox.native.inspect();
    expect(JSON.stringify(info.Config)).not.toContain('s3cret');
    const snapshot = await sandbox.snapshot();
    snapshots.push(snapshot);
    expect(JSON.stringify(await provider.docker.getImage(snapshot.id).inspect())).not.toContain('s3cret');
    const copy = await create({ image: snapshot });
    expect((await copy.run(['/bin/sh', '-c', 'printf %s "${API_TOKEN-unset}"'])).stdout).toBe('unset');
  });

  it('a bind of a missing host path is refused and creates nothing on the host', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'sandport-docker-missing-'));
    const missing = join(parent, 'not-there');
    try {
      const error = await provider.create({ network: 'block', volumes: { '/data': missing } }).catch((caught: unknown) => caught);
      expect(SandboxInvalidArgumentError.isInstance(error)).toBe(true);
      expect(existsSync(missing)).toBe(false);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('exec-end events carry the exit status', async () => {
    const sandbox = await create();
    const ends: Array<{ exitCode: number | undefined; signal: string | undefined }> = [];
    const listener = (event: { sandboxId: string; exitCode: number | undefined; signal: string | undefined }) => {
      if (event.sandboxId === sandbox.id) ends.push({ exitCode: event.exitCode, signal: event.signal });
    };
    provider.events.on('exec-end', listener);
    try {
      await sandbox.run('exit 3');
      await sandbox.run(['/bin/sh', '-c', 'kill -TERM $$']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(ends).toEqual([
        { exitCode: 3, signal: undefined },
        { exitCode: 143, signal: 'SIGTERM' },
      ]);
    } finally {
      provider.events.off('exec-end', listener);
    }
  });

  it('a process that attaches with fromId exits once its work is done', async () => {
    const sandbox = await create({ timeoutMs: 120_000 });
    const script = [
      `import { createDockerSandboxProvider } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'adapters', 'docker', 'index.ts'))};`,
      `const sandbox = await createDockerSandboxProvider().fromId(${JSON.stringify(sandbox.id)});`,
      `console.log((await sandbox.run(['echo', 'attached'])).stdout.trim());`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // Generous: this is about exiting at all (an open engine request would hold it for the sandbox's lifetime).
    const exit = await new Promise<number | null | 'still running'>((resolve) => {
      const timer = setTimeout(() => resolve('still running'), 45_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    if (exit === 'still running') child.kill('SIGKILL');
    expect(exit).toBe(0);
    expect(output.trim()).toBe('attached');
    expect((await sandbox.poll()).state).toBe('running');
  }, 60_000);

  it('an exec killed for exceeding memoryMiB reports oomKilled; a plain kill does not', async () => {
    const sandbox = await create({ memoryMiB: 64 });
    // The hog runs only once the engine confirms the limit, and is bounded by its input size.
    expect((await sandbox.native.inspect()).HostConfig.Memory).toBe(64 * 1024 * 1024);
    const hog = await sandbox.exec(['/bin/sh', '-c', 'head -c 400m /dev/zero | tail > /dev/null'], { timeoutMs: 60_000 });
    void hog.stdout.cancel();
    void hog.stderr.cancel();
    expect(await hog.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL', oomKilled: true });
    const sleeper = await sandbox.exec(['sleep', '100']);
    await sleeper.kill();
    expect(await sleeper.wait()).toEqual({ exitCode: 137, signal: 'SIGKILL' });
  });

  it('the entrypoint ends its container even after the creating process died', async () => {
    const script = [
      `import { createDockerSandboxProvider } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'adapters', 'docker', 'index.ts'))};`,
      `const sandbox = await createDockerSandboxProvider().create({ image: ${JSON.stringify(baseImage)}, network: 'block', timeoutMs: 120_000, command: ['/bin/sh', '-c', 'sleep 3; exit 5'] });`,
      'console.log(sandbox.id);',
      'setInterval(() => undefined, 1_000);',
    ].join('\n');
    const { creator, line: id } = await startCreator(['--input-type=module', '-e', script]);
    creator.kill('SIGKILL');
    const attached = await provider.fromId(id);
    // The lifetime is two minutes away: only the entrypoint's exit can end it this soon.
    const ended = await attached.wait({ signal: AbortSignal.timeout(45_000) });
    expect(ended).toEqual({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 5 });
    // AutoRemove follows the exit by a moment.
    let left = await provider.docker.listContainers({ all: true, filters: { id: [id] } });
    for (let attempt = 0; attempt < 100 && left.length > 0; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await provider.docker.listContainers({ all: true, filters: { id: [id] } });
    }
    expect(left).toEqual([]);
  }, 60_000);

  it('{ base, commands } builds once per content, with the build log as events', async () => {
    const marker = `built-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const image = { base: baseImage, commands: [`echo ${marker} > /built.txt`] };
    const lines: Array<{ image: string; line: string }> = [];
    const listener = (event: { image: string; line: string }) => lines.push(event);
    provider.events.on('image-build', listener);
    let tag = '';
    try {
      const first = await create({ image });
      expect(await first.files.readText('/built.txt')).toBe(`${marker}\n`);
      expect(lines.length).toBeGreaterThan(0);
      tag = lines[0]!.image;
      expect(lines.every((event) => event.image === tag)).toBe(true);
      const seen = lines.length;
      const second = await create({ image });
      expect(await second.files.readText('/built.txt')).toBe(`${marker}\n`);
      // Same content, same tag: no second build.
      expect(lines.length).toBe(seen);
    } finally {
      provider.events.off('image-build', listener);
      await Promise.all(sandboxes.splice(0).map((sandbox) => sandbox.terminate().catch(() => undefined)));
      if (tag)
        await provider.docker
          .getImage(tag)
          .remove({ force: true })
          .catch(() => undefined);
    }
  }, 120_000);

  it('deleteSnapshot removes the image and is idempotent', async () => {
    const sandbox = await create();
    const snapshot = await sandbox.snapshot();
    await provider.deleteSnapshot(snapshot);
    await provider.deleteSnapshot(snapshot);
    const gone = await provider.docker
      .getImage(snapshot.id)
      .inspect()
      .then(
        () => false,
        () => true,
      );
    expect(gone).toBe(true);
  });
});
