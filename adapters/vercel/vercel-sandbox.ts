import { Writable } from 'node:stream';
import type { Sandbox as VercelSdkSandbox } from '@vercel/sandbox';
import { z } from 'zod';
import {
  startExecEntrypoint,
  drainEntrypointOutput,
  PumpedOutput,
  ProcessOutcome,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  defineFiles,
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
  wrapArgv,
  type Command,
  type ExecOptions,
  type ExecResult,
  type NetworkPolicy,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type SandboxError,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxSnapshotRef,
  type SandboxStatus,
  type SandboxTags,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { mapVercelError } from './vercel-errors.js';
import { VercelFiles } from './vercel-files.js';
import {
  planVercelExec,
  planVercelExtension,
  planVercelNetworkUpdate,
  planVercelTags,
  planVercelTunnel,
  vercelCapabilities,
  vercelExecOptionsSchema,
  vercelMaxTimeoutMs,
  vercelNoStdinError,
} from './vercel-options.js';
import { VercelSandboxProcess, pumpVercelCommand } from './vercel-process.js';

const provider = 'vercel';

/** How often `wait()` asks Vercel whether the sandbox still runs. */
const waitPollMs = 2000;

/** What the provider hands a sandbox. */
export interface VercelSandboxInit {
  sdk: VercelSdkSandbox;
  /** Looks the sandbox up again (`Sandbox.get`), resuming its session with `resume`. */
  refetch: (resume: boolean, signal: AbortSignal | undefined) => Promise<VercelSdkSandbox>;
  name: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  ports: number[];
  workdir: string | undefined;
  /** Run every command as root. */
  sudo: boolean;
  /** Milliseconds left of the lifetime, when known; the local clock ends the sandbox then. */
  lifetimeMs: number | undefined;
  tunnelBaseUrl: string | undefined;
  /** False for a wrapped SDK sandbox: the caller keeps its lifecycle, terminate only detaches. */
  ownsLifecycle: boolean;
}

/** A Vercel sandbox behind the neutral contract. `native` is the SDK's object. */
export interface VercelSandbox extends Sandbox {
  /** The `@vercel/sandbox` SDK's `Sandbox` (replaced after a `snapshot()`, which resumes a new session). */
  readonly native: VercelSdkSandbox;
  /**
   * Captures the filesystem (Vercel's `snapshot`) and keeps the sandbox running: Vercel stops the
   * session it snapshots, so the adapter resumes the sandbox at once from that same snapshot (a new
   * session, the same id, name, files, tags and ports). What does not survive is what no snapshot
   * holds: processes. Commands running at the time end with `SandboxProviderError` from `wait()`,
   * and background processes are gone. Not idempotent.
   */
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /** See `Sandbox.extendTimeout`: Vercel's `extendTimeout` by what the new deadline adds; a shorter one is kept by the adapter's clock. */
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /** See `Sandbox.updateNetwork`: Vercel's `update({ networkPolicy })`, applied to the running session. */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
}

/** The policy of `updateNetwork`, wrapped so that an issue is named `network.<field>`. */
const networkUpdateSchema = z.object({ network: networkSchema });

export class VercelSandboxImpl implements VercelSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly #init: VercelSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  /** Aborts every log stream still open when the sandbox ends. */
  readonly #streams = new AbortController();
  #sdk: VercelSdkSandbox;
  #detached = false;
  /** A snapshot (and the resume after it) is under way: Vercel reports the session stopped meanwhile. */
  #snapshotting: Promise<unknown> | undefined;

  constructor(init: VercelSandboxInit) {
    this.#init = init;
    this.#sdk = init.sdk;
    this.id = init.sdk.name;
    this.name = init.name;
    this.warnings = init.warnings;
    this.#lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: this.id,
      events: init.events,
      teardown: async () => {
        this.#streams.abort(this.#lifecycle.notFound('it ended'));
        if (!init.ownsLifecycle || this.#detached) return;
        try {
          await this.#sdk.delete();
        } catch (error) {
          const mapped = mapVercelError(error, { operation: 'terminate', sandboxId: this.id });
          if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
        }
      },
    });
    if (init.lifetimeMs !== undefined) this.#lifecycle.armLifetime(Math.max(1, init.lifetimeMs));
    const native = new VercelFiles(
      () => this.#sdk,
      (argv, signal) => this.#runHelper(argv, signal),
      (error, operation, path) => this.#map(error, operation, path),
      this.#streams.signal,
    );
    this.files = defineFiles({ provider, native, fallback: this, lifecycle: this.#lifecycle });
  }

  get native(): VercelSdkSandbox {
    return this.#sdk;
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options);
  }

  async #exec(command: unknown, options: ExecOptions): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, vercelCapabilities);
    const extra = parseOptions(vercelExecOptionsSchema, call.options.providerOptions?.vercel, {
      provider,
      what: 'providerOptions.vercel',
    });
    this.#assertRunning();
    this.#lifecycle.touch();
    const sudo = extra.sudo ?? this.#init.sudo;
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider,
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.#lifecycle,
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: async (signal) => {
        // A killed command's last output must not wait for a reader: its exit comes after it.
        if (signal === 'SIGKILL') for (const output of outputs) output.release();
        await this.#killTree(outcome.execId, signal, sudo);
      },
    });
    const closedPipe = () => void outcome.kill('SIGPIPE').catch(() => undefined);
    const outputs = [new PumpedOutput({ onKeepsWriting: closedPipe }), new PumpedOutput({ onKeepsWriting: closedPipe })] as const;
    const cwd = call.options.cwd ?? this.#init.workdir;
    const argv = wrapArgv(outcome.execId, call.argv, { cwd, stdinNull: true });
    const plan = planVercelExec(argv, { env: call.options.env, sudo });
    const process = await outcome.startup(this.#start(outcome, outputs, plan, call.argv));
    outcome.started();
    return process;
  }

  async #start(
    outcome: ProcessOutcome,
    [stdout, stderr]: readonly [PumpedOutput, PumpedOutput],
    plan: ReturnType<typeof planVercelExec>,
    userArgv: string[],
  ): Promise<SandboxProcess> {
    // A command waits for a snapshot under way (the session it would start in is stopping).
    await this.#snapshotting;
    const command = await this.#sdk
      .runCommand({ ...plan, signal: this.#streams.signal })
      .catch((error: unknown) => Promise.reject(this.#map(error, 'exec')));
    void pumpVercelCommand(command, { stdout, stderr }, outcome, (error) => this.#map(error, 'exec'), this.#streams.signal);
    const { report, stdout: rest } = await readStartMarker(stdout.stream);
    if (report !== 'ok') {
      void rest.cancel().catch(() => undefined);
      void stderr.stream.cancel().catch(() => undefined);
      await outcome.wait().catch(() => undefined);
      throw this.#startError(report, userArgv, outcome);
    }
    return new VercelSandboxProcess({ stdout: rest, stderr: stderr.stream, outcome, native: command });
  }

  #startError(report: string, argv: string[], outcome: ProcessOutcome): Error {
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
    const failed = outcome.failed;
    if (failed !== undefined) return failed as Error;
    return new SandboxProviderError({
      message: `The command did not start in sandbox ${this.id} (does the image have /bin/sh?)`,
      provider,
    });
  }

  /** The kit's marker killer as a second command: every signal, to the command's whole tree (Vercel's `kill` reaches one process). */
  async #killTree(execId: string, signal: string, sudo: boolean): Promise<void> {
    try {
      await this.#runHelper(killMarkedTreeArgv(execId, signal), this.#streams.signal, sudo);
    } catch (error) {
      const mapped = this.#map(error, 'kill');
      if (!SandboxNotFoundError.isInstance(mapped) && this.#lifecycle.isRunning()) throw mapped;
    }
  }

  /** Runs a short helper command to its end (no wrapper, no events): its exit code and stderr. */
  async #runHelper(argv: string[], signal: AbortSignal | undefined, sudo = this.#init.sudo): Promise<{ exitCode: number; stderr: string }> {
    const stderr: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (stderr.length < 64) stderr.push(chunk);
        callback();
      },
    });
    const [cmd, ...args] = argv;
    try {
      const finished = await this.#sdk.runCommand({ cmd: cmd!, args, sudo, stderr: sink, signal });
      return { exitCode: finished.exitCode, stderr: Buffer.concat(stderr).toString('utf8') };
    } catch (error) {
      throw this.#map(error, 'exec');
    }
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, vercelCapabilities);
    if (call.options.stdin !== undefined) throw vercelNoStdinError('run({ stdin })');
    return runViaExec((c: Command, o: ExecOptions) => this.#exec(c, o), call.command, call.options, provider);
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    options.signal?.throwIfAborted();
    this.#assertRunning();
    await this.#snapshotting;
    return Object.fromEntries(
      this.#init.ports.map((port) => [port, planVercelTunnel(port, this.#sdk.domain(port), this.#init.tunnelBaseUrl)]),
    );
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    this.#assertRunning();
    await this.#snapshotting;
    const taking = (async () => {
      const snapshot = await this.#sdk.snapshot({ signal: options.signal });
      // Vercel stopped the session it snapshotted: resume the sandbox from it, so it keeps running.
      this.#sdk = await this.#init.refetch(true, undefined);
      return snapshot.snapshotId;
    })();
    const settled = taking.catch(() => undefined);
    this.#snapshotting = settled;
    // Only this snapshot's own marker is cleared (a later one may have replaced it).
    void settled.then(() => {
      if (this.#snapshotting === settled) this.#snapshotting = undefined;
    });
    const id = await this.#call('snapshot', () => taking, options);
    return { type: 'snapshot', provider, id };
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = planVercelTags(parseTags(tags, provider)) ?? {};
    options.signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    // Vercel's update replaces the tags whole: safe to retry.
    await this.#call('setTags', () => this.#sdk.update({ tags: checked }, { signal: options.signal }), options, true);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    options.signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    const fresh = await this.#call('getTags', () => this.#init.refetch(false, options.signal), options, true);
    return { ...(fresh.tags ?? {}) };
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > vercelMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs must be a positive integer of at most ${vercelMaxTimeoutMs} ms (5 hours, Vercel's longest)`,
        argument: 'timeoutMs',
        provider,
      });
    }
    options.signal?.throwIfAborted();
    this.#assertRunning();
    const extension = planVercelExtension(timeoutMs, this.#lifecycle.remainingLifetimeMs ?? 0);
    if (extension > 0) await this.#call('extendTimeout', () => this.#sdk.extendTimeout(extension, { signal: options.signal }), options);
    this.#lifecycle.armLifetime(timeoutMs);
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const { network } = parseOptions(networkUpdateSchema, { network: policy }, { provider, what: 'updateNetwork policy' });
    options.signal?.throwIfAborted();
    this.#assertRunning();
    const networkPolicy = planVercelNetworkUpdate(network);
    await this.#call('updateNetwork', () => this.#sdk.update({ networkPolicy }, { signal: options.signal }), options, true);
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning() || this.#detached) return this.#lifecycle.poll();
    await this.#observe(options.signal);
    return this.#lifecycle.status;
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    // Vercel ends sandboxes on its side (its timeout, a stop from elsewhere): ask now and then.
    return this.#lifecycle.waitObserving(options, (signal) => this.#observe(signal), {
      intervalMs: waitPollMs,
      askNow: () => !this.#detached,
    });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning())
      return this.#lifecycle.ended ? undefined : this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
    if (!this.#init.ownsLifecycle) this.#detached = true;
    await raceWithSignal(this.#lifecycle.end({ state: 'terminated', reason: 'terminated' }), {
      signal: options.signal,
      operation: 'terminate',
      provider,
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** Makes the create `workdir` (with `mkdir -p`, as the sandbox's user or root with `sudo`). */
  async makeWorkdir(workdir: string, signal: AbortSignal | undefined): Promise<void> {
    const { exitCode, stderr } = await this.#runHelper(['mkdir', '-p', '--', workdir], signal);
    if (exitCode !== 0)
      throw new SandboxProviderError({
        message: `Making the workdir ${workdir} failed (exit ${exitCode}): ${stderr.slice(0, 300)}`,
        provider,
      });
  }

  /**
   * Starts the create `command` as a detached command: its exit ends the sandbox
   * (`entrypoint-exited`); its output is read and dropped (Vercel has no entrypoint stdio).
   */
  async startEntrypoint(argv: string[], signal: AbortSignal | undefined): Promise<void> {
    const process = await startExecEntrypoint((starting) => this.#exec(argv, { signal: starting }), { signal, lifecycle: this.#lifecycle });
    drainEntrypointOutput(process);
  }

  /** Asks Vercel about the sandbox: a stopped, failed or deleted one ends here (once). */
  async #observe(signal?: AbortSignal): Promise<void> {
    if (!this.#lifecycle.isRunning() || this.#snapshotting) return;
    let status: string;
    try {
      const fresh = await this.#init.refetch(false, signal);
      status = sessionStatus(fresh);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const mapped = mapVercelError(error, { operation: 'poll', sandboxId: this.id });
      if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
      status = 'gone';
    }
    if (this.#snapshotting || !['stopping', 'stopped', 'failed', 'aborted', 'gone'].includes(status)) return;
    const deadline = this.#lifecycle.deadline;
    const reason = deadline !== undefined && Date.now() >= deadline - 2000 ? 'lifetime-timeout' : 'crashed';
    await this.#lifecycle.end({ state: 'terminated', reason }).catch(() => undefined);
  }

  #assertRunning(): void {
    if (this.#detached) throw this.#lifecycle.notFound('detached from: the caller owns it');
    this.#lifecycle.assertRunning();
  }

  #call<T>(operation: string, body: () => Promise<T>, options: SignalOptions = {}, idempotent = false): Promise<T> {
    return providerCall(
      { provider, events: this.#init.events, lifecycle: this.#lifecycle, mapError: (error, op) => this.#map(error, op) },
      operation,
      body,
      {
        idempotent,
        signal: options.signal,
      },
    );
  }

  #map(error: unknown, operation: string, path?: string): SandboxError {
    if (!this.#lifecycle.isRunning() && this.#lifecycle.ended) return this.#lifecycle.notFound();
    return mapVercelError(error, { operation, sandboxId: this.id, path });
  }
}

/** The status of a sandbox's current session; `'stopped'` when it has none. */
export function sessionStatus(sandbox: VercelSdkSandbox): string {
  try {
    return sandbox.status;
  } catch {
    return 'stopped';
  }
}
