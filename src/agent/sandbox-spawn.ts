import { EventEmitter } from 'node:events';
import { PassThrough, Readable, Writable } from 'node:stream';
import { SandboxNotFoundError } from '../errors/index.js';
import { isSandboxSignal, type SandboxSignal } from '../spec/options.js';
import type { Sandbox, SandboxProcess } from '../spec/sandbox.js';

const stderrTailBytes = 4096;

/** What a spawned CLI process ended with, as far as the session is concerned. */
export interface SpawnOutcome {
  exitCode: number | undefined;
  signal: string | undefined;
  /** The exec or the sandbox failed (not a plain exit). */
  error: unknown;
}

/**
 * A `SpawnedProcess` (the Agent SDK's process shape: node streams, `exit`/`error` events) backed
 * by `sandbox.exec`. The SDK's hook is synchronous and `exec` is not, so the streams exist at
 * once and are connected when the exec starts; stdin written before that is buffered.
 */
export class SandboxSpawnedProcess extends EventEmitter {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  killed = false;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Resolves once the process has ended, whatever ended it. */
  readonly done: Promise<SpawnOutcome>;
  private process: SandboxProcess | undefined;
  private pendingSignal: SandboxSignal | undefined;
  private stderrText = '';
  private settle!: (outcome: SpawnOutcome) => void;

  constructor(
    sandbox: Sandbox,
    command: readonly string[],
    options: { env: Record<string, string>; cwd: string | undefined; onStderr?: (text: string) => void },
  ) {
    super();
    this.done = new Promise((resolve) => (this.settle = resolve));
    // The SDK listens for 'error'; an unheard one would crash the host process.
    this.on('error', () => undefined);
    void this.start(sandbox, command, options);
  }

  /** Last ~4 KiB of the process's stderr. */
  get stderrTail(): string {
    return this.stderrText;
  }

  private async start(
    sandbox: Sandbox,
    command: readonly string[],
    options: { env: Record<string, string>; cwd: string | undefined; onStderr?: (text: string) => void },
  ): Promise<void> {
    let process: SandboxProcess;
    try {
      process = await sandbox.exec(command, { env: options.env, ...(options.cwd ? { cwd: options.cwd } : {}) });
    } catch (error) {
      this.finish(undefined, undefined, error);
      this.emit('error', error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.process = process;
    if (this.pendingSignal) void process.kill(this.pendingSignal).catch(() => undefined);
    const stdin = Writable.fromWeb(process.stdin);
    stdin.on('error', () => undefined);
    this.stdin.pipe(stdin);
    const stdout = Readable.fromWeb(process.stdout as import('node:stream/web').ReadableStream<Uint8Array>);
    stdout.on('error', () => this.stdout.end());
    stdout.pipe(this.stdout);
    const stderrDone = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of process.stderr as unknown as AsyncIterable<Uint8Array>) {
          const text = decoder.decode(chunk, { stream: true });
          this.stderrText = (this.stderrText + text).slice(-stderrTailBytes);
          options.onStderr?.(text);
        }
      } catch {
        // a dying sandbox ends its streams abruptly
      }
    })();
    let exitCode: number | undefined;
    let signal: string | undefined;
    let failure: unknown;
    try {
      ({ exitCode, signal } = await process.wait());
    } catch (error) {
      failure = error;
    }
    // The tail is part of the error report, so let stderr drain briefly before announcing the exit.
    await Promise.race([stderrDone, new Promise((resolve) => setTimeout(resolve, 200).unref())]);
    this.finish(exitCode, signal, failure);
  }

  private finish(exitCode: number | undefined, signal: string | undefined, error: unknown): void {
    if (this.exitCode !== null || this.signalCode !== null) return;
    const sandboxGone = SandboxNotFoundError.isInstance(error);
    this.exitCode = exitCode ?? (signal ? null : 1);
    this.signalCode = (signal as NodeJS.Signals | undefined) ?? (sandboxGone ? 'SIGKILL' : null);
    if (!this.stdout.writableEnded) this.stdout.end();
    this.stdin.destroy();
    this.settle({ exitCode, signal, error });
    this.emit('exit', this.exitCode, this.signalCode);
  }

  kill(signal: NodeJS.Signals): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    this.killed = true;
    // A Node-only signal name (SIGPWR, …) has no portable meaning in a sandbox: stop the process.
    const sandboxSignal: SandboxSignal = isSandboxSignal(signal) ? signal : 'SIGKILL';
    if (this.process) void this.process.kill(sandboxSignal).catch(() => undefined);
    else this.pendingSignal = sandboxSignal;
    return true;
  }

  /** Whether the failure means the sandbox is gone rather than the process. */
  static isSandboxGone(error: unknown): boolean {
    return SandboxNotFoundError.isInstance(error);
  }
}
