import type { ModalClient, Sandbox as ModalSdkSandbox } from 'modal';
import { z } from 'zod';
import {
  ProcessOutcome,
  SandboxError,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  SandboxNotFoundError,
  SandboxProviderError,
  defineFiles,
  killMarkedTreeArgv,
  networkSchema,
  parseExecCall,
  parseRunCall,
  parseOptions,
  parseTags,
  providerCall,
  ptyToolsExit,
  raceWithSignal,
  readStartMarker,
  runViaExec,
  checkSandboxPath,
  watchOptionsSchema,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
  type RunOptions,
  type Sandbox,
  type SandboxEmitter,
  type SandboxEnded,
  type FileWatch,
  type NetworkPolicy,
  type SandboxFiles,
  type SandboxProcess,
  type SandboxSnapshotRef,
  type SandboxStatus,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { modalEntrypointStdio } from './modal-entrypoint.js';
import { mapModalError, mapModalNetworkUpdateError } from './modal-errors.js';
import { modalCapabilities, planModalExec, planModalNetworkUpdate } from './modal-options.js';
import { ModalFiles } from './modal-files.js';
import { ModalSandboxProcess, killModalTree, resizeModalTerminal } from './modal-process.js';
import { startModalWatch } from './modal-watch.js';

/** The policy of `updateNetwork`, wrapped so that an issue is named `network.<field>`. */
const networkUpdateSchema = z.object({ network: networkSchema });

/** GenericResult.status values the control plane reports for a finished sandbox. */
const resultStatus = { success: 1, failure: 2, terminated: 3, timeout: 4, idleTimeout: 7 } as const;

export interface ModalSandboxInit {
  sdk: ModalSdkSandbox;
  client: ModalClient;
  name: string | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** False for a wrapped sandbox: the caller keeps its lifecycle, terminate only detaches. */
  ownsLifecycle: boolean;
  /** Whether `create` had a `command`; `undefined` when unknown (found by id or name, wrapped). */
  hasCommand?: boolean;
}

/** A Modal sandbox behind the neutral contract. `native` is the SDK's object. */
export interface ModalSandbox extends Sandbox {
  /** The `modal` SDK's `Sandbox`, for what the neutral API does not cover. */
  readonly native: ModalSdkSandbox;
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /**
   * See `Sandbox.updateNetwork`: Modal's `updateNetworkPolicy`, which replaces both allowlists
   * (`'block'` is two empty ones, `'allow'` the allow-all `0.0.0.0/0`). UNIMPLEMENTED from the
   * service (a change it does not make) is `SandboxCapabilityUnsupportedError` (`network.update`).
   */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
}

/**
 * Creates the neutral sandbox over an SDK sandbox. Modal ends sandboxes on its side (lifetime,
 * idle timeout, entrypoint exit): the end is observed by `poll`, `wait` and any call that finds the
 * sandbox gone, and `sandbox-terminated` is emitted then, once.
 */
export function createModalSandbox(init: ModalSandboxInit): ModalSandbox {
  return new ModalSandboxImpl(init);
}

class ModalSandboxImpl implements ModalSandbox {
  readonly provider = 'modal';
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly #init: ModalSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  #detached = false;
  #entrypoint: EntrypointStdio | undefined;

  constructor(init: ModalSandboxInit) {
    this.#init = init;
    this.id = init.sdk.sandboxId;
    this.name = init.name;
    this.warnings = init.warnings;
    this.#lifecycle = new SandboxLifecycle({
      provider: 'modal',
      sandboxId: this.id,
      events: init.events,
      // Releases the router channel now rather than after its idle timeout; except when the
      // entrypoint ended by itself: Modal keeps its output, and `stdout` read after `wait()` needs
      // the channel (the SDK closes it once idle).
      teardown: async (status) => {
        if (status.reason === 'terminated' || init.hasCommand === false) init.sdk.detach();
      },
    });
    const native = new ModalFiles(
      init.sdk,
      (error, operation, path) => this.#mapError(error, operation, path),
      (argv, options) => this.run(argv, options),
    );
    const files = defineFiles({ provider: 'modal', native, lifecycle: this.#lifecycle });
    // An optional member exists exactly when its capability says so.
    if (modalCapabilities.files.watch) files.watch = (path, options) => this.#watch(path, options, native);
    this.files = files;
  }

  get native(): ModalSdkSandbox {
    return this.#init.sdk;
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
    this.#entrypoint ??= modalEntrypointStdio({
      sdk: this.#init.sdk,
      sandboxId: this.id,
      events: this.#init.events,
      hasCommand: this.#init.hasCommand,
      mapError: (error, operation) => this.#mapError(error, operation),
      hasEnded: async () => this.#detached || !this.#lifecycle.isRunning() || (await this.poll()).state === 'terminated',
    });
    return this.#entrypoint;
  }

  /** `files.watch`: the path must exist (checked first, so a missing one is refused by `watch` itself). */
  async #watch(path: unknown, options: unknown, native: ModalFiles): Promise<FileWatch> {
    const target = checkSandboxPath(path, undefined, 'modal');
    const parsed = parseOptions(watchOptionsSchema, options, { provider: 'modal', what: 'watch options' });
    parsed.signal?.throwIfAborted();
    this.#assertRunning();
    this.#lifecycle.touch();
    await raceWithSignal(native.stat(target), { signal: parsed.signal, operation: 'files.watch', provider: 'modal' });
    return startModalWatch({
      sdk: this.#init.sdk,
      path: target,
      recursive: parsed.recursive ?? false,
      signal: parsed.signal,
      mapError: (error, operation, errorPath) => this.#mapError(error, operation, errorPath),
      isRunning: () => this.#lifecycle.isRunning() && !this.#detached,
    });
  }

  exec(command: unknown, options: ExecOptions = {}): Promise<SandboxProcess> {
    return this.#exec(command, options, false);
  }

  /** `stdinNull`: the command gets an empty stdin from the start (`run` without input), so no close round trip is needed. */
  async #exec(command: unknown, options: ExecOptions, stdinNull: boolean): Promise<SandboxProcess> {
    const call = parseExecCall('modal', command, options, modalCapabilities);
    this.#assertRunning();
    const { sdk } = this.#init;
    const mapError = (error: unknown, operation: string) => this.#mapError(error, operation);
    const outcome: ProcessOutcome = new ProcessOutcome({
      provider: 'modal',
      sandboxId: this.id,
      events: this.#init.events,
      command: call.command,
      lifecycle: this.#lifecycle,
      // Modal's own exec timeout takes whole seconds and reports like an exit; the kit times
      // the command here and kills the tree itself.
      timeoutMs: call.options.timeoutMs,
      signal: call.options.signal,
      kill: (signal): Promise<void> => killModalTree(sdk, killMarkedTreeArgv(outcome.execId, signal), mapError),
    });
    const { pty } = call.options;
    // A terminal's input stays the terminal's: `run` without input closes it instead.
    const emptyStdin = stdinNull && pty === undefined;
    const plan = planModalExec(outcome.execId, call.argv, { cwd: call.options.cwd, env: call.options.env, pty, stdinNull: emptyStdin });
    const starting = (async () => {
      const process = await sdk.exec(plan.argv, plan.params).catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
      // Asked for at once, so the wait round trip overlaps the output instead of following it.
      const exit = process.wait();
      exit.catch(() => undefined);
      const { report, ptyPath, stdout } = await readStartMarker(process.stdout).catch((error: unknown) =>
        Promise.reject(mapError(error, 'exec')),
      );
      if (report !== 'ok') {
        void process.stderr.cancel().catch(() => undefined);
        void stdout.cancel().catch(() => undefined);
        await exit.catch((error: unknown) => Promise.reject(mapError(error, 'exec')));
        if (report === 'cwd')
          throw new SandboxInvalidArgumentError({
            message: `The working directory does not exist in sandbox ${this.id}`,
            argument: 'cwd',
            provider: 'modal',
          });
        if (report === 'command')
          throw new SandboxInvalidArgumentError({
            message: `Command not found in sandbox ${this.id}: ${call.argv[0]}`,
            argument: 'command',
            provider: 'modal',
          });
        const code = await exit.catch(() => undefined);
        throw new SandboxProviderError({
          message:
            pty !== undefined && code === ptyToolsExit
              ? `The command did not start on a terminal in sandbox ${this.id}: the image has no stty (coreutils)`
              : `The command did not start in sandbox ${this.id} (does the image have /bin/sh?)`,
          provider: 'modal',
        });
      }
      const started = new ModalSandboxProcess(process, stdout, exit, outcome, mapError, emptyStdin);
      if (pty !== undefined) {
        started.resize = async (size, options = {}) => {
          if (ptyPath === undefined) throw new SandboxProviderError({ message: 'The terminal did not report its path', provider: 'modal' });
          await resizeModalTerminal(sdk, outcome, ptyPath, size, options, mapError);
        };
      }
      return started;
    })();
    const process = await outcome.startup(starting);
    outcome.started();
    return process;
  }

  async run(command: unknown, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall('modal', command, options, modalCapabilities);
    return runViaExec((c, o) => this.#exec(c, o, call.options.stdin === undefined), call.command, call.options, 'modal');
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    const tunnels = await this.#call('tunnels', () => this.#init.sdk.tunnels(), options, true);
    return Object.fromEntries(
      Object.entries(tunnels).map(([port, tunnel]) => {
        // Unencrypted ports carry a plain TCP endpoint; encrypted ones only the TLS endpoint.
        const plain =
          tunnel.unencryptedHost !== undefined &&
          tunnel.unencryptedHost !== '' &&
          tunnel.unencryptedPort !== undefined &&
          tunnel.unencryptedPort !== 0;
        const [host, hostPort] = plain ? tunnel.tcpSocket : tunnel.tlsSocket;
        const encrypted = !plain;
        return [
          Number(port),
          { port: Number(port), host, hostPort, encrypted, url: encrypted ? tunnel.url : `http://${host}:${hostPort}` } satisfies Tunnel,
        ];
      }),
    );
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const image = await this.#call('snapshot', () => this.#init.sdk.snapshotFilesystem(), options);
    return { type: 'snapshot', provider: 'modal', id: image.imageId };
  }

  async setTags(tags: Record<string, string>, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, 'modal');
    // Setting the same tags twice gives the same result: safe to retry.
    await this.#call('setTags', () => this.#init.sdk.setTags({ ...checked }), options, true);
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const { network } = parseOptions(networkUpdateSchema, { network: policy }, { provider: 'modal', what: 'updateNetwork policy' });
    const params = planModalNetworkUpdate(network);
    // The update replaces both lists: safe to retry.
    await this.#call('updateNetwork', () => this.#init.sdk.updateNetworkPolicy(params), options, true).catch((error: unknown) =>
      Promise.reject(SandboxError.isInstance(error) ? mapModalNetworkUpdateError(error) : error),
    );
  }

  async getTags(options: SignalOptions = {}): Promise<Record<string, string>> {
    return this.#call('getTags', () => this.#init.sdk.getTags(), options, true);
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.poll();
    return (await this.#observe(0, options.signal)) ?? { state: 'running' };
  }

  async wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    options.signal?.throwIfAborted();
    while (this.#lifecycle.isRunning()) {
      const ended = await this.#observe(10, options.signal);
      if (ended) return ended;
    }
    return this.#lifecycle.wait(options);
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.#lifecycle.isRunning() || this.#detached)
      return this.#lifecycle.ended ? undefined : this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
    if (!this.#init.ownsLifecycle) {
      // The caller owns this sandbox: let go of it, leave it running.
      this.#init.sdk.detach();
      this.#detached = true;
      return;
    }
    await raceWithSignal(
      this.#init.sdk.terminate().catch((error: unknown) => {
        const mapped = this.#mapError(error, 'terminate');
        if (!SandboxNotFoundError.isInstance(mapped)) throw mapped; // already gone: terminate is idempotent
      }),
      { signal: options.signal, operation: 'terminate', provider: 'modal' },
    );
    await this.#lifecycle.end({ state: 'terminated', reason: 'terminated' });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  #assertRunning(): void {
    if (this.#detached)
      throw new SandboxNotFoundError({
        message: `Sandbox ${this.id} was detached from (it may still run; the caller owns it)`,
        sandboxId: this.id,
        provider: 'modal',
      });
    this.#lifecycle.assertRunning();
  }

  #mapError(error: unknown, operation: string, path?: string) {
    const mapped = mapModalError(error, { operation, sandboxId: this.id, path });
    // A sandbox found gone has ended, whatever ended it: observe that once, in the background.
    if (SandboxNotFoundError.isInstance(mapped) && path === undefined && this.#lifecycle.isRunning() && !this.#detached)
      void this.#observe(0).catch(() => undefined);
    return mapped;
  }

  /** Runs an SDK call with the liveness check, error mapping, retries when idempotent, and the caller's signal. */
  #call<T>(operation: string, body: () => Promise<T>, options: SignalOptions = {}, idempotent = false): Promise<T> {
    if (this.#detached)
      return Promise.reject(
        new SandboxNotFoundError({ message: `Sandbox ${this.id} was detached from`, sandboxId: this.id, provider: 'modal' }),
      );
    return providerCall(
      { provider: 'modal', events: this.#init.events, lifecycle: this.#lifecycle, mapError: (error, op) => this.#mapError(error, op) },
      operation,
      body,
      {
        idempotent,
        signal: options.signal,
      },
    );
  }

  /** Asks Modal whether the sandbox has ended (waiting up to `timeoutSecs`); an end is recorded once. */
  async #observe(timeoutSecs: number, signal?: AbortSignal): Promise<SandboxEnded | undefined> {
    const ended = await this.#status(timeoutSecs, signal).catch((error: unknown) => {
      if (SandboxNotFoundError.isInstance(error) && !this.#lifecycle.isRunning()) return this.#lifecycle.ended;
      throw error;
    });
    if (!ended) return undefined;
    await this.#lifecycle.end(ended).catch(() => undefined);
    return this.#lifecycle.ended ?? ended;
  }

  /**
   * The sandbox's end, with its reason. The SDK's public `poll()` folds the result into one
   * exit code (137 for terminated, 124 for timeout), which loses idle timeouts and entrypoint
   * codes; the same RPC's result keeps them, so it is read from the client directly.
   */
  async #status(timeoutSecs: number, signal?: AbortSignal): Promise<SandboxEnded | undefined> {
    const cp = this.#init.client.cpClient;
    const request = { sandboxId: this.id, timeout: timeoutSecs };
    const v1 = /^sb-[A-Za-z0-9]{22}$/.test(this.id);
    const response = await raceWithSignal(
      (v1 ? cp.sandboxWait(request) : cp.sandboxWaitV2(request)).catch((error: unknown) => {
        throw mapModalError(error, { operation: 'wait', sandboxId: this.id });
      }),
      { signal, operation: 'wait', provider: 'modal' },
    );
    const result = response.result;
    if (!result || result.status === 0) return undefined;
    switch (result.status) {
      case resultStatus.terminated:
        return { state: 'terminated', reason: 'terminated' };
      case resultStatus.timeout:
        return { state: 'terminated', reason: 'lifetime-timeout' };
      case resultStatus.idleTimeout:
        return { state: 'terminated', reason: 'idle-timeout' };
      case resultStatus.success:
      case resultStatus.failure:
        return { state: 'terminated', reason: 'entrypoint-exited', exitCode: result.exitcode };
      default:
        return { state: 'terminated', reason: 'crashed', exitCode: result.exitcode };
    }
  }
}
