import type { Daytona, Sandbox as DaytonaSdkSandbox } from '@daytonaio/sdk';
import { z } from 'zod';
import {
  startExecEntrypoint,
  ProcessOutcome,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  defineFiles,
  entrypointStdio,
  execMarkerVariable,
  killMarkedTreeArgv,
  networkSchema,
  parseExecCall,
  parseOptions,
  parseRunCall,
  parseTags,
  checkPtySize,
  providerCall,
  ptyEnvironment,
  raceWithSignal,
  resizeArgv,
  readStartMarker,
  runViaExec,
  watchViaExec,
  wrapArgv,
  wrapPtyArgv,
  type Command,
  type PtySize,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
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
import { mapDaytonaError } from './daytona-errors.js';
import { DaytonaFiles } from './daytona-files.js';
import {
  daytonaCapabilities,
  daytonaCommandLine,
  daytonaMaxTimeoutMs,
  daytonaResumeTtlMinutes,
  daytonaStdinEofLine,
  daytonaStdinLine,
  heldLifetimeFromDaytonaLabels,
  planDaytonaNetwork,
  planDaytonaPauseLabels,
  planDaytonaResumeLabels,
  planDaytonaSetLabels,
  planDaytonaSessionCommand,
  planDaytonaTtl,
  planDaytonaTunnel,
  tagsFromDaytonaLabels,
} from './daytona-options.js';
import { DaytonaSandboxProcess, openDaytonaLogs, type DaytonaToolboxEndpoint } from './daytona-process.js';

const provider = 'daytona';

/** What the provider hands a sandbox. */
export interface DaytonaSandboxInit {
  sdk: DaytonaSdkSandbox;
  client: Daytona;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** Declared ports (`tunnels()`). */
  ports: number[];
  workdir: string | undefined;
  /** Milliseconds left of the lifetime, when known; the local clock ends the sandbox then (Daytona's TTL deletes it too). */
  lifetimeMs: number | undefined;
  /** The create's `idleTimeoutMs`: the local clock ends the sandbox after it (Daytona's auto-stop, counting API activity, is the backstop). */
  idleTimeoutMs: number | undefined;
  /** False for a wrapped SDK sandbox: the caller keeps its lifecycle, terminate only detaches. */
  ownsLifecycle: boolean;
  /** Daytona reported the sandbox paused (a lookup): it starts paused here, its held lifetime (labels) kept for the resume. */
  paused?: boolean;
}

/** A Daytona sandbox behind the neutral contract. `native` is the SDK's object. */
export interface DaytonaSandbox extends Sandbox {
  /** The `@daytonaio/sdk` `Sandbox`, for what the contract does not cover (git, LSP, code interpreter, stop/start). */
  readonly native: DaytonaSdkSandbox;
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /** Sets Daytona's TTL to `timeoutMs` from now (whole minutes, rounded up with a warning). */
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /** See `Sandbox.updateNetwork`: Daytona's `updateNetworkSettings`, every setting spelt out. */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.pause`: Daytona's pause (processes frozen, memory kept; not its stop, which ends
   * the processes). Daytona's TTL would run on while paused: the lifetime left is written to the
   * label `sandport.held-lifetime-ms` and the TTL cleared first, so a resume in any process gives
   * it back. The idle clock is the adapter's and stands still. Idempotent; throws
   * `SandboxNotFoundError` once the sandbox has ended, rejects with `signal.reason` on abort.
   */
  pause(options?: SignalOptions): Promise<void>;
  /** See `Sandbox.resume`: Daytona's `start` (which resumes a paused sandbox), then the held lifetime is the TTL again. Idempotent. */
  resume(options?: SignalOptions): Promise<void>;
}

export function createDaytonaSandbox(init: DaytonaSandboxInit): DaytonaSandboxImpl {
  return new DaytonaSandboxImpl(init);
}

const networkUpdateSchema = z.object({ network: networkSchema });

/** How often `wait()` asks Daytona whether the sandbox still exists. */
const waitPollMs = 1000;
/** How long a tunnel's signed preview URL stays valid at most: Daytona's signed URLs are meant to be short-lived. */
const maxPreviewSeconds = 24 * 60 * 60;

export class DaytonaSandboxImpl implements DaytonaSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly #init: DaytonaSandboxInit;
  readonly #sdk: DaytonaSdkSandbox;
  readonly #lifecycle: SandboxLifecycle;
  #detached = false;
  #entrypoint: EntrypointStdio | undefined;
  #goneOnDaytona = false;
  /** A pause or resume of ours is under way: Daytona's state is then ours to change, not to adopt. */
  #transitioning = 0;
  /** Counts pauses and resumes begun: a state read from before one is stale. */
  #transitions = 0;

  constructor(init: DaytonaSandboxInit) {
    this.#init = init;
    this.#sdk = init.sdk;
    this.id = init.sdk.id;
    // Daytona names every sandbox; one created without a name is named its id.
    this.name = init.sdk.name && init.sdk.name !== init.sdk.id ? init.sdk.name : undefined;
    this.warnings = init.warnings;
    this.#lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: this.id,
      events: init.events,
      idleTimeoutMs: init.idleTimeoutMs,
      teardown: async () => {
        if (!init.ownsLifecycle || this.#detached || this.#goneOnDaytona) return;
        await this.#delete();
      },
    });
    if (init.paused) this.#lifecycle.adoptPaused(heldLifetimeFromDaytonaLabels(init.sdk.labels));
    else if (init.lifetimeMs !== undefined) this.#lifecycle.armLifetime(Math.max(1, init.lifetimeMs));
    const native = new DaytonaFiles(
      () => this.#sdk,
      (error, operation, path) => this.#mapError(error, operation, path),
    );
    // Daytona has no watch API: files.watch runs the kit's inotifywait watcher inside the sandbox.
    this.files = {
      ...defineFiles({ provider, native, fallback: this, lifecycle: this.#lifecycle }),
      watch: (path, options) => watchViaExec(this, path, options, { provider, lifecycle: this.#lifecycle }),
    };
  }

  get native(): DaytonaSdkSandbox {
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
   * Starts the create `command` as a session command: its stdio is the sandbox's, and its exit
   * ends the sandbox (`entrypoint-exited`). Throws like `exec`.
   */
  async startEntrypoint(command: Command, signal: AbortSignal | undefined): Promise<void> {
    const process = await startExecEntrypoint((starting) => this.#exec(command, { signal: starting }, false), {
      signal,
      lifecycle: this.#lifecycle,
    });
    this.#entrypoint = entrypointStdio(process, { provider, sandboxId: this.id, events: this.#init.events });
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options, false);
  }

  async #exec(command: unknown, options: ExecOptions, stdinNull: boolean): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, daytonaCapabilities);
    this.#assertRunning();
    const mapError = (error: unknown, operation: string) => this.#mapError(error, operation);
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider,
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.#lifecycle,
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: async (signal) => {
        // A killed command's last output must not wait for a reader: its logs end only once read.
        if (signal === 'SIGKILL') for (const release of releases) release();
        await this.#killTree(outcome.execId, signal);
      },
    });
    const releases: Array<() => void> = [];
    const cwd = call.options.cwd ?? this.#init.workdir;
    const { pty } = call.options;
    const process = await outcome.startup(
      this.#startSession(
        outcome,
        call.argv,
        { cwd, env: call.options.env, stdinNull: stdinNull && pty === undefined, pty },
        mapError,
        releases,
      ),
    );
    outcome.started();
    return process;
  }

  /** One session per command (Daytona's sessions run one shell each): created, run asynchronously, deleted once the command ended. */
  async #startSession(
    outcome: ProcessOutcome,
    argv: string[],
    options: { cwd: string | undefined; env: Record<string, string> | undefined; stdinNull: boolean; pty: PtySize | undefined },
    mapError: (error: unknown, operation: string) => ReturnType<typeof mapDaytonaError>,
    releases: Array<() => void>,
  ): Promise<DaytonaSandboxProcess> {
    const sdk = this.#sdk;
    const sessionId = `sandport-${outcome.execId}`;
    const { pty } = options;
    // A terminal is the kit's portable one (`script` in the sandbox) over the session's pipes. Its
    // outer shell waits for `script` rather than exec'ing the command, so it must carry the marker
    // from its start (its /proc environ, which the marker killer reads): a kill of the tree then
    // ends it by the signal itself, instead of by `script`'s exit code (which said 0 for SIGTERM).
    const wrapped =
      pty === undefined
        ? wrapArgv(outcome.execId, argv, { cwd: options.cwd, stdinNull: options.stdinNull })
        : [
            '/usr/bin/env',
            `${execMarkerVariable}=${outcome.execId}`,
            ...wrapPtyArgv(outcome.execId, argv, { size: pty, cwd: options.cwd }),
          ];
    const env = pty === undefined ? options.env : ptyEnvironment(options.env ?? {});
    const command = planDaytonaSessionCommand(wrapped, { env, stdinNull: options.stdinNull });
    await sdk.process.createSession(sessionId).catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
    const dropSession = () => void sdk.process.deleteSession(sessionId).catch(() => undefined);
    let commandId: string;
    try {
      const started = await sdk.process.executeSessionCommand(sessionId, { command, runAsync: true });
      if (!started.cmdId) throw new SandboxProviderError({ message: 'Daytona started the command without an id', provider });
      commandId = started.cmdId;
    } catch (error) {
      dropSession();
      throw mapError(error, 'exec');
    }
    let logs: Awaited<ReturnType<typeof openDaytonaLogs>>;
    try {
      logs = await openDaytonaLogs(this.#toolbox(), sessionId, commandId, () => void outcome.kill('SIGPIPE').catch(() => undefined));
    } catch (error) {
      dropSession();
      throw mapError(error, 'exec');
    }
    releases.push(logs.release);
    const exit = logs.ended.then(() => this.#exitCode(sessionId, commandId)).finally(dropSession);
    exit.catch(() => undefined);
    const { report, stdout, ptyPath } = await readStartMarker(logs.stdout).catch((error: unknown) =>
      Promise.reject(mapError(error, 'exec')),
    );
    if (report !== 'ok' || (pty !== undefined && ptyPath === undefined)) {
      void logs.stderr.cancel().catch(() => undefined);
      void stdout.cancel().catch(() => undefined);
      await exit.catch(() => undefined);
      throw this.#startError(report, argv);
    }
    const process = new DaytonaSandboxProcess({
      stdout,
      stderr: logs.stderr,
      outcome,
      mapError,
      stdinNull: options.stdinNull,
      send: (chunk) => sdk.process.sendSessionCommandInput(sessionId, commandId, daytonaStdinLine(chunk)),
      close: () => sdk.process.sendSessionCommandInput(sessionId, commandId, daytonaStdinEofLine),
      exit,
    });
    if (pty !== undefined && ptyPath !== undefined) {
      process.resize = async (size, resizeOptions = {}) => {
        const checked = checkPtySize(size, provider);
        resizeOptions.signal?.throwIfAborted();
        if (outcome.done) return;
        const resizing = sdk.process.executeCommand(daytonaCommandLine(resizeArgv(ptyPath, checked))).catch((error: unknown) => {
          if (!outcome.done) throw mapError(error, 'resize');
        });
        await raceWithSignal(resizing, { signal: resizeOptions.signal, operation: 'resize', provider });
      };
    }
    return process;
  }

  /** The exit code of an ended session command; the status may lag the end of its logs a little. */
  async #exitCode(sessionId: string, commandId: string): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const command = await this.#sdk.process.getSessionCommand(sessionId, commandId);
      if (typeof command.exitCode === 'number') return command.exitCode;
      if (attempt >= 200) throw new SandboxProviderError({ message: `Daytona reported no exit code for command ${commandId}`, provider });
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, 10 * (attempt + 1))));
    }
  }

  /** The toolbox URL and headers, as the SDK's own process client has them. */
  #toolbox(): DaytonaToolboxEndpoint {
    const config = (
      this.#sdk.process as unknown as { clientConfig?: { basePath?: string; baseOptions?: { headers?: Record<string, string> } } }
    ).clientConfig;
    const basePath = config?.basePath ?? `${this.#sdk.toolboxProxyUrl.replace(/\/$/, '')}/${this.id}`;
    return { basePath, headers: { ...config?.baseOptions?.headers } };
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
      message: `The command did not start in sandbox ${this.id} (does the image have /bin/sh?)`,
      provider,
    });
  }

  /** Runs the kit's marker killer in the sandbox: Daytona has no per-command kill. */
  async #killTree(execId: string, signal: string): Promise<void> {
    try {
      await this.#sdk.process.executeCommand(daytonaCommandLine(killMarkedTreeArgv(execId, signal)));
    } catch (error) {
      const mapped = this.#mapError(error, 'kill');
      // A sandbox that is gone has killed the command already.
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
    }
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, daytonaCapabilities);
    return runViaExec((c, o) => this.#exec(c, o, call.options.stdin === undefined), call.command, call.options, provider);
  }

  /**
   * Signed preview URLs of the declared ports (a plain `fetch` or WebSocket needs nothing else),
   * valid for the sandbox's remaining lifetime (at most a day; ask again after that).
   */
  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.#assertRunning();
    const remaining = this.#lifecycle.remainingLifetimeMs;
    const seconds = Math.max(60, Math.min(maxPreviewSeconds, Math.ceil((remaining ?? maxPreviewSeconds * 1000) / 1000)));
    const entries = await Promise.all(
      this.#init.ports.map(async (port) => {
        const preview = await this.#call('tunnels', () => this.#sdk.getSignedPreviewUrl(port, seconds), options, true);
        return [port, planDaytonaTunnel(port, preview.url)] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const name = `sandport-${this.id}-${Date.now().toString(36)}`;
    // The SDK waits 60 s by default; 0 waits as long as Daytona takes (the signal bounds it).
    await this.#call('snapshot', () => this.#sdk.createSnapshot(name, 0), options);
    return { type: 'snapshot', provider, id: name };
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    options.signal?.throwIfAborted();
    const labels = planDaytonaSetLabels(checked, this.#sdk.labels);
    // Daytona's labels call replaces them all: safe to retry. Works while paused.
    await this.#call('setTags', () => this.#sdk.setLabels(labels), options, true, true);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    await this.#call('getTags', () => this.#sdk.refreshData(), options, true, true);
    return tagsFromDaytonaLabels(this.#sdk.labels);
  }

  async pause(options: SignalOptions = {}): Promise<void> {
    if (this.#detached) throw this.#detachedError();
    await this.#transition(() =>
      this.#lifecycle.pause(async () => {
        // The lifecycle holds what was left of the lifetime from here on.
        const held = this.#lifecycle.remainingLifetimeMs;
        await this.#call('pause', () => this.#holdLifetime(held), options, true, true);
        try {
          // 0: wait as long as Daytona takes (the signal bounds it).
          await this.#call('pause', () => this.#sdk.pause(0), options, false, true);
        } catch (error) {
          // Still running: Daytona's TTL counts again from what was left.
          await this.#releaseLifetime(held).catch(() => undefined);
          throw error;
        }
      }, options),
    );
  }

  async resume(options: SignalOptions = {}): Promise<void> {
    if (this.#detached) throw this.#detachedError();
    await this.#transition(() =>
      this.#lifecycle.resume(async () => {
        // Daytona's start resumes a paused sandbox (and is a no-op on a started one).
        await this.#call('resume', () => this.#sdk.start(0), options, true, true);
        await this.#call('resume', () => this.#releaseLifetime(this.#lifecycle.remainingLifetimeMs), options, true, true);
      }, options),
    );
  }

  async #transition(body: () => Promise<void>): Promise<void> {
    this.#transitioning++;
    this.#transitions++;
    try {
      await body();
    } finally {
      this.#transitioning--;
    }
  }

  /** Before a pause: the lifetime left into the labels, Daytona's TTL cleared (it would run on while paused). */
  async #holdLifetime(remainingMs: number | undefined): Promise<void> {
    await this.#sdk.refreshData();
    await this.#sdk.setLabels(planDaytonaPauseLabels(this.#sdk.labels, remainingMs));
    if (remainingMs !== undefined) await this.#sdk.setTtl(0);
  }

  /** After a resume (or a failed pause): the held lifetime is Daytona's TTL again, and leaves the labels. */
  async #releaseLifetime(remainingMs: number | undefined): Promise<void> {
    if (remainingMs !== undefined) await this.#sdk.setTtl(daytonaResumeTtlMinutes(remainingMs));
    await this.#sdk.refreshData();
    if (heldLifetimeFromDaytonaLabels(this.#sdk.labels) !== undefined) await this.#sdk.setLabels(planDaytonaResumeLabels(this.#sdk.labels));
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > daytonaMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs must be a positive integer of at most ${daytonaMaxTimeoutMs} ms`,
        argument: 'timeoutMs',
        provider,
      });
    }
    const plan = planDaytonaTtl(timeoutMs);
    if (plan.warning) this.#init.events.emit('warning', { provider, sandboxId: this.id, warning: plan.warning });
    // setTtl re-anchors the deadline at now.
    await this.#call('extendTimeout', () => this.#sdk.setTtl(plan.ttlMinutes), options, true);
    this.#lifecycle.armLifetime(plan.ttlMinutes * 60_000);
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const { network } = parseOptions(networkUpdateSchema, { network: policy }, { provider, what: 'updateNetwork policy' });
    options.signal?.throwIfAborted();
    const settings = planDaytonaNetwork(network);
    await this.#call('updateNetwork', () => this.#sdk.updateNetworkSettings(settings), options, true).catch((error: unknown) => {
      // Daytona refuses a change it cannot make to this sandbox (400, or 501 from a service that
      // does not make it): the policy itself was valid.
      const status = (error as { statusCode?: number }).statusCode;
      if (SandboxInvalidArgumentError.isInstance(error) || (SandboxProviderError.isInstance(error) && status === 501))
        throw new SandboxCapabilityUnsupportedError({
          message: `Daytona cannot make this network change on sandbox ${this.id}: ${error.message}`,
          capability: 'network.update',
          provider,
          cause: error,
        });
      throw error;
    });
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.poll();
    return (await this.#observe(options.signal)) ?? this.#lifecycle.status;
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    // Daytona ends sandboxes on its side (TTL, auto-stop, a delete from elsewhere): ask now and then.
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

  /** Deletes the Daytona sandbox; one already gone is fine (terminate is idempotent). */
  async #delete(): Promise<void> {
    try {
      await this.#init.client.delete(this.#sdk, 0);
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
    const mapped = mapDaytonaError(error, { operation, sandboxId: this.id, path });
    if (SandboxNotFoundError.isInstance(mapped) && path === undefined && this.#lifecycle.isRunning() && !this.#detached)
      void this.#observe().catch(() => undefined);
    return mapped;
  }

  /** One provider call with retries and mapped errors; `whilePaused` lets it reach a paused sandbox (tags, pause, resume). */
  #call<T>(operation: string, body: () => Promise<T>, options: SignalOptions = {}, idempotent = false, whilePaused = false): Promise<T> {
    try {
      if (whilePaused) {
        if (this.#detached) throw this.#detachedError();
        this.#lifecycle.assertAlive();
      } else this.#assertRunning();
    } catch (error) {
      return Promise.reject(error);
    }
    return providerCall({ provider, events: this.#init.events, mapError: (error, op) => this.#mapError(error, op) }, operation, body, {
      idempotent,
      signal: options.signal,
    }).catch((error: unknown) => {
      if (!this.#lifecycle.isRunning()) throw this.#lifecycle.notFound();
      throw error;
    });
  }

  /**
   * Asks Daytona about the sandbox: gone (deleted, destroyed, stopped by auto-stop) ends it here,
   * once; paused or resumed by another process is adopted (unless a pause or resume of ours is under way).
   */
  async #observe(signal?: AbortSignal): Promise<SandboxStatus | undefined> {
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.ended;
    let gone: boolean;
    const transitions = this.#transitions;
    try {
      await raceWithSignal(this.#sdk.refreshData(), { signal, operation: 'poll', provider });
      const state = this.#sdk.state;
      gone = state === 'destroyed' || state === 'destroying' || state === 'stopped' || state === 'error' || state === 'archived';
      if (this.#transitioning === 0 && transitions === this.#transitions && this.#lifecycle.isRunning()) {
        if (state === 'paused' && !this.#lifecycle.paused) this.#lifecycle.adoptPaused(heldLifetimeFromDaytonaLabels(this.#sdk.labels));
        else if (state === 'started' && this.#lifecycle.paused) this.#lifecycle.adoptRunning();
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const mapped = mapDaytonaError(error, { operation: 'poll', sandboxId: this.id });
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
      gone = true;
    }
    if (!gone) return undefined;
    const deadline = this.#lifecycle.deadline;
    const reason = deadline !== undefined && Date.now() >= deadline - 2000 ? 'lifetime-timeout' : 'crashed';
    this.#goneOnDaytona = this.#sdk.state !== 'stopped';
    await this.#lifecycle.end({ state: 'terminated', reason }).catch(() => undefined);
    return this.#lifecycle.ended;
  }
}
