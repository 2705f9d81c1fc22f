import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  loadOptionalPeer,
  parseOptions,
  retryIdempotent,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxSnapshotRef,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/kit/index.js';
import { mapDockerError } from './docker-errors.js';
import { forwardSocketPath, startForwards } from './docker-forwards.js';
import { DockerSandbox, labels, readTags, runInContainer, secretsScript, stateDirectory } from './docker-sandbox.js';

export interface DockerSandboxProviderOptions {
  /** A configured dockerode client. @default `new Docker()` (DOCKER_HOST or the local socket) */
  docker?: Docker;
  /** Image used when `create` names none. @default 'debian:bookworm-slim' */
  defaultImage?: string;
  /** Pids limit applied when `create` gives none. @default 1024 */
  defaultPidsLimit?: number;
}

/**
 * `providerOptions.docker` of `create`.
 * - `runtime`: an OCI runtime registered with the engine, e.g. `'runsc'` (gVisor) for a
 *   hardened sandbox. The create fails when the engine does not have it.
 */
export const dockerCreateOptionsSchema = z
  .object({
    runtime: z.string().min(1).optional(),
    /**
     * `{ [sandboxPort]: hostUnixSocketPath }`: inside the container, 127.0.0.1:<port> forwards each
     * connection to the host socket (bind-mounted; the forwarder needs node or python3 in the image).
     * One deliberate path to one host service, with the host's network still out of reach.
     */
    hostForwards: z
      .record(
        z.string().regex(/^\d+$/, { message: 'keys are sandbox port numbers' }).refine((port) => Number(port) >= 1 && Number(port) <= 65535, { message: 'ports are 1-65535' }),
        z.string().startsWith('/', { message: 'must be an absolute host socket path' }),
      )
      .optional(),
  })
  .strict();

const defaultTimeoutMs = 5 * 60 * 1000;
const maxTimeoutMs = 24 * 60 * 60 * 1000;
/**
 * The container's main process: sleeps until the deadline in the state directory ($0, rewritten
 * by extendTimeout), never past the hard cap ($1, creation + the maximum lifetime), then exits,
 * which ends the container. Wakes at least every 5 s to see a changed deadline.
 */
const lifetimeKeeper = [
  `mkdir -p ${stateDirectory} && echo "$0" > ${stateDirectory}/deadline && echo $$ > ${stateDirectory}/keeper.pid || exit 1`,
  // The entrypoint wrapper signals here when its command ended: exit with the command's status.
  `trap 'exit "$(cat ${stateDirectory}/entrypoint-exit 2>/dev/null || echo 0)"' USR1`,
  'while :; do',
  `  d=$(cat ${stateDirectory}/deadline 2>/dev/null); case "$d" in ''|*[!0-9]*) d=0 ;; esac`,
  '  [ "$d" -gt "$1" ] && d=$1',
  '  now=$(date +%s); [ "$now" -ge "$d" ] && exit 0',
  '  left=$((d - now)); [ "$left" -gt 5 ] && left=5',
  // In the background, so that the trap above runs at once instead of after the sleep.
  '  sleep "$left" & wait $!',
  'done',
].join('\n');
const isolatedNetworkName = 'sandport-isolated';
const keptCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'];

export const dockerCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'container',
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true },
  tunnels: true,
  tunnelsTls: false,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: true,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  extendTimeout: true,
  network: { block: true, allowCidrs: false, allowDomains: false },
  limits: { cpu: true, memory: true, pids: true },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: maxTimeoutMs },
  volumes: 'host-path-or-named',
  gpu: false,
  images: { reference: true, build: true, snapshot: true },
} as const);

/** dockerode's constructor, once an operation loaded it (an optional peer: importing this module never needs it). */
let Dockerode: typeof Docker | undefined;

async function loadDockerode(): Promise<void> {
  Dockerode ??= (await loadOptionalPeer('dockerode', { provider: 'docker', installLine: 'npm install dockerode', load: () => import('dockerode') })).default;
}

function loadedDockerode(): typeof Docker {
  if (Dockerode) return Dockerode;
  throw new SandboxProviderError({
    message: 'provider.docker is made by the first operation (create, fromId, fromName, list, deleteSnapshot, cleanup), which loads dockerode: call one first, or pass options.docker',
    provider: 'docker',
  });
}

/** Sandboxes on a Docker engine, one container each. */
export class DockerSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'docker';
  readonly capabilities = dockerCapabilities;
  readonly events = new SandboxEmitter();
  private client: Docker | undefined;
  private readonly known = new Map<string, DockerSandbox>();
  private readonly builds = new Map<string, Promise<string>>();
  private isolatedNetwork: Promise<string> | undefined;

  constructor(private readonly options: DockerSandboxProviderOptions = {}) {}

  /**
   * The dockerode client: `options.docker`, or `new Docker()` made on first use. dockerode is an
   * optional peer that the first operation loads; before one, without `options.docker`, this
   * throws `SandboxProviderError`.
   */
  get docker(): Docker {
    this.client ??= this.options.docker ?? new (loadedDockerode())();
    return this.client;
  }

  /** Loads dockerode unless the caller brought a client; rejects with `SandboxCapabilityUnsupportedError` (`peer:dockerode`) when it is not installed. */
  private async loadClient(): Promise<void> {
    if (!this.options.docker) await loadDockerode();
  }

  async create(options: CreateSandboxOptions = {}): Promise<DockerSandbox> {
    const startedAt = performance.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'docker', what: 'create options' });
    const dockerOptions = parseOptions(dockerCreateOptionsSchema, parsed.providerOptions?.docker, { provider: 'docker', what: 'providerOptions.docker' });
    parsed.signal?.throwIfAborted();
    const warnings = this.checkOptions(parsed);
    await this.loadClient();
    if (dockerOptions.runtime) await this.checkRuntime(dockerOptions.runtime);
    const image = await this.resolveImage(parsed, parsed.signal);
    const timeoutMs = parsed.timeoutMs ?? defaultTimeoutMs;
    const expiresAt = Date.now() + timeoutMs;
    const workdir = parsed.workdir ?? '/workspace';
    // Secrets stay out of the container's Env: `docker inspect` shows it and `commit` copies it
    // into snapshots. They go to a file on the state tmpfs instead (see secretsPrelude).
    const env = { ...parsed.env };
    const createdAt = Date.now();
    const signal = parsed.signal;
    const ports = (parsed.ports ?? []).map((port) => (typeof port === 'number' ? port : port.port));
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: parsed.name === undefined ? undefined : `sandport-${parsed.name}`,
        Image: image,
        // The main process holds the container up until the deadline, so the lifetime holds even
        // if this process dies; AutoRemove then deletes the container.
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: [lifetimeKeeper, String(Math.ceil(expiresAt / 1000)), String(Math.floor((createdAt + maxTimeoutMs) / 1000))],
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        WorkingDir: workdir,
        Tty: false,
        Labels: {
          [labels.managed]: 'true',
          [labels.name]: parsed.name ?? '',
          [labels.tags]: JSON.stringify(parsed.tags ?? {}),
          [labels.createdAt]: String(createdAt),
          [labels.expiresAt]: String(expiresAt),
          [labels.workdir]: workdir,
          [labels.env]: JSON.stringify(Object.keys(parsed.env ?? {})),
          [labels.entrypoint]: parsed.command === undefined ? 'false' : 'true',
        },
        ExposedPorts: Object.fromEntries(ports.map((port) => [`${port}/tcp`, {}])),
        HostConfig: {
          AutoRemove: true,
          Init: true,
          NetworkMode: parsed.network === 'block' ? 'none' : await this.ensureIsolatedNetwork(),
          PortBindings: Object.fromEntries(ports.map((port) => [`${port}/tcp`, [{ HostIp: '127.0.0.1', HostPort: '' }]])),
          Memory: parsed.memoryMiB === undefined ? undefined : parsed.memoryMiB * 1024 * 1024,
          MemorySwap: parsed.memoryMiB === undefined ? undefined : parsed.memoryMiB * 1024 * 1024,
          NanoCpus: parsed.cpu === undefined ? undefined : Math.round(parsed.cpu * 1e9),
          PidsLimit: parsed.pidsLimit ?? this.options.defaultPidsLimit ?? 1024,
          CapDrop: ['ALL'],
          CapAdd: keptCapabilities,
          SecurityOpt: ['no-new-privileges'],
          Privileged: false,
          Tmpfs: { [stateDirectory]: 'rw,nosuid,nodev,noexec,size=1m,mode=0700' },
          // Mounts, not Binds: a bind of a missing host path is an error here, where Binds would
          // silently create a root-owned directory on the host.
          Mounts: [
            ...Object.entries(parsed.volumes ?? {}).map(([target, volume]) => {
              const source = typeof volume === 'string' ? volume : volume.source;
              const readOnly = typeof volume === 'string' ? false : volume.readOnly;
              return { Type: source.startsWith('/') ? ('bind' as const) : ('volume' as const), Source: source, Target: target, ReadOnly: readOnly };
            }),
            ...Object.entries(dockerOptions.hostForwards ?? {}).map(([port, socket]) => ({
              Type: 'bind' as const,
              Source: socket,
              Target: forwardSocketPath(Number(port)),
              ReadOnly: false,
            })),
          ],
          Runtime: dockerOptions.runtime,
        },
      });
    } catch (error) {
      const message = String((error as { json?: { message?: string } }).json?.message ?? (error as Error).message);
      if (/bind source path does not exist|invalid mount config/i.test(message)) {
        throw new SandboxInvalidArgumentError({ message: `volumes: ${message}`, argument: 'volumes', provider: 'docker', cause: error });
      }
      throw mapDockerError(error, { operation: 'create', image });
    }
    const checkAbort = () => {
      if (signal?.aborted) throw signal.reason;
    };
    try {
      checkAbort();
      await container.start();
      const info = await container.inspect();
      const tunnels: Record<number, Tunnel> = {};
      for (const port of ports) {
        const binding = info.NetworkSettings.Ports?.[`${port}/tcp`]?.[0];
        const hostPort = Number(binding?.HostPort);
        tunnels[port] = { port, host: '127.0.0.1', hostPort, url: `http://127.0.0.1:${hostPort}`, encrypted: false };
      }
      if (parsed.secrets && Object.keys(parsed.secrets).length > 0) {
        const written = await runInContainer(container, ['/bin/sh', '-c', `umask 077; cat > ${stateDirectory}/secrets.sh`], {
          stdin: new TextEncoder().encode(secretsScript(parsed.secrets)),
        });
        if (written.exitCode !== 0) throw new SandboxProviderError({ message: `Could not store the secrets in the sandbox (exit ${written.exitCode})`, provider: 'docker' });
      }
      await startForwards(container, Object.keys(dockerOptions.hostForwards ?? {}).map(Number));
      checkAbort();
      const sandbox = this.adopt(container, info, { owned: true, idleTimeoutMs: parsed.idleTimeoutMs, env, warnings, tunnels, expiresAt });
      this.events.emit('sandbox-created', { provider: 'docker', sandboxId: sandbox.id, name: parsed.name, durationMs: performance.now() - startedAt });
      for (const warning of warnings) this.events.emit('warning', { provider: 'docker', sandboxId: sandbox.id, warning });
      if (parsed.command !== undefined) {
        const entrypoint = await sandbox.execEntrypoint(parsed.command);
        void entrypoint.stdin.close().catch(() => undefined);
        void entrypoint.stdout.pipeTo(new WritableStream()).catch(() => undefined);
        void entrypoint.stderr.pipeTo(new WritableStream()).catch(() => undefined);
        void entrypoint.wait().then(({ exitCode }) => sandbox.entrypointExited(exitCode), () => undefined);
      }
      return sandbox;
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      if (signal?.aborted && error === signal.reason) throw error;
      throw mapDockerError(error, { operation: 'create', image });
    }
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<DockerSandbox> {
    checkStringArgument(id, 'id', 'docker');
    options.signal?.throwIfAborted();
    const existing = this.known.get(id);
    if (existing?.isRunning()) return existing;
    await this.loadClient();
    const container = this.docker.getContainer(id);
    const info = await retryIdempotent(
      'fromId',
      () => container.inspect().catch((error: unknown) => {
        throw mapDockerError(error, { operation: 'fromId', sandboxId: id });
      }),
      { provider: 'docker', events: this.events, signal: options.signal },
    );
    if (info.Config.Labels?.[labels.managed] !== 'true' || !info.State.Running) {
      throw new SandboxNotFoundError({ message: `No running sandport sandbox with id ${id}`, sandboxId: id, provider: 'docker' });
    }
    const tunnels: Record<number, Tunnel> = {};
    for (const [key, bindings] of Object.entries(info.NetworkSettings.Ports ?? {})) {
      const hostPort = Number(bindings?.[0]?.HostPort);
      const port = Number(key.split('/')[0]);
      if (hostPort) tunnels[port] = { port, host: '127.0.0.1', hostPort, url: `http://127.0.0.1:${hostPort}`, encrypted: false };
    }
    const env = Object.fromEntries((info.Config.Env ?? []).map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
    return this.adopt(container, info, { owned: false, idleTimeoutMs: undefined, env, warnings: [], tunnels, expiresAt: Number(info.Config.Labels?.[labels.expiresAt] ?? Date.now()) });
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<DockerSandbox> {
    checkStringArgument(name, 'name', 'docker');
    const found = await this.managedContainers({ label: [`${labels.name}=${name}`] }, options.signal);
    const first = found[0];
    if (!first) throw new SandboxNotFoundError({ message: `No running sandbox named "${name}"`, sandboxId: name, provider: 'docker' });
    return this.fromId(first.Id.slice(0, 12), options);
  }

  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider: 'docker', what: 'list options' });
    const wanted = Object.entries(parsed.tags ?? {});
    const containers = await this.managedContainers({}, parsed.signal);
    const infos = await Promise.all(
      containers.map(async (container) => {
        const tags = await readTags(this.docker.getContainer(container.Id), container.Id.slice(0, 12), parsed.signal).catch(() => undefined);
        if (!tags || !wanted.every(([key, value]) => tags[key] === value)) return undefined;
        return {
          id: container.Id.slice(0, 12),
          name: container.Labels[labels.name] || undefined,
          tags,
          createdAt: Number(container.Labels[labels.createdAt] ?? container.Created * 1000),
        } satisfies SandboxInfo;
      }),
    );
    return infos.filter((info): info is SandboxInfo => info !== undefined);
  }

  /**
   * Deletes a snapshot's image. Sandboxes already started from it keep running (the engine keeps
   * the layers they use). Idempotent.
   */
  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (snapshot.provider !== 'docker' || !/^sandport\/snapshot:snap-[0-9a-f]{16}$/.test(snapshot.id)) {
      throw new SandboxInvalidArgumentError({ message: `Not a docker snapshot: ${snapshot.id}`, argument: 'snapshot', provider: 'docker' });
    }
    await this.loadClient();
    await this.docker
      .getImage(snapshot.id)
      .remove({ force: true })
      .catch((error: unknown) => {
        if ((error as { statusCode?: number }).statusCode === 404) return;
        throw mapDockerError(error, { operation: 'deleteSnapshot', image: snapshot.id });
      });
  }

  /**
   * Removes every sandport container that has stopped or whose lifetime has run out (left over,
   * for example, by a process that died). Returns how many were removed. Idempotent.
   */
  async cleanup(options: SignalOptions = {}): Promise<number> {
    options.signal?.throwIfAborted();
    await this.loadClient();
    const containers = await this.docker.listContainers({ all: true, filters: { label: [`${labels.managed}=true`] } }).catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'cleanup' });
    });
    let removed = 0;
    for (const container of containers) {
      // The deadline file can be pushed by extendTimeout, or by code inside the sandbox (it runs
      // as root there), so past the label's expiry it is read, but never trusted beyond the cap.
      const createdAt = Number(container.Labels[labels.createdAt] ?? container.Created * 1000);
      const overCap = createdAt + maxTimeoutMs < Date.now();
      const expired = overCap || (Number(container.Labels[labels.expiresAt] ?? 0) < Date.now() && container.State === 'running'
        ? await readDeadline(this.docker.getContainer(container.Id)).then((deadline) => deadline < Date.now(), () => true)
        : false);
      if (container.State !== 'running' || expired) {
        await this.docker.getContainer(container.Id).remove({ force: true }).then(() => removed++, () => undefined);
      }
    }
    return removed;
  }

  private adopt(
    container: Docker.Container,
    info: Docker.ContainerInspectInfo,
    details: { owned: boolean; idleTimeoutMs: number | undefined; env: Record<string, string>; warnings: SandboxWarning[]; tunnels: Record<number, Tunnel>; expiresAt: number },
  ): DockerSandbox {
    const id = info.Id.slice(0, 12);
    const sandbox = new DockerSandbox({
      id,
      name: info.Config.Labels?.[labels.name] || undefined,
      container,
      docker: this.docker,
      env: details.env,
      workdir: info.Config.Labels?.[labels.workdir] || info.Config.WorkingDir || '/',
      tunnels: details.tunnels,
      expiresAt: details.expiresAt,
      idleTimeoutMs: details.idleTimeoutMs,
      warnings: details.warnings,
      events: this.events,
      owned: details.owned,
      hasEntrypoint: info.Config.Labels?.[labels.entrypoint] === 'true',
      onEnd: (ended) => {
        if (this.known.get(ended.id) === ended) this.known.delete(ended.id);
      },
    });
    this.known.set(id, sandbox);
    return sandbox;
  }

  private async managedContainers(filters: { label?: string[] }, signal?: AbortSignal): Promise<Docker.ContainerInfo[]> {
    await this.loadClient();
    return retryIdempotent(
      'list',
      () =>
        this.docker
          .listContainers({ filters: { label: [`${labels.managed}=true`, ...(filters.label ?? [])], status: ['running'] } })
          .catch((error: unknown) => {
            throw mapDockerError(error, { operation: 'list' });
          }),
      { provider: 'docker', events: this.events, signal },
    );
  }

  private checkOptions(options: ParsedCreateSandboxOptions): SandboxWarning[] {
    if (options.gpu !== undefined) {
      throw new SandboxCapabilityUnsupportedError({ message: 'The docker provider does not pass GPUs through', capability: 'gpu', provider: 'docker' });
    }
    if (typeof options.network === 'object') {
      throw new SandboxCapabilityUnsupportedError({
        message: 'The docker provider cannot enforce a CIDR or domain allowlist; use network: "block" or "allow"',
        capability: 'network.allowlist',
        provider: 'docker',
      });
    }
    if (options.network === 'block' && (options.ports ?? []).length > 0) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'Docker cannot publish ports of a container without a network; use network: "allow" with ports',
        capability: 'tunnels',
        provider: 'docker',
      });
    }
    if (options.timeoutMs !== undefined && options.timeoutMs > maxTimeoutMs) {
      throw new SandboxInvalidArgumentError({ message: `timeoutMs is at most ${maxTimeoutMs} (24 hours)`, argument: 'timeoutMs', provider: 'docker' });
    }
    for (const [target, volume] of Object.entries(options.volumes ?? {})) {
      const source = typeof volume === 'string' ? volume : volume.source;
      if (!source.startsWith('/') && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source)) {
        throw new SandboxInvalidArgumentError({ message: `volumes.${target}: give an absolute host path or a volume name`, argument: `volumes.${target}`, provider: 'docker' });
      }
      if (target === '/' || /^\/(proc|sys|dev)(\/|$)/.test(target) || target.startsWith(stateDirectory)) {
        throw new SandboxInvalidArgumentError({ message: `volumes.${target}: cannot mount over ${target}`, argument: `volumes.${target}`, provider: 'docker' });
      }
    }
    const warnings: SandboxWarning[] = [];
    for (const port of options.ports ?? []) {
      if (typeof port === 'object' && port.encrypted) {
        warnings.push({ type: 'unsupported-setting', setting: 'ports.encrypted', details: 'docker tunnels are plain http on 127.0.0.1' });
      }
    }
    return warnings;
  }

  /**
   * Outbound access goes through a bridge network of our own with inter-container traffic off:
   * on Docker's default bridge every sandbox could reach every other sandbox's ports.
   */
  private ensureIsolatedNetwork(): Promise<string> {
    this.isolatedNetwork ??= (async () => {
      const inspect = () => this.docker.getNetwork(isolatedNetworkName).inspect() as Promise<{ Driver?: string; Options?: Record<string, string> }>;
      let info = await inspect().catch((error: unknown) => {
        if ((error as { statusCode?: number }).statusCode !== 404) throw mapDockerError(error, { operation: 'network inspect' });
        return undefined;
      });
      if (!info) {
        await this.docker
          .createNetwork({
            Name: isolatedNetworkName,
            Driver: 'bridge',
            CheckDuplicate: true,
            Labels: { [labels.managed]: 'network' },
            Options: { 'com.docker.network.bridge.enable_icc': 'false' },
          })
          .catch((error: unknown) => {
            // Another process created it first.
            if ((error as { statusCode?: number }).statusCode !== 409) throw mapDockerError(error, { operation: 'network create' });
          });
        info = await inspect().catch((error: unknown) => {
          throw mapDockerError(error, { operation: 'network inspect' });
        });
      }
      if (info.Driver !== 'bridge' || info.Options?.['com.docker.network.bridge.enable_icc'] !== 'false') {
        throw new SandboxProviderError({
          message: `The Docker network "${isolatedNetworkName}" exists but lets containers reach each other (it was not made by sandport); remove it with: docker network rm ${isolatedNetworkName}`,
          provider: 'docker',
        });
      }
      return isolatedNetworkName;
    })();
    this.isolatedNetwork.catch(() => (this.isolatedNetwork = undefined));
    return this.isolatedNetwork;
  }

  private async checkRuntime(runtime: string): Promise<void> {
    const info = (await this.docker.info().catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'info' });
    })) as { Runtimes?: Record<string, unknown> };
    if (!info.Runtimes || !(runtime in info.Runtimes)) {
      throw new SandboxCapabilityUnsupportedError({
        message: `The engine has no runtime "${runtime}" (it has: ${Object.keys(info.Runtimes ?? {}).join(', ')})`,
        capability: 'providerOptions.docker.runtime',
        provider: 'docker',
      });
    }
  }

  private async resolveImage(options: ParsedCreateSandboxOptions, signal: AbortSignal | undefined): Promise<string> {
    const image = options.image ?? this.options.defaultImage ?? 'debian:bookworm-slim';
    if (typeof image === 'object' && 'type' in image) {
      if (image.provider !== 'docker') {
        throw new SandboxInvalidArgumentError({ message: `A ${image.provider} snapshot cannot start a docker sandbox`, argument: 'image', provider: 'docker' });
      }
      await this.ensureImage(image.id, false);
      return image.id;
    }
    if (typeof image === 'string') {
      await this.ensureImage(image, true);
      return image;
    }
    return this.build(image.base, image.commands, signal);
  }

  private async ensureImage(reference: string, mayPull: boolean): Promise<void> {
    const present = await this.docker.getImage(reference).inspect().then(() => true, (error: unknown) => {
      const mapped = mapDockerError(error, { operation: 'image inspect', image: reference });
      if ((error as { statusCode?: number }).statusCode === 404) return false;
      throw mapped;
    });
    if (present) return;
    if (mayPull) {
      try {
        const stream = await this.docker.pull(reference);
        await new Promise<void>((resolve, reject) => this.docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve())));
        return;
      } catch (error) {
        throw new SandboxInvalidArgumentError({ message: `Image ${reference} is not present and could not be pulled: ${(error as Error).message}`, argument: 'image', provider: 'docker', cause: error });
      }
    }
    throw new SandboxInvalidArgumentError({ message: `Image ${reference} does not exist on this engine`, argument: 'image', provider: 'docker' });
  }

  /** Builds `base` + `RUN` lines once per content; later creates reuse the tagged image. */
  private build(base: string, commands: string[], signal: AbortSignal | undefined): Promise<string> {
    const dockerfile = [`FROM ${base}`, ...commands.map((command) => `RUN ${command.replace(/\n/g, ' \\\n')}`)].join('\n') + '\n';
    const tag = `sandport/build:${createHash('sha256').update(dockerfile).digest('hex').slice(0, 20)}`;
    const pending = this.builds.get(tag);
    if (pending) return pending;
    const building = (async () => {
      if (await this.docker.getImage(tag).inspect().then(() => true, () => false)) return tag;
      await this.ensureImage(base, true);
      const context = tar.pack();
      context.entry({ name: 'Dockerfile' }, dockerfile);
      context.finalize();
      const log: string[] = [];
      try {
        const stream = (await this.docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag, rm: true, forcerm: true, abortSignal: signal } as Docker.ImageBuildOptions)) as NodeJS.ReadableStream;
        await new Promise<void>((resolve, reject) =>
          this.docker.modem.followProgress(
            stream,
            (error, output: Array<{ error?: string }>) => {
              const failed = error ?? output.find((item) => item.error)?.error;
              if (failed) reject(failed instanceof Error ? failed : new Error(String(failed)));
              else resolve();
            },
            (event: { stream?: string; error?: string }) => {
              const line = (event.stream ?? event.error ?? '').trimEnd();
              if (!line) return;
              log.push(line);
              this.events.emit('image-build', { provider: 'docker', image: tag, line });
            },
          ),
        );
      } catch (error) {
        throw new SandboxProviderError({ message: `Building the image failed: ${(error as Error).message}\n${log.slice(-15).join('\n')}`, provider: 'docker', cause: error });
      }
      return tag;
    })();
    this.builds.set(tag, building);
    building.catch(() => this.builds.delete(tag));
    return building;
  }
}

/** Creates the Docker provider. Construction does no I/O; the engine is first contacted on use. */
export function createDockerSandboxProvider(options: DockerSandboxProviderOptions = {}): DockerSandboxProvider {
  return new DockerSandboxProvider(options);
}

async function readDeadline(container: Docker.Container): Promise<number> {
  const { exitCode, stdout } = await runInContainer(container, ['cat', `${stateDirectory}/deadline`]);
  if (exitCode !== 0 || !/^\d+$/.test(stdout.trim())) return 0;
  return Number(stdout.trim()) * 1000;
}
