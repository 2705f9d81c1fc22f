import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox, SandboxProvider } from '../spec/sandbox.js';
import { SandboxError } from '../errors/index.js';

/** The subset of a test runner the suite needs; vitest and jest both fit. */
export interface ConformanceRunner {
  describe: (name: string, body: () => void) => void;
  it: ((name: string, body: () => Promise<void>, timeoutMs?: number) => void) & {
    skip: (name: string, body: () => Promise<void>) => void;
  };
  expect: ExpectLike;
  beforeAll: (body: () => Promise<void>, timeoutMs?: number) => void;
  afterAll: (body: () => Promise<void>, timeoutMs?: number) => void;
}

/** The matchers the suite uses (`expect` of vitest or jest). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ExpectLike = (actual: unknown, message?: string) => any;

export interface SandboxConformanceOptions extends ConformanceRunner {
  /** Label for the suite, usually the provider id. */
  name: string;
  /** Called once per suite; the provider's capabilities decide which groups run. */
  createProvider: () => SandboxProvider;
  /** Merged into every `create` (for example `{ image }`). */
  createOptions?: CreateSandboxOptions;
  /** Tests to skip, by title, each with the reason printed in the test name. */
  skip?: Record<string, string>;
  /** Sizes of the heavy tests. @default { largeOutputMiB: 256, largeFileMiB: 100 } */
  scale?: { largeOutputMiB?: number; largeFileMiB?: number };
  /** Time allowed for one test, in milliseconds. @default 120_000 */
  testTimeoutMs?: number;
}

/** Shared state of one suite run: the provider and every sandbox the suite made (for cleanup). */
export class SuiteContext {
  provider!: SandboxProvider;
  private readonly sandboxes = new Set<Sandbox>();
  /** Unique per run, so that tags and names never collide with other runs or other suites. */
  readonly runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

  constructor(readonly options: SandboxConformanceOptions) {}

  async create(extra: CreateSandboxOptions = {}): Promise<Sandbox> {
    const sandbox = await this.provider.create({ ...this.options.createOptions, ...extra });
    this.sandboxes.add(sandbox);
    return sandbox;
  }

  async terminateAll(): Promise<void> {
    await Promise.all([...this.sandboxes].map((sandbox) => sandbox.terminate().catch((error: unknown) => console.warn(`cleanup of ${sandbox.id} failed:`, error))));
    this.sandboxes.clear();
  }

  /** Registers a test, or a skipped test whose title says why. */
  test(title: string, body: () => Promise<void>, unsupportedReason?: string): void {
    const reason = unsupportedReason ?? this.options.skip?.[title];
    if (reason !== undefined) {
      this.options.it.skip(`${title} (skipped: ${reason})`, body);
      return;
    }
    this.options.it(title, body, this.options.testTimeoutMs ?? 120_000);
  }

  /** Asserts that `promise` rejects with a sandport error of the given class, from this provider. */
  async expectError<T extends SandboxError>(
    promise: Promise<unknown>,
    errorClass: { isInstance(error: unknown): error is T; name: string },
    providerMayBeCore = true,
  ): Promise<T> {
    const error = await promise.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    const { expect } = this.options;
    expect(error).toBeDefined();
    if (!errorClass.isInstance(error)) {
      throw new Error(`expected ${errorClass.name}, got ${String((error as Error | undefined)?.name)}: ${String((error as Error | undefined)?.message)}`);
    }
    expect(SandboxError.isInstance(error)).toBe(true);
    expect(typeof error.code).toBe('string');
    if (!providerMayBeCore || error.provider !== undefined) expect(error.provider).toBe(this.provider.id);
    return error;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last result. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
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
