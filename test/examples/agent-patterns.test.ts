/**
 * The hosting-pattern examples (ephemeral, long-running, hybrid, single container, warm pool),
 * each run as a user runs it, on the local provider, against the fake Messages API behind the
 * credential proxy the example starts (its turns scripted in agent-patterns-scripts.ts, the
 * tools executed for real by the `claude` CLI); with their provider line swapped, on the Modal
 * emulator and on Docker; and against the real API when ANTHROPIC_API_KEY is set. The examples import `sandport`, which resolves to dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';
import { agentSkipReason } from '../agent/harness.js';
import { patternScripts } from './agent-patterns-scripts.js';
import { localProviderLine, modalExampleEnv, runExample, runWithProviderLine } from './example-runner.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from '../emulators/modal/spawn.js';
import { baseImage, dockerAvailable } from '../docker-environment.js';

const root = join(import.meta.dirname, '..', '..');
const built = existsSync(join(root, 'dist', 'index.js'));
const skipReason = built ? agentSkipReason() : 'dist/ is missing, run npm run build';
const realKey = process.env.ANTHROPIC_API_KEY;

/** What each example prints with the fake API: the pattern's outcome, earned by the tools' real effects. */
const withFake: Array<[string, RegExp]> = [
  [
    'agent-one-shot.ts',
    /tests before: exit 1\n[\s\S]*agent: Fixed add\(\)[\s\S]*tests after: exit 0\npatch:\n[\s\S]*- {4}return a - b\n\+ {4}return a \+ b\nsandbox after the task: terminated/,
  ],
  [
    'agent-hybrid-resume.ts',
    /today, sandbox (\S+): planned\nsaved session \S+ and PLAN\.md\ntoday's sandbox: terminated\ntomorrow, new sandbox (?!\1)\S+: Step 1 is marked done\. The codename is Bluebird\.\nsame session: true; remembers the codename: true\nPLAN\.md now:\n# Bluebird\n\n1\. \[done\] The data model\n2\. The commands/,
  ],
  [
    'agent-two-agents.ts',
    /api: API\.md documents GET \/todos\.\nweb: index\.html has an empty #todos list\.\nweb: app\.js fills #todos[^\n]*\nrefused: web: Edit \/workspace\/api\/API\.md refused \(not under \/workspace\/web\)\napi: [^\n]*\napi:\nAPI\.md\n\nweb:\napp\.js\nindex\.html\nAPI\.md last line: Used by: web\napp\.js uses the documented endpoint: true\nsessions: api (\S+), web (?!\1)\S+/,
  ],
  [
    'agent-site-builder.ts',
    /site: http\S+\nbefore: Coming soon\nagent: [^\n]*\nafter: Open for business\nrunning on the host: site-builder\nagent \(re-attached, same session: true\): [^\n]*\nafter: Open for business \/ Open daily, 7 to 3\nsandbox: terminated/,
  ],
  [
    'agent-warm-pool.ts',
    /pool is warm: 2 prepared sandboxes\nticket 1: changelog updated; (warm|cold) sandbox[^\n]*\nticket 2: changelog updated; [^\n]*\nticket 3: changelog updated; [^\n]*\nhanded over: 2 warm, 1 cold\npool is warm again: 2 prepared\nclosed: 0 sandboxes left running/,
  ],
];

/** What each prints with the real API: the same outcomes, whatever the model's words. */
const withRealApi: Array<[string, RegExp]> = [
  ['agent-one-shot.ts', /tests before: exit 1\n[\s\S]*tests after: exit 0\n[\s\S]*sandbox after the task: terminated/],
  [
    'agent-hybrid-resume.ts',
    /today's sandbox: terminated\n[\s\S]*same session: true; remembers the codename: true\nPLAN\.md now:\n[\s\S]*\[done\]/,
  ],
  [
    'agent-two-agents.ts',
    /refused: web: \S+ \/workspace\/api\/API\.md refused[\s\S]*api:\nAPI\.md\n\nweb:\n[\s\S]*app\.js[\s\S]*API\.md last line: Used by: web\napp\.js uses the documented endpoint: true/,
  ],
  [
    'agent-site-builder.ts',
    /before: Coming soon\n[\s\S]*after: Open for business\nrunning on the host: site-builder\n[\s\S]*same session: true[\s\S]*after: Open for business \/ Open daily, 7 to 3\nsandbox: terminated/,
  ],
  ['agent-warm-pool.ts', /(ticket \d: changelog updated;[^\n]*\n){3}handed over: 2 warm, 1 cold\n[\s\S]*closed: 0 sandboxes left running/],
];

const example = (file: string) => join(root, 'examples', file);

const modalLine = (options: string) =>
  `const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider(${options});`;
/**
 * Examples run on the Modal emulator with only their provider line changed, to the line their
 * header gives (each uploads the CLI once, ~15 s here, so not all five).
 */
const onModal: Record<string, string> = {
  // node:22-bookworm has git and python3 (on the emulator: the host image, which has them too).
  'agent-one-shot.ts': modalLine("{ appName: 'sandport-examples', defaultImage: 'node:22-bookworm' }"),
  'agent-two-agents.ts': modalLine("{ appName: 'sandport-examples' }"),
  // node:22-bookworm has Node for the agent host and the site's server.
  'agent-site-builder.ts': modalLine("{ appName: 'sandport-examples', defaultImage: 'node:22-bookworm' }"),
};
/** The emulators' test internet serves the proxy's URL-mode listener under this name, as a cloud sandbox reaches a public URL. */
const publicHost = 'proxy.test';

/**
 * A port for the examples' URL-mode listener, which must be fixed before the emulator starts and
 * stays unbound between examples. It is taken from below the kernel's ephemeral range: a port
 * from `listen(0)` is in that range, where any other test's `listen(0)` or outgoing connection
 * can take it while no example holds it (CI once saw EADDRINUSE). Below it, only a fixed port can.
 */
async function freePort(): Promise<number> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768 60999');
  const low = Number(range.trim().split(/\s+/)[0]) || 32768;
  const from = Math.max(1024, low - 12_000);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = from + Math.floor(Math.random() * (low - from));
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error("no free port below the ephemeral range for the examples' proxy");
}

describe.skipIf(skipReason !== undefined)(
  `hosting-pattern examples, fake Messages API${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let fake: FakeAnthropic;
    beforeAll(async () => {
      fake = await startFakeAnthropic({ scripts: patternScripts });
    });
    afterAll(async () => {
      await fake?.close();
    });

    it.each(withFake)(
      'examples/%s',
      async (file, expected) => {
        const result = await runExample(example(file), {
          ...process.env,
          ANTHROPIC_API_KEY: 'sk-ant-fake-for-examples',
          ANTHROPIC_BASE_URL: fake.url,
        });
        if (result.code !== 0) console.error(result.stdout, result.stderr);
        expect(result.code).toBe(0);
        expect(result.stdout).toMatch(expected);
      },
      110_000,
    );

    it('every example has the one provider line the others are swapped in for', async () => {
      const { readFileSync } = await import('node:fs');
      for (const [file] of withFake) {
        expect(
          readFileSync(example(file), 'utf8')
            .split('\n')
            .filter((line) => line === localProviderLine),
          file,
        ).toHaveLength(1);
      }
    });
  },
);

describe.skipIf(skipReason !== undefined)(
  `hosting-pattern examples on the Modal emulator, provider line swapped${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    let fake: FakeAnthropic;
    let emulator: ModalEmulatorProcess;
    let proxyPort: number;
    beforeAll(async () => {
      fake = await startFakeAnthropic({ scripts: patternScripts });
      proxyPort = await freePort();
      emulator = await spawnModalEmulator({
        testInternet: { hosts: { [publicHost]: { address: '203.0.113.10', ports: { 80: proxyPort } } } },
      });
    }, 120_000);
    afterAll(async () => {
      await emulator?.close();
      await fake?.close();
    }, 120_000);

    it.each(withFake.filter(([file]) => file in onModal))(
      'examples/%s',
      async (file, expected) => {
        const { readFileSync } = await import('node:fs');
        expect(readFileSync(example(file), 'utf8'), 'the header names the line').toContain(
          onModal[file]!.replace('const provider: SandboxProvider = ', ''),
        );
        const result = await runWithProviderLine(file, localProviderLine, onModal[file]!, {
          ...process.env,
          ANTHROPIC_API_KEY: 'sk-ant-fake-for-examples',
          ANTHROPIC_BASE_URL: fake.url,
          SANDPORT_PROXY_PUBLIC_URL: `http://${publicHost}`,
          SANDPORT_PROXY_PORT: String(proxyPort),
          ...modalExampleEnv(emulator.url),
        });
        if (result.code !== 0) console.error(result.stdout, result.stderr);
        expect(result.providerLines).toBe(1);
        expect(result.code).toBe(0);
        expect(result.stdout).toMatch(expected);
      },
      110_000,
    );
  },
);

/**
 * The image the examples' Docker line names, as a Docker user would build it: python3 (the
 * credential proxy's host route forwards through it inside the container) and git (the one-shot's
 * clone). The CLI and Node are the host's, mounted read-only as on the local provider.
 */
const dockerImage = 'sandport/examples:bookworm';
const dockerfile = `FROM ${baseImage}
RUN apt-get update && apt-get install -y --no-install-recommends python3 git && rm -rf /var/lib/apt/lists/*
`;
const dockerLine = `const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: '${dockerImage}' });`;

/** `docker build` of {@link dockerfile}; the engine's layer cache makes a rebuild instant. */
async function buildDockerImage(): Promise<void> {
  const child = spawn('docker', ['build', '-q', '-t', dockerImage, '-'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: 280_000 });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(dockerfile);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`docker build ${dockerImage} failed (${code}): ${stderr}`);
}

const dockerSkip = skipReason ?? (dockerAvailable() ? undefined : 'no Docker engine or base image (scripts/setup-docker.sh)');
describe.skipIf(dockerSkip !== undefined)(
  `hosting-pattern examples on Docker (sandport/docker), provider line swapped${dockerSkip ? ` (skipped: ${dockerSkip})` : ''}`,
  () => {
    let fake: FakeAnthropic;
    beforeAll(async () => {
      fake = await startFakeAnthropic({ scripts: patternScripts });
      await buildDockerImage();
    }, 300_000);
    afterAll(async () => {
      await fake?.close();
    });

    it.each(withFake)(
      'examples/%s',
      async (file, expected) => {
        const { readFileSync } = await import('node:fs');
        expect(readFileSync(example(file), 'utf8'), 'the header names the line').toContain(
          dockerLine.replace('const provider: SandboxProvider = ', ''),
        );
        // A host route, so no public URL: the example's proxy listens on a socket the container mounts.
        const env: NodeJS.ProcessEnv = { ...process.env, ANTHROPIC_API_KEY: 'sk-ant-fake-for-examples', ANTHROPIC_BASE_URL: fake.url };
        delete env.SANDPORT_PROXY_PUBLIC_URL;
        const result = await runWithProviderLine(file, localProviderLine, dockerLine, env);
        if (result.code !== 0) console.error(result.stdout, result.stderr);
        expect(result.providerLines).toBe(1);
        expect(result.code).toBe(0);
        expect(result.stdout).toMatch(expected);
      },
      110_000,
    );
  },
);

const realSkip = skipReason ?? (realKey ? undefined : 'ANTHROPIC_API_KEY is not set');
describe.skipIf(realSkip !== undefined)(`hosting-pattern examples, real Anthropic API${realSkip ? ` (skipped: ${realSkip})` : ''}`, () => {
  it.each(withRealApi)(
    'examples/%s',
    async (file, expected) => {
      const env = { ...process.env };
      delete env.ANTHROPIC_BASE_URL;
      const result = await runExample(example(file), env);
      if (result.code !== 0) console.error(result.stdout, result.stderr);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(expected);
    },
    110_000,
  );
});
