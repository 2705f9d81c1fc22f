/**
 * The emulator's templates as a user of the real `e2b` SDK sees them, through the SDK's own calls
 * (no sandport adapter): a sandbox of `base` has the userland E2B's base template promises, an
 * unknown template fails as on E2B, templates' cpu and memory as `getInfo` reports them, and the
 * template build API (`Template.build`, `Template.exists`, tags) with the steps it refuses.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildError, FileUploadError, Sandbox, SandboxError, Template } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2bEmulator, type E2bEmulator } from './e2b/index.js';
import { e2bImagesDir, resolveTemplate, sizedTemplateName, templateSizes } from './e2b/e2b-templates.js';
import { E2bState } from './e2b/e2b-state.js';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';

const baseBuilt = existsSync(join(e2bImagesDir(), 'base', '.sandport-complete')) && process.getuid?.() === 0;
const needsBase = baseBuilt ? '' : ' (skipped: needs root and the base rootfs of scripts/build-e2b-images.sh)';

let emulator: E2bEmulator;
let options: { apiUrl: string; sandboxUrl: string; domain: string; apiKey: string };
const sandboxes: Sandbox[] = [];

beforeAll(async () => {
  emulator = await startE2bEmulator();
  options = { apiUrl: emulator.url, sandboxUrl: emulator.sandboxUrl, domain: emulator.domain, apiKey: 'e2b_emulator' };
});

afterAll(async () => {
  for (const sandbox of sandboxes) await sandbox.kill().catch(() => undefined);
  await emulator?.close();
});

async function create(template: string): Promise<Sandbox> {
  const sandbox = await Sandbox.create(template, { ...options, timeoutMs: 120_000 });
  sandboxes.push(sandbox);
  return sandbox;
}

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

describe.skipIf(!baseBuilt)(`a sandbox of the base template${needsBase}`, () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await create('base');
  });

  it('has python3 and python, git, sudo, bash and the tools our watch and pty fallbacks use', async () => {
    expect((await sandbox.commands.run('python --version')).stdout).toMatch(/^Python 3\./);
    expect((await sandbox.commands.run('python3 -c "print(6 * 7)"')).stdout.trim()).toBe('42');
    expect((await sandbox.commands.run('git --version')).stdout).toMatch(/^git version 2\./);
    expect((await sandbox.commands.run('sudo -n true && echo sudo-ok')).stdout.trim()).toBe('sudo-ok');
    const tools = await sandbox.commands.run('command -v bash script stty inotifywait socat find xargs');
    expect(tools.stdout.trim().split('\n')).toHaveLength(7);
    expect((await sandbox.commands.run('find --version | head -1')).stdout).toMatch(/GNU findutils/);
    expect((await sandbox.commands.run('grep -E "^(ID|VERSION_CODENAME)=" /etc/os-release')).stdout).toMatch(/ID=debian/);
  });

  it('has the default user `user` (uid 1000, home /home/user, in sudo) and root', async () => {
    expect((await sandbox.commands.run('id user')).stdout.trim()).toBe('uid=1000(user) gid=1000(user) groups=1000(user),27(sudo)');
    expect((await sandbox.commands.run('getent passwd user root')).stdout.trim().split('\n')).toEqual([
      'user:x:1000:1000::/home/user:/bin/bash',
      'root:x:0:0:root:/root:/bin/bash',
    ]);
    expect((await sandbox.commands.run('test -d /home/user && echo home')).stdout.trim()).toBe('home');
  });

  it("reports the template's id, its name and E2B's default size through getInfo", async () => {
    const info = await sandbox.getInfo();
    expect(info.templateId).toMatch(/^[a-z0-9]{20}$/);
    expect(info.name).toBe('base');
    expect({ cpuCount: info.cpuCount, memoryMB: info.memoryMB }).toEqual({ cpuCount: 2, memoryMB: 512 });
  });
});

describe.skipIf(!baseBuilt)(`template sizes${needsBase}`, () => {
  it('has a base template of every listed size, reported as such by getInfo', async () => {
    expect(templateSizes.cpuCount).toContain(4);
    expect(templateSizes.memoryMB).toContain(2048);
    const sandbox = await create(sizedTemplateName('base', 4, 2048));
    const info = await sandbox.getInfo();
    expect({ name: info.name, cpuCount: info.cpuCount, memoryMB: info.memoryMB }).toEqual({
      name: 'base-4cpu-2048mb',
      cpuCount: 4,
      memoryMB: 2048,
    });
    await sandbox.kill();
  });
});

describe('unknown templates', () => {
  it("fail create with the SDK's SandboxError for E2B's 404, naming the template", async () => {
    const error = await failure(Sandbox.create('no-such-template', options));
    expect(error).toBeInstanceOf(SandboxError);
    expect(error.message).toBe("404: template 'no-such-template' not found");
    expect((error as SandboxError & { statusCode?: number }).statusCode).toBe(404);
  });

  it('do not exist for Template.exists, while base does', async () => {
    await expect(Template.exists('base', options)).resolves.toBe(true);
    await expect(Template.exists('no-such-template', options)).resolves.toBe(false);
  });
});

describe.skipIf(!baseBuilt)(`Template.build${needsBase}`, () => {
  it('runs RUN, ENV and WORKDIR steps over base and snapshots the result as a template of the asked size', async () => {
    const logs: string[] = [];
    const template = Template()
      .fromTemplate('base')
      .setEnvs({ GREETING: 'built-by-emulator' })
      .setWorkdir('/opt/app')
      .runCmd('echo "$GREETING in $(pwd)" > built.txt')
      .remove('/opt/app/missing', { force: true });
    const built = await Template.build(template, 'emu-built:v1', {
      ...options,
      cpuCount: 1,
      memoryMB: 1024,
      onBuildLogs: (entry) => logs.push(entry.message),
    });
    expect(built).toMatchObject({ name: 'emu-built:v1', tags: ['v1'] });
    expect(built.templateId).toMatch(/^[a-z0-9]{20}$/);
    expect(logs.some((line) => line.includes('RUN echo'))).toBe(true);
    await expect(Template.exists('emu-built', options)).resolves.toBe(true);

    const sandbox = await create('emu-built:v1');
    expect((await sandbox.commands.run('cat /opt/app/built.txt')).stdout.trim()).toBe('built-by-emulator in /opt/app');
    expect((await sandbox.commands.run('echo "$GREETING"')).stdout.trim()).toBe('built-by-emulator');
    // The build's last WORKDIR is where commands run by default.
    expect((await sandbox.commands.run('pwd')).stdout.trim()).toBe('/opt/app');
    const info = await sandbox.getInfo();
    expect({ templateId: info.templateId, cpuCount: info.cpuCount, memoryMB: info.memoryMB }).toEqual({
      templateId: built.templateId,
      cpuCount: 1,
      memoryMB: 1024,
    });
    // The untagged name is `default`, which this build was not given.
    expect((await failure(Sandbox.create('emu-built', options))).message).toBe("404: template 'emu-built' not found");

    await Template.assignTags('emu-built:v1', 'prod', options);
    const tags = await Template.getTags(built.templateId, options);
    expect(tags.map((tag) => tag.tag).sort()).toEqual(['prod', 'v1']);
    expect(new Set(tags.map((tag) => tag.buildId))).toEqual(new Set([built.buildId]));
    await Template.removeTags('emu-built', 'prod', options);
    expect((await Template.getTags(built.templateId, options)).map((tag) => tag.tag)).toEqual(['v1']);
  });

  it('builds over the registry images whose userland base keeps (debian, python) on the base rootfs', async () => {
    const built = await Template.build(
      Template().fromImage('docker.io/library/python:3.12-slim').runCmd('python3 --version > /opt/python.txt'),
      'emu-python',
      options,
    );
    const sandbox = await create(built.templateId);
    expect((await sandbox.commands.run('cat /opt/python.txt')).stdout).toMatch(/^Python 3\./);
    await sandbox.kill();
  });

  it("fails with the SDK's BuildError naming the failed command", async () => {
    const error = await failure(Template.build(Template().fromBaseImage().runCmd('echo half-way; exit 3'), 'emu-broken', options));
    expect(error).toBeInstanceOf(BuildError);
    expect(error.message).toContain('RUN echo half-way; exit 3: exited with code 3');
  });

  it('refuses what it cannot build: other images, COPY steps and start commands', async () => {
    const image = await failure(Template.build(Template().fromImage('node:22').runCmd('true'), 'emu-image', options));
    expect(image).toBeInstanceOf(BuildError);
    expect(image.message).toContain("pulls no images: fromImage('node:22') is not available");

    const copy = await failure(
      Template.build(Template({ fileContextPath: process.cwd() }).fromTemplate('base').copy('package.json', '/opt/'), 'emu-copy', options),
    );
    expect(copy).toBeInstanceOf(FileUploadError);
    expect(copy.message).toContain('501: The E2B emulator does not implement COPY steps');

    const start = await failure(
      Template.build(Template().fromTemplate('base').setStartCmd('sleep infinity', 'true'), 'emu-start', options),
    );
    expect(start).toBeInstanceOf(BuildError);
    expect(start.message).toContain('does not run start or ready commands');
  });

  it('fails a build from an unknown template', async () => {
    const error = await failure(Template.build(Template().fromTemplate('no-such-base').runCmd('true'), 'emu-orphan', options));
    expect(error).toBeInstanceOf(BuildError);
    expect(error.message).toBe("template 'no-such-base' not found");
  });
});

describe('a template whose local rootfs was not built', () => {
  let missing: string;
  let unbuilt: E2bEmulator;
  beforeAll(async () => {
    missing = await mkdtemp(join(tmpdir(), 'e2b-no-images-'));
    const saved = process.env.SANDPORT_E2B_IMAGES_DIR;
    process.env.SANDPORT_E2B_IMAGES_DIR = missing;
    try {
      unbuilt = await startE2bEmulator();
    } finally {
      if (saved === undefined) delete process.env.SANDPORT_E2B_IMAGES_DIR;
      else process.env.SANDPORT_E2B_IMAGES_DIR = saved;
    }
  });
  afterAll(async () => {
    await unbuilt?.close();
    await rm(missing, { recursive: true, force: true });
  });

  it('is a FAILED naming the build script, for the create route and for a build over it', async () => {
    const saved = process.env.SANDPORT_E2B_IMAGES_DIR;
    process.env.SANDPORT_E2B_IMAGES_DIR = missing;
    let state: E2bState;
    try {
      state = new E2bState({ provider: createLocalSandboxProvider(), domain: 'e2b.localhost' });
    } finally {
      if (saved === undefined) delete process.env.SANDPORT_E2B_IMAGES_DIR;
      else process.env.SANDPORT_E2B_IMAGES_DIR = saved;
    }
    expect(() => resolveTemplate(state, 'base-1cpu-512mb')).toThrow(
      expect.objectContaining({ status: 500, message: expect.stringContaining('FAILED') }),
    );
    expect(() => resolveTemplate(state, 'base')).toThrow(/run sudo bash scripts\/build-e2b-images\.sh/);

    const unbuiltOptions = { apiUrl: unbuilt.url, sandboxUrl: unbuilt.sandboxUrl, domain: unbuilt.domain, apiKey: 'e2b_emulator' };
    const error = await failure(Template.build(Template().fromTemplate('base').runCmd('true'), 'emu-unbuilt', unbuiltOptions));
    expect(error).toBeInstanceOf(BuildError);
    expect(error.message).toContain(
      `the local rootfs ${join(missing, 'base')}, which is not built: run sudo bash scripts/build-e2b-images.sh`,
    );
  });
});
