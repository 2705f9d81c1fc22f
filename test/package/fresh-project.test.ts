import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type Options } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tsupConfigs from '../../tsup.config.js';

// The package as a user gets it: built with the repository's tsup config into a staging directory
// (the shared dist/ stays untouched while others use it), packed with npm, installed from the tarball into a fresh project outside the
// repository, so nothing resolves from the repository's node_modules. Phase one has no provider
// SDK installed; phase two adds dockerode.

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
const npmReason = npm.error ? npm.error.message : npm.status !== 0 ? `npm --version exited ${npm.status}: ${npm.stderr.trim()}` : undefined;
if (npmReason) console.warn(`test/package/fresh-project.test.ts skipped: npm cannot run here (${npmReason})`);

const installFlags = ['--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'];
const kitOnly = ['ExecFiles', 'runViaExec', 'retryIdempotent', 'watchExecLimits', 'fileScripts', 'parseOptions', 'loadOptionalPeer'];

interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
  capability?: string;
  provider?: string;
  isCapability: boolean;
  isSandboxError: boolean;
  causeCode?: string;
}
interface PhaseOne {
  resolvable: Record<string, boolean>;
  tarStreamFrom: string;
  dockerCreate: ErrorInfo;
  dockerList: ErrorInfo;
  dockerGetter: ErrorInfo;
  modalCreate: ErrorInfo;
  modalFromId: ErrorInfo;
  e2bCreate: ErrorInfo;
  e2bFromId: ErrorInfo;
  daytonaCreate: ErrorInfo;
  daytonaFromId: ErrorInfo;
  vercelCreate: ErrorInfo;
  vercelFromId: ErrorInfo;
  kubernetesCreate: ErrorInfo;
  kubernetesFromId: ErrorInfo;
  flyCreate: ErrorInfo;
  cloudflareCreate: ErrorInfo;
  agentStart: ErrorInfo;
  otelResolvable: boolean;
  telemetryInstrument: ErrorInfo;
}
interface PhaseTwo {
  dockerFromId: ErrorInfo;
  clientHasListContainers: boolean;
}

// One body for both module systems: `load` is `import()` in the .mjs script and `require` in the
// .cjs one. Errors are reported as data, so the assertions live in this file.
const shared = `
const info = (error) => error && {
  name: error.name, message: error.message, code: error.code, capability: error.capability, provider: error.provider,
  isCapability: root.SandboxCapabilityUnsupportedError.isInstance(error), isSandboxError: root.SandboxError.isInstance(error),
  causeCode: error.cause && error.cause.code,
};
const rejection = (promise) => promise.then(() => ({ name: 'resolved', message: 'resolved' }), info);
const thrown = (fn) => { try { fn(); return { name: 'returned', message: 'returned' }; } catch (error) { return info(error); } };
const resolvable = (name) => { try { requireHere.resolve(name); return true; } catch { return false; } };
`;

const phaseOneBody = `
const { createDockerSandboxProvider } = await load('sandport/docker');
const { createModalSandboxProvider } = await load('sandport/modal');
const { createE2bSandboxProvider } = await load('sandport/e2b');
const { createDaytonaSandboxProvider } = await load('sandport/daytona');
const { createVercelSandboxProvider } = await load('sandport/vercel');
const { createKubernetesSandboxProvider } = await load('sandport/kubernetes');
const { createFlySandboxProvider } = await load('sandport/fly');
const { createCloudflareSandboxProvider } = await load('sandport/cloudflare');
const { instrumentProvider } = await load('sandport/telemetry');
const docker = createDockerSandboxProvider();
const modal = createModalSandboxProvider();
const e2b = createE2bSandboxProvider();
const fromSandport = nodeModule.createRequire(requireHere.resolve('sandport/package.json'));
return {
  resolvable: Object.fromEntries(['dockerode', 'modal', 'e2b', '@anthropic-ai/claude-agent-sdk'].map((name) => [name, resolvable(name)])),
  tarStreamFrom: fromSandport.resolve('tar-stream'),
  dockerGetter: thrown(() => docker.docker),
  dockerCreate: await rejection(docker.create()),
  dockerList: await rejection(docker.list()),
  modalCreate: await rejection(modal.create()),
  modalFromId: await rejection(modal.fromId('sb-fresh-project')),
  e2bCreate: await rejection(e2b.create()),
  e2bFromId: await rejection(e2b.fromId('fresh-project')),
  daytonaCreate: await rejection(createDaytonaSandboxProvider().create()),
  daytonaFromId: await rejection(createDaytonaSandboxProvider().fromId('fresh-project')),
  vercelCreate: await rejection(createVercelSandboxProvider().create()),
  vercelFromId: await rejection(createVercelSandboxProvider().fromId('fresh-project')),
  kubernetesCreate: await rejection(createKubernetesSandboxProvider().create()),
  kubernetesFromId: await rejection(createKubernetesSandboxProvider().fromId('sbx-fresh-project')),
  flyCreate: await rejection(createFlySandboxProvider({ token: '' }).create()),
  cloudflareCreate: await rejection(createCloudflareSandboxProvider({ url: '' }).create()),
  agentStart: await rejection(root.AgentSession.start({})),
  otelResolvable: resolvable('@opentelemetry/api'),
  telemetryInstrument: await rejection(instrumentProvider(docker)),
};
`;

const phaseTwoBody = `
const { createDockerSandboxProvider } = await load('sandport/docker');
const docker = createDockerSandboxProvider();
const dockerFromId = await rejection(docker.fromId('0123456789ab'));
return { dockerFromId, clientHasListContainers: typeof docker.docker.listContainers === 'function' };
`;

function esmScript(body: string): string {
  return `import nodeModule from 'node:module';\nimport * as root from 'sandport';\nconst requireHere = nodeModule.createRequire(import.meta.url);\nconst load = (name) => import(name);\n${shared}\nconst main = async () => {${body}};\nconsole.log(JSON.stringify(await main()));\n`;
}

function cjsScript(body: string): string {
  return `const nodeModule = require('node:module');\nconst root = require('sandport');\nconst requireHere = require;\nconst load = async (name) => require(name);\n${shared}\nconst main = async () => {${body}};\nmain().then((result) => console.log(JSON.stringify(result)));\n`;
}

/** Every file of the package that `entry` loads: its static and dynamic relative imports and requires, followed. */
function chunkGraph(entry: string): string[] {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(
      /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g,
    )) {
      walk(resolve(dirname(file), match[1]!));
    }
  };
  walk(entry);
  return [...seen];
}

const graphContains = (entry: string, marker: string) => chunkGraph(entry).some((file) => readFileSync(file, 'utf8').includes(marker));

describe.skipIf(npmReason !== undefined)(
  `a fresh project installing the packed tarball${npmReason ? ` (skipped: npm cannot run here: ${npmReason})` : ''}`,
  () => {
    let work: string;
    let app: string;
    let installed: string;
    const results: {
      esm1?: PhaseOne;
      cjs1?: PhaseOne;
      rootExports?: string[];
      kitExports?: string[];
      adapterFilesLoadedByRequire?: string[];
      esm2?: PhaseTwo;
      cjs2?: PhaseTwo;
    } = {};

    const node = async (script: string, env: NodeJS.ProcessEnv = {}) => {
      const { stdout } = await run(process.execPath, [script], {
        cwd: app,
        env: { ...process.env, NODE_OPTIONS: '', ...env },
        maxBuffer: 16 << 20,
      });
      return JSON.parse(stdout.trim().split('\n').pop()!) as unknown;
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'sandport-fresh-'));
      const staging = join(work, 'package');
      mkdirSync(staging);
      // The repository's tsup configs without declarations: this test exercises the runtime, and
      // `npm run check:package` checks the types of the real tarball (this halves the build time).
      // tsup resolves the entries and reads package.json (its externals) from the working directory.
      if (process.cwd() !== root) throw new Error(`run vitest from the repository root (${root}), not ${process.cwd()}`);
      for (const config of tsupConfigs as Options[])
        await build({ ...config, dts: false, outDir: join(staging, 'dist'), silent: true, config: false });
      copyFileSync(join(root, 'package.json'), join(staging, 'package.json'));
      copyFileSync(join(root, 'README.md'), join(staging, 'README.md'));
      const packed = await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: staging });
      const tarball = join(work, packed.stdout.trim().split('\n').pop()!);

      app = join(work, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true }));
      await run('npm', ['install', tarball, ...installFlags], { cwd: app, maxBuffer: 16 << 20 });
      installed = join(app, 'node_modules', 'sandport');

      writeFileSync(join(app, 'phase-one.mjs'), esmScript(phaseOneBody));
      writeFileSync(join(app, 'phase-one.cjs'), cjsScript(phaseOneBody));
      writeFileSync(
        join(app, 'exports.mjs'),
        "const root = await import('sandport');\nconst kit = await import('sandport/kit');\nconsole.log(JSON.stringify({ root: Object.keys(root), kit: Object.keys(kit) }));\n",
      );
      // Runtime proof for CommonJS: require.cache holds exactly the files that were evaluated.
      writeFileSync(
        join(app, 'adapters-only.cjs'),
        "require('sandport/local');\nrequire('sandport/docker');\nrequire('sandport/modal');\nrequire('sandport/e2b');\nconsole.log(JSON.stringify(Object.keys(require.cache).filter((file) => file.includes('/node_modules/sandport/'))));\n",
      );
      results.esm1 = (await node('phase-one.mjs')) as PhaseOne;
      results.cjs1 = (await node('phase-one.cjs')) as PhaseOne;
      const exported = (await node('exports.mjs')) as { root: string[]; kit: string[] };
      results.rootExports = exported.root;
      results.kitExports = exported.kit;
      results.adapterFilesLoadedByRequire = (await node('adapters-only.cjs')) as string[];

      // Phase two: dockerode, packed from the repository's own copy; its dependencies come from the cache.
      await run('npm', ['install', '--install-links', join(root, 'node_modules', 'dockerode'), ...installFlags], {
        cwd: app,
        maxBuffer: 16 << 20,
      });
      writeFileSync(join(app, 'phase-two.mjs'), esmScript(phaseTwoBody));
      writeFileSync(join(app, 'phase-two.cjs'), cjsScript(phaseTwoBody));
      // A socket path that nothing listens on: dockerode really connects, and nothing answers.
      const env = { DOCKER_HOST: `unix://${join(work, 'no-engine.sock')}` };
      results.esm2 = (await node('phase-two.mjs', env)) as PhaseTwo;
      results.cjs2 = (await node('phase-two.cjs', env)) as PhaseTwo;
    }, 900_000);

    afterAll(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const missingPeer = (error: ErrorInfo | undefined, name: string, provider: string | undefined, line: string) => {
      expect(error).toMatchObject({
        name: 'SandboxCapabilityUnsupportedError',
        code: 'capability_unsupported',
        capability: `peer:${name}`,
        isCapability: true,
      });
      expect(error!.provider).toBe(provider);
      expect(error!.message).toContain(`"${name}"`);
      expect(error!.message).toContain(line);
    };

    for (const format of ['esm', 'cjs'] as const) {
      const phaseOne = () => results[`${format}1`]!;

      it(`${format}: the fresh project has no provider SDK; tar-stream comes with sandport as a dependency`, () => {
        expect(phaseOne().resolvable).toEqual({ dockerode: false, modal: false, e2b: false, '@anthropic-ai/claude-agent-sdk': false });
        expect(phaseOne().tarStreamFrom.startsWith(join(app, 'node_modules', 'tar-stream') + '/')).toBe(true);
      });

      it(`${format}: sandport/docker loads without dockerode; create and list reject naming dockerode and its install line`, () => {
        missingPeer(phaseOne().dockerCreate, 'dockerode', 'docker', 'npm install dockerode');
        expect(phaseOne().dockerCreate.message).toBe(
          'sandport/docker needs the optional peer dependency "dockerode": npm install dockerode',
        );
        missingPeer(phaseOne().dockerList, 'dockerode', 'docker', 'npm install dockerode');
        expect(phaseOne().dockerCreate.causeCode).toMatch(/^(ERR_)?MODULE_NOT_FOUND$/);
      });

      it(`${format}: provider.docker before any operation says to run one first`, () => {
        expect(phaseOne().dockerGetter).toMatchObject({ name: 'SandboxProviderError', isSandboxError: true, provider: 'docker' });
        expect(phaseOne().dockerGetter.message).toContain('first operation');
      });

      it(`${format}: sandport/modal loads without modal; create and fromId reject with the pinned install line`, () => {
        missingPeer(phaseOne().modalCreate, 'modal', 'modal', 'npm install modal@~0.11.1');
        missingPeer(phaseOne().modalFromId, 'modal', 'modal', 'npm install modal@~0.11.1');
      });

      it(`${format}: sandport/e2b loads without e2b; create and fromId reject with the pinned install line`, () => {
        missingPeer(phaseOne().e2bCreate, 'e2b', 'e2b', 'npm install e2b@2.51.0');
        missingPeer(phaseOne().e2bFromId, 'e2b', 'e2b', 'npm install e2b@2.51.0');
      });

      it(`${format}: sandport/daytona loads without @daytonaio/sdk; create and fromId reject with the pinned install line`, () => {
        missingPeer(phaseOne().daytonaCreate, '@daytonaio/sdk', 'daytona', 'npm install @daytonaio/sdk@0.218.0');
        missingPeer(phaseOne().daytonaFromId, '@daytonaio/sdk', 'daytona', 'npm install @daytonaio/sdk@0.218.0');
      });

      it(`${format}: sandport/vercel loads without @vercel/sandbox; create and fromId reject with the pinned install line`, () => {
        missingPeer(phaseOne().vercelCreate, '@vercel/sandbox', 'vercel', 'npm install @vercel/sandbox@3.5.0');
        missingPeer(phaseOne().vercelFromId, '@vercel/sandbox', 'vercel', 'npm install @vercel/sandbox@3.5.0');
      });

      it(`${format}: sandport/kubernetes loads without @kubernetes/client-node; create and fromId reject with the pinned install line`, () => {
        missingPeer(phaseOne().kubernetesCreate, '@kubernetes/client-node', 'kubernetes', 'npm install @kubernetes/client-node@~1.4.0 ws');
        missingPeer(phaseOne().kubernetesFromId, '@kubernetes/client-node', 'kubernetes', 'npm install @kubernetes/client-node@~1.4.0 ws');
      });

      it(`${format}: sandport/fly needs no peer; create without a token is SandboxAuthenticationError before any request`, () => {
        expect(phaseOne().flyCreate).toMatchObject({ name: 'SandboxAuthenticationError', isSandboxError: true, provider: 'fly' });
      });

      it(`${format}: sandport/cloudflare needs no peer; create without the bridge's URL is SandboxInvalidArgumentError before any request`, () => {
        expect(phaseOne().cloudflareCreate).toMatchObject({
          name: 'SandboxInvalidArgumentError',
          isSandboxError: true,
          provider: 'cloudflare',
        });
        expect(phaseOne().cloudflareCreate.message).toContain('CLOUDFLARE_SANDBOX_BRIDGE_URL');
      });

      it(`${format}: AgentSession without the Agent SDK is a missing-peer error, not a protocol error`, () => {
        missingPeer(phaseOne().agentStart, '@anthropic-ai/claude-agent-sdk', undefined, 'npm install @anthropic-ai/claude-agent-sdk');
        expect(phaseOne().agentStart.message.startsWith('AgentSession needs')).toBe(true);
      });

      it(`${format}: sandport/telemetry loads without @opentelemetry/api; instrumentProvider rejects naming it`, () => {
        expect(phaseOne().otelResolvable).toBe(false);
        missingPeer(phaseOne().telemetryInstrument, '@opentelemetry/api', undefined, 'npm install @opentelemetry/api@^1.9.0');
        expect(phaseOne().telemetryInstrument.message.startsWith('sandport/telemetry needs')).toBe(true);
      });
    }

    it('import("sandport") works and exports the application API, none of the kit', () => {
      expect(results.rootExports).toEqual(expect.arrayContaining(['AgentSession', 'SandboxError', 'SandboxCapabilityUnsupportedError']));
      expect(results.kitExports).toEqual(expect.arrayContaining(kitOnly));
      expect(results.rootExports!.filter((name) => kitOnly.includes(name))).toEqual([]);
    });

    it("the root entry's chunk graph does not contain the kit's machinery", () => {
      for (const marker of ['var ExecFiles = class', 'function watchExecLimits(', 'function runViaExec(']) {
        expect(graphContains(join(installed, 'dist', 'kit', 'index.js'), marker)).toBe(true);
        expect(graphContains(join(installed, 'dist', 'index.js'), marker)).toBe(false);
      }
    });

    it('sandport/local, /docker, /modal and /e2b do not load the agent layer (ESM and CJS chunk graphs)', () => {
      expect(graphContains(join(installed, 'dist', 'index.js'), 'CredentialProxy')).toBe(true);
      expect(graphContains(join(installed, 'dist', 'index.cjs'), 'CredentialProxy')).toBe(true);
      for (const adapter of ['local', 'docker', 'modal', 'e2b']) {
        for (const file of ['index.js', 'index.cjs']) {
          expect(graphContains(join(installed, 'dist', adapter, file), 'CredentialProxy'), `${adapter}/${file}`).toBe(false);
        }
      }
    });

    it('requiring the adapters evaluates no file of the agent layer', () => {
      const loaded = results.adapterFilesLoadedByRequire!;
      expect(loaded.some((file) => file.endsWith('/dist/docker/index.cjs'))).toBe(true);
      expect(loaded.filter((file) => readFileSync(file, 'utf8').includes('CredentialProxy'))).toEqual([]);
    });

    for (const format of ['esm', 'cjs'] as const) {
      it(`${format}: with dockerode installed, sandport/docker loads it and reaches for the engine`, () => {
        const phaseTwo = results[`${format}2`]!;
        expect(phaseTwo.dockerFromId).toMatchObject({ name: 'SandboxProviderError', isCapability: false, provider: 'docker' });
        expect(phaseTwo.dockerFromId.message).toContain('The Docker engine is unreachable (ENOENT)');
        expect(phaseTwo.clientHasListContainers).toBe(true);
      });
    }
  },
);
