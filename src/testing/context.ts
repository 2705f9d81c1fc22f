import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox, SandboxProvider } from '../spec/sandbox.js';
import type { SandboxCapabilities } from '../spec/sandbox-capabilities.js';
import { SandboxCapabilityUnsupportedError, SandboxError } from '../errors/index.js';

/**
 * What the runner may hand a test body (vitest's test context fits). Both members are optional:
 * with `skip`, a test whose image lacks a tool (bash, node, python3) is skipped at run time with
 * the reason; without it (jest), such a test fails with the reason instead, and never passes
 * vacuously: list its id in `skip` to leave it out.
 */
export interface RunnerTestContext {
  /** Marks the running test as skipped, with a note; throws to stop the body. */
  skip?: (note?: string) => never;
  /** Registers a callback run when this test fails. */
  onTestFailed?: (handler: () => void) => void;
}

/** The subset of a test runner the suite needs; vitest and jest both fit. */
export interface ConformanceRunner {
  describe: (name: string, body: () => void) => void;
  it: ((name: string, body: (context?: RunnerTestContext) => Promise<void>, timeoutMs?: number) => void) & {
    skip: (name: string, body: () => Promise<void>) => void;
  };
  expect: ExpectLike;
  beforeAll: (body: () => Promise<void>, timeoutMs?: number) => void;
  afterAll: (body: () => Promise<void>, timeoutMs?: number) => void;
  /**
   * Optional (vitest's `onTestFailed`): when given, or when the test context has one, a failing
   * test logs the ids of the sandboxes it used, to find them in the provider's console.
   */
  onTestFailed?: (handler: () => void) => void;
}

/** The matchers the suite uses (`expect` of vitest or jest). */
// biome-ignore lint/suspicious/noExplicitAny: the matcher object of whichever runner is injected (vitest, jest)
export type ExpectLike = (actual: unknown, message?: string) => any;

export interface SandboxConformanceOptions extends ConformanceRunner {
  /** Label for the suite, usually the provider id. */
  name: string;
  /**
   * The provider's capabilities (each adapter exports its own, for example `localCapabilities`).
   * They decide at registration which tests run, so that `createProvider` can wait until
   * `beforeAll`; a suite test then asserts the provider's `capabilities` deep-equal these.
   * Without them, `createProvider` is called at registration and must return synchronously.
   */
  capabilities?: SandboxCapabilities;
  /**
   * Makes the provider, once per suite. With `capabilities`, it is called in the suite's
   * `beforeAll` (after the runner's own `beforeAll`s of enclosing blocks, so an emulator or a
   * credential set up there is ready) and may be async.
   */
  createProvider: () => SandboxProvider | Promise<SandboxProvider>;
  /** Merged into every `create` (for example `{ image }`). */
  createOptions?: CreateSandboxOptions;
  /**
   * Tests to leave out, keyed by test id (the `[group.name]` at the end of each title; a title
   * is accepted too), each with the reason printed in the test name. A key that names no test
   * fails the suite, so a renamed test cannot silently start running.
   */
  skip?: Record<string, string>;
  /**
   * Sizes of the heavy tests, in MiB. `largeFileMiB` @default 100. `largeOutputMiB` @default 256,
   * and at least 192: the bounded-memory test holds host memory growth under a fixed 64 MiB, so
   * its stream must stay well above that; smaller values are raised to 192.
   */
  scale?: {
    largeOutputMiB?: number;
    largeFileMiB?: number;
    /** Create/exec/files/terminate cycles of the leak test (a count, not MiB). @default 300 */
    leakCycles?: number;
  };
  /**
   * Counts of host resources by kind (`{ 'cgroup dirs': 3, containers: 1 }`), read before and
   * after the leak tests, which assert that every count returns to its baseline. Report what
   * the provider creates on this host (containers, cgroups, mounts, helper processes); the suite
   * adds this process's open file descriptors and child processes itself. Called several times
   * per test; must not throw. @default none (only the suite's own counts)
   */
  hostResources?: () => Promise<Record<string, number>>;
  /** Time allowed for one test, in milliseconds. @default 120_000 */
  testTimeoutMs?: number;
  /**
   * Destinations for the `network-allowlist.*` tests, which skip (saying why) without them. For
   * the harness to provide: from a test internet handed to the provider (the local and Docker
   * providers' `egressNetwork`), or, on a live cloud provider, URLs the user controls.
   * @default none (the allowlist tests are skipped)
   */
  networkTargets?: NetworkTargets;
}

/** Destinations a sandbox of the provider under test can reach when its allowlist lets it. */
export interface NetworkTargets {
  /** Answers `GET` with 200 and `allowedBody`; its host name is the one the tests allowlist. */
  allowedUrl: string;
  /** The exact body `allowedUrl` answers with. */
  allowedBody: string;
  /** Answers `GET` with 200 when reachable; on another host name, never allowlisted but by the update test. */
  deniedUrl: string;
  /** A URL on a name under the parent domain of its host (`other.allowed.test`), for the `*.` wildcard test. */
  otherAllowedUrl?: string;
  /** The address `allowedUrl`'s host resolves to, for the raw-address and `allowCidrs` tests. */
  allowedAddress?: string;
}

/** What a test body gets: a way to skip at run time, when the sandbox lacks what the test needs. */
export interface ConformanceTest {
  /** Skips the test with `reason` (or fails with it, on a runner without runtime skips). */
  skip(reason: string): never;
}

export type ConformanceTestBody = (test: ConformanceTest) => Promise<void>;

/**
 * Shared state of one suite run: the provider, its capabilities, and every sandbox the suite
 * made (for cleanup and for failure logs). Groups (`execTests`, …) take one; build it with
 * `defineSandboxConformanceSuite`, which creates the provider in `beforeAll`.
 */
export class SuiteContext {
  private currentProvider: SandboxProvider | undefined;
  private readonly sandboxes = new Set<Sandbox>();
  /** Sandboxes shared by the tests of a group whose `beforeAll` ran and whose `afterAll` did not. */
  private readonly activeFixtures = new Set<Sandbox>();
  /** Sandboxes created by the test that is running (tests of one suite run one at a time). */
  private runningTest: Sandbox[] | undefined;
  /** Ids and titles of every registered test, to check the `skip` keys against. */
  readonly registered = new Set<string>();
  /** Unique per run, so that tags and names never collide with other runs or other suites. */
  readonly runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  /** Known at registration: from the options, or from a provider created synchronously. */
  readonly capabilities: SandboxCapabilities;

  constructor(readonly options: SandboxConformanceOptions) {
    if (options.capabilities) {
      this.capabilities = options.capabilities;
      return;
    }
    const provider = options.createProvider();
    if (provider instanceof Promise) {
      throw new Error(
        "createProvider returned a promise: pass `capabilities` (for example the adapter's exported xCapabilities) so the suite can create the provider in beforeAll",
      );
    }
    this.currentProvider = provider;
    this.capabilities = provider.capabilities;
  }

  /** The provider under test; available from the suite's `beforeAll` on. */
  get provider(): SandboxProvider {
    if (!this.currentProvider)
      throw new Error(
        'the provider is created in beforeAll: read context.capabilities at registration, context.provider in hooks and tests',
      );
    return this.currentProvider;
  }

  /** Creates the provider if it was not made at registration. Called by the suite's `beforeAll`. */
  async start(): Promise<void> {
    this.currentProvider ??= await this.options.createProvider();
  }

  async create(extra: CreateSandboxOptions = {}): Promise<Sandbox> {
    const sandbox = await this.provider.create({ ...this.options.createOptions, ...extra });
    this.sandboxes.add(sandbox);
    this.runningTest?.push(sandbox);
    return sandbox;
  }

  /**
   * A sandbox shared by the tests of the enclosing `describe`: created in its `beforeAll`,
   * terminated in its `afterAll`. Returns a getter (the sandbox exists only once hooks ran).
   */
  sharedSandbox(extra: CreateSandboxOptions = {}): () => Sandbox {
    let sandbox: Sandbox | undefined;
    this.options.beforeAll(async () => {
      sandbox = await this.create(extra);
      this.activeFixtures.add(sandbox);
    });
    this.options.afterAll(async () => {
      if (!sandbox) return;
      this.activeFixtures.delete(sandbox);
      await sandbox.terminate().catch((error: unknown) => console.warn(`cleanup of ${sandbox!.id} failed:`, error));
    }, 120_000);
    return () => {
      if (!sandbox) throw new Error('the shared sandbox was not created (see the beforeAll error)');
      return sandbox;
    };
  }

  async terminateAll(): Promise<void> {
    await Promise.all(
      [...this.sandboxes].map((sandbox) =>
        sandbox.terminate().catch((error: unknown) => console.warn(`cleanup of ${sandbox.id} failed:`, error)),
      ),
    );
    this.sandboxes.clear();
  }

  /**
   * Registers a test under a stable `id` (what `skip` is keyed by), or a skipped test whose
   * title says why. `unsupportedReason` is for skips the capabilities decide at registration.
   */
  test(id: string, title: string, body: ConformanceTestBody, unsupportedReason?: string, options: { minTimeoutMs?: number } = {}): void {
    this.registered.add(id);
    this.registered.add(title);
    const fullTitle = `${title} [${id}]`;
    const reason = unsupportedReason ?? this.options.skip?.[id] ?? this.options.skip?.[title];
    if (reason !== undefined) {
      this.options.it.skip(`${fullTitle} (skipped: ${reason})`, async () => {});
      return;
    }
    // A rest parameter keeps `length` 0: jest reads a declared parameter as a `done` callback.
    const run = async (...args: unknown[]): Promise<void> => {
      const runner = args[0] as RunnerTestContext | undefined;
      const created: Sandbox[] = [];
      this.runningTest = created;
      const onFailed = typeof runner?.onTestFailed === 'function' ? runner.onTestFailed.bind(runner) : this.options.onTestFailed;
      onFailed?.(() => {
        const ids = [...new Set([...this.activeFixtures, ...created])].map((sandbox) => sandbox.id);
        console.error(`[sandport conformance] ${fullTitle} failed; sandboxes: ${ids.join(', ') || 'none'}`);
      });
      const test: ConformanceTest = {
        skip(why: string): never {
          if (typeof runner?.skip === 'function') runner.skip(why);
          throw new Error(
            `cannot run here: ${why}. This runner has no runtime skip; list '${id}' in the suite's skip option to leave it out`,
          );
        },
      };
      try {
        await body(test);
      } finally {
        this.runningTest = undefined;
      }
    };
    this.options.it(fullTitle, run, Math.max(this.options.testTimeoutMs ?? 120_000, options.minTimeoutMs ?? 0));
  }

  /** Asserts that `promise` rejects with a sandport error of the given class, from this provider. */
  async expectError<T extends SandboxError>(
    promise: Promise<unknown>,
    errorClass: { isInstance(error: unknown): error is T; name: string },
    providerMayBeCore = true,
  ): Promise<T> {
    const error = await promise.then(
      async (value: unknown) => {
        await terminateIfSandbox(value);
        return undefined;
      },
      (caught: unknown) => caught,
    );
    const { expect } = this.options;
    expect(error, `expected ${errorClass.name}, but the call succeeded`).toBeDefined();
    if (!errorClass.isInstance(error)) {
      throw new Error(
        `expected ${errorClass.name}, got ${String((error as Error | undefined)?.name)}: ${String((error as Error | undefined)?.message)}`,
      );
    }
    expect(SandboxError.isInstance(error)).toBe(true);
    expect(typeof error.code).toBe('string');
    if (!providerMayBeCore || error.provider !== undefined) expect(error.provider).toBe(this.provider.id);
    return error;
  }

  /** Asserts that `promise` rejects with `SandboxCapabilityUnsupportedError` naming `capability`. */
  async expectUnsupported(promise: Promise<unknown>, capability: string): Promise<void> {
    const error = await this.expectError(promise, SandboxCapabilityUnsupportedError);
    this.options.expect(error.capability, `capability named by: ${error.message}`).toBe(capability);
  }

  /** Skips the running test unless every command is on the sandbox's PATH. */
  async requireCommands(sandbox: Sandbox, commands: readonly string[], test: ConformanceTest): Promise<void> {
    const script = 'for c in "$@"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done';
    const missing = (await sandbox.run(['/bin/sh', '-c', script, 'sh', ...commands])).stdout.split('\n').filter(Boolean);
    if (missing.length > 0) test.skip(`the image has no ${missing.join(', ')}`);
  }
}

async function terminateIfSandbox(value: unknown): Promise<void> {
  const candidate = value as Partial<Sandbox> | undefined;
  if (candidate && typeof candidate === 'object' && typeof candidate.terminate === 'function' && typeof candidate.exec === 'function') {
    await candidate.terminate().catch(() => undefined);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last result. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

/** Lists the command lines of every process visible in the sandbox (reads /proc, no procps needed). */
export async function sandboxProcesses(sandbox: Sandbox): Promise<string[]> {
  const result = await sandbox.run([
    '/bin/sh',
    '-c',
    'for p in /proc/[0-9]*; do [ -r "$p/cmdline" ] && tr "\\0" " " < "$p/cmdline" 2>/dev/null && echo; done',
  ]);
  return result.stdout.split('\n').filter((line) => line.trim().length > 0);
}
