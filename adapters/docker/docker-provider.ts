/**
 * The Docker provider: sandboxes on a Docker engine, one container each. This file is the
 * contract's provider calls; the mapping of options is `docker-options.ts` (pure), images,
 * network, scripts and engine state have their own files.
 */
import type Docker from 'dockerode';
import { rm } from 'node:fs/promises';
import {
  SandboxCapabilityUnsupportedError,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  egressProxyEnv,
  listSandboxesOptionsSchema,
  loadOptionalPeer,
  parseOptions,
  providerCall,
  raceWithSignal,
  signalOptionsSchema,
  type CreateSandboxOptions,
  type EgressNetwork,
  type ListSandboxesOptions,
  type ParsedCreateSandboxOptions,
  type ProviderCallContext,
  type SandboxCapabilities,
  type SandboxHostRoute,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxSnapshotRef,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import {
  checkContainerRef,
  engineIsLocal,
  isStaleCreated,
  labels,
  readDeadline,
  readPausedTags,
  readTags,
  runInContainer,
} from './docker-engine.js';
import {
  egressHostDirectory,
  makeEgressHostDirectory,
  openDockerEgress,
  sweepEgressDirectories,
  type DockerEgress,
} from './docker-egress.js';
import { isEngineNotFound, mapDockerError } from './docker-errors.js';
import { startForwards } from './docker-forwards.js';
import { checkRuntime, resolveImage } from './docker-images.js';
import { ensureIsolatedNetwork, type NetworkCache } from './docker-network.js';
import {
  dockerCapabilities,
  dockerCreateOptionsSchema,
  dockerMaxTimeoutMs,
  planDockerCreate,
  type DockerCreatePlan,
} from './docker-options.js';
import { secretsScript, storeSecretsArgv } from './docker-scripts.js';
import { openDockerSandbox, type DockerSandbox } from './docker-sandbox.js';

export interface DockerSandboxProviderOptions {
  /** A configured dockerode client. @default `new Docker()` (DOCKER_HOST or the local socket) */
  docker?: Docker;
  /** Image used when `create` names none. @default 'debian:bookworm-slim' */
  defaultImage?: string;
  /** Pids limit applied when `create` gives none. @default 1024 */
  defaultPidsLimit?: number;
  /**
   * How the egress proxies of allowlisted sandboxes resolve names and open connections: for
   * tests (a pretend internet on loopback) and for apps with their own resolver or dialer.
   * @default the kit's `systemEgressNetwork` (the host's resolver and `net.connect`)
   */
  egressNetwork?: EgressNetwork;
}

/** Sandboxes on a Docker engine, one container each. */
export interface DockerSandboxProvider extends SandboxProvider {
  readonly id: 'docker';
  /**
   * The dockerode client: `options.docker`, or `new Docker()` made on first use. dockerode is an
   * optional peer that the first operation loads; before one, without `options.docker`, this
   * throws `SandboxProviderError`.
   */
  readonly docker: Docker;
  /**
   * See `SandboxProvider.create`. A `network` allowlist (`{ allowDomains, allowCidrs }`) gives the
   * container no network (as `'block'`) plus one bridge: its 127.0.0.1:3128 reaches an egress proxy
   * in this process, named by the proxy variables in its environment (see `sandbox.warnings`);
   * the proxy and the bridge end with the sandbox, or with this process (then the sandbox has no
   * egress at all). It needs the engine on this host (a unix-socket DOCKER_HOST) and either root
   * with nsenter, setpriv and socat here, or node or python3 in the image; otherwise the create
   * throws `SandboxCapabilityUnsupportedError` naming `network`.
   */
  create(options?: CreateSandboxOptions): Promise<DockerSandbox>;
  /**
   * Attaches to a running sandport container by id (12 or 64 hex digits). `SandboxNotFoundError`
   * for anything else. In the creating process this is the same sandbox object. A sandbox
   * created with an allowlist by another process is reached through that process's egress
   * proxy: it has egress only while its creator lives, and `updateNetwork` here throws
   * `SandboxCapabilityUnsupportedError` (`network.update`).
   */
  fromId(id: string, options?: SignalOptions): Promise<DockerSandbox>;
  fromName(name: string, options?: SignalOptions): Promise<DockerSandbox>;
  list(options?: ListSandboxesOptions): Promise<SandboxInfo[]>;
  /** Deletes a snapshot's image; sandboxes started from it keep running. Idempotent. */
  deleteSnapshot(snapshot: SandboxSnapshotRef, options?: SignalOptions): Promise<void>;
  /** A sandbox port forwarded to a host Unix socket (`providerOptions.docker.hostForwards`). No I/O. */
  openHostRoute(hostSocketPath: string, options: { readonly sandboxPort: number }): SandboxHostRoute;
  /**
   * Removes every sandport container that has stopped, whose lifetime has run out, or that a
   * creator which died left unstarted. Resolves with how many were removed. Idempotent.
   */
  cleanup(options?: SignalOptions): Promise<number>;
}

const provider = 'docker';

/** dockerode's constructor, once an operation loaded it (an optional peer: importing this module never needs it). */
let Dockerode: typeof Docker | undefined;

async function loadDockerode(): Promise<void> {
  Dockerode ??= (
    await loadOptionalPeer('dockerode', { provider: 'docker', installLine: 'npm install dockerode', load: () => import('dockerode') })
  ).default;
}

function loadedDockerode(): typeof Docker {
  if (Dockerode) return Dockerode;
  throw new SandboxProviderError({
    message:
      'provider.docker is made by the first operation (create, fromId, fromName, list, deleteSnapshot, cleanup), which loads dockerode: call one first, or pass options.docker',
    provider: 'docker',
  });
}

/** How long `list` waits for one container's tags before leaving it out. */
const listTagsTimeoutMs = 10_000;

const snapshotId = /^sandport\/snapshot:snap-[0-9a-f]{16}$/;

function signalOf(options: unknown): AbortSignal | undefined {
  return parseOptions(signalOptionsSchema, options, { provider, what: 'options' }).signal;
}

/** Host ports the engine bound for a container's published ports. */
function tunnelsOf(info: Docker.ContainerInspectInfo, ports?: readonly number[]): Record<number, Tunnel> {
  const tunnels: Record<number, Tunnel> = {};
  const bound = info.NetworkSettings.Ports ?? {};
  const wanted = ports ?? Object.keys(bound).map((key) => Number(key.split('/')[0]));
  for (const port of wanted) {
    const hostPort = Number(bound[`${port}/tcp`]?.[0]?.HostPort);
    if (hostPort) tunnels[port] = { port, host: '127.0.0.1', hostPort, url: `http://127.0.0.1:${hostPort}`, encrypted: false };
  }
  return tunnels;
}

class DockerProvider implements DockerSandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = provider;
  readonly capabilities: SandboxCapabilities = dockerCapabilities;
  readonly events = new SandboxEmitter();
  readonly #options: DockerSandboxProviderOptions;
  #client: Docker | undefined;
  readonly #known = new Map<string, DockerSandbox>();
  readonly #builds = new Map<string, Promise<string>>();
  readonly #network: NetworkCache = { pending: undefined };
  readonly #calls: ProviderCallContext = {
    provider,
    events: this.events,
    mapError: (error, operation) => mapDockerError(error, { operation }),
  };

  constructor(options: DockerSandboxProviderOptions) {
    this.#options = options;
  }

  get docker(): Docker {
    this.#client ??= this.#options.docker ?? new (loadedDockerode())();
    return this.#client;
  }

  /** Loads dockerode unless the caller brought a client; rejects with `SandboxCapabilityUnsupportedError` (`peer:dockerode`) when it is not installed. */
  async #loadClient(): Promise<Docker> {
    if (!this.#options.docker) await loadDockerode();
    return this.docker;
  }

  async create(options: CreateSandboxOptions = {}): Promise<DockerSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
    const dockerOptions = parseOptions(dockerCreateOptionsSchema, parsed.providerOptions?.docker, {
      provider,
      what: 'providerOptions.docker',
    });
    const signal = parsed.signal;
    signal?.throwIfAborted();
    const plan = planDockerCreate(parsed, dockerOptions, {
      image: this.#options.defaultImage ?? 'debian:bookworm-slim',
      pidsLimit: this.#options.defaultPidsLimit ?? 1024,
      ...(typeof parsed.network === 'object' ? { egressDirectory: egressHostDirectory() } : {}),
    });
    const docker = await this.#loadClient();
    if (plan.egress && !engineIsLocal(docker)) {
      // The proxy's socket is bind-mounted: an engine elsewhere would mount its own host's path.
      throw new SandboxCapabilityUnsupportedError({
        message:
          'network: an allowlist on Docker needs the engine on this host (a unix-socket DOCKER_HOST), since the egress proxy in this process is reached through a bind-mounted socket',
        capability: plan.egress.policy.allowDomains.length > 0 ? 'network.allowDomains' : 'network.allowCidrs',
        provider,
      });
    }
    const egressDirectory = plan.egress?.hostDirectory;
    if (egressDirectory) {
      // Made before any engine call, not raced with the signal: an abort never leaves it behind.
      await sweepEgressDirectories();
      await makeEgressHostDirectory(egressDirectory);
    }
    try {
      return await this.#createContainer(docker, parsed, plan, startedAt);
    } catch (error) {
      // Whatever made it, the directory goes (the sandbox's egress, when it got one, removed it already).
      if (egressDirectory) await rm(egressDirectory, { recursive: true, force: true }).catch(() => undefined);
      throw error;
    }
  }

  async #createContainer(
    docker: Docker,
    parsed: ParsedCreateSandboxOptions,
    plan: DockerCreatePlan,
    startedAt: number,
  ): Promise<DockerSandbox> {
    const signal = parsed.signal;
    // Every step races the signal: an aborted create rejects with its reason at once, and what
    // it made is removed by the step that made it.
    const step = <T>(promise: Promise<T>) => raceWithSignal(promise, { signal, operation: 'create', provider });
    if (plan.runtime) await step(checkRuntime(docker, plan.runtime));
    await step(
      Promise.all([
        resolveImage({ docker, events: this.events, builds: this.#builds }, plan.image, signal),
        plan.network === 'isolated' ? ensureIsolatedNetwork(docker, this.#network) : undefined,
        // Containers that creators killed mid-create left unstarted: the next create removes them.
        this.#sweepStranded(docker),
      ]),
    );
    const creating = docker.createContainer(plan.container).catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'create', image: plan.container.Image });
    });
    let container: Docker.Container;
    try {
      container = await step(creating);
    } catch (error) {
      // Aborted while the engine was creating it: remove it once it exists.
      void creating
        .then(
          (made) => made.remove({ force: true }),
          () => undefined,
        )
        .catch(() => undefined);
      throw error;
    }
    const egress: { opened?: DockerEgress } = {};
    try {
      return await step(
        this.#start(container, { command: parsed.command, idleTimeoutMs: parsed.idleTimeoutMs }, plan, startedAt, signal, egress),
      );
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      // Also when the abort came first and the start is still under way: its egress closes once opened.
      await egress.opened?.close();
      if (signal?.aborted) throw signal.reason;
      throw mapDockerError(error, { operation: 'create', image: plan.container.Image });
    }
  }

  /**
   * Starts a created container and makes it a sandbox: tunnels, secrets, host forwards, the
   * allowlist's egress (put in `egress` as soon as it is open, for the caller to close on failure),
   * entrypoint.
   */
  async #start(
    container: Docker.Container,
    { command, idleTimeoutMs }: { command: CreateSandboxOptions['command']; idleTimeoutMs: number | undefined },
    plan: DockerCreatePlan,
    startedAt: number,
    signal: AbortSignal | undefined,
    egress: { opened?: DockerEgress },
  ): Promise<DockerSandbox> {
    signal?.throwIfAborted();
    await container.start();
    const info = await container.inspect();
    signal?.throwIfAborted();
    if (plan.secrets) {
      const written = await runInContainer(container, storeSecretsArgv, {
        stdin: new TextEncoder().encode(secretsScript(plan.secrets)),
        signal,
      });
      if (written.exitCode !== 0)
        throw new SandboxProviderError({ message: `Could not store the secrets in the sandbox (exit ${written.exitCode})`, provider });
    }
    await startForwards(container, plan.forwards, signal);
    if (plan.egress) {
      const opening = openDockerEgress({
        container,
        info,
        sandboxId: info.Id.slice(0, 12),
        policy: plan.egress.policy,
        hostDirectory: plan.egress.hostDirectory,
        events: this.events,
        network: this.#options.egressNetwork,
        signal,
      });
      // An abort rejects the create at once (the step race), while this may still be opening:
      // whatever it opens is then closed here.
      void opening.then(
        (opened) => {
          if (signal?.aborted) void opened.close();
        },
        () => undefined,
      );
      egress.opened = await opening;
    }
    signal?.throwIfAborted();
    const handle = this.#adopt(container, info, {
      owned: true,
      idleTimeoutMs,
      env: plan.env,
      egress: egress.opened,
      warnings: plan.warnings,
      tunnels: tunnelsOf(info, plan.ports),
      expiresAt: plan.expiresAt,
    });
    if (command !== undefined) await handle.startEntrypoint(command, signal);
    // Aborted during the last step: the caller removes the container, and the sandbox ends with it.
    signal?.throwIfAborted();
    announceCreated(this.events, { provider, sandboxId: handle.sandbox.id, name: handle.sandbox.name, startedAt, warnings: plan.warnings });
    return handle.sandbox;
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<DockerSandbox> {
    checkStringArgument(id, 'id', provider);
    const signal = signalOf(options);
    checkContainerRef(id);
    signal?.throwIfAborted();
    const existing = this.#known.get(id);
    if (existing) return existing;
    const docker = await this.#loadClient();
    const container = docker.getContainer(id);
    const info = await providerCall(
      { ...this.#calls, mapError: (error, operation) => mapDockerError(error, { operation, sandboxId: id }) },
      'fromId',
      () => container.inspect(),
      { idempotent: true, signal },
    );
    if (info.Config.Labels?.[labels.managed] !== 'true' || !info.State.Running) {
      throw new SandboxNotFoundError({ message: `No running sandport sandbox with id ${id}`, sandboxId: id, provider });
    }
    const env = Object.fromEntries(
      (info.Config.Env ?? []).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
    );
    // Kept out of the container's config (see planDockerCreate): its execs get them here too.
    if (info.Config.Labels?.[labels.network] === 'allowlist') Object.assign(env, egressProxyEnv());
    return this.#adopt(docker.getContainer(info.Id), info, {
      owned: false,
      idleTimeoutMs: undefined,
      env,
      warnings: [],
      tunnels: tunnelsOf(info),
      expiresAt: Number(info.Config.Labels?.[labels.expiresAt] ?? Date.now()),
      paused: info.State.Paused === true,
    }).sandbox;
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<DockerSandbox> {
    checkStringArgument(name, 'name', provider);
    const signal = signalOf(options);
    const found = await this.#managed({ label: [`${labels.name}=${name}`] }, signal);
    const first = found[0];
    if (!first) throw new SandboxNotFoundError({ message: `No running sandbox named "${name}"`, sandboxId: name, provider });
    return this.fromId(first.Id.slice(0, 12), { signal });
  }

  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider, what: 'list options' });
    const wanted = Object.entries(parsed.tags ?? {});
    const containers = await this.#managed({}, parsed.signal);
    const docker = this.docker;
    const infos = await Promise.all(
      containers.map(async (container) => {
        const id = container.Id.slice(0, 12);
        // Bounded: one container whose engine is stuck must not hang every listing.
        // No exec runs in a paused container: its tags are read through the archive API.
        const found = docker.getContainer(container.Id);
        const tags = await providerCall(
          this.#calls,
          'list',
          () => (container.State === 'paused' ? readPausedTags(found, id) : readTags(found, id, parsed.signal, listTagsTimeoutMs)),
          { idempotent: true, signal: parsed.signal },
        ).catch(() => {
          if (parsed.signal?.aborted) throw parsed.signal.reason;
          return undefined;
        });
        if (!tags || !wanted.every(([key, value]) => tags[key] === value)) return undefined;
        return {
          id,
          name: container.Labels[labels.name] || undefined,
          tags,
          createdAt: Number(container.Labels[labels.createdAt] ?? container.Created * 1000),
        } satisfies SandboxInfo;
      }),
    );
    return infos.filter((info): info is SandboxInfo => info !== undefined);
  }

  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    const signal = signalOf(options);
    signal?.throwIfAborted();
    if (snapshot?.provider !== provider || typeof snapshot.id !== 'string' || !snapshotId.test(snapshot.id)) {
      throw new SandboxInvalidArgumentError({ message: `Not a docker snapshot: ${String(snapshot?.id)}`, argument: 'snapshot', provider });
    }
    const docker = await this.#loadClient();
    await providerCall(
      { ...this.#calls, mapError: (error, operation) => mapDockerError(error, { operation, image: snapshot.id }) },
      'deleteSnapshot',
      () =>
        docker
          .getImage(snapshot.id)
          .remove({ force: true })
          .catch((error: unknown) => {
            if (!isEngineNotFound(error)) throw error;
          }),
      { idempotent: true, signal },
    );
  }

  openHostRoute(hostSocketPath: string, options: { readonly sandboxPort: number }): SandboxHostRoute {
    if (typeof hostSocketPath !== 'string' || !hostSocketPath.startsWith('/') || hostSocketPath.includes('\0')) {
      throw new SandboxInvalidArgumentError({ message: 'hostSocketPath must be an absolute path', argument: 'hostSocketPath', provider });
    }
    const port = options?.sandboxPort;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new SandboxInvalidArgumentError({ message: 'sandboxPort must be a port number (1-65535)', argument: 'sandboxPort', provider });
    }
    return {
      createOptions: { providerOptions: { docker: { hostForwards: { [port]: hostSocketPath } } } },
      sandboxUrl: `http://127.0.0.1:${port}`,
    };
  }

  async cleanup(options: SignalOptions = {}): Promise<number> {
    const signal = signalOf(options);
    signal?.throwIfAborted();
    const docker = await this.#loadClient();
    const containers = await providerCall(
      this.#calls,
      'cleanup',
      () => docker.listContainers({ all: true, filters: { label: [`${labels.managed}=true`] } }),
      { idempotent: true, signal },
    );
    let removed = 0;
    const now = Date.now();
    for (const container of containers) {
      signal?.throwIfAborted();
      // The deadline file can be pushed by extendTimeout, or by code inside the sandbox (it runs
      // as root there), so past the label's expiry it is read, but never trusted beyond the cap.
      const createdAt = Number(container.Labels[labels.createdAt] ?? container.Created * 1000);
      const overCap = createdAt + dockerMaxTimeoutMs < now;
      const running = container.State === 'running';
      // A paused container's lifetime stands still (its deadline cannot even be read): only the
      // cap, wall-clock time, ends it here.
      const paused = container.State === 'paused';
      const expired =
        (paused && overCap) ||
        (running &&
          (overCap ||
            (Number(container.Labels[labels.expiresAt] ?? 0) < now &&
              (await readDeadline(docker.getContainer(container.Id)).then(
                (deadline) => deadline < now,
                () => true,
              )))));
      // A container still being created by a live creator is left alone.
      const stale = container.State === 'created' ? isStaleCreated(container, now) : !running && !paused;
      if (stale || expired)
        await docker
          .getContainer(container.Id)
          .remove({ force: true })
          .then(
            () => removed++,
            () => undefined,
          );
    }
    return removed;
  }

  /** Removes containers that creators killed mid-create left in state "created". Never fails a create. */
  async #sweepStranded(docker: Docker): Promise<void> {
    const stranded = await Promise.resolve()
      .then(() => docker.listContainers({ all: true, filters: { label: [`${labels.managed}=true`], status: ['created'] } }))
      .catch(() => [] as Docker.ContainerInfo[]);
    const now = Date.now();
    await Promise.all(
      stranded
        .filter((container) => isStaleCreated(container, now))
        .map((container) =>
          docker
            .getContainer(container.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
    );
  }

  #adopt(
    container: Docker.Container,
    info: Docker.ContainerInspectInfo,
    details: {
      owned: boolean;
      idleTimeoutMs: number | undefined;
      env: Record<string, string>;
      egress?: DockerEgress | undefined;
      warnings: DockerCreatePlan['warnings'];
      tunnels: Record<number, Tunnel>;
      expiresAt: number;
      paused?: boolean;
    },
  ) {
    const id = info.Id.slice(0, 12);
    const handle = openDockerSandbox({
      id,
      name: info.Config.Labels?.[labels.name] || undefined,
      container,
      env: details.env,
      workdir: info.Config.Labels?.[labels.workdir] || info.Config.WorkingDir || '/',
      tunnels: details.tunnels,
      createdAt: Number(info.Config.Labels?.[labels.createdAt] ?? Date.parse(info.Created)),
      expiresAt: details.expiresAt,
      idleTimeoutMs: details.idleTimeoutMs,
      warnings: details.warnings,
      events: this.events,
      owned: details.owned,
      paused: details.paused === true,
      hasEntrypoint: info.Config.Labels?.[labels.entrypoint] === 'true',
      egress: details.egress,
      createdWith: info.Config.Labels?.[labels.network],
      engineIsLocal: engineIsLocal(this.docker),
      onEnd: (ended) => {
        if (this.#known.get(ended.id) === ended) this.#known.delete(ended.id);
      },
    });
    this.#known.set(id, handle.sandbox);
    return handle;
  }

  async #managed(filters: { label?: string[] }, signal: AbortSignal | undefined): Promise<Docker.ContainerInfo[]> {
    const docker = await this.#loadClient();
    return providerCall(
      this.#calls,
      'list',
      () =>
        docker.listContainers({ filters: { label: [`${labels.managed}=true`, ...(filters.label ?? [])], status: ['running', 'paused'] } }),
      { idempotent: true, signal },
    );
  }
}

/** Creates the Docker provider. Construction does no I/O; the engine is first contacted on use. */
export function createDockerSandboxProvider(options: DockerSandboxProviderOptions = {}): DockerSandboxProvider {
  return new DockerProvider(options);
}
