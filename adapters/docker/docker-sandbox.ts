/**
 * A Docker container as a sandbox, on the kit's `SandboxLifecycle`: the container's main process
 * (the keeper) holds the lifetime even when this process dies; here, the lifecycle names why it
 * ended, fails running commands and answers `wait()`. Commands are `docker-exec.ts`, files are
 * `DockerFiles` under the kit's `defineFiles`.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import {
  startExecEntrypoint,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxLifecycle,
  defineFiles,
  entrypointStdio,
  millisecondsSchema,
  networkSchema,
  parseExecCall,
  parseOptions,
  parseRunCall,
  parseTags,
  providerCall,
  raceWithSignal,
  runViaExec,
  watchViaExec,
  signalOptionsSchema,
  type Command,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
  type NetworkPolicy,
  type ProviderCallContext,
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
import { labels, readPausedTags, readTags, runInContainer, stateDirectory, tagsFile, writePausedTags } from './docker-engine.js';
import type { DockerEgress } from './docker-egress.js';
import { mapDockerError } from './docker-errors.js';
import { startDockerExec, type DockerExecContext } from './docker-exec.js';
import { DockerFiles } from './docker-files.js';
import { dockerCapabilities, dockerMaxTimeoutMs } from './docker-options.js';
import { holdLifetimeArgv, releaseLifetimeArgv } from './docker-scripts.js';

/** A running Docker container used as a sandbox. */
export interface DockerSandbox extends Sandbox {
  /** The dockerode container, for what the contract does not cover. */
  readonly native: Docker.Container;
  /** Commits the container's filesystem (never its state tmpfs) as an image. Not idempotent: each call makes one. */
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /**
   * Moves the lifetime to `timeoutMs` (milliseconds) from now; never past creation + 24 hours.
   * Throws `SandboxInvalidArgumentError` (argument `timeoutMs`) beyond 24 hours.
   */
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.pause`: the engine's pause (its cgroup freezer) stops every process of the
   * container, the lifetime keeper with them. Just before, the deadline inside the container
   * becomes the time left, which the resume (in any process) turns back into a deadline, so the
   * lifetime keeps its remaining time across processes; the 24-hour cap from creation is
   * wall-clock time and does not move. Tags keep working while paused: they wait in the
   * container's root filesystem, which the archive API reaches. A sandbox paused with
   * `docker pause` reports paused too, but its lifetime was not held and ran on.
   */
  pause(options?: SignalOptions): Promise<void>;
  /** See `Sandbox.resume`: the engine's unpause, then the held lifetime runs again. */
  resume(options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.updateNetwork`: replaces the allowlist of a sandbox created with one, in the
   * egress proxy that enforces it (`'block'` is an empty allowlist: every new connection is
   * denied); connections already open are left alone. Works while paused. Idempotent.
   * That proxy lives in the process that created the sandbox, so a sandbox found by `fromId` in
   * another process cannot be changed from there, and once its creator exits it has no egress at
   * all (it fails closed). Throws `SandboxCapabilityUnsupportedError` (capability
   * `network.update`) for `'allow'`, for a sandbox created with `'allow'` or `'block'` (its
   * network was fixed at create), and for one whose proxy is in another process;
   * `SandboxInvalidArgumentError` (argument `policy…`) for a malformed policy;
   * `SandboxNotFoundError` once the sandbox has ended.
   */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.stdout`: the create `command` runs as an exec beside the container's main
   * process (the lifetime keeper), so its output reaches only the exec's stream in the creating
   * process, never the engine's logs. `fromId` in the creating process returns this same
   * sandbox; a sandbox found by `fromId` in another process has closed `stdout`/`stderr` and a
   * discarding `stdin`. The entrypoint's stdin stays open until `stdin.close()`.
   */
  readonly stdout: ReadableStream<Uint8Array>;
  /** See `Sandbox.stderr` and `stdout` above. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** See `Sandbox.stdin` and `stdout` above. */
  readonly stdin: WritableStream<Uint8Array>;
}

export interface DockerSandboxInit {
  id: string;
  name: string | undefined;
  container: Docker.Container;
  env: Record<string, string>;
  workdir: string;
  tunnels: Record<number, Tunnel>;
  createdAt: number;
  expiresAt: number;
  idleTimeoutMs: number | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** True when this process created the container: it then owns the idle and lifetime timers. */
  owned: boolean;
  /** The engine reported the container paused (a lookup of a paused sandbox). */
  paused?: boolean;
  /** The container was created with an entrypoint `command`. */
  hasEntrypoint: boolean;
  engineIsLocal: boolean;
  /** The allowlist's proxy and bridge, when this process created the sandbox with an allowlist. */
  egress?: DockerEgress | undefined;
  /** The container's network label: `allow`, `block`, `allowlist` (undefined on containers older than it). */
  createdWith?: string | undefined;
  onEnd: (sandbox: DockerSandbox) => void;
}

/** What the provider keeps of a sandbox beyond the contract. */
export interface DockerSandboxHandle {
  readonly sandbox: DockerSandbox;
  /** Starts the create-time `command`; its exit ends the sandbox. Rejects like `exec` when it cannot start. */
  startEntrypoint(command: Command, signal?: AbortSignal): Promise<void>;
}

const provider = 'docker';

function signalOf(options: unknown): AbortSignal | undefined {
  return parseOptions(signalOptionsSchema, options, { provider, what: 'options' }).signal;
}

/** Reaches the sandbox's private entrypoint start (for the provider only). */
let startEntrypointOf: (sandbox: DockerContainerSandbox, command: Command, signal: AbortSignal | undefined) => Promise<void>;

class DockerContainerSandbox implements DockerSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly #init: DockerSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  readonly #calls: ProviderCallContext;
  readonly #execContext: DockerExecContext;
  #expiresAt: number;
  #exitWatch: Promise<void> | undefined;
  #knownOomKills = 0;
  #stdio: EntrypointStdio | undefined;
  /** Pauses and resumes of ours under way: the engine's state is then ours to change, not to adopt. */
  #transitions = 0;

  constructor(init: DockerSandboxInit) {
    this.#init = init;
    this.id = init.id;
    this.name = init.name;
    this.warnings = init.warnings;
    this.#expiresAt = init.expiresAt;
    this.#lifecycle = new SandboxLifecycle({
      provider,
      sandboxId: init.id,
      events: init.events,
      idleTimeoutMs: init.owned ? init.idleTimeoutMs : undefined,
      teardown: () => this.#teardown(),
    });
    // The keeper ends the container at the deadline by itself; this timer makes the end prompt
    // and named. Only the creator arms it: another process may have moved the deadline since.
    if (init.owned) this.#lifecycle.armLifetime(Math.max(0, init.expiresAt - Date.now()));
    if (init.paused) this.#lifecycle.adoptPaused();
    this.#calls = {
      provider,
      events: init.events,
      lifecycle: this.#lifecycle,
      mapError: (error, operation) => mapDockerError(error, { operation, sandboxId: init.id }),
    };
    this.#execContext = {
      sandboxId: init.id,
      container: init.container,
      lifecycle: this.#lifecycle,
      events: init.events,
      env: init.env,
      workdir: init.workdir,
      engineIsLocal: init.engineIsLocal,
      oomKilled: () => this.#oomKillsIncreased(),
    };
    const execAsRoot = (argv: string[], signal: AbortSignal | undefined) => {
      this.#lifecycle.assertRunning();
      return startDockerExec(this.#execContext, { command: argv, argv, signal, user: '0' });
    };
    // files.watch runs inotifywait inside the container (the engine has no watch API).
    this.files = {
      ...defineFiles({
        provider,
        native: new DockerFiles(this, init.container, execAsRoot),
        fallback: this,
        lifecycle: this.#lifecycle,
      }),
      watch: (path, options) => watchViaExec(this, path, options, { provider, lifecycle: this.#lifecycle }),
    };
    // A sandbox this process created is watched from the start, like a child process. One found
    // with fromId is watched only once asked (wait, poll): the engine's wait call is an open
    // request that would keep an attaching script alive until the container ends.
    if (init.owned) this.#watch();
  }

  get native(): Docker.Container {
    return this.#init.container;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<SandboxProcess> {
    const { argv, command: checked, options: parsed } = parseExecCall(provider, command, options, dockerCapabilities);
    this.#lifecycle.assertRunning();
    return startDockerExec(this.#execContext, {
      command: checked,
      argv,
      env: parsed.env,
      cwd: parsed.cwd,
      timeoutMs: parsed.timeoutMs,
      signal: parsed.signal,
      pty: parsed.pty,
    });
  }

  async run(command: Command, options: RunOptions = {}): Promise<ExecResult> {
    const { command: checked, options: parsed } = parseRunCall(provider, command, options, dockerCapabilities);
    return runViaExec((c, o) => this.exec(c, o), checked, parsed, provider);
  }

  static {
    startEntrypointOf = (sandbox, command, signal) => sandbox.#startEntrypoint(command, signal);
  }

  // Read only once `create` or `fromId` resolved, when the entrypoint (if any) has started: none
  // by then means no `command` (or a sandbox found elsewhere), and the closed streams are kept.
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
    this.#stdio ??= entrypointStdio(undefined, { provider, sandboxId: this.id, events: this.#init.events });
    return this.#stdio;
  }

  /** @see DockerSandboxHandle.startEntrypoint */
  async #startEntrypoint(command: Command, signal?: AbortSignal): Promise<void> {
    const { argv, command: checked } = parseExecCall(provider, command, {});
    const process = await startExecEntrypoint(
      (starting) => startDockerExec(this.#execContext, { command: checked, argv, signal: starting, entrypoint: true }),
      // The container ends with the entrypoint (the keeper exits with its status): that end, seen
      // by the container watch, carries the status; the exec's may be the 137 the end dealt it.
      { signal, lifecycle: this.#lifecycle, sandboxEnd: (ending) => this.#lifecycle.wait({ signal: ending }) },
    );
    // Bounded while unread (the entrypoint never blocks on a full socket), pull-based once read.
    this.#stdio = entrypointStdio(process, { provider, sandboxId: this.id, events: this.#init.events });
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    signalOf(options)?.throwIfAborted();
    this.#lifecycle.assertRunning();
    return { ...this.#init.tunnels };
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const signal = signalOf(options);
    const tag = `snap-${randomBytes(8).toString('hex')}`;
    await providerCall(
      this.#calls,
      'snapshot',
      () =>
        this.#init.container.commit({
          repo: 'sandport/snapshot',
          tag,
          pause: true,
          changes: [`LABEL ${labels.managed}=snapshot`],
        } as object) as unknown as Promise<unknown>,
      { signal },
    );
    return { type: 'snapshot', provider, id: `sandport/snapshot:${tag}` };
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    const signal = signalOf(options);
    this.#lifecycle.assertAlive();
    if (this.#lifecycle.paused) {
      await providerCall(this.#aliveCalls(), 'setTags', () => writePausedTags(this.#init.container, this.id, checked), { signal });
      return;
    }
    this.#lifecycle.touch();
    // Labels are fixed at create, so the current tags live in a file inside the container.
    const written = await providerCall(
      this.#calls,
      'setTags',
      () =>
        runInContainer(this.#init.container, ['/bin/sh', '-c', 'cat > "$1"', 'set-tags', tagsFile(this.id)], {
          stdin: new TextEncoder().encode(JSON.stringify(checked)),
          signal,
        }),
      { signal },
    );
    if (written.exitCode !== 0)
      throw mapDockerError(new Error(`writing the tags failed: ${written.stderr}`), { operation: 'setTags', sandboxId: this.id });
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    const signal = signalOf(options);
    this.#lifecycle.assertAlive();
    const container = this.#init.container;
    if (this.#lifecycle.paused)
      return providerCall(this.#aliveCalls(), 'getTags', () => readPausedTags(container, this.id), { idempotent: true, signal });
    return providerCall(this.#calls, 'getTags', () => readTags(container, this.id, signal), { idempotent: true, signal });
  }

  async pause(options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options);
    await this.#followEngine(signal);
    await this.#lifecycle.pause(() => this.#transition(() => this.#freeze()), { signal });
  }

  async resume(options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options);
    await this.#followEngine(signal);
    await this.#lifecycle.resume(() => this.#transition(() => this.#thaw()), { signal });
  }

  /**
   * Takes the engine's word for paused or running before a pause or resume, so that one done
   * elsewhere (another process, `docker pause`) is neither repeated nor missed.
   */
  async #followEngine(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    this.#lifecycle.assertAlive();
    const info = await providerCall(this.#aliveCalls(), 'inspect', () => this.#init.container.inspect(), { idempotent: true, signal });
    if (this.#transitions > 0 || !info.State.Running) return;
    if (info.State.Paused) this.#lifecycle.adoptPaused();
    else this.#lifecycle.adoptRunning();
  }

  async #transition(body: () => Promise<void>): Promise<void> {
    this.#transitions++;
    try {
      await body();
    } finally {
      this.#transitions--;
    }
  }

  /** Holds the lifetime inside the container, then pauses it (undone when the engine refuses). */
  async #freeze(): Promise<void> {
    const { container } = this.#init;
    const map = (error: unknown, operation: string) => mapDockerError(error, { operation, sandboxId: this.id });
    // Paused by someone else meanwhile (no exec runs then): nothing left to hold.
    const held = await runInContainer(container, holdLifetimeArgv(this.id)).catch((error: unknown) => {
      const mapped = map(error, 'pause');
      if (mapped.code !== 'sandbox_paused') throw mapped;
      return undefined;
    });
    if (held && held.exitCode !== 0) throw map(new Error(`holding the lifetime failed: ${held.stderr}`), 'pause');
    try {
      await container.pause();
    } catch (error) {
      if (isEngineState(error, 'is already paused')) return;
      await runInContainer(container, releaseLifetimeArgv(this.id)).catch(() => undefined);
      throw map(error, 'pause');
    }
  }

  /** Unpauses the container, then gives the held lifetime back (a deadline again, from now). */
  async #thaw(): Promise<void> {
    const { container } = this.#init;
    const map = (error: unknown, operation: string) => mapDockerError(error, { operation, sandboxId: this.id });
    await container.unpause().catch((error: unknown) => {
      // Resumed by someone else meanwhile: what is left to do is the same.
      if (!isEngineState(error, 'is not paused')) throw map(error, 'resume');
    });
    const release = () =>
      runInContainer(container, releaseLifetimeArgv(this.id)).catch((error: unknown) => {
        throw map(error, 'resume');
      });
    let released = await release();
    // The release is idempotent: one failure right after the thaw (an exit the engine reported
    // without a status, seen once in CI) gets a second try before the resume is called failed.
    if (released.exitCode !== 0) released = await release();
    if (released.exitCode !== 0)
      throw map(new Error(`releasing the lifetime failed (exit ${released.exitCode}): ${released.stderr}`), 'resume');
    const deadline = Number(released.stdout.trim());
    if (Number.isSafeInteger(deadline) && deadline > 0) this.#expiresAt = deadline * 1000;
  }

  /** Provider calls that a paused sandbox still answers (tags): only an ended one is refused. */
  #aliveCalls(): ProviderCallContext {
    return { ...this.#calls, lifecycle: undefined };
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const parsed = parseOptions(networkSchema, policy, { provider, what: 'policy' });
    signalOf(options)?.throwIfAborted();
    this.#lifecycle.assertAlive();
    const egress = this.#init.egress;
    const refuse = (why: string) =>
      new SandboxCapabilityUnsupportedError({
        message: `The docker provider cannot change the network of sandbox ${this.id}: ${why}`,
        capability: 'network.update',
        provider,
      });
    if (!egress) {
      const createdWith = this.#init.createdWith;
      throw refuse(
        createdWith === 'allowlist'
          ? 'its egress proxy lives in the process that created it (only that process can change its allowlist)'
          : `it was created with network: ${JSON.stringify(createdWith ?? 'allow')}, which is fixed at create (only a sandbox created with an allowlist has a proxy whose policy can change)`,
      );
    }
    if (parsed === 'allow') {
      throw refuse(
        'an allowlisted sandbox has no route out but its egress proxy, so it cannot be opened to everything; create one with network: "allow"',
      );
    }
    egress.setPolicy(parsed);
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    const checked = parseOptions(millisecondsSchema, timeoutMs, { provider, what: 'timeoutMs' });
    if (checked > dockerMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs is at most ${dockerMaxTimeoutMs} (24 hours) on the docker provider`,
        argument: 'timeoutMs',
        provider,
      });
    }
    const signal = signalOf(options);
    this.#lifecycle.assertRunning();
    // The keeper never runs past creation + 24 hours, whatever the deadline file says.
    const expiresAt = Math.min(Date.now() + checked, this.#init.createdAt + dockerMaxTimeoutMs);
    // The container's main process polls this deadline, so the new lifetime holds even after we exit.
    const written = await providerCall(
      this.#calls,
      'extendTimeout',
      () =>
        runInContainer(
          this.#init.container,
          // Written aside, then renamed: the keeper reads an empty (half-written) deadline as "now".
          [
            '/bin/sh',
            '-c',
            'echo "$1" > "$2.new" && mv -f "$2.new" "$2"',
            'extend',
            String(Math.ceil(expiresAt / 1000)),
            `${stateDirectory}/deadline`,
          ],
          { signal },
        ),
      { signal },
    );
    if (written.exitCode !== 0)
      throw mapDockerError(new Error(`writing the deadline failed: ${written.stderr}`), { operation: 'extendTimeout', sandboxId: this.id });
    this.#expiresAt = expiresAt;
    this.#lifecycle.armLifetime(Math.max(0, expiresAt - Date.now()));
  }

  async poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    const signal = signalOf(options);
    signal?.throwIfAborted();
    if (this.#lifecycle.ended) return this.#lifecycle.ended;
    if (!this.#lifecycle.isRunning()) return this.#lifecycle.wait({ signal });
    const info = await providerCall(this.#aliveCalls(), 'poll', () => this.#init.container.inspect(), { idempotent: true, signal }).catch(
      () => {
        if (signal?.aborted) throw signal.reason;
        return undefined;
      },
    );
    // Paused or resumed by another process (or `docker pause`): follow the engine, unless this
    // sandbox is the one pausing or resuming it right now.
    if (info?.State.Paused && this.#transitions === 0) this.#lifecycle.adoptPaused();
    else if (info?.State.Running && this.#transitions === 0) this.#lifecycle.adoptRunning();
    if (info?.State.Running) return this.#lifecycle.status;
    this.#watch();
    return this.#lifecycle.wait({ signal });
  }

  wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    const signal = signalOf(options);
    signal?.throwIfAborted();
    this.#watch();
    return this.#lifecycle.wait({ signal });
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options);
    signal?.throwIfAborted();
    await raceWithSignal(this.#lifecycle.end({ state: 'terminated', reason: 'terminated' }), { signal, operation: 'terminate', provider });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  /** Watches the container's own end (the keeper's deadline, the entrypoint, a crash, a removal elsewhere). */
  #watch(): void {
    this.#exitWatch ??= (async () => {
      const result = (await this.#init.container.wait().catch(() => undefined)) as { StatusCode?: number } | undefined;
      if (!this.#lifecycle.isRunning()) return;
      const status: SandboxEnded =
        Date.now() >= this.#expiresAt - 1_000
          ? { state: 'terminated', reason: 'lifetime-timeout' }
          : this.#init.hasEntrypoint && result?.StatusCode !== undefined
            ? { state: 'terminated', reason: 'entrypoint-exited', exitCode: result.StatusCode }
            : { state: 'terminated', reason: 'crashed' };
      void this.#lifecycle.end(status).catch(() => undefined);
    })();
  }

  async #teardown(): Promise<void> {
    try {
      await this.#init.container.remove({ force: true }).catch((error: unknown) => {
        const mapped = mapDockerError(error, { operation: 'terminate', sandboxId: this.id });
        // Already gone (AutoRemove after the lifetime ran out, or removed elsewhere) is fine.
        if (mapped.code !== 'sandbox_not_found') throw mapped;
      });
      // The engine's wait answers once the container is gone: then nothing of it is left.
      await this.#exitWatch;
    } finally {
      // Ended by any path (terminate, lifetime, entrypoint exit, crash, removal elsewhere): the
      // bridge and the proxy go with it.
      await this.#init.egress?.close();
      this.#init.onEnd(this);
    }
  }

  /**
   * The engine flags OOM only for the container's main process; a killed exec is a bare 137. The
   * memory cgroup's oom_kill counter (v2 memory.events, v1 memory.oom_control) tells them apart.
   */
  async #oomKillsIncreased(): Promise<boolean> {
    if (!this.#lifecycle.isRunning()) return false;
    const { stdout } = await runInContainer(this.#init.container, [
      '/bin/sh',
      '-c',
      'cat /sys/fs/cgroup/memory.events 2>/dev/null || cat /sys/fs/cgroup/memory/memory.oom_control',
    ]);
    const kills = Number(/^oom_kill (\d+)$/m.exec(stdout)?.[1] ?? 0);
    const increased = kills > this.#knownOomKills;
    this.#knownOomKills = kills;
    return increased;
  }
}

/** Whether an engine error is the 409 saying the container already is in the state asked for. */
function isEngineState(error: unknown, words: string): boolean {
  const engine = error as { statusCode?: number; message?: unknown } | undefined;
  return engine?.statusCode === 409 && typeof engine.message === 'string' && engine.message.includes(words);
}

/** Makes the sandbox object for a running container (no I/O). */
export function openDockerSandbox(init: DockerSandboxInit): DockerSandboxHandle {
  const sandbox = new DockerContainerSandbox(init);
  return { sandbox, startEntrypoint: (command, signal) => startEntrypointOf(sandbox, command, signal) };
}
