/**
 * A running bubblewrap sandbox, on the kit's lifecycle: exec through `startLocalExec`, files
 * through the kit's exec-backed files API, pause through the cgroup freezer, and a teardown that
 * releases everything the sandbox holds (tunnels, launcher, cgroups, directory) whatever ended it.
 */
import { z } from 'zod';
import {
  startExecEntrypoint,
  SandboxCapabilityUnsupportedError,
  SandboxLifecycle,
  defineFiles,
  entrypointStdio,
  millisecondsSchema,
  parseExecCall,
  parseOptions,
  parseRunCall,
  parseTags,
  runViaExec,
  watchViaExec,
  signalOptionsSchema,
  SandboxInvalidArgumentError,
  networkSchema,
  type Command,
  type EgressProxy,
  type EntrypointStdio,
  type ExecOptions,
  type ExecResult,
  type NetworkPolicy,
  type ParsedNetworkPolicy,
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
import type { SandboxCgroups } from './local-cgroups.js';
import type { Launcher } from './local-launcher.js';
import { localCapabilities, localMaxTimeoutMs } from './local-options.js';
import { startLocalExec, type ExecContext } from './local-process.js';
import type { LocalSystem } from './local-system.js';
import type { LocalTunnels } from './local-tunnels.js';

const provider = 'local';

/** A local sandbox: the contract's `Sandbox`, with its optional members present. */
export interface LocalSandbox extends Sandbox {
  /** Host directory holding this sandbox's layer and sockets (for diagnostics; removed at the end). */
  readonly stateDir: string;
  /** When it was created, in milliseconds since the Unix epoch. */
  readonly createdAt: number;
  /** Captures the sandbox's layer (frozen meanwhile). See `Sandbox.snapshot`. */
  snapshot(options?: SignalOptions): Promise<SandboxSnapshotRef>;
  /** See `Sandbox.extendTimeout`: at most 24 hours. */
  extendTimeout(timeoutMs: number, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.pause`: freezes the sandbox's cgroups, so every process in it (execs, their
   * daemons, the entrypoint) stops where it is; memory and files stay. The network helpers run
   * outside those cgroups and stay up (slirp4netns, the port bridges, an allowlist's egress proxy
   * and its bridge): a connection made through a tunnel while paused is accepted by the bridge and
   * waits for the resume, and `updateNetwork` works while paused. Needs the cgroups
   * that only root gets: without them it throws `SandboxCapabilityUnsupportedError` (capability
   * `pause`).
   */
  pause(options?: SignalOptions): Promise<void>;
  /** See `Sandbox.resume`: thaws the cgroups. Without cgroups, like `pause`, it is refused. */
  resume(options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.updateNetwork`. A sandbox created with an allowlist (`network: { allowDomains,
   * allowCidrs }`, even empty ones) has no route out but its egress proxy, which runs in the
   * creating process: this replaces the proxy's policy, for connections opened from now on
   * (open ones are left alone), with another allowlist or `'block'` (every new connection
   * refused), paused or not. Idempotent. Throws `SandboxCapabilityUnsupportedError` (capability
   * `network.update`) and changes nothing for `'allow'` (that would need a route the sandbox
   * was created without) and for a sandbox created with `'allow'` or `'block'` (its network was
   * fixed at create: there is no proxy to update); `SandboxInvalidArgumentError` naming
   * `network.<field>` for a malformed policy; `SandboxNotFoundError` once the sandbox ended.
   */
  updateNetwork(policy: NetworkPolicy, options?: SignalOptions): Promise<void>;
  /**
   * See `Sandbox.stdout`. The entrypoint's stdin stays open until `stdin.close()` (as on Modal):
   * an entrypoint that reads its input waits for it. `fromId` (this process only) returns this
   * same sandbox, so the same streams.
   */
  readonly stdout: ReadableStream<Uint8Array>;
  /** See `Sandbox.stderr`. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** See `Sandbox.stdin`. */
  readonly stdin: WritableStream<Uint8Array>;
}

export interface LocalSandboxInit {
  id: string;
  name: string | undefined;
  tags: SandboxTags;
  dir: string;
  launcher: Launcher;
  cgroups: SandboxCgroups | undefined;
  system: LocalSystem;
  env: Record<string, string>;
  workdir: string;
  tunnels: LocalTunnels;
  /** The network policy given at create. */
  network: ParsedNetworkPolicy;
  /** The egress proxy of an allowlisted sandbox (closed at the teardown); `undefined` otherwise. */
  egress: EgressProxy | undefined;
  timeoutMs: number;
  idleTimeoutMs: number | undefined;
  warnings: SandboxWarning[];
  events: SandboxEmitter;
  /** Archives the layer; the sandbox freezes itself around the call. */
  takeSnapshot: (signal: AbortSignal | undefined) => Promise<SandboxSnapshotRef>;
  /** The creator's backstop once the launcher has exited: cgroups and directory gone for sure. */
  release: () => Promise<void>;
  /** Called once the sandbox has ended and released everything. */
  onEnd: () => void;
}

/** What the provider keeps of a sandbox: never handed to users. */
export interface LocalSandboxControl {
  readonly id: string;
  readonly name: string | undefined;
  readonly sandbox: LocalSandbox;
  tags(): SandboxTags;
  isRunning(): boolean;
  /** Ends the sandbox (reason `terminated`) and waits for its teardown. */
  end(): Promise<void>;
  /** Starts the entrypoint: the sandbox ends when it exits (reason `entrypoint-exited`). */
  startEntrypoint(argv: readonly string[], command: Command, signal: AbortSignal | undefined): Promise<void>;
}

/** Builds a sandbox over a ready launcher. */
export function createLocalSandbox(init: LocalSandboxInit): LocalSandboxControl {
  let tags = { ...init.tags };
  let knownOomKills = 0;
  const lifecycle = new SandboxLifecycle({
    provider,
    sandboxId: init.id,
    events: init.events,
    idleTimeoutMs: init.idleTimeoutMs,
    teardown: () => teardown(init),
  });
  lifecycle.armLifetime(init.timeoutMs);
  const context: ExecContext = {
    sandboxId: init.id,
    events: init.events,
    lifecycle,
    cgroups: init.cgroups,
    system: init.system,
    childPid: init.launcher.childPid,
    env: init.env,
    workdir: init.workdir,
    async oomKilledSinceLast() {
      const kills = (await init.cgroups?.oomKills()) ?? 0;
      const oom = kills > knownOomKills;
      knownOomKills = kills;
      return oom;
    },
  };
  const stdio: EntrypointSlot = {};
  const sandbox = new LocalSandboxImpl(init, lifecycle, context, stdio, {
    get: () => ({ ...tags }),
    set: (next) => (tags = { ...next }),
  });
  // The launcher only exits on its own when the sandbox died under us.
  void init.launcher.exited.then(() => void lifecycle.end({ state: 'terminated', reason: 'crashed' }).catch(() => undefined));
  return {
    id: init.id,
    name: init.name,
    sandbox,
    tags: () => ({ ...tags }),
    isRunning: () => lifecycle.isRunning(),
    end: () => lifecycle.end({ state: 'terminated', reason: 'terminated' }).catch(() => undefined),
    async startEntrypoint(argv, command, signal) {
      const entrypoint = await startExecEntrypoint(
        (starting) => startLocalExec(context, { argv, command, options: { signal: starting } }),
        {
          signal,
          lifecycle,
        },
      );
      // Bounded while unread (the entrypoint never blocks on a full pipe), pull-based once read.
      stdio.streams = entrypointStdio(entrypoint, { provider, sandboxId: init.id, events: init.events });
    },
  };
}

/** Releases everything, best effort at each step so that one failure cannot leak the rest. */
async function teardown(init: LocalSandboxInit): Promise<void> {
  try {
    await init.tunnels.close().catch(() => undefined);
    await init.launcher.stop();
    // After the launcher: its bridge to the proxy is gone, so nothing new can arrive.
    await init.egress?.close().catch(() => undefined);
    await init.release().catch(() => undefined);
  } finally {
    init.onEnd();
  }
}

/** The policy of `updateNetwork`, wrapped so that an issue is named `network.<field>`. */
const networkUpdateSchema = z.object({ network: networkSchema });

/** Validates a `{ signal }` options bag and throws when it already aborted. */
function signalOf(options: unknown, what: string): AbortSignal | undefined {
  const { signal } = parseOptions(signalOptionsSchema, options, { provider, what });
  signal?.throwIfAborted();
  return signal;
}

/** The entrypoint's stdio, filled in by `startEntrypoint` before `create` resolves. */
interface EntrypointSlot {
  streams?: EntrypointStdio;
}

interface TagStore {
  get(): SandboxTags;
  set(tags: SandboxTags): void;
}

class LocalSandboxImpl implements LocalSandbox {
  readonly provider = provider;
  readonly id: string;
  readonly name: string | undefined;
  readonly files: SandboxFiles;
  readonly warnings: readonly SandboxWarning[];
  readonly createdAt = Date.now();
  readonly stateDir: string;
  readonly #init: LocalSandboxInit;
  readonly #lifecycle: SandboxLifecycle;
  readonly #context: ExecContext;
  readonly #tags: TagStore;
  readonly #stdio: EntrypointSlot;

  constructor(init: LocalSandboxInit, lifecycle: SandboxLifecycle, context: ExecContext, stdio: EntrypointSlot, tags: TagStore) {
    this.id = init.id;
    this.name = init.name;
    this.warnings = init.warnings;
    this.stateDir = init.dir;
    this.#init = init;
    this.#lifecycle = lifecycle;
    this.#context = context;
    this.#tags = tags;
    this.#stdio = stdio;
    // files.watch runs inotifywait inside the sandbox (the kit's watcher over exec).
    this.files = {
      ...defineFiles({ provider, fallback: this, lifecycle }),
      watch: (path, options) => watchViaExec(this, path, options, { provider, lifecycle }),
    };
  }

  // Read only once `create` resolved, when the entrypoint (if any) has started: no slot filled
  // by then means no `command`, and the closed streams are kept so every read sees the same ones.
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
    this.#stdio.streams ??= entrypointStdio(undefined, { provider, sandboxId: this.id, events: this.#init.events });
    return this.#stdio.streams;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<SandboxProcess> {
    const call = parseExecCall(provider, command, options, localCapabilities);
    return startLocalExec(this.#context, call);
  }

  async run(command: Command, options: RunOptions = {}): Promise<ExecResult> {
    const call = parseRunCall(provider, command, options, localCapabilities);
    return runViaExec((c, o) => this.exec(c, o), call.command, call.options, provider);
  }

  async tunnels(options: SignalOptions = {}): Promise<Record<number, Tunnel>> {
    signalOf(options, 'tunnels options');
    this.#lifecycle.assertRunning();
    return { ...this.#init.tunnels.tunnels };
  }

  async snapshot(options: SignalOptions = {}): Promise<SandboxSnapshotRef> {
    const signal = signalOf(options, 'snapshot options');
    this.#lifecycle.assertRunning();
    const { cgroups } = this.#init;
    // Frozen while archived, so the snapshot is one consistent moment of the sandbox.
    await cgroups?.freeze(true);
    try {
      return await this.#init.takeSnapshot(signal);
    } finally {
      // A pause that came meanwhile keeps the sandbox frozen.
      if (!this.#lifecycle.paused) await cgroups?.freeze(false).catch(() => undefined);
    }
  }

  async pause(options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options, 'pause options');
    const cgroups = this.#freezer('pause');
    await this.#lifecycle.pause(() => cgroups.freeze(true), { signal });
  }

  async resume(options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options, 'resume options');
    const cgroups = this.#freezer('resume');
    await this.#lifecycle.resume(() => cgroups.freeze(false), { signal });
  }

  /** The cgroups to freeze: an ended sandbox is SandboxNotFoundError first, then none is a refusal. */
  #freezer(operation: 'pause' | 'resume'): SandboxCgroups {
    this.#lifecycle.assertAlive();
    const { cgroups } = this.#init;
    if (!cgroups) {
      throw new SandboxCapabilityUnsupportedError({
        message: `The local provider cannot ${operation} without cgroups, which it only gets as root: nothing here can freeze the sandbox`,
        capability: 'pause',
        provider,
      });
    }
    return cgroups;
  }

  async updateNetwork(policy: NetworkPolicy, options: SignalOptions = {}): Promise<void> {
    const { network } = parseOptions(networkUpdateSchema, { network: policy }, { provider, what: 'updateNetwork policy' });
    signalOf(options, 'updateNetwork options');
    this.#lifecycle.assertAlive();
    const { egress } = this.#init;
    if (!egress) {
      throw new SandboxCapabilityUnsupportedError({
        message:
          `This local sandbox was created with network: '${this.#init.network as string}', which is fixed for its life ` +
          '(there is no egress proxy to update); create it with an allowlist (network: { allowDomains: [] } allows nothing yet) ' +
          'to change its network later',
        capability: 'network.update',
        provider,
      });
    }
    if (network === 'allow') {
      throw new SandboxCapabilityUnsupportedError({
        message:
          "A local sandbox created with an allowlist cannot switch to network: 'allow': it has no route out but its egress " +
          'proxy. Widen the allowlist instead, or create a sandbox with network: "allow"',
        capability: 'network.update',
        provider,
      });
    }
    egress.setPolicy(network);
  }

  async setTags(tags: SandboxTags, options: SignalOptions = {}): Promise<void> {
    const checked = parseTags(tags, provider);
    signalOf(options, 'setTags options');
    this.#lifecycle.assertAlive();
    this.#tags.set(checked);
  }

  async getTags(options: SignalOptions = {}): Promise<SandboxTags> {
    signalOf(options, 'getTags options');
    this.#lifecycle.assertAlive();
    return this.#tags.get();
  }

  async extendTimeout(timeoutMs: number, options: SignalOptions = {}): Promise<void> {
    const checked = parseOptions(millisecondsSchema, timeoutMs, { provider, what: 'timeoutMs' }) as number;
    if (checked > localMaxTimeoutMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs is at most ${localMaxTimeoutMs} (24 hours)`,
        argument: 'timeoutMs',
        provider,
      });
    }
    signalOf(options, 'extendTimeout options');
    this.#lifecycle.assertRunning();
    this.#lifecycle.armLifetime(checked);
  }

  poll(options: SignalOptions = {}): Promise<SandboxStatus> {
    return this.#lifecycle.poll(options);
  }

  wait(options: SignalOptions = {}): Promise<SandboxEnded> {
    return this.#lifecycle.wait(options);
  }

  async terminate(options: SignalOptions = {}): Promise<void> {
    signalOf(options, 'terminate options');
    await this.#lifecycle.end({ state: 'terminated', reason: 'terminated' }).catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }
}
