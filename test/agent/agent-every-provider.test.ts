/**
 * One agent scenario on every provider, through its emulator: the real `claude` CLI inside the
 * sandbox, the fake Messages API behind one credential proxy (the host route where the provider
 * has one, its public URL `http://proxy.test` on the emulator's test internet otherwise), and
 * four steps: a turn that writes a file and runs it, a permission denial, an interrupt, and a
 * resume in a fresh sandbox of the same provider from the session store.
 *
 * How the CLI gets there: local and Docker mount the host's binary read-only
 * (`claudeCodeHostMount`); Modal, E2B and Daytona get it uploaded through their files API once
 * (`ensureClaudeCode({ install: 'upload' })`), and the fresh sandbox starts from a snapshot
 * taken right after the upload; Kubernetes has no snapshot, so each pod gets the upload (its
 * network stays open: NetworkPolicy cannot name the proxy's host). Daytona's session input has
 * no end-of-file of its own; the adapter's stdin relay carries the CLI's session. Fly and Cloudflare have the CLI in their image (the emulators
 * stand for an image built from `claudeCodeImage()`'s recipe with the host image, whose Node 20
 * is on PATH, and the host's pinned CLI mounted read-only; the upload is refused there naming
 * the recipe), and since their exec cannot carry the CLI's stream-json session (Fly: output at
 * the exit; Cloudflare: no stdin), sessions go through the agent service there: `startAgentHost`
 * in the sandbox, `AgentSession.connect` through the port's tunnel (Fly's edge, the bridge's
 * quick tunnel, on bridge 0.12 and 0.13), the proxy's public URL on the emulator's test internet. Each emulator runs in
 * its own child process and is shared by its group. Vercel (no stdin either) gets the binary
 * uploaded and snapshotted as Modal and E2B do, and its sessions go through the agent service.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudflareCapabilities } from '../../adapters/cloudflare/index.js';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { flyCapabilities } from '../../adapters/fly/index.js';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { vercelCapabilities } from '../../adapters/vercel/index.js';
import {
  AgentSession,
  AgentSessionError,
  CredentialProxy,
  claudeCodeHostMount,
  claudeCodeImage,
  defaultClaudeCodeUploadPath,
  defaultClaudeCodeVersion,
  defaultAgentHostDirectory,
  DirectorySessionStore,
  ensureClaudeCode,
  startAgentHost,
  type AgentHost,
  type AgentSessionOptions,
  type ClaudeCodeInstallation,
} from '../../src/agent/index.js';
import { limitedSessionExec } from '../../src/agent/host/exec-carriage.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  type CreateSandboxOptions,
  type Sandbox,
  type SandboxCapabilities,
  type SandboxProvider,
  type SandboxSnapshotRef,
} from '../../src/index.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';
import {
  connectCloudflareBridge,
  connectDaytona,
  connectE2b,
  connectFly,
  connectKubernetes,
  connectModal,
  connectVercel,
  type EmulatedProvider,
  testInternetFor,
  vercelSkipReason,
} from '../emulated-providers.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';
import { agentSkipReason, splitSecret, testEnv } from './harness.js';

const realKey = `sk-ant-api03-REAL-EVERY-${Date.now()}`;
/** The emulators' test internet serves the proxy's listener under this name, as a cloud sandbox reaches a public URL. */
const publicHost = 'proxy.test';
const cwd = '/tmp/agent-every';

let fake: FakeAnthropic;
let proxy: CredentialProxy;
let storeDir: string;

const noCli = agentSkipReason();

beforeAll(async () => {
  if (noCli) return;
  storeDir = await mkdtemp(join(tmpdir(), 'sandport-agent-every-'));
  fake = await startFakeAnthropic();
  // One proxy for every provider: createOptions picks the host route or the public URL.
  proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: fake.url, listen: { port: 0 }, publicUrl: `http://${publicHost}` });
});
afterAll(async () => {
  await proxy?.close();
  await fake?.close();
  if (storeDir) await rm(storeDir, { recursive: true, force: true });
});

/** How one provider's group gets a provider, its sandboxes' create options, and the CLI into them. */
interface Target {
  readonly name: string;
  /** Why the group cannot run here (evaluated at collection), or `undefined`. */
  skipReason(): string | undefined;
  start(): Promise<{
    provider: SandboxProvider;
    createOptions: CreateSandboxOptions;
    /** Puts the CLI into the sandbox (or checks the mounted one). */
    provision(sandbox: Sandbox): Promise<ClaudeCodeInstallation>;
    /**
     * Upload once: the first sandbox is snapshotted right after the upload, and fresh sandboxes
     * start from that snapshot with the CLI already in place.
     */
    snapshotAfterProvision: boolean;
    /**
     * Sessions go through the agent service (`startAgentHost` on this port, reached through its
     * tunnel, and `AgentSession.connect`) instead of exec: where exec cannot carry the session.
     */
    servicePort?: number;
    close(): Promise<void>;
  }>;
}

/** local and Docker: the host's binary mounted read-only, checked by ensureClaudeCode. */
function mounted(sandbox: Sandbox): Promise<ClaudeCodeInstallation> {
  const { executable } = claudeCodeHostMount();
  return ensureClaudeCode(sandbox, { executable, version: defaultClaudeCodeVersion, install: false });
}

/** Modal and E2B: the host's binary uploaded through the files API, unless the sandbox has it. */
async function uploaded(sandbox: Sandbox): Promise<ClaudeCodeInstallation> {
  const installation = await ensureClaudeCode(sandbox, { version: defaultClaudeCodeVersion, install: 'upload' });
  expect(installation).toMatchObject({ executable: defaultClaudeCodeUploadPath, version: defaultClaudeCodeVersion });
  // A second call finds the upload instead of copying again.
  expect(await ensureClaudeCode(sandbox, { version: defaultClaudeCodeVersion, install: 'upload' })).toEqual({
    ...installation,
    installed: false,
  });
  return installation;
}

const sandboxBase: CreateSandboxOptions = { network: 'block', timeoutMs: 10 * 60_000 };

/** The agent host's port, where sessions go through the agent service. */
const servicePort = 7681;
/** Fly image reference of an image built from claudeCodeImage()'s recipe. */
const agentImage = `registry.fly.io/sandport-agent:${defaultClaudeCodeVersion}`;

/** What an image built from the recipe holds at the path `mounted` checks: the host's pinned CLI, read-only. */
function cliImageMount(): Record<string, string> {
  const volumes = claudeCodeHostMount().createOptions.volumes ?? {};
  return Object.fromEntries(Object.entries(volumes).map(([path, volume]) => [path, typeof volume === 'string' ? volume : volume.source]));
}

/** The proxy's listener as the emulators' test internet serves it under its public host name. */
const testInternet = () => testInternetFor({ [publicHost]: proxy.listenAddress!.port });

type Started = Awaited<ReturnType<Target['start']>>;

/** A connection's provider, what this file creates its sandboxes with, and how the CLI gets in. */
function on(
  connection: EmulatedProvider,
  createOptions: CreateSandboxOptions,
  how: Pick<Started, 'provision' | 'snapshotAfterProvision' | 'servicePort'>,
): Started {
  return { provider: connection.make(), createOptions, ...how, close: () => connection.close() };
}

const targets: Target[] = [
  {
    name: 'local (host route, host binary mounted)',
    skipReason: () => undefined,
    start: async () => {
      const provider = createLocalSandboxProvider();
      const { createOptions } = claudeCodeHostMount();
      return {
        provider,
        createOptions: { ...sandboxBase, ...createOptions },
        provision: mounted,
        snapshotAfterProvision: false,
        close: async () => undefined,
      };
    },
  },
  {
    name: 'docker (host route, host binary mounted)',
    skipReason: () => (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)'),
    start: async () => {
      const provider = createDockerSandboxProvider();
      const { createOptions } = claudeCodeHostMount();
      // The host route's forwarder in a Docker sandbox needs python3 (or node): the content-cached
      // image the other Docker agent tests build.
      const image = {
        base: baseImage,
        commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
      };
      return {
        provider,
        createOptions: { ...sandboxBase, ...createOptions, image },
        provision: mounted,
        snapshotAfterProvision: false,
        close: async () => undefined,
      };
    },
  },
  {
    name: 'modal emulator (public URL, binary uploaded)',
    skipReason: () => undefined,
    start: async () =>
      on(await connectModal({ testInternet: testInternet(), provider: { appName: 'sandport-agent-every' } }), sandboxBase, {
        provision: uploaded,
        snapshotAfterProvision: true,
      }),
  },
  {
    name: 'e2b emulator (public URL, binary uploaded)',
    skipReason: () => undefined,
    start: async () =>
      on(await connectE2b({ testInternet: testInternet() }), sandboxBase, { provision: uploaded, snapshotAfterProvision: true }),
  },
  {
    name: 'daytona emulator (public URL, binary uploaded)',
    skipReason: () => undefined,
    // Session input has no end-of-file on Daytona; the adapter's stdin relay gives the CLI one.
    start: async () =>
      on(await connectDaytona({ testInternet: testInternet() }), sandboxBase, { provision: uploaded, snapshotAfterProvision: true }),
  },
  {
    name: 'kubernetes emulator (public URL, binary uploaded into each pod)',
    skipReason: () => undefined,
    // NetworkPolicy cannot allow a host by name (network.allowDomains false), so the pod's
    // network stays open, as on Fly: the cluster's egress (the test internet here) reaches the
    // proxy. Kubernetes has no snapshot: the fresh pod gets the binary uploaded again.
    start: async () =>
      on(
        await connectKubernetes({ testInternet: testInternet() }),
        { timeoutMs: sandboxBase.timeoutMs },
        { provision: uploaded, snapshotAfterProvision: false },
      ),
  },
  {
    name: 'vercel emulator (public URL, binary uploaded, through the agent service)',
    skipReason: vercelSkipReason,
    // Vercel's runtime images have Node; its commands have no stdin, so sessions go through the host.
    start: async () =>
      on(
        await connectVercel({ testInternet: testInternet() }),
        { ...sandboxBase, ports: [servicePort] },
        {
          provision: uploaded,
          snapshotAfterProvision: true,
          servicePort,
        },
      ),
  },
  {
    name: 'fly emulator (public URL, CLI in the image, through the agent service)',
    skipReason: () => undefined,
    start: async () =>
      on(
        // The image claudeCodeImage()'s recipe builds, emulated: the host image has Node 20 on
        // PATH, and the host's pinned CLI stands for the RUN line's install.
        await connectFly({ testInternet: testInternet(), imageMounts: { [agentImage]: cliImageMount() } }),
        // Fly has no egress control: the machine's open internet (the test internet here) reaches the proxy.
        { timeoutMs: sandboxBase.timeoutMs, image: agentImage, ports: [servicePort] },
        { provision: mounted, snapshotAfterProvision: false, servicePort },
      ),
  },
  ...(['0.12', '0.13'] as const).map(
    (version): Target => ({
      name: `cloudflare bridge emulator ${version} (public URL, CLI in the image, through the agent service)`,
      skipReason: () => undefined,
      start: async () =>
        on(
          // The Worker's container image with the recipe's RUN line in its Dockerfile, emulated as on Fly.
          await connectCloudflareBridge({ version, testInternet: testInternet(), containerMounts: cliImageMount() }),
          // Network and lifetime are the Worker's (wrangler.jsonc), not the create's.
          { ports: [servicePort] },
          { provision: mounted, snapshotAfterProvision: false, servicePort },
        ),
    }),
  ),
];

/** Why AgentSession cannot drive the CLI through a provider's exec, from its capabilities. */
function execSkipReason(capabilities: SandboxCapabilities): string | undefined {
  if (!capabilities.exec.stdin) {
    return 'its exec has no stdin (capabilities.exec.stdin false): the CLI reads its stream-json session from stdin';
  }
  if (!capabilities.exec.streaming) {
    return 'its exec output arrives only when the command ends (capabilities.exec.streaming false): the CLI answers each turn on stdout while it runs';
  }
  return undefined;
}

for (const target of targets) {
  const skip = noCli ?? target.skipReason();
  describe.skipIf(skip !== undefined)(`agent scenario on ${target.name}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let started: Awaited<ReturnType<Target['start']>>;
    let provider: SandboxProvider;
    let sandbox: Sandbox;
    let executable: string;
    let freshOptions: CreateSandboxOptions;
    let snapshot: SandboxSnapshotRef | undefined;
    let store: DirectorySessionStore;
    let rememberedSession: string | undefined;
    /** The agent host of each sandbox, where sessions go through the agent service. */
    const hosts = new Map<Sandbox, AgentHost>();

    /** The sandbox's agent host, started on first use (the CLI and Node come with the image). */
    const hostOf = async (target: Sandbox, port: number): Promise<AgentHost> => {
      let host = hosts.get(target);
      if (!host) {
        host = await startAgentHost(target, { port, startTimeoutMs: 60_000 });
        hosts.set(target, host);
      }
      return host;
    };
    /** A new session in `target`: over exec (`start`), or through its agent host (`connect`). */
    const startSession = async (target: Sandbox, options: AgentSessionOptions): Promise<AgentSession> => {
      const port = started.servicePort;
      if (port === undefined) return AgentSession.start(target, options);
      return AgentSession.connect(target, { ...options, port, token: (await hostOf(target, port)).token });
    };
    /** `AgentSession.resume`, or `connect` with `resume` through the agent service. */
    const resumeSession = async (target: Sandbox, options: AgentSessionOptions & { sessionId: string }): Promise<AgentSession> => {
      const { sessionId, ...rest } = options;
      const port = started.servicePort;
      if (port === undefined) return AgentSession.resume(target, { ...rest, sessionId, store: rest.store! });
      return AgentSession.connect(target, { ...rest, port, token: (await hostOf(target, port)).token, resume: { sessionId } });
    };

    const agentOptions = () => ({
      executable,
      credentials: proxy,
      cwd,
      store,
      env: testEnv,
      startTimeoutMs: 120_000,
      closeGraceMs: 1_000,
    });

    beforeAll(async () => {
      started = await target.start();
      provider = started.provider;
      store = new DirectorySessionStore(join(storeDir, provider.id));
      sandbox = await provider.create(proxy.createOptions(provider, started.createOptions));
      const installation = await started.provision(sandbox);
      executable = installation.executable;
      freshOptions = started.createOptions;
      if (started.snapshotAfterProvision) {
        expect(installation.installed).toBe(true);
        // Before any step writes a file, so that a sandbox from it is fresh but for the CLI.
        snapshot = await sandbox.snapshot!();
        freshOptions = { ...started.createOptions, image: snapshot };
      }
    }, 300_000);
    afterAll(async () => {
      await sandbox?.terminate();
      if (snapshot) await provider.deleteSnapshot?.(snapshot);
      await started?.close();
    }, 120_000);

    it('a turn writes a file and runs it, inside the sandbox, through the proxy', async () => {
      const seen = fake.requests.length;
      await using agent = await startSession(sandbox, agentOptions());
      const turn = agent.send(`BASH: echo 'echo script-ran-in-${provider.id}' > ${cwd}/job.sh && sh ${cwd}/job.sh`);
      const result = await turn.result;
      expect(result.isError).toBe(false);
      expect(result.text).toBe(`Tool said: script-ran-in-${provider.id}`);
      expect((await sandbox.files.readText(`${cwd}/job.sh`)).trim()).toBe(`echo script-ran-in-${provider.id}`);
      await turn.saved;
      rememberedSession = agent.sessionId;
      // Upstream saw the real key on every request; the sandbox had only a placeholder.
      const upstream = fake.requests.slice(seen);
      expect(upstream.length).toBeGreaterThan(1);
      expect(upstream.every((request) => request.headers['x-api-key'] === realKey)).toBe(true);
      const scan = await sandbox.run([
        '/bin/sh',
        '-c',
        `${splitSecret(realKey)}; grep -rlsF -e "$head$tail" /proc/[0-9]*/environ ${cwd} /root 2>/dev/null; echo scanned`,
      ]);
      expect(scan.stdout.trim()).toBe('scanned');
      const host = hosts.get(sandbox);
      if (host) {
        // The agent host's token is in no environment and no file of the sandbox either (on
        // Cloudflare it came in a file the host deleted before it listened).
        const hostScan = await sandbox.run([
          '/bin/sh',
          '-c',
          `${splitSecret(host.token)}; grep -rlsF -e "$head$tail" /proc/[0-9]*/environ ${defaultAgentHostDirectory} ${cwd} 2>/dev/null; ls ${defaultAgentHostDirectory}; echo scanned`,
        ]);
        expect(
          hostScan.stdout
            .trim()
            .split('\n')
            .filter((line) => line !== 'node_modules'),
        ).toEqual(started.provider.id === 'fly' ? ['agent-host.cjs', 'listening.json', 'scanned'] : ['agent-host.cjs', 'scanned']);
      }
    }, 180_000);

    it('a denied tool call reaches the model and the file is not written', async () => {
      const asked: string[] = [];
      await using agent = await startSession(sandbox, {
        ...agentOptions(),
        store: undefined,
        canUseTool: async ({ toolName }) => {
          asked.push(toolName);
          return { behavior: 'deny', message: 'NOPE: no writes here' };
        },
      });
      const denied = await agent.send(`WRITE: ${cwd}/denied.txt no`).result;
      expect(denied.text).toContain('NOPE: no writes here');
      expect(denied.permissionDenials.map((denial) => denial.toolName)).toEqual(['Write']);
      expect(asked).toEqual(['Write']);
      expect(await sandbox.files.exists(`${cwd}/denied.txt`)).toBe(false);
    }, 180_000);

    it('interrupts a running turn, and the session stays usable', async () => {
      await using agent = await startSession(sandbox, { ...agentOptions(), store: undefined });
      const turn = agent.send('SLOW please');
      for await (const message of turn) {
        if (message.type === 'system') {
          await agent.interrupt();
          break;
        }
      }
      const result = await turn.result;
      expect(result.isError).toBe(true);
      expect(result.error?.reason).toBe('interrupted');
      expect((await agent.send('after interrupt').result).text).toBe('Echo: after interrupt');
    }, 180_000);

    it('resumes the first turn in a fresh sandbox of the same provider, from the store', async () => {
      expect(rememberedSession).toBeDefined();
      const fresh = await provider.create(proxy.createOptions(provider, freshOptions));
      try {
        expect(fresh.id).not.toBe(sandbox.id);
        const installation = await started.provision(fresh);
        // From the snapshot, the upload is already there.
        if (snapshot) expect(installation.installed).toBe(false);
        await using resumed = await resumeSession(fresh, {
          ...agentOptions(),
          executable: installation.executable,
          sessionId: rememberedSession!,
        });
        expect(resumed.sessionId).toBe(rememberedSession);
        const result = await resumed.send('what did the script print').result;
        expect(result.text).toBe('Echo: what did the script print');
        expect(result.sessionId).toBe(rememberedSession);
        // The resumed CLI sent the first sandbox's history along.
        const last = fake.requests.filter((request) => request.url.includes('/v1/messages')).at(-1)!;
        expect(JSON.stringify(last.body.messages)).toContain(`script-ran-in-${provider.id}`);
        expect(last.headers['x-api-key']).toBe(realKey);
        // The fresh sandbox never had the first one's files: only the session came along.
        expect(await fresh.files.exists(`${cwd}/job.sh`)).toBe(false);
      } finally {
        await fresh.terminate();
      }
    }, 300_000);
  });
}

// Fly and Cloudflare: AgentSession.start talks to the CLI over the exec's stdin and stdout while
// it runs, which their exec cannot carry, so it refuses at once, naming the agent service (the
// scenario above runs there through it); the upload is refused there too, naming the image recipe.
const cliLess: Array<[name: string, capabilities: SandboxCapabilities]> = [
  ['fly', flyCapabilities],
  ['cloudflare', cloudflareCapabilities],
  ['vercel', vercelCapabilities],
];
describe('AgentSession.start where exec cannot carry the CLI session', () => {
  it.each(cliLess)(
    'refuses on %s before any I/O with a typed error naming startAgentHost and AgentSession.connect',
    async (name, capabilities) => {
      const reason = execSkipReason(capabilities);
      expect(reason).toBeDefined();
      // The agent code's table of such providers is the adapters' own capability values.
      expect(limitedSessionExec[name]).toEqual({ stdin: capabilities.exec.stdin, streaming: capabilities.exec.streaming });
      const sandbox = { id: `sb-${name}`, provider: name } as unknown as Sandbox;
      for (const attempt of [
        () => AgentSession.start(sandbox, {}),
        () => AgentSession.resume(sandbox, { sessionId: 'any', store: new DirectorySessionStore(join(tmpdir(), 'never-read')) }),
      ]) {
        const error = await attempt().catch((caught: unknown) => caught);
        expect(SandboxCapabilityUnsupportedError.isInstance(error)).toBe(true);
        expect((error as SandboxCapabilityUnsupportedError).capability).toBe(capabilities.exec.stdin ? 'exec.streaming' : 'exec.stdin');
        expect((error as Error).message).toContain('startAgentHost(sandbox, { port })');
        expect((error as Error).message).toContain('AgentSession.connect(sandbox, { port, token: host.token');
      }
    },
  );
});

describe('ensureClaudeCode where the CLI cannot be uploaded', () => {
  /** A sandbox of the named provider that has no claude on it. */
  const bare = (provider: string): Sandbox =>
    ({
      id: `sb-${provider}`,
      provider,
      run: async () => {
        throw new SandboxInvalidArgumentError({ message: 'claude: command not found', argument: 'command' });
      },
    }) as unknown as Sandbox;

  it.each(['fly', 'cloudflare'])('refuses the upload on %s with a typed error naming the image recipe', async (provider) => {
    const error = await ensureClaudeCode(bare(provider), { install: 'upload' }).catch((caught: unknown) => caught);
    expect(AgentSessionError.isInstance(error)).toBe(true);
    expect((error as AgentSessionError).reason).toBe('cli-install-unsupported');
    expect((error as AgentSessionError).message).toContain('claudeCodeImage()');
    expect((error as AgentSessionError).message).toContain(`RUN ${claudeCodeImage().commands?.[0]}`);
  });

  it.skipIf(noCli !== undefined)(
    `refuses a sandbox whose platform is not the host binary's, naming the recipe${noCli ? ` (skipped: ${noCli})` : ''}`,
    async () => {
      const sandbox = {
        id: 'sb-arm',
        provider: 'stub-cloud',
        run: async (command: string[]) => {
          if (command[0] === '/bin/sh') return { exitCode: 0, stdout: 'Linux s390x\nglibc\n', stderr: '' };
          throw new SandboxInvalidArgumentError({ message: 'claude: command not found', argument: 'command' });
        },
      } as unknown as Sandbox;
      const error = await ensureClaudeCode(sandbox, { install: 'upload' }).catch((caught: unknown) => caught);
      expect((error as AgentSessionError).reason).toBe('cli-install-unsupported');
      expect((error as AgentSessionError).message).toContain('the sandbox is Linux-s390x');
      expect((error as AgentSessionError).message).toContain('claudeCodeImage()');
    },
  );

  it('refuses a relative uploadPath, naming the field', async () => {
    await expect(ensureClaudeCode(bare('stub-cloud'), { install: 'upload', uploadPath: 'bin/claude' })).rejects.toMatchObject({
      name: 'SandboxInvalidArgumentError',
      argument: 'uploadPath',
    });
  });

  it.skipIf(noCli !== undefined)(
    `refuses to upload a host binary of another version than asked${noCli ? ` (skipped: ${noCli})` : ''}`,
    async () => {
      const error = await ensureClaudeCode(bare('stub-cloud'), { install: 'upload', version: '1.0.0' }).catch((caught: unknown) => caught);
      expect(AgentSessionError.isInstance(error) && error.reason).toBe('cli-version-mismatch');
      expect((error as AgentSessionError).message).toContain(`is ${defaultClaudeCodeVersion}, 1.0.0 is required`);
    },
  );

  it('gives the recipe as an image to build', () => {
    expect(claudeCodeImage('node:22-bookworm', '2.1.330')).toEqual({
      base: 'node:22-bookworm',
      commands: ['npm install -g --no-fund --no-audit @anthropic-ai/claude-code@2.1.330'],
    });
  });
});
