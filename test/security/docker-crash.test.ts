/**
 * The Docker provider when its creator is SIGKILLed in the middle of `create`: a container the
 * engine made but nobody started stays in state "Created" (AutoRemove only acts after a start).
 * The next create, or `cleanup()`, must find and remove it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';

const available = dockerAvailable();
if (!available)
  console.warn(`skipping the docker crash tests: no engine answers or ${baseImage} is missing (run: sudo bash scripts/setup-docker.sh)`);

const tagsLabel = (marker: string) => `dev.sandport.tags=${JSON.stringify({ crash: marker })}`;

/** `id state` of every container carrying the marker's tags label. */
function containersOf(marker: string): Array<{ id: string; state: string }> {
  return execFileSync('docker', ['ps', '-a', '--filter', `label=${tagsLabel(marker)}`, '--format', '{{.ID}} {{.State}}'], {
    encoding: 'utf8',
    timeout: 30_000,
  })
    .split('\n')
    .filter(Boolean)
    .map((line) => ({ id: line.split(' ')[0]!, state: line.split(' ')[1]! }));
}

/** Runs the creator and SIGKILLs it as soon as the engine reports its container created. */
async function killMidCreate(marker: string): Promise<void> {
  const events = spawn(
    'docker',
    ['events', '--filter', 'type=container', '--filter', 'event=create', '--filter', `label=${tagsLabel(marker)}`, '--format', '{{.ID}}'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const creator = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'docker-mid-create.ts'), baseImage, marker],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the creator made no container within 60 s')), 60_000);
      events.stdout!.once('data', () => {
        creator.kill('SIGKILL');
        clearTimeout(timer);
        resolve();
      });
      creator.once('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`creator exited on its own (${code})`));
      });
    });
    await new Promise<void>((resolve) =>
      creator.exitCode !== null || creator.signalCode !== null ? resolve() : creator.once('exit', () => resolve()),
    );
  } finally {
    creator.kill('SIGKILL');
    events.kill('SIGTERM');
  }
}

describe.skipIf(!available)('docker provider: creator SIGKILLed mid-create', () => {
  const provider = createDockerSandboxProvider({ defaultImage: baseImage });
  const markers: string[] = [];
  afterAll(() => {
    // Remove what this test's creators made, whatever the outcome (only containers with our markers).
    for (const marker of markers)
      for (const { id } of containersOf(marker)) execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore', timeout: 30_000 });
  });

  /** Kills creators mid-create until one leaves a container in state Created (a few tries). */
  async function strandedContainer(): Promise<string> {
    for (let attempt = 0; attempt < 6; attempt++) {
      const marker = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      markers.push(marker);
      await killMidCreate(marker);
      const created = containersOf(marker).find((container) => container.state === 'created');
      if (created) return marker;
    }
    throw new Error('no attempt left a container in state Created: the kill came too late each time');
  }

  it('the next create removes a container left in state Created', async () => {
    const marker = await strandedContainer();
    const next = await provider.create({ network: 'block' });
    try {
      expect(containersOf(marker).filter((container) => container.state === 'created')).toEqual([]);
    } finally {
      await next.terminate();
    }
  }, 240_000);

  it('cleanup() removes a container left in state Created', async () => {
    const marker = await strandedContainer();
    await provider.cleanup();
    expect(containersOf(marker).filter((container) => container.state === 'created')).toEqual([]);
  }, 240_000);
});
