/**
 * envd's processes of one sandbox: each a local exec started through the launcher
 * (e2b-process-launch.ts), known by the pid it has inside the sandbox (and its tag) until it
 * exits. Output fans out, as envd's does, to whoever is connected right now (the Start stream,
 * any Connect streams): each subscriber has a small bounded queue and a full one holds the
 * output back (backpressure into the sandbox); with nobody connected the output is read and
 * dropped, so an unread background command neither stalls nor grows the emulator's memory.
 * A subscriber going away never stops the process.
 */
import { SandboxInvalidArgumentError, SandboxNotFoundError, type SandboxProcess } from '../../../src/kit/index.js';
import { ConnectError } from './e2b-connect.js';
import { launcherArgv, readLaunchReport, type LaunchSpec } from './e2b-process-launch.js';
import type { E2bSandbox } from './e2b-state.js';
import { endEvent, type EndEvent, type ProcessConfig, type ProcessSelector } from './e2b-process-wire.js';

/** Where the table lives in `E2bSandboxData.extra`. */
const extraKey = 'e2b-process';
/**
 * Where the control plane may put the template's defaults for envd (its last USER and WORKDIR,
 * as {@link EnvdDefaults}) in `E2bSandboxData.extra`; without them: user `user`, the home.
 */
export const envdDefaultsKey = 'envd:defaults';
export interface EnvdDefaults {
  readonly user?: string | undefined;
  readonly workdir?: string | undefined;
}
/** Events a subscriber may have queued before the output waits for it. */
const subscriberQueueLength = 16;
/** The most bytes of one data event (envd reads 32 KiB from pipes, 16 KiB from a terminal). */
const pipeChunkBytes = 32 * 1024;
const ptyChunkBytes = 16 * 1024;
/**
 * Once the command exited, what is left in its pipes is read until they stay quiet this long (or
 * `drainLimitMs` passed): a background child may hold them open for ever, and envd closes them
 * when the command exits.
 */
const drainQuietMs = 100;
const drainLimitMs = 2000;

export type OutputKind = 'stdout' | 'stderr' | 'pty';
export type SubscriberEvent =
  | { readonly type: 'data'; readonly kind: OutputKind; readonly data: Uint8Array }
  | { readonly type: 'end'; readonly end: EndEvent }
  | { readonly type: 'gone'; readonly error: ConnectError };

/** One connected stream's view of a process: its output from now on, then the end. */
export class Subscription {
  readonly #queue: SubscriberEvent[] = [];
  #consumer: (() => void) | undefined;
  readonly #producers: Array<() => void> = [];
  #cancelled = false;
  #onCancel: () => void;

  constructor(onCancel: () => void) {
    this.#onCancel = onCancel;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Queues output; resolves once there is room again (or the subscriber left). */
  async push(event: SubscriberEvent): Promise<void> {
    while (!this.#cancelled && this.#queue.length >= subscriberQueueLength) {
      await new Promise<void>((resolve) => this.#producers.push(resolve));
    }
    if (this.#cancelled) return;
    this.#queue.push(event);
    this.#wakeConsumer();
  }

  /** The end (or the sandbox's end) comes after everything queued, whatever room is left. */
  finish(event: SubscriberEvent): void {
    if (this.#cancelled) return;
    this.#queue.push(event);
    this.#wakeConsumer();
  }

  /** The next event, once there is one; `undefined` once cancelled. */
  async next(): Promise<SubscriberEvent | undefined> {
    while (!this.#cancelled && this.#queue.length === 0) {
      await new Promise<void>((resolve) => (this.#consumer = resolve));
    }
    if (this.#cancelled) return undefined;
    const event = this.#queue.shift()!;
    this.#producers.shift()?.();
    return event;
  }

  /** Leaves: queued output is dropped, the process goes on. Idempotent. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#queue.length = 0;
    this.#wakeConsumer();
    for (const wake of this.#producers.splice(0)) wake();
    this.#onCancel();
  }

  #wakeConsumer(): void {
    const wake = this.#consumer;
    this.#consumer = undefined;
    wake?.();
  }
}

export interface LaunchOptions {
  readonly config: ProcessConfig;
  readonly tag: string | undefined;
  readonly user: string | undefined;
  readonly stdin: boolean;
  readonly pty: { cols: number; rows: number } | undefined;
  /** `Connect-Timeout-Ms` of the Start call: envd kills the command when it runs out. */
  readonly timeoutMs: number | undefined;
}

/** One process envd started. */
export class EnvdProcess {
  readonly #subscribers = new Set<Subscription>();
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdinOpen: boolean;
  /** Set by SIGTERM, SIGKILL or the timeout: envd stops forwarding output then. */
  #outputCut = false;
  #signalSent: 'SIGTERM' | 'SIGKILL' | undefined;
  #final: SubscriberEvent | undefined;
  #timeout: NodeJS.Timeout | undefined;

  private constructor(
    readonly sandbox: E2bSandbox,
    readonly pid: number,
    readonly tag: string | undefined,
    readonly config: ProcessConfig,
    readonly isPty: boolean,
    readonly local: SandboxProcess,
    stdinOpen: boolean,
  ) {
    this.#stdin = local.stdin.getWriter();
    this.#stdinOpen = stdinOpen;
    if (!stdinOpen) void this.#stdin.close().catch(() => undefined);
  }

  /**
   * Starts a command and resolves once it runs, with its first subscriber already attached (so
   * the Start stream sees every byte). Throws `ConnectError`: `unauthenticated` for a user the
   * sandbox does not have, `invalid_argument` for a missing working directory, program or a bad
   * PTY size or environment, `unavailable` when the sandbox is gone.
   */
  static async launch(sandbox: E2bSandbox, options: LaunchOptions): Promise<{ process: EnvdProcess; subscription: Subscription }> {
    const { config, pty } = options;
    const spec: LaunchSpec = {
      user: options.user,
      cwd: config.cwd,
      defaults: sandbox.data.extra.get(envdDefaultsKey) as EnvdDefaults | undefined,
      stdin: options.stdin,
      pty: pty !== undefined,
      envs: config.envs,
      argv: [config.cmd, ...config.args],
    };
    let local: SandboxProcess;
    try {
      local = await sandbox.local.exec(launcherArgv(spec), { env: { ...config.envs }, ...(pty ? { pty } : {}) });
    } catch (error) {
      throw launchError(error, sandbox);
    }
    const outputs: Array<{ kind: OutputKind; reader: ReadableStreamDefaultReader<Uint8Array> }> = pty
      ? [{ kind: 'pty', reader: local.stdout.getReader() }]
      : [
          { kind: 'stdout', reader: local.stdout.getReader() },
          { kind: 'stderr', reader: local.stderr.getReader() },
        ];
    if (pty) void local.stderr.cancel().catch(() => undefined);
    // The launcher reports on stderr (on the terminal with a PTY).
    const reportOn = pty ? outputs[0]! : outputs[1]!;
    const { report, rest } = await readLaunchReport(reportOn.reader).catch(() => ({
      report: { kind: 'none' as const, head: new Uint8Array(0) },
      rest: new Uint8Array(0),
    }));
    if (report.kind !== 'pid') {
      for (const { reader } of outputs) void reader.cancel().catch(() => undefined);
      const exit = await local.wait().catch(() => undefined);
      const commandLine = [config.cmd, ...config.args].join(' ');
      if (report.kind === 'user') throw new ConnectError('unauthenticated', `invalid username: '${options.user}'`);
      if (report.kind === 'cwd') throw new ConnectError('invalid_argument', `cwd '${report.path}' does not exist`);
      if (report.kind === 'command')
        throw new ConnectError('invalid_argument', `error starting process '${commandLine}': executable file not found: ${config.cmd}`);
      if (sandbox.end || !exit) throw new ConnectError('unavailable', `The sandbox ${sandbox.id} is not running anymore`);
      const head = Buffer.from(report.head).toString('utf8').trim();
      throw new ConnectError(
        'internal',
        `error starting process '${commandLine}': the launcher exited ${exit.exitCode}${head ? `: ${head}` : ''}`,
      );
    }
    const process = new EnvdProcess(sandbox, report.pid, options.tag, config, pty !== undefined, local, pty !== undefined || options.stdin);
    const subscription = process.subscribe();
    processTable(sandbox).add(process);
    process.#run(outputs, reportOn, rest, options.timeoutMs);
    return { process, subscription };
  }

  /** Attaches a stream: output from now on, then the end (at once if it already ended). */
  subscribe(): Subscription {
    const subscription = new Subscription(() => this.#subscribers.delete(subscription));
    if (this.#final) subscription.finish(this.#final);
    else this.#subscribers.add(subscription);
    return subscription;
  }

  /** Writes to the command's stdin (not for a PTY). */
  async writeStdin(data: Uint8Array): Promise<void> {
    if (this.isPty)
      throw new ConnectError('internal', `error writing to stdin: process ${this.pid} runs on a terminal: send its input as pty`);
    if (!this.#stdinOpen)
      throw new ConnectError(
        'internal',
        `error writing to stdin: the stdin of process ${this.pid} was not requested at start or is closed`,
      );
    await this.#stdin.write(data).catch((error: unknown) => {
      throw new ConnectError('internal', `error writing to stdin of process ${this.pid}: ${describe(error)}`);
    });
  }

  /** Types on the command's terminal (only for a PTY). */
  async writePty(data: Uint8Array): Promise<void> {
    if (!this.isPty)
      throw new ConnectError('internal', `error writing to tty: process ${this.pid} has no terminal: send its input as stdin`);
    await this.#stdin.write(data).catch((error: unknown) => {
      throw new ConnectError('internal', `error writing to the terminal of process ${this.pid}: ${describe(error)}`);
    });
  }

  /** EOF on stdin. Idempotent; a PTY has no stdin to close (type Ctrl-D instead). */
  async closeStdin(): Promise<void> {
    if (this.isPty)
      throw new ConnectError(
        'unknown',
        `error closing stdin: process ${this.pid} runs on a terminal: send Ctrl-D (0x04) as pty input instead`,
      );
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    await this.#stdin.close().catch(() => undefined);
  }

  /** Resizes the terminal. */
  async resize(size: { cols: number; rows: number }): Promise<void> {
    if (!this.local.resize) throw new ConnectError('internal', `error resizing tty: process ${this.pid} has no terminal`);
    await this.local.resize(size).catch((error: unknown) => {
      throw new ConnectError(
        SandboxInvalidArgumentError.isInstance(error) ? 'invalid_argument' : 'internal',
        `error resizing tty: ${describe(error)}`,
      );
    });
  }

  /**
   * Sends `signal` to this pid only (as envd does; its children are not signalled), through a
   * `kill` inside the sandbox. SIGTERM and SIGKILL stop the output from being forwarded.
   */
  async signal(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    this.#outputCut = true;
    // The strongest signal sent is the one that ends it.
    this.#signalSent = signal === 'SIGKILL' ? signal : (this.#signalSent ?? signal);
    if (this.#final) return;
    const killer = await this.sandbox.local
      .run(['/bin/sh', '-c', 'kill -s "$1" "$2"', 'e2b-kill', signal.slice(3), String(this.pid)])
      .catch((error: unknown) => {
        if (SandboxNotFoundError.isInstance(error)) return undefined;
        throw new ConnectError('internal', `error sending signal: ${describe(error)}`);
      });
    // The process may have ended on its own meanwhile: then there is nothing to signal.
    if (killer && killer.exitCode !== 0 && !this.#final) {
      throw new ConnectError('internal', `error sending signal: ${killer.stderr.trim() || `kill exited ${killer.exitCode}`}`);
    }
  }

  #run(
    outputs: ReadonlyArray<{ kind: OutputKind; reader: ReadableStreamDefaultReader<Uint8Array> }>,
    reportOn: { kind: OutputKind },
    rest: Uint8Array,
    timeoutMs: number | undefined,
  ): void {
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.#timeout = setTimeout(() => void this.signal('SIGKILL').catch(() => undefined), Math.min(timeoutMs, 2 ** 31 - 1));
    }
    const exit = this.local.wait();
    const pumps = outputs.map(({ kind, reader }) => this.#pump(kind, reader, kind === reportOn.kind ? rest : new Uint8Array(0), exit));
    void (async () => {
      let final: SubscriberEvent;
      try {
        const status = await exit;
        await Promise.all(pumps);
        final = { type: 'end', end: endEvent(this.#exitOf(status)) };
      } catch {
        for (const { reader } of outputs) void reader.cancel().catch(() => undefined);
        final = {
          type: 'gone',
          error: new ConnectError('unavailable', `The sandbox ${this.sandbox.id} was killed or reached its end of life`),
        };
      }
      clearTimeout(this.#timeout);
      this.#final = final;
      processTable(this.sandbox).remove(this);
      for (const subscription of this.#subscribers) subscription.finish(final);
      this.#subscribers.clear();
    })();
  }

  /** How the command ended, as envd saw it: a signal envd sent is reported as one even from a terminal. */
  #exitOf(status: { exitCode: number; signal: string | undefined }): { code: number } | { signal: string } {
    if (status.signal !== undefined) return { signal: status.signal };
    // Under the terminal (`script`) a signalled command comes out as 128 + n.
    if (this.isPty && this.#signalSent && status.exitCode === 128 + (this.#signalSent === 'SIGKILL' ? 9 : 15))
      return { signal: this.#signalSent };
    return { code: status.exitCode };
  }

  async #pump(kind: OutputKind, reader: ReadableStreamDefaultReader<Uint8Array>, first: Uint8Array, exit: Promise<unknown>): Promise<void> {
    const limit = kind === 'pty' ? ptyChunkBytes : pipeChunkBytes;
    await this.#deliver(kind, first, limit);
    const exited = exit.then(
      () => 'exited' as const,
      () => 'exited' as const,
    );
    let drainUntil: number | undefined;
    const quietFor = (deadline: number) => Math.min(drainQuietMs, Math.max(0, deadline - Date.now()));
    for (;;) {
      const read = reader.read().catch(() => ({ done: true, value: undefined }) as const);
      let next: Awaited<typeof read> | 'exited' | 'quiet';
      if (drainUntil === undefined) {
        next = await Promise.race([read, exited]);
        // A read pending when the command exits is kept; from then on each read gets a quiet period.
        if (next === 'exited') {
          drainUntil = Date.now() + drainLimitMs;
          next = await raceQuiet(read, quietFor(drainUntil));
        }
      } else next = await raceQuiet(read, quietFor(drainUntil));
      if (next === 'quiet' || next.done || !next.value) {
        // Closing our end, as envd does once the command is gone (a background child holding it gets SIGPIPE).
        void reader.cancel().catch(() => undefined);
        return;
      }
      await this.#deliver(kind, next.value, limit);
    }
  }

  async #deliver(kind: OutputKind, data: Uint8Array, limit: number): Promise<void> {
    for (let offset = 0; offset < data.byteLength; offset += limit) {
      if (this.#outputCut || this.#subscribers.size === 0) return;
      const event: SubscriberEvent = { type: 'data', kind, data: data.subarray(offset, offset + limit) };
      await Promise.all([...this.#subscribers].map((subscription) => subscription.push(event)));
    }
  }
}

/** A pending read against a quiet period; the read is left to its reader when the period wins. */
function raceQuiet<T>(read: Promise<T>, ms: number): Promise<T | 'quiet'> {
  let timer: NodeJS.Timeout | undefined;
  const quiet = new Promise<'quiet'>((resolve) => (timer = setTimeout(() => resolve('quiet'), ms)));
  return Promise.race([read, quiet]).finally(() => clearTimeout(timer));
}

/** The running processes of one sandbox by pid. */
export class ProcessTable {
  readonly #byPid = new Map<number, EnvdProcess>();

  add(process: EnvdProcess): void {
    this.#byPid.set(process.pid, process);
  }

  remove(process: EnvdProcess): void {
    if (this.#byPid.get(process.pid) === process) this.#byPid.delete(process.pid);
  }

  list(): EnvdProcess[] {
    return [...this.#byPid.values()];
  }

  /** The process a selector names; `not_found` as envd words it. */
  find(selector: ProcessSelector): EnvdProcess {
    if ('pid' in selector) {
      const found = this.#byPid.get(selector.pid);
      if (!found) throw new ConnectError('not_found', `process with pid ${selector.pid} not found`);
      return found;
    }
    const found = this.list().find((process) => process.tag === selector.tag);
    if (!found) throw new ConnectError('not_found', `process with tag ${selector.tag} not found`);
    return found;
  }
}

/** The table of `sandbox`, made on first use. */
export function processTable(sandbox: E2bSandbox): ProcessTable {
  let table = sandbox.data.extra.get(extraKey) as ProcessTable | undefined;
  if (!table) {
    table = new ProcessTable();
    sandbox.data.extra.set(extraKey, table);
  }
  return table;
}

function launchError(error: unknown, sandbox: E2bSandbox): ConnectError {
  if (SandboxInvalidArgumentError.isInstance(error)) return new ConnectError('invalid_argument', error.message);
  if (SandboxNotFoundError.isInstance(error)) return new ConnectError('unavailable', `The sandbox ${sandbox.id} is not running anymore`);
  return new ConnectError('internal', `error starting process: ${describe(error)}`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
