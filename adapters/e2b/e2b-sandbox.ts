import type { CommandHandle, Sandbox as E2bSdkSandbox, SandboxApiOpts, ConnectionOpts } from 'e2b';
import { z } from 'zod';
import {
  PumpedOutput,
  startExecEntrypoint,
  ProcessOutcome,
  SandboxInvalidArgumentError,
  SandboxError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  checkSandboxPath,
  defineFiles,
  entrypointStdio,
  killMarkedTreeArgv,
  networkSchema,
  parseExecCall,
  parseOptions,
  parseRunCall,
  parseTags,
  providerCall,
  raceWithSignal,
  readStartMarker,
  runViaExec,
  watchOptionsSchema,
  wrapArgv,
  type Command,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
  type FileWatch,
  type NetworkPolicy,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxSnapshotRef,
  type SandboxStatus,
  type SandboxTags,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { mapE2bError, mapE2bNetworkUpdateError } from './e2b-errors.js';
import { E2bFiles, startE2bWatch } from './e2b-files.js';
import {
  e2bCapabilities,
  e2bMaxTimeoutMs,
  e2bPtyLine,
  planE2bExec,
  planE2bNetworkUpdate,
  planE2bTimeout,
  planE2bTunnel,
} from './e2b-options.js';
import { boundTransport } from './e2b-transport.js';
import { E2bSandboxProcess, forgetHandleOutput, resizeE2bTerminal, terminalStartError, textBytes } from './e2b-process.js';

const provider = 'e2b';

/**
 * Where `setTags` keeps the tags: E2B's metadata is set at create and has no update call, so
 * replaced tags live in this file inside the sandbox, stamped with the sandbox's id (a snapshot
 * carries the file to sandboxes made from it, which ignore a stamp that is not theirs).
 */
export const e2bTagsFile = '/tmp/.sandport-tags.json';

/** What the provider hands a sandbox: the SDK class and connection options for its static calls. */
export interface E2bSandboxInit {
  /** The SDK sandbox; `undefined` for a sandbox found paused (connected at `resume`). */
  sdk: E2bSdkSandbox | undefined;
  sandboxId: string;
  /** The SDK's `Sandbox` class, for `connect` (resume) and the static calls of a paused sandbox. */
  SandboxClass: typeof E2bSdkSandbox;
  connection: ConnectionOpts;
  name: string | undefined;
  /** Tags from E2B's metadata (create-time tags, or what `list` saw). */
  metadataTags: SandboxTags;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** Declared ports (`tunnels()`). */
  ports: number[];
  tunnelScheme: 'https' | 'http';
  workdir: string | undefined;
  /** Milliseconds left of the lifetime, when known; the local clock ends the sandbox then. */
  lifetimeMs: number | undefined;
  /** The sandbox was found paused. */
  paused: boolean;
  /** False for a wrapped SDK sandbox: the caller keeps its lifecycle, terminate only detaches. */
  ownsLifecycle: boolean;
}

/** An E2B sandbox behind the neutral contract. `native` is the SDK's object. */
export interface E2bSandbox extends Sandbox {
  /** The `e2b` SDK's `Sandbox` (throws `SandboxPausedError` for a sandbox found paused, until `resume`). */
  readonly native: E2bSdkSandbox;
  /** E2B's traffic token, for the `e2b-traffic-access-token` header of a sandbox whose traffic is not public. */
  readonly trafficAccessToken: string | undefined;
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.updateNetwork`: E2B's `updateNetwork` (`PUT /sandboxes/:id/network`), which
   * replaces every egress rule; works while paused. `'allow'` opens all egress. A 501 from the
   * service (a change it does not make) is `SandboxCapabilityUnsupportedError` (`network.update`).
   */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
  pause(options?: SignalOptions): Promise<void>;
  resume(options?: SignalOptions): Promise<void>;
}

export function createE2bSandbox(init: E2bSandboxInit): E2bSandboxImpl {
  return new E2bSandboxImpl(init);
}

/** The policy of `updateNetwork`, wrapped so that an issue is named `network.<field>`. */
const networkUpdateSchema = z.object({ network: networkSchema });

/** How often `wait()` asks E2B whether the sandbox still exists. */
const waitPollMs = 1000;

export class E2bSandboxImpl implements E2bSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly #init: E2bSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  #sdk: E2bSdkSandbox | undefined;
  #detached = false;
  #entrypoint: EntrypointStdio | undefined;
  /** Tags set while paused: written into the sandbox at resume. */
  #pendingTags: SandboxTags | undefined;
  /** E2B reported the sandbox gone: its end needs no kill. */
  #goneOnE2b = false;
  #resuming = false;

  constructor(init: E2bSandboxInit) {
    this.#init = init;
    this.#sdk = init.sdk ? boundTransport(init.sdk) : undefined;
    this.id = init.sandboxId;
    this.name = init.name;
    this.warnings = init.warnings;
    this.#lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: this.id,
      events: init.events,
      teardown: async (status) => {
        // E2B ends the sandbox at its own timeout; any other end is ours to make, even a paused sandbox.
        if (!init.ownsLifecycle || this.#detached || this.#goneOnE2b) return;
        if (status.reason === 'lifetime-timeout') return void this.#kill().catch(() => undefined);
        await this.#kill();
      },
    });
    if (init.paused) this.#lifecycle.adoptPaused(init.lifetimeMs);
    else if (init.lifetimeMs !== undefined) this.#lifecycle.armLifetime(Math.max(1, init.lifetimeMs));
    const native = new E2bFiles(
      () => this.#native(),
      (error, operation, path) => this.#mapError(error, operation, path),
      (argv, options) => this.run(argv, options),
    );
    const files = defineFiles({ provider, native, lifecycle: this.#lifecycle });
    if (e2bCapabilities.files.watch) files.watch = (path, options) => this.#watch(path, options, native);
    this.files = files;
  }

  get native(): E2bSdkSandbox {
    return this.#native();
  }

  get trafficAccessToken(): string | undefined {
    return this.#sdk?.trafficAccessToken;
  }

  #native(): E2bSdkSandbox {
    if (!this.#sdk) throw this.#lifecycle.pausedError();
    return this.#sdk;
  }

  get stdout(): ReadableStream<Uint8Array> {
    return this.#entrypointStdio().stdout;
  }

  get stderr(): ReadableStream<Uint8Array> {
    return this.#entrypointStdio().stderr;
  }

  get stdin(): WritableStream<Uint8Array> {
    return this.#entrypointStdio().stdin;
  }

  #entrypointStdio(): EntrypointStdio {
    this.#entrypoint ??= entrypointStdio(undefined, { provider, sandboxId: this.id, events: this.#init.events });
    return this.#entrypoint;
  }

  /**
   * Starts the create `command` as a background command (E2B has no per-sandbox entrypoint): its
   * stdio is the sandbox's, and its exit ends the sandbox (`entrypoint-exited`). Throws like
   * `exec` (a missing program is `SandboxInvalidArgumentError` naming `command`).
   */
  async startEntrypoint(command: Command, signal: AbortSignal | undefined): Promise<void> {
    const process = await startExecEntrypoint((starting) => this.#exec(command, { signal: starting }, false), {
      signal,
      lifecycle: this.#lifecycle,
    });
    this.#entrypoint = entrypointStdio(process, { provider, sandboxId: this.id, events: this.#init.events });
  }

  async #watch(path: unknown, options: unknown, native: E2bFiles): Promise<FileWatch> {
    const target = checkSandboxPath(path, undefined, provider);
    const parsed = parseOptions(watchOptionsSchema, options, { provider, what: 'watch options' });
    parsed.signal?.throwIfAborted();
    this.#assertRunning();
    this.#lifecycle.touch();
    const info = await raceWithSignal(native.stat(target), { signal: parsed.signal, operation: 'files.watch', provider });
    const watch = await startE2bWatch({
      sdk: this.#native(),
      path: target,
      directory: info.type === 'directory',
      recursive: parsed.recursive ?? false,
      signal: parsed.signal,
      mapError: (error, operation, errorPath) => this.#mapError(error, operation, errorPath),
      isRunning: () => this.#lifecycle.isRunning() && !this.#detached,
    });
    // The sandbox's end is the watch's end (envd's stream may not say so before the kill lands).
    this.#lifecycle.track({ sandboxEnded: () => void watch.close() });
    return watch;
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options, false);
  }

  /** `stdinNull`: the command gets an empty stdin (a `run` without input), so stdin is not even requested. */
  async #exec(command: unknown, options: ExecOptions, stdinNull: boolean): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, e2bCapabilities);
    this.#assertRunning();
    const mapError = (error: unknown, operation: string) => this.#mapError(error, operation);
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider,
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.#lifecycle,
      // E2B's own command timeout is disabled (timeoutMs: 0): the kit times the command and kills its tree.
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: async (signal) => {
        // A killed command's last output must not wait for a reader: the SDK reads its exit after it.
        if (signal === 'SIGKILL') for (const output of outputs) output.release();
        await this.#killTree(outcome.execId, signal);
      },
    });
    const outputs: PumpedOutput[] = [];
    const cwd = call.options.cwd ?? this.#init.workdir;
    const { pty } = call.options;
    const starting =
      pty === undefined
        ? this.#startPipes(outcome, outputs, call.argv, { cwd, env: call.options.env, stdinNull }, mapError)
        : this.#startTerminal(outcome, outputs, call.argv, { cwd, env: call.options.env, size: pty }, mapError);
    const process = await outcome.startup(starting);
    outcome.started();
    return process;
  }

  async #startPipes(
    outcome: ProcessOutcome,
    outputs: PumpedOutput[],
    argv: string[],
    options: { cwd: string | undefined; env: Record<string, string> | undefined; stdinNull: boolean },
    mapError: (error: unknown, operation: string) => ReturnType<typeof mapE2bError>,
  ): Promise<E2bSandboxProcess> {
    const sdk = this.#native();
    const closedPipe = () => void outcome.kill('SIGPIPE').catch(() => undefined);
    const stdout = new PumpedOutput({ onKeepsWriting: closedPipe });
    const stderr = new PumpedOutput({ onKeepsWriting: closedPipe });
    outputs.push(stdout, stderr);
    const plan = planE2bExec(wrapArgv(outcome.execId, argv, { cwd: options.cwd, stdinNull: options.stdinNull }), {
      env: options.env,
      stdinNull: options.stdinNull,
    });
    let handle: CommandHandle | undefined;
    const started: CommandHandle = await sdk.commands
      .run(plan.cmd, {
        ...plan.opts,
        onStdout: (text) => {
          forgetHandleOutput(handle);
          return stdout.push(textBytes(text));
        },
        onStderr: (text) => {
          forgetHandleOutput(handle);
          return stderr.push(textBytes(text));
        },
      })
      .catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
    handle = started;
    const { report, stdout: rest } = await readStartMarker(stdout.stream).catch((error: unknown) =>
      Promise.reject(mapError(error, 'exec')),
    );
    if (report !== 'ok') {
      void stderr.stream.cancel().catch(() => undefined);
      void rest.cancel().catch(() => undefined);
      await started.wait().catch(() => undefined);
      throw this.#startError(report, argv);
    }
    return new E2bSandboxProcess({
      handle: started,
      stdout: rest,
      stderr: stderr.stream,
      outcome,
      mapError,
      send: (chunk) => sdk.commands.sendStdin(started.pid, chunk),
      close: () => sdk.commands.closeStdin(started.pid),
      stdinNull: options.stdinNull,
      outputs: [stdout, stderr],
    });
  }

  /**
   * A command on E2B's terminal (`sandbox.pty`): its interactive bash is handed the wrapped
   * command ({@link e2bPtyLine}); what the shell prints before the wrapper's report (prompt,
   * echo) is dropped; the report names the terminal. Resize is the SDK's; closing stdin types
   * Ctrl-D, the terminal's end of input, as on every adapter.
   */
  async #startTerminal(
    outcome: ProcessOutcome,
    outputs: PumpedOutput[],
    argv: string[],
    options: { cwd: string | undefined; env: Record<string, string> | undefined; size: { cols: number; rows: number } },
    mapError: (error: unknown, operation: string) => ReturnType<typeof mapE2bError>,
  ): Promise<E2bSandboxProcess> {
    const sdk = this.#native();
    const output = new PumpedOutput({ onKeepsWriting: () => void outcome.kill('SIGPIPE').catch(() => undefined) });
    outputs.push(output);
    const line = e2bPtyLine(wrapArgv(outcome.execId, argv, { cwd: options.cwd, pty: true }), options.env);
    const handle = await sdk.pty
      .create({
        cols: options.size.cols,
        rows: options.size.rows,
        envs: { ...options.env, ...line.envs },
        timeoutMs: 0,
        onData: (data) => output.push(data),
      })
      .catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
    await sdk.pty.sendInput(handle.pid, textBytes(line.input)).catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
    const { report, stdout } = await readStartMarker(dropUntilReport(output.stream)).catch((error: unknown) =>
      Promise.reject(mapError(error, 'exec')),
    );
    if (report !== 'ok') {
      void stdout.cancel().catch(() => undefined);
      await sdk.pty.kill(handle.pid).catch(() => undefined);
      throw report === 'none' ? terminalStartError(this.id) : this.#startError(report, argv);
    }
    const started = new E2bSandboxProcess({
      handle,
      stdout,
      stderr: new ReadableStream<Uint8Array>({ start: (controller) => controller.close() }),
      outcome,
      mapError,
      send: (chunk) => sdk.pty.sendInput(handle.pid, chunk),
      close: () => sdk.pty.sendInput(handle.pid, new Uint8Array([0x04])),
      stdinNull: false,
      outputs: [output],
    });
    started.resize = (size, resizeOptions = {}) =>
      resizeE2bTerminal(() => this.#native(), handle.pid, outcome, size, resizeOptions, mapError);
    return started;
  }

  #startError(report: string, argv: string[]): Error {
    if (report === 'cwd')
      return new SandboxInvalidArgumentError({
        message: `The working directory does not exist in sandbox ${this.id}`,
        argument: 'cwd',
        provider,
      });
    if (report === 'command')
      return new SandboxInvalidArgumentError({
        message: `Command not found in sandbox ${this.id}: ${argv[0]}`,
        argument: 'command',
        provider,
      });
    return new SandboxProviderError({
      message: `The command did not start in sandbox ${this.id} (does the template have /bin/sh and bash?)`,
      provider,
    });
  }

  /** Runs the kit's marker killer in the sandbox: E2B kills one pid, with SIGKILL only. */
  async #killTree(execId: string, signal: string): Promise<void> {
    const sdk = this.#native();
    const plan = planE2bExec(killMarkedTreeArgv(execId, signal), { stdinNull: true });
    try {
      const killer = await sdk.commands.run(plan.cmd, { ...plan.opts });
      await killer.wait().catch((error: unknown) => {
        if ((error as { name?: string }).name !== 'CommandExitError') throw error;
      });
    } catch (error) {
      const mapped = this.#mapError(error, 'kill');
      // A sandbox that is gone has killed the command already.
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
    }
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, e2bCapabilities);
    return runViaExec(
      (c, o) => this.#exec(c, o, call.options.stdin === undefined && o.pty === undefined),
      call.command,
      call.options,
      provider,
    );
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.#assertRunning();
    const sdk = this.#native();
    return Object.fromEntries(this.#init.ports.map((port) => [port, planE2bTunnel(port, sdk.getHost(port), this.#init.tunnelScheme)]));
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const info = await this.#call('snapshot', () => this.#native().createSnapshot({ signal: options.signal }), options);
    return { type: 'snapshot', provider, id: info.snapshotId };
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    options.signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    if (this.#lifecycle.paused) {
      this.#pendingTags = { ...checked };
      return;
    }
    const body = JSON.stringify({ sandboxId: this.id, tags: checked });
    // Writing the same tags twice gives the same file: safe to retry.
    await this.#call('setTags', () => this.#native().files.write(e2bTagsFile, body, { signal: options.signal }), options, true, false);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    if (this.#pendingTags) return { ...this.#pendingTags };
    if (this.#lifecycle.paused || !this.#sdk) return { ...this.#init.metadataTags };
    return this.#call(
      'getTags',
      () => readTagsFile(this.#native(), this.id, this.#init.metadataTags, options.signal),
      options,
      true,
      false,
    );
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > e2bMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs must be a positive integer of at most ${e2bMaxTimeoutMs} ms`,
        argument: 'timeoutMs',
        provider,
      });
    }
    const plan = planE2bTimeout(timeoutMs);
    if (plan.warning) this.#init.events.emit('warning', { provider, sandboxId: this.id, warning: plan.warning });
    await this.#call('extendTimeout', () => this.#native().setTimeout(plan.timeoutMs, { signal: options.signal }), options, true);
    this.#lifecycle.armLifetime(plan.timeoutMs);
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const { network } = parseOptions(networkUpdateSchema, { network: policy }, { provider, what: 'updateNetwork policy' });
    options.signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    const body = planE2bNetworkUpdate(network);
    // The static call works on a paused sandbox too; the update replaces every rule, so a retry is safe.
    const update = () =>
      this.#init.SandboxClass.updateNetwork(this.id, body, { ...(this.#init.connection as SandboxApiOpts), signal: options.signal });
    await this.#call('updateNetwork', update, options, true, false).catch((error: unknown) =>
      Promise.reject(SandboxError.isInstance(error) ? mapE2bNetworkUpdateError(error) : error),
    );
  }

  async pause(options: SignalOptions = {}): Promise<void> {
    if (this.#detached) throw this.#detachedError();
    await this.#lifecycle.pause(async () => {
      await this.#native()
        .pause({ signal: options.signal })
        .catch((error: unknown) => Promise.reject(this.#mapError(error, 'pause')));
    }, options);
  }

  async resume(options: SignalOptions = {}): Promise<void> {
    if (this.#detached) throw this.#detachedError();
    this.#resuming = true;
    await this.#lifecycle
      .resume(async () => {
        // The SDK's connect resumes a paused sandbox; the lifetime left is set again (E2B restarts it at resume).
        const remaining = this.#lifecycle.remainingLifetimeMs;
        const connectOptions = {
          ...this.#init.connection,
          signal: options.signal,
          ...(remaining === undefined ? {} : { timeoutMs: Math.max(1000, remaining) }),
        };
        try {
          this.#sdk = boundTransport(
            this.#sdk ? await this.#sdk.connect(connectOptions) : await this.#init.SandboxClass.connect(this.id, connectOptions),
          );
        } catch (error) {
          throw this.#mapError(error, 'resume');
        }
      }, options)
      .finally(() => (this.#resuming = false));
    if (this.#pendingTags) {
      const tags = this.#pendingTags;
      await this.setTags(tags, options);
      this.#pendingTags = undefined;
    }
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.poll();
    return (await this.#observe(options.signal)) ?? this.#lifecycle.status;
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    // E2B ends sandboxes on its side (its timeout, a kill from elsewhere): ask now and then.
    return this.#lifecycle.waitObserving(options, (signal) => this.#observe(signal), { intervalMs: waitPollMs, askAtOnce: true });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning() || this.#detached)
      return this.#lifecycle.ended ? undefined : this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
    if (!this.#init.ownsLifecycle) {
      this.#detached = true;
      return this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
    }
    await raceWithSignal(this.#lifecycle.end({ state: 'terminated', reason: 'terminated' }), {
      signal: options.signal,
      operation: 'terminate',
      provider,
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** Kills the E2B sandbox (paused or not); a sandbox already gone is fine (terminate is idempotent). */
  async #kill(): Promise<void> {
    try {
      await this.#init.SandboxClass.kill(this.id, this.#init.connection as SandboxApiOpts);
    } catch (error) {
      const mapped = this.#mapError(error, 'terminate');
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
    }
  }

  #detachedError(): SandboxNotFoundError {
    return new SandboxNotFoundError({ message: `Sandbox ${this.id} was detached from (the caller owns it)`, sandboxId: this.id, provider });
  }

  #assertRunning(): void {
    if (this.#detached) throw this.#detachedError();
    this.#lifecycle.assertRunning();
  }

  #mapError(error: unknown, operation: string, path?: string) {
    const mapped = mapE2bError(error, { operation, sandboxId: this.id, path });
    if (SandboxNotFoundError.isInstance(mapped) && path === undefined && this.#lifecycle.isRunning() && !this.#detached)
      void this.#observe().catch(() => undefined);
    return mapped;
  }

  #call<T>(operation: string, body: () => Promise<T>, options: SignalOptions = {}, idempotent = false, needsRunning = true): Promise<T> {
    if (this.#detached) return Promise.reject(this.#detachedError());
    if (needsRunning) {
      try {
        this.#lifecycle.assertRunning();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return providerCall({ provider, events: this.#init.events, mapError: (error, op) => this.#mapError(error, op) }, operation, body, {
      idempotent,
      signal: options.signal,
    }).catch((error: unknown) => {
      if (!this.#lifecycle.isRunning()) throw this.#lifecycle.notFound();
      throw error;
    });
  }

  /** Asks E2B about the sandbox: gone ends it here (once), paused elsewhere is adopted. */
  async #observe(signal?: AbortSignal): Promise<SandboxStatus | undefined> {
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.ended;
    let state: 'running' | 'paused' | 'gone';
    try {
      const info = await raceWithSignal(
        this.#init.SandboxClass.getInfo(this.id, { ...(this.#init.connection as SandboxApiOpts), signal }),
        { signal, operation: 'poll', provider },
      );
      state = info.state === 'paused' ? 'paused' : 'running';
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const mapped = mapE2bError(error, { operation: 'poll', sandboxId: this.id });
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
      state = 'gone';
    }
    if (state === 'paused') {
      this.#lifecycle.adoptPaused();
      return { state: 'paused' };
    }
    if (state === 'running') {
      // Resumed elsewhere (another process, another object): running here too.
      if (this.#lifecycle.paused && !this.#resuming) await this.resume({ signal }).catch(() => undefined);
      return undefined;
    }
    const deadline = this.#lifecycle.deadline;
    const reason = deadline !== undefined && Date.now() >= deadline - 2000 ? 'lifetime-timeout' : 'crashed';
    // Gone on E2B's side: nothing to tear down.
    this.#goneOnE2b = true;
    await this.#lifecycle.end({ state: 'terminated', reason }).catch(() => undefined);
    return this.#lifecycle.ended;
  }
}

/** Reads the tags file (see {@link e2bTagsFile}); the metadata's tags when there is none of this sandbox's. */
export async function readTagsFile(
  sdk: E2bSdkSandbox,
  sandboxId: string,
  fallback: SandboxTags,
  signal?: AbortSignal,
): Promise<SandboxTags> {
  let text: string;
  try {
    text = await sdk.files.read(e2bTagsFile, { signal });
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'NotFoundError' || name === 'FileNotFoundError') return { ...fallback };
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as { sandboxId?: unknown; tags?: unknown };
    if (parsed.sandboxId !== sandboxId || typeof parsed.tags !== 'object' || parsed.tags === null) return { ...fallback };
    return { ...(parsed.tags as SandboxTags) };
  } catch {
    return { ...fallback };
  }
}

/**
 * Drops what a terminal printed before the wrapper's report (the interactive shell's prompt and
 * the echo of the typed line): the report is the first NUL byte of the output.
 */
function dropUntilReport(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let found = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          const next = await reader.read();
          if (next.done) return controller.close();
          if (found) return controller.enqueue(next.value);
          const at = next.value.indexOf(0);
          if (at < 0) continue;
          found = true;
          return controller.enqueue(next.value.subarray(at));
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
