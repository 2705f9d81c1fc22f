/**
 * Shared setup of the agent tests: the fake Messages API on a host unix socket (and loopback
 * TCP), the local provider, and the host's pinned `claude` binary mounted read-only.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { createLocalSandboxProvider, type LocalSandbox } from '../../adapters/local/index.js';
import { claudeCodeHostMount, type AgentSessionOptions } from '../../src/agent/index.js';
import type { CreateSandboxOptions } from '../../src/index.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';

/** Port the fake API is reached on inside sandboxes. */
export const fakeApiSandboxPort = 8123;

/** Fast failure in tests: no API retries, no side traffic. */
export const testEnv = { CLAUDE_CODE_MAX_RETRIES: '0', API_TIMEOUT_MS: '60000' };

/**
 * Shell assignments of `head` and `tail` whose concatenation is `secret`, for a scan command
 * (`grep -F -e "$head$tail"` over each process's environ file) that does not hold the secret whole
 * itself: a provider may hand the command text to the process that runs it in its environment
 * (the Daytona emulator's session commands do), where the scan would find the scan.
 */
export function splitSecret(secret: string): string {
  const half = Math.floor(secret.length / 2);
  return `head='${secret.slice(0, half)}' tail='${secret.slice(half)}'`;
}

export interface AgentHarness {
  fake: FakeAnthropic;
  dir: string;
  provider: ReturnType<typeof createLocalSandboxProvider>;
  executable: string;
  /** The volumes that mount the host's `claude` read-only (for sandboxes created without `sandboxOptions`). */
  volumes: NonNullable<CreateSandboxOptions['volumes']>;
  /** Create options of a sandbox that reaches the fake API (directly, with a key in its env). */
  sandboxOptions(extra?: CreateSandboxOptions): CreateSandboxOptions;
  /** Agent options that point the CLI at the fake API with a test key in its environment. */
  agentOptions(extra?: AgentSessionOptions): AgentSessionOptions;
  createSandbox(extra?: CreateSandboxOptions): Promise<LocalSandbox>;
  close(): Promise<void>;
}

/** Why the agent tests cannot run here, or `undefined` when they can. */
export function agentSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'the local provider needs Linux';
  try {
    claudeCodeHostMount();
  } catch (error) {
    return `no claude binary: ${(error as Error).message}`;
  }
  return undefined;
}

export async function startAgentHarness(): Promise<AgentHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'sandport-agent-test-'));
  await chmod(dir, 0o755);
  const fake = await startFakeAnthropic({ socketPath: join(dir, 'api.sock') });
  const provider = createLocalSandboxProvider();
  const mount = claudeCodeHostMount();
  const sandboxOptions = (extra: CreateSandboxOptions = {}): CreateSandboxOptions => ({
    network: 'block',
    timeoutMs: 10 * 60_000,
    ...extra,
    volumes: { ...mount.createOptions.volumes, ...extra.volumes },
    providerOptions: {
      ...extra.providerOptions,
      local: {
        ...extra.providerOptions?.local,
        hostForwards: { [fakeApiSandboxPort]: fake.socketPath!, ...(extra.providerOptions?.local?.hostForwards as object) },
      },
    },
  });
  return {
    fake,
    dir,
    provider,
    executable: mount.executable,
    volumes: mount.createOptions.volumes ?? {},
    sandboxOptions,
    agentOptions: (extra = {}) => ({
      executable: mount.executable,
      credentials: { apiKey: 'sk-ant-test-direct', baseUrl: `http://127.0.0.1:${fakeApiSandboxPort}`, exposeToSandbox: true },
      startTimeoutMs: 60_000,
      closeGraceMs: 1_000,
      ...extra,
      env: { ...testEnv, ...extra.env },
    }),
    createSandbox: (extra) => provider.create(sandboxOptions(extra)),
    async close() {
      await fake.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The harness, and the sandbox the group's tests share when one was asked for. */
export interface AgentTestHarness extends AgentHarness {
  /** Created before the group's tests with `createSandbox()` (option `sandbox: true`), terminated after. */
  sandbox: LocalSandbox;
}

/**
 * A `describe` group of agent tests: the harness is started before its tests and closed after
 * (with `sandbox: true`, one shared sandbox too). Where the tests cannot run (see
 * `agentSkipReason`, plus `skipReason` when given), the group is skipped, saying why in its title
 * and on the console. The harness is filled in `beforeAll`: read it inside tests and hooks only.
 */
export function describeWithAgentHarness(
  title: string,
  options: { sandbox?: boolean; skipReason?: () => string | undefined },
  body: (harness: AgentTestHarness) => void,
): void {
  const skip = agentSkipReason() ?? options.skipReason?.();
  if (skip) console.warn(`[${title}] skipped: ${skip}`);
  const harness = {} as AgentTestHarness;
  describe.skipIf(skip !== undefined)(skip ? `${title} (skipped: ${skip})` : title, () => {
    beforeAll(async () => {
      Object.assign(harness, await startAgentHarness());
      if (options.sandbox) harness.sandbox = await harness.createSandbox();
    });
    afterAll(async () => {
      await harness.sandbox?.terminate();
      await harness.close?.();
    });
    body(harness);
  });
}
