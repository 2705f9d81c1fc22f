/**
 * The agent service on every provider but local: on Docker, and on the Modal, E2B, Vercel,
 * Kubernetes, Daytona, Fly and Cloudflare emulators. Where exec cannot carry the CLI's
 * stream-json session (Fly: output at the exit; Cloudflare and Vercel: no stdin), the agent
 * service is how AgentSession works there at all. Per provider: one agent host behind one port
 * reached through the provider's own tunnel (Docker's published port, Modal's plain-HTTP tunnel,
 * E2B's `<port>-<id>` host, Vercel's port route, Kubernetes' local port-forward listener,
 * Daytona's signed preview link, Fly's edge at the app's public host name, the bridge's quick
 * tunnel, on bridge 0.12 and 0.13), two agents at once, a wrong token refused, an app in a child
 * process SIGKILLed mid-turn and a new one re-attaching from its cursor, and the host stopping
 * cleanly. The real `claude` CLI, the fake Messages API behind one credential proxy (Docker: its
 * host route; the emulators: its public URL `http://proxy.test` on their test internet).
 *
 * How Node and the CLI get there: Docker mounts the host's (`nodeHostMount`,
 * `claudeCodeHostMount`); Modal, E2B, Vercel, Kubernetes and Daytona have no volumes of host
 * paths, so the host's pinned CLI is uploaded (`ensureClaudeCode({ install: 'upload' })`) and the
 * host runs on the image's Node: Modal's on a `node:22-bookworm` default image (the adapter's
 * default, python:3.13-slim, has no Node; the emulator runs node:* tags on the host image, Node 20
 * on PATH), Vercel's runtime image's, Kubernetes' (the emulator's default image is the host
 * image, Node 20 on PATH), Daytona's and E2B's base template's (Debian's Node 18 in the
 * emulators' images). Fly and Cloudflare run an image built from `claudeCodeImage()`'s recipe, which the
 * emulators stand for with the host image (Node 20 on PATH) and the host's pinned CLI mounted
 * read-only (`imageMounts`, `containerMounts`). Kubernetes' network stays open (NetworkPolicy
 * cannot allow the proxy's host by name); Modal's, E2B's, Vercel's and Daytona's are blocked but
 * for the proxy, and their tunnels still reach the port.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerSandboxProvider } from '../../adapters/docker/index.js';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import {
  AgentSession,
  AgentSessionError,
  CredentialProxy,
  claudeCodeHostMount,
  defaultClaudeCodeVersion,
  ensureClaudeCode,
  nodeHostMount,
  startAgentHost,
  type AgentHost,
  type AgentMessage,
} from '../../src/agent/index.js';
import { SandboxAuthenticationError, SandboxInvalidArgumentError } from '../../src/errors/index.js';
import type { CreateSandboxOptions, Sandbox, SandboxProvider } from '../../src/index.js';
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

const hostPort = 7681;
const publicHost = 'proxy.test';
const clientScript = join(import.meta.dirname, 'service', 'agent-service-client.ts');
// The child app resolves `*.localhost` tunnel names as this process does (Fly's, Cloudflare's, Daytona's).
const resolutionPreload = join(import.meta.dirname, '..', 'emulators', 'e2b', 'localhost-resolution-preload.ts');
const agentImage = `registry.fly.io/sandport-agent:${defaultClaudeCodeVersion}`;

let fake: FakeAnthropic;
let proxy: CredentialProxy;
const noCli = agentSkipReason();

beforeAll(async () => {
  if (noCli) return;
  fake = await startFakeAnthropic();
  proxy = await CredentialProxy.start({
    apiKey: 'sk-ant-real-key-never-in-the-sandbox',
    baseUrl: fake.url,
    listen: { port: 0 },
    publicUrl: `http://${publicHost}`,
  });
});
afterAll(async () => {
  await proxy?.close();
  await fake?.close();
});

/** The host's pinned CLI, as host paths by sandbox path: what the recipe's image holds, for the emulators. */
function cliImageMount(): Record<string, string> {
  const volumes = claudeCodeHostMount().createOptions.volumes ?? {};
  return Object.fromEntries(Object.entries(volumes).map(([path, volume]) => [path, typeof volume === 'string' ? volume : volume.source]));
}

/** The host's pinned CLI where it is mounted or in the image: nothing to put into the sandbox. */
const mountedCli = async (): Promise<string> => claudeCodeHostMount().executable;

/** The host's pinned CLI uploaded through the files API (no volumes of host paths there). */
const uploadedCli = async (sandbox: Sandbox): Promise<string> =>
  (await ensureClaudeCode(sandbox, { version: defaultClaudeCodeVersion, install: 'upload' })).executable;

const testInternet = () => testInternetFor({ [publicHost]: proxy.listenAddress!.port });

interface Target {
  name: string;
  skipReason(): string | undefined;
  start(): Promise<{
    provider: SandboxProvider;
    createOptions: CreateSandboxOptions;
    /** The Node to run the host with, where it is not `node` on PATH. */
    node?: string;
    /** Puts the CLI (and Node, where the image has none) into the sandbox where it is not there already; gives the CLI's path. */
    provision(sandbox: Sandbox): Promise<string>;
    close(): Promise<void>;
  }>;
}

/** The emulators' sandboxes, blocked but for the proxy where the provider can allow a host (the proxy's createOptions adds it). */
const blocked: CreateSandboxOptions = { network: 'block', timeoutMs: 10 * 60_000, ports: [hostPort] };

/** A connection's provider, and what this file creates the host's sandbox with. */
function on(connection: EmulatedProvider, createOptions: CreateSandboxOptions, provision: (sandbox: Sandbox) => Promise<string>) {
  return { provider: connection.make(), createOptions, provision, close: () => connection.close() };
}

const targets: Target[] = [
  {
    name: 'docker (host route, host Node and CLI mounted)',
    skipReason: () => (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)'),
    start: async () => {
      const node = nodeHostMount();
      const claude = claudeCodeHostMount();
      return {
        provider: createDockerSandboxProvider(),
        createOptions: {
          // Docker publishes ports only from a container with a network (its isolated bridge).
          network: 'allow',
          timeoutMs: 10 * 60_000,
          ports: [hostPort],
          volumes: { ...claude.createOptions.volumes, ...node.createOptions.volumes },
          // The host route's forwarder needs python3 (or node) in the image: the content-cached image of the other Docker agent tests.
          image: {
            base: baseImage,
            commands: ['apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*'],
          },
        },
        node: node.node,
        provision: mountedCli,
        close: async () => undefined,
      };
    },
  },
  {
    name: 'kubernetes emulator (public URL, CLI uploaded, image Node, port-forward tunnel)',
    skipReason: () => undefined,
    // NetworkPolicy cannot allow a host by name (network.allowDomains false), so the pod's
    // network stays open: the cluster's egress (the test internet here) reaches the proxy.
    start: async () =>
      on(await connectKubernetes({ testInternet: testInternet() }), { timeoutMs: 10 * 60_000, ports: [hostPort] }, uploadedCli),
  },
  {
    name: 'daytona emulator (public URL, CLI uploaded, image Node, preview link)',
    skipReason: () => undefined,
    // Signed preview links (`<port>-<token>.daytona.localhost`) come in from the edge, which the egress rule does not touch.
    start: async () => on(await connectDaytona({ testInternet: testInternet() }), blocked, uploadedCli),
  },
  {
    name: 'modal emulator (public URL, CLI uploaded, node image, plain tunnel)',
    skipReason: () => undefined,
    // A node image for the host's Node (the default python one has none); the emulator runs
    // node:* tags on the host image, whose Node 20 is on PATH.
    start: async () =>
      on(
        await connectModal({
          testInternet: testInternet(),
          provider: { appName: 'sandport-agent-service', defaultImage: 'node:22-bookworm' },
        }),
        blocked,
        uploadedCli,
      ),
  },
  {
    name: 'e2b emulator (public URL, CLI uploaded, port host)',
    skipReason: () => undefined,
    // The base template's Node runs the host; port hosts are `<port>-<sandboxID>.e2b.localhost` names.
    start: async () => on(await connectE2b({ testInternet: testInternet() }), blocked, uploadedCli),
  },
  {
    name: 'vercel emulator (public URL, CLI uploaded, image Node, port route)',
    skipReason: vercelSkipReason,
    // Vercel's runtime images have Node; its commands have no stdin, so the token comes in a file.
    start: async () => on(await connectVercel({ testInternet: testInternet() }), blocked, uploadedCli),
  },
  {
    name: 'fly emulator (public URL, CLI in the image, edge tunnel)',
    skipReason: () => undefined,
    start: async () =>
      on(
        await connectFly({ testInternet: testInternet(), imageMounts: { [agentImage]: cliImageMount() } }),
        { timeoutMs: 10 * 60_000, image: agentImage, ports: [hostPort] },
        mountedCli,
      ),
  },
  ...(['0.12', '0.13'] as const).map(
    (version): Target => ({
      name: `cloudflare bridge emulator ${version} (public URL, CLI in the image, quick tunnel)`,
      skipReason: () => undefined,
      start: async () =>
        on(
          await connectCloudflareBridge({ version, testInternet: testInternet(), containerMounts: cliImageMount() }),
          { ports: [hostPort] },
          mountedCli,
        ),
    }),
  ),
];

for (const target of targets) {
  const skip = noCli ?? target.skipReason();
  describe.skipIf(skip !== undefined)(`agent service on ${target.name}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let started: Awaited<ReturnType<Target['start']>>;
    let sandbox: Sandbox;
    let host: AgentHost;
    let url: string;
    let executable: string;

    beforeAll(async () => {
      started = await target.start();
      sandbox = await started.provider.create(proxy.createOptions(started.provider, started.createOptions));
      executable = await started.provision(sandbox);
      host = await startAgentHost(sandbox, { port: hostPort, startTimeoutMs: 60_000, ...(started.node ? { node: started.node } : {}) });
      url = (await sandbox.tunnels())[hostPort]!.url;
    }, 300_000);
    afterAll(async () => {
      await sandbox?.terminate();
      await started?.close();
    }, 120_000);

    const agentOptions = (cwd: string) => ({
      port: hostPort,
      token: host.token,
      executable,
      credentials: proxy,
      env: testEnv,
      cwd,
      closeGraceMs: 1_000,
      startTimeoutMs: 60_000,
    });

    it('serves two agents at once through one port, each in its own directory, through the proxy', async () => {
      const seen = fake.requests.length;
      const [red, blue] = await Promise.all([
        AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/red'), agentId: 'red' }),
        AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/blue'), agentId: 'blue' }),
      ]);
      try {
        const [redTurn, blueTurn] = await Promise.all([
          red.send('BASH: echo red in $(pwd)').result,
          blue.send('BASH: echo blue in $(pwd)').result,
        ]);
        expect(redTurn.text).toBe('Tool said: red in /tmp/svc/red');
        expect(blueTurn.text).toBe('Tool said: blue in /tmp/svc/blue');
        expect(red.sessionId).not.toBe(blue.sessionId);
        const listed = (await (await fetch(`${url}/agents`, { headers: { authorization: `Bearer ${host.token}` } })).json()) as {
          agents: Array<{ agent: string; busy: boolean }>;
        };
        expect(listed.agents.map(({ agent, busy }) => ({ agent, busy })).sort((a, b) => a.agent.localeCompare(b.agent))).toEqual([
          { agent: 'blue', busy: false },
          { agent: 'red', busy: false },
        ]);
        // Upstream saw the real key; the sandbox had a placeholder and the host's token is in no environment there.
        const upstream = fake.requests.slice(seen);
        expect(upstream.length).toBeGreaterThan(1);
        expect(upstream.every((request) => request.headers['x-api-key'] === 'sk-ant-real-key-never-in-the-sandbox')).toBe(true);
        const scan = await sandbox.run([
          '/bin/sh',
          '-c',
          `${splitSecret(host.token)}; grep -lsF -e "$head$tail" /proc/[0-9]*/environ; echo scanned`,
        ]);
        expect(scan.stdout.trim()).toBe('scanned');
      } finally {
        await Promise.all([red.close(), blue.close()]);
      }
    }, 180_000);

    it('refuses a wrong token: HTTP 401 on the upgrade and on the listing', async () => {
      await expect(
        AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/intruder'), token: 'not-the-token-at-all' }),
      ).rejects.toSatisfy((error) => SandboxAuthenticationError.isInstance(error) && /401/.test((error as Error).message));
      expect((await fetch(`${url}/agents`)).status).toBe(401);
      expect((await fetch(`${url}/agents?token=${encodeURIComponent(host.token)}`)).status).toBe(200);
    }, 60_000);

    it('lets a new app re-attach mid-turn after the old one was SIGKILLed, losing and repeating nothing', async () => {
      const first = await AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/green'), agentId: 'green' });
      expect((await first.send('hello').result).text).toBe('Echo: hello');
      await first.detach();

      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--import',
          resolutionPreload,
          clientScript,
          JSON.stringify({
            url,
            token: host.token,
            agent: 'green',
            prompt: 'BASH: while [ ! -e /tmp/gate-green ]; do sleep 0.1; done; echo gate opened',
          }),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const seenByChild: Array<{ cursor: number; type: string; uuid?: string }> = [];
      for await (const line of createInterface({ input: child.stdout! })) {
        const entry = JSON.parse(line) as { cursor?: number; type?: string; uuid?: string };
        if (entry.type === undefined) continue;
        seenByChild.push(entry as { cursor: number; type: string; uuid?: string });
        if (entry.type === 'assistant') break;
      }
      const exited = new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const cursor = seenByChild.at(-1)!.cursor;

      const second = await AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/green'), attach: { agent: 'green', cursor } });
      const seenBySecond: AgentMessage[] = [];
      second.events.on('message', (message) => seenBySecond.push(message));
      expect(second.attachedTurn).toBeDefined();
      await sandbox.files.write('/tmp/gate-green', '');
      expect((await second.attachedTurn!.result).text).toBe('Tool said: gate opened');
      expect((await second.send('and now?').result).text).toBe('Echo: and now?');
      // Nothing app 1 handled came again, and the turn's result came once.
      const id = (message: { type: string; uuid?: string }) => `${message.type}:${message.uuid ?? ''}`;
      const handled = new Set(seenByChild.filter((entry) => entry.uuid).map(id));
      expect(seenBySecond.filter((message) => handled.has(id(message as { type: string; uuid?: string })))).toEqual([]);
      expect(seenBySecond.filter((message) => message.type === 'result')).toHaveLength(2);
      await second.close();
    }, 180_000);

    it('stops the host: its agents end with it and it exits 0', async () => {
      const agent = await AgentSession.connect(sandbox, { ...agentOptions('/tmp/svc/last'), agentId: 'last' });
      const exit = new Promise((resolve) => agent.events.once('exit', resolve));
      expect((await agent.send('bye').result).text).toBe('Echo: bye');
      expect(await host.stop()).toEqual({ exitCode: 0, signal: undefined });
      await exit;
      expect(agent.isOpen).toBe(false);
      await agent.close();
    }, 120_000);
  });
}

describe.skipIf(noCli !== undefined)(
  `the host's token file and ready file, where exec has no stdin or output only at the exit (local)${noCli ? ` (skipped: ${noCli})` : ''}`,
  () => {
    const node = nodeHostMount();
    let sandbox: Sandbox;
    beforeAll(async () => {
      sandbox = await createLocalSandboxProvider().create({ network: 'block', ports: [hostPort], volumes: node.createOptions.volumes });
    }, 60_000);
    afterAll(async () => {
      await sandbox?.terminate();
    });

    it('takes the token from a file it deletes before listening, and reports listening in a file', async () => {
      const directory = '/tmp/file-delivery';
      const host = await startAgentHost(sandbox, { port: hostPort, node: node.node, directory, exec: { stdin: false, streaming: false } });
      try {
        expect(await sandbox.files.exists(`${directory}/token`)).toBe(false);
        expect(JSON.parse(await sandbox.files.readText(`${directory}/listening.json`))).toMatchObject({ listening: hostPort });
        const scan = await sandbox.run([
          '/bin/sh',
          '-c',
          `grep -rlsF -e "${host.token}" /proc/[0-9]*/environ /tmp 2>/dev/null; echo scanned`,
        ]);
        expect(scan.stdout.trim()).toBe('scanned');
        const url = (await sandbox.tunnels())[hostPort]!.url;
        expect((await fetch(`${url}/agents`, { headers: { authorization: `Bearer ${host.token}` } })).status).toBe(200);
        expect((await fetch(`${url}/agents`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status).toBe(401);
      } finally {
        expect(await host.stop()).toEqual({ exitCode: 0, signal: undefined });
      }
    }, 60_000);

    it('reports a host that ended before writing its ready file, with its exit code', async () => {
      const error = await startAgentHost(sandbox, {
        port: hostPort,
        node: '/bin/false',
        directory: '/tmp/never-listens',
        exec: { stdin: false, streaming: false },
      }).catch((caught: unknown) => caught);
      expect(AgentSessionError.isInstance(error) && error.reason).toBe('process-exited');
      expect((error as AgentSessionError).exitCode).toBe(1);
      // The token file the host never read is gone too.
      expect(await sandbox.files.exists('/tmp/never-listens/token')).toBe(false);
    }, 60_000);

    it('refuses resume with attach, and resume without a store, naming the field', async () => {
      const options = { port: hostPort, token: 'x'.repeat(43) };
      for (const [extra, argument] of [
        [{ resume: { sessionId: 's' }, attach: 'a' }, 'resume'],
        [{ resume: { sessionId: 's' } }, 'store'],
      ] as const) {
        const error = await AgentSession.connect(sandbox, { ...options, ...extra }).catch((caught: unknown) => caught);
        expect(SandboxInvalidArgumentError.isInstance(error) && error.argument).toBe(argument);
      }
    });
  },
);
