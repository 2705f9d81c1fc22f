import { createHash } from 'node:crypto';
import Docker from 'dockerode';
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
  parseOptions,
  retryIdempotent,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxWarning,
  type SignalOptions,
  type Tunnel,
} from '../../src/index.js';
import { mapDockerError } from './docker-errors.js';
import { DockerSandbox, labels, readTags, stateDirectory } from './docker-sandbox.js';

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
export const dockerCreateOptionsSchema = z.object({ runtime: z.string().min(1).optional() }).strict();

const defaultTimeoutMs = 5 * 60 * 1000;
const maxTimeoutMs = 24 * 60 * 60 * 1000;
const keptCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'];

export const dockerCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'container',
  exec: { stdin: true, kill: true, signals: true },
  tunnels: true,
  snapshot: true,
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

/** Sandboxes on a Docker engine, one container each. */
export class DockerSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'docker';
  readonly capabilities = dockerCapabilities;
  readonly events = new SandboxEmitter();
  private client: Docker | undefined;
  private readonly known = new Map<string, DockerSandbox>();
  private readonly builds = new Map<string, Promise<string>>();

  constructor(private readonly options: DockerSandboxProviderOptions = {}) {}

  /** The dockerode client (created on first use). */
  get docker(): Docker {
    this.client ??= this.options.docker ?? new Docker();
    return this.client;
  }

  async create(options: CreateSandboxOptions = {}): Promise<DockerSandbox> {
    const startedAt = performance.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'docker', what: 'create options' });
    const dockerOptions = parseOptions(dockerCreateOptionsSchema, parsed.providerOptions?.docker, { provider: 'docker', what: 'providerOptions.docker' });
    parsed.signal?.throwIfAborted();
    const warnings = this.checkOptions(parsed);
    if (dockerOptions.runtime) await this.checkRuntime(dockerOptions.runtime);
    const image = await this.resolveImage(parsed, parsed.signal);
    const timeoutMs = parsed.timeoutMs ?? defaultTimeoutMs;
    const expiresAt = Date.now() + timeoutMs;
    const workdir = parsed.workdir ?? '/workspace';
    const env = { ...parsed.env, ...parsed.secrets };
    const ports = (parsed.ports ?? []).map((port) => (typeof port === 'number' ? port : port.port));
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: parsed.name === undefined ? undefined : `sandport-${parsed.name}`,
        Image: image,
        // The main process holds the container up until the deadline in /.sandport/deadline, so
        // the lifetime holds even if this process dies; AutoRemove then deletes the container.
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: [
          `mkdir -p ${stateDirectory} && echo "$0" > ${stateDirectory}/deadline && while [ "$(date +%s)" -lt "$(cat ${stateDirectory}/deadline)" ]; do sleep 1; done`,
          String(Math.ceil(expiresAt / 1000)),
        ],
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        WorkingDir: workdir,
        Tty: false,
        Labels: {
          [labels.managed]: 'true',
          [labels.name]: parsed.name ?? '',
          [labels.tags]: JSON.stringify(parsed.tags ?? {}),
          [labels.createdAt]: String(Date.now()),
          [labels.expiresAt]: String(expiresAt),
          [labels.workdir]: workdir,
          [labels.env]: JSON.stringify(Object.keys(parsed.env ?? {})),
        },
        ExposedPorts: Object.fromEntries(ports.map((port) => [`${port}/tcp`, {}])),
        HostConfig: {
          AutoRemove: true,
          Init: true,
          NetworkMode: parsed.network === 'block' ? 'none' : 'bridge',
          PortBindings: Object.fromEntries(ports.map((port) => [`${port}/tcp`, [{ HostIp: '127.0.0.1', HostPort: '' }]])),
          Memory: parsed.memoryMiB === undefined ? undefined : parsed.memoryMiB * 1024 * 1024,
          MemorySwap: parsed.memoryMiB === undefined ? undefined : parsed.memoryMiB * 1024 * 1024,
          NanoCpus: parsed.cpu === undefined ? undefined : Math.round(parsed.cpu * 1e9),
          PidsLimit: parsed.pidsLimit ?? this.options.defaultPidsLimit ?? 1024,
          CapDrop: ['ALL'],
          CapAdd: keptCapabilities,
          SecurityOpt: ['no-new-privileges'],
          Privileged: false,
          Binds: Object.entries(parsed.volumes ?? {}).map(([target, volume]) => {
            const source = typeof volume === 'string' ? volume : volume.source;
            const readOnly = typeof volume === 'string' ? false : volume.readOnly;
            return `${source}:${target}:${readOnly ? 'ro' : 'rw'}`;
          }),
          Runtime: dockerOptions.runtime,
        },
      });
    } catch (error) {
      throw mapDockerError(error, { operation: 'create', image });
    }
    try {
      await container.start();
      const info = await container.inspect();
      const tunnels: Record<number, Tunnel> = {};
      for (const port of ports) {
        const binding = info.NetworkSettings.Ports?.[`${port}/tcp`]?.[0];
        const hostPort = Number(binding?.HostPort);
        tunnels[port] = { port, host: '127.0.0.1', hostPort, url: `http://127.0.0.1:${hostPort}`, encrypted: false };
      }
      const sandbox = this.adopt(container, info, { owned: true, idleTimeoutMs: parsed.idleTimeoutMs, env, warnings, tunnels, expiresAt });
      this.events.emit('sandbox-created', { provider: 'docker', sandboxId: sandbox.id, name: parsed.name, durationMs: performance.now() - startedAt });
      for (const warning of warnings) this.events.emit('warning', { provider: 'docker', sandboxId: sandbox.id, warning });
      if (parsed.command !== undefined) {
        const entrypoint = await sandbox.exec(parsed.command);
        void entrypoint.stdin.close().catch(() => undefined);
        void entrypoint.stdout.pipeTo(new WritableStream()).catch(() => undefined);
        void entrypoint.stderr.pipeTo(new WritableStream()).catch(() => undefined);
        void entrypoint.wait().then(({ exitCode }) => sandbox.entrypointExited(exitCode), () => undefined);
      }
      return sandbox;
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      throw mapDockerError(error, { operation: 'create', image });
    }
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<DockerSandbox> {
    checkStringArgument(id, 'id', 'docker');
    options.signal?.throwIfAborted();
    const existing = this.known.get(id);
    if (existing?.isRunning()) return existing;
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
   * Removes every sandport container that has stopped or whose lifetime has run out (left over,
   * for example, by a process that died). Returns how many were removed. Idempotent.
   */
  async cleanup(options: SignalOptions = {}): Promise<number> {
    options.signal?.throwIfAborted();
    const containers = await this.docker.listContainers({ all: true, filters: { label: [`${labels.managed}=true`] } }).catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'cleanup' });
    });
    let removed = 0;
    for (const container of containers) {
      const expired = Number(container.Labels[labels.expiresAt] ?? 0) < Date.now() && container.State === 'running'
        ? await readDeadline(this.docker.getContainer(container.Id)).then((deadline) => deadline < Date.now(), () => true)
        : false;
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
      onEnd: (ended) => {
        if (this.known.get(ended.id) === ended) this.known.delete(ended.id);
      },
    });
    this.known.set(id, sandbox);
    return sandbox;
  }

  private async managedContainers(filters: { label?: string[] }, signal?: AbortSignal): Promise<Docker.ContainerInfo[]> {
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
    }
    const warnings: SandboxWarning[] = [];
    for (const port of options.ports ?? []) {
      if (typeof port === 'object' && port.encrypted) {
        warnings.push({ type: 'unsupported-setting', setting: 'ports.encrypted', details: 'docker tunnels are plain http on 127.0.0.1' });
      }
    }
    return warnings;
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
  const exec = await container.exec({ Cmd: ['cat', `${stateDirectory}/deadline`], AttachStdout: true, AttachStderr: true });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as import('node:stream').Duplex;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise((resolve) => stream.once('end', resolve));
  const text = Buffer.concat(chunks).subarray(8).toString().trim();
  return Number(text) * 1000;
}
