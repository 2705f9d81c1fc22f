import {
  startExecEntrypoint,
  type SandboxError,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  ProcessOutcome,
  defineFiles,
  killMarkedTreeArgv,
  parseExecCall,
  parseRunCall,
  parseTags,
  providerCall,
  raceWithSignal,
  runViaExec,
  type Command,
  type ExecOptions,
  type ExecResult,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxStatus,
  type SandboxTags,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { flyExitCode, flyLiveStates, type FlyClient, type FlyExecResponse, type FlyMachine } from './fly-client.js';
import { mapFlyError } from './fly-errors.js';
import { FlyFiles } from './fly-files.js';
import { flyCapabilities, flyMaxTimeoutMs, planFlyTagUpdate, planFlyTunnel, tagsFromFlyMetadata, type FlyPortPlan } from './fly-options.js';
import { FlyProcess, flyChunkBytes, flyStartReport, parseWaitAnswer, type FlyExecHost } from './fly-process.js';
import {
  flyEntrypointArgv,
  flyHoldLifetimeArgv,
  flyReleaseLifetimeArgv,
  flySetDeadlineArgv,
  flyStartArgv,
  flyStartInput,
  flyWrappedArgv,
} from './fly-scripts.js';

const provider = 'fly';
/** How long a `run`'s start waits in the machine for the exit, in ms: a short command then costs one exec. */
const runLingerMs = 200;
/** How often `wait()` asks Fly whether the machine still exists. */
const waitPollMs = 1000;

export interface FlySandboxInit {
  client: FlyClient;
  app: string;
  machineId: string;
  name: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  ports: FlyPortPlan[];
  publicDomain: string;
  tunnelScheme: 'https' | 'http';
  workdir: string | undefined;
  /** Milliseconds left of the lifetime, when known: the local clock ends the sandbox then too. */
  lifetimeMs: number | undefined;
  /** The idle timeout, kept by this process (the creating one). */
  idleTimeoutMs: number | undefined;
  paused: boolean;
  /** The machine has a create `command`: its end is the entrypoint's exit. */
  hasEntrypoint: boolean;
}

/** A Fly Machine behind the neutral contract; `app` and `machineId` name it in Fly's API. */
export interface FlySandbox extends Sandbox {
  readonly app: string;
  readonly machineId: string;
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  pause(options?: SignalOptions): Promise<void>;
  resume(options?: SignalOptions): Promise<void>;
}

export class FlySandboxImpl implements FlySandbox, FlyExecHost {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly app: string;
  readonly machineId: string;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly lifecycle: SandboxLifecycle;
  readonly #init: FlySandboxInit;
  readonly #client: FlyClient;
  /** Set while this sandbox's own pause or resume runs: the machine's state is then ours to move. */
  #transition = false;

  constructor(init: FlySandboxInit) {
    this.#init = init;
    this.#client = init.client;
    this.app = init.app;
    this.machineId = init.machineId;
    this.id = `${init.app}:${init.machineId}`;
    this.name = init.name;
    this.warnings = init.warnings;
    this.lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: this.id,
      events: init.events,
      idleTimeoutMs: init.idleTimeoutMs,
      teardown: () => this.#destroy(),
    });
    if (init.paused) this.lifecycle.adoptPaused(init.lifetimeMs);
    else if (init.lifetimeMs !== undefined) this.lifecycle.armLifetime(Math.max(1, init.lifetimeMs));
    this.files = defineFiles({ provider, native: new FlyFiles(this, init.workdir ?? '/'), lifecycle: this.lifecycle });
  }

  /** One buffered Fly exec, while the sandbox runs (see `FlyExecHost`). A machine that is gone ends the sandbox. */
  async direct(
    argv: readonly string[],
    options: { stdin?: string; timeoutSeconds: number; operation: string; signal?: AbortSignal | undefined },
  ): Promise<FlyExecResponse> {
    return providerCall(
      { provider, events: this.#init.events, lifecycle: this.lifecycle, mapError: (error, operation) => this.#mapError(error, operation) },
      options.operation,
      () => this.#rawExec(argv, options),
      { signal: options.signal },
    );
  }

  /** A Fly exec without the liveness checks (the pause and resume steps run while the lifecycle says paused). */
  async #rawExec(
    argv: readonly string[],
    options: { stdin?: string | undefined; timeoutSeconds: number; operation?: string; signal?: AbortSignal | undefined },
  ): Promise<FlyExecResponse> {
    try {
      return await this.#client.exec(
        this.app,
        this.machineId,
        { command: argv, stdin: options.stdin, timeoutSeconds: options.timeoutSeconds },
        options.signal,
        this.id,
      );
    } catch (error) {
      const mapped = this.#mapError(error, options.operation ?? 'exec');
      throw mapped;
    }
  }

  #mapError(error: unknown, operation: string): SandboxError {
    const mapped = mapFlyError(error, { operation, sandboxId: this.id });
    if (SandboxNotFoundError.isInstance(mapped) && this.lifecycle.isRunning()) void this.#observe().catch(() => undefined);
    return mapped;
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options, { mode: 'pipe' });
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, flyCapabilities);
    const input = call.options.stdin;
    const bytes = input === undefined ? undefined : typeof input === 'string' ? new TextEncoder().encode(input) : input;
    // Known input goes with the start (then EOF); only a large one is fed through the FIFO.
    const stdin =
      bytes === undefined || bytes.byteLength === 0
        ? { mode: 'null' as const }
        : bytes.byteLength <= flyChunkBytes
          ? { mode: 'data' as const, data: Buffer.from(bytes).toString('base64') }
          : { mode: 'pipe' as const };
    return runViaExec(
      (c, o) => this.#exec(c, o, stdin, false, stdin.mode === 'pipe' ? 0 : runLingerMs),
      call.command,
      call.options,
      provider,
    );
  }

  async #exec(
    command: unknown,
    options: ExecOptions,
    stdin: { mode: 'pipe' | 'null' } | { mode: 'data'; data: string },
    entrypoint = false,
    lingerMs = 0,
  ): Promise<FlyProcess> {
    const call = parseExecCall(provider, command, options, flyCapabilities);
    this.lifecycle.assertRunning();
    this.lifecycle.touch();
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider,
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.lifecycle,
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: (signal) => this.#killTree(outcome.execId, signal),
    });
    const cwd = call.options.cwd ?? this.#init.workdir;
    const wrapped = entrypoint ? flyEntrypointArgv(outcome.execId, call.argv, cwd) : flyWrappedArgv(outcome.execId, call.argv, cwd);
    const input = flyStartInput(outcome.execId, wrapped, {
      env: call.options.env,
      stdin: stdin.mode,
      data: stdin.mode === 'data' ? stdin.data : undefined,
      lingerMs,
    });
    const answer = await outcome.startup(this.direct(flyStartArgv, { timeoutSeconds: 60, operation: 'exec', stdin: input }));
    const report = flyStartReport(answer.stdout);
    if (report !== 'ok') {
      outcome.abandon();
      throw this.#startError(report, call.argv, answer);
    }
    const rest = answer.stdout.slice(answer.stdout.indexOf('\n') + 1);
    const early = rest.startsWith('exit ') ? parseWaitAnswer(rest) : undefined;
    // Announced before a known exit is recorded, so that exec-start comes before exec-end.
    outcome.started();
    const process = new FlyProcess(this, outcome, { stdinPipe: stdin.mode === 'pipe', early: early === 'running' ? undefined : early });
    return process;
  }

  #startError(report: string, argv: string[], answer: FlyExecResponse): Error {
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
      message: `The command did not start in sandbox ${this.id} (exit ${answer.exitCode}: ${answer.stderr.slice(0, 300)}; does the image have sh, base64 and mkfifo?)`,
      provider,
    });
  }

  /** The kit's marker killer, run by Fly's exec: every process of the command's tree gets the signal. */
  async #killTree(execId: string, signal: string): Promise<void> {
    try {
      await this.direct(killMarkedTreeArgv(execId, signal), { timeoutSeconds: 30, operation: 'kill' });
    } catch (error) {
      // A sandbox that is gone has killed the command already.
      if (!SandboxNotFoundError.isInstance(error)) throw error;
    }
  }

  /** Starts the create `command` detached; its exit ends the machine (the keeper exits with it) and the sandbox. */
  async startEntrypoint(command: Command, signal: AbortSignal | undefined): Promise<void> {
    // Fly's exec output is fetched, not pushed: cancelling it only stops our side asking for it.
    const process = await startExecEntrypoint((starting) => this.#exec(command, { signal: starting }, { mode: 'null' }, true), {
      signal,
      lifecycle: this.lifecycle,
      // The machine stops with the entrypoint (the keeper exits with its status): its exit code,
      // observed from Fly, decides; the exec's may be the kill the machine's stop dealt it.
      sandboxEnd: (ending) =>
        this.lifecycle.waitObserving({ signal: ending }, (asking) => this.#observe(asking), { intervalMs: waitPollMs, askAtOnce: true }),
    });
    void process.stdout.cancel().catch(() => undefined);
    void process.stderr.cancel().catch(() => undefined);
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.lifecycle.assertRunning();
    const { publicDomain, tunnelScheme } = this.#init;
    return Object.fromEntries(
      this.#init.ports.map((port) => {
        const plan = planFlyTunnel({ app: this.app, port, domain: publicDomain, scheme: tunnelScheme });
        return [port.port, { port: port.port, url: plan.url, host: plan.host, hostPort: plan.hostPort, encrypted: plan.encrypted }];
      }),
    );
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    options.signal?.throwIfAborted();
    this.lifecycle.assertAlive();
    const current = await this.#call('setTags', () => this.#client.getMetadata(this.app, this.machineId, options.signal, this.id), options);
    const plan = planFlyTagUpdate(current, checked);
    for (const [key, value] of plan.set)
      await this.#call('setTags', () => this.#client.setMetadata(this.app, this.machineId, key, value, options.signal, this.id), options);
    for (const key of plan.remove)
      await this.#call('setTags', () => this.#client.deleteMetadata(this.app, this.machineId, key, options.signal, this.id), options);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    this.lifecycle.assertAlive();
    const current = await this.#call('getTags', () => this.#client.getMetadata(this.app, this.machineId, options.signal, this.id), options);
    return tagsFromFlyMetadata(current);
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > flyMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs must be a positive integer of at most ${flyMaxTimeoutMs} ms`,
        argument: 'timeoutMs',
        provider,
      });
    }
    const answer = await this.direct(flySetDeadlineArgv(Math.ceil((Date.now() + timeoutMs) / 1000)), {
      timeoutSeconds: 30,
      operation: 'extendTimeout',
      signal: options.signal,
    });
    if (answer.exitCode !== 0) throw new SandboxProviderError({ message: `Moving the deadline failed: ${answer.stderr}`, provider });
    this.lifecycle.armLifetime(timeoutMs);
  }

  /** Fly's suspend: the machine's memory is kept; the keeper's deadline is held first so the lifetime stands still. */
  async pause(options: SignalOptions = {}): Promise<void> {
    this.#transition = true;
    await this.lifecycle
      .pause(async () => {
        const held = await this.#rawExec(flyHoldLifetimeArgv(), { timeoutSeconds: 30, operation: 'pause', signal: options.signal });
        if (held.exitCode !== 0) throw new SandboxProviderError({ message: `Holding the lifetime failed: ${held.stderr}`, provider });
        try {
          await this.#client.machineAction(this.app, this.machineId, 'suspend', options.signal, this.id);
          await this.#waitState('suspended', options.signal);
        } catch (error) {
          await this.#rawExec(flyReleaseLifetimeArgv(), { timeoutSeconds: 30 }).catch(() => undefined);
          throw mapFlyError(error, { operation: 'pause', sandboxId: this.id });
        }
      }, options)
      .finally(() => (this.#transition = false));
  }

  async resume(options: SignalOptions = {}): Promise<void> {
    let deadline: number | undefined;
    this.#transition = true;
    await this.lifecycle
      .resume(async () => {
        try {
          await this.#client.machineAction(this.app, this.machineId, 'start', options.signal, this.id);
          await this.#waitState('started', options.signal);
        } catch (error) {
          throw mapFlyError(error, { operation: 'resume', sandboxId: this.id });
        }
        const released = await this.#rawExec(flyReleaseLifetimeArgv(), { timeoutSeconds: 30, operation: 'resume', signal: options.signal });
        if (released.exitCode !== 0)
          throw new SandboxProviderError({ message: `Releasing the lifetime failed: ${released.stderr}`, provider });
        deadline = Number(released.stdout.trim());
      }, options)
      .finally(() => (this.#transition = false));
    // A sandbox found paused knew no lifetime: the keeper's deadline is it.
    if (this.lifecycle.remainingLifetimeMs === undefined && deadline !== undefined && Number.isInteger(deadline) && deadline > 0)
      this.lifecycle.armLifetime(Math.max(1, deadline * 1000 - Date.now()));
  }

  async #waitState(state: 'started' | 'suspended', signal: AbortSignal | undefined): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await this.#client.waitMachine(this.app, this.machineId, state, 60, signal, this.id)) return;
    }
    throw new SandboxProviderError({ message: `Machine ${this.machineId} did not reach ${state}`, provider });
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.lifecycle.isRunning()) return this.lifecycle.poll();
    return (await this.#observe(options.signal)) ?? this.lifecycle.status;
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    // Fly ends machines on its side (the keeper's deadline, a destroy from elsewhere): ask now and then.
    return this.lifecycle.waitObserving(options, (signal) => this.#observe(signal), { intervalMs: waitPollMs, askAtOnce: true });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.lifecycle.isRunning())
      return this.lifecycle.ended ? undefined : this.lifecycle.end({ state: 'terminated', reason: 'terminated' });
    await raceWithSignal(this.lifecycle.end({ state: 'terminated', reason: 'terminated' }), {
      signal: options.signal,
      operation: 'terminate',
      provider,
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** Destroys the machine and the sandbox's app (its volumes and network go with it). Gone already is fine. */
  async #destroy(): Promise<void> {
    await this.#client.deleteMachine(this.app, this.machineId, undefined, this.id).catch((error: unknown) => {
      if (!SandboxNotFoundError.isInstance(error)) throw error;
    });
    await this.#client.deleteApp(this.app).catch((error: unknown) => {
      if (!SandboxNotFoundError.isInstance(error)) throw error;
    });
  }

  #call<T>(operation: string, body: () => Promise<T>, options: SignalOptions): Promise<T> {
    return providerCall({ provider, events: this.#init.events, mapError: (error, op) => this.#mapError(error, op) }, operation, body, {
      idempotent: true,
      signal: options.signal,
    }).catch((error: unknown) => {
      if (!this.lifecycle.isRunning()) throw this.lifecycle.notFound();
      throw error;
    });
  }

  /** Asks Fly about the machine: gone (or stopped: its keeper exited) ends the sandbox here, once. */
  async #observe(signal?: AbortSignal): Promise<SandboxStatus | undefined> {
    if (!this.lifecycle.isRunning()) return this.lifecycle.ended;
    let machine: FlyMachine | undefined;
    try {
      machine = await this.#client.getMachine(this.app, this.machineId, signal, this.id);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!SandboxNotFoundError.isInstance(error)) throw error;
    }
    const state = machine?.state ?? 'destroyed';
    if (state === 'suspended') {
      if (!this.#transition) this.lifecycle.adoptPaused();
      return { state: 'paused' };
    }
    // Resumed by another process (or another object of this one): running again here too.
    if (state === 'started' && this.lifecycle.paused && !this.#transition) this.lifecycle.adoptRunning();
    if (flyLiveStates.has(state)) return undefined;
    const deadline = this.lifecycle.deadline;
    const exitCode = machine ? flyExitCode(machine) : undefined;
    const timedOut = deadline !== undefined && Date.now() >= deadline - 2000;
    if (this.#init.hasEntrypoint && exitCode !== undefined && !timedOut) {
      await this.lifecycle.end({ state: 'terminated', reason: 'entrypoint-exited', exitCode }).catch(() => undefined);
    } else {
      await this.lifecycle.end({ state: 'terminated', reason: timedOut ? 'lifetime-timeout' : 'crashed' }).catch(() => undefined);
    }
    return this.lifecycle.ended;
  }
}
