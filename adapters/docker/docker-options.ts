/**
 * Neutral create options → the engine's container create options, as a plan with no I/O, so the
 * hardening, units, defaults and refusals are unit-testable. The provider resolves the plan's
 * image, network, secrets and host forwards against the engine.
 */
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  egressProxyEnv,
  egressProxyWarning,
  withoutProxyVariables,
  egressProxyPort,
  portNumbers,
  refuseUnsupported,
  volumeMounts,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxWarning,
} from '../../src/kit/index.js';
import { containerNamePrefix, labels, stateDirectory, thisCreator } from './docker-engine.js';
import type { DockerAllowlist } from './docker-egress.js';
import { lifetimeKeeper } from './docker-scripts.js';

/** Default sandbox lifetime (Modal's default). */
export const dockerDefaultTimeoutMs = 5 * 60 * 1000;
/** Longest sandbox lifetime: the keeper never outlives creation + this. */
export const dockerMaxTimeoutMs = 24 * 60 * 60 * 1000;
/** The bridge network of sandboxes with network access (inter-container traffic off). */
export const isolatedNetworkName = 'sandport-isolated';
const keptCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETGID', 'SETUID', 'NET_BIND_SERVICE'];

export const dockerCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'container',
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: true },
  files: { watch: true },
  entrypointStdio: true,
  tunnels: true,
  tunnelsTls: false,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: true,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  pause: true,
  extendTimeout: true,
  // Allowlists: no network, plus a bridge to an egress proxy in the creating process (docker-egress.ts).
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: true, update: true },
  limits: { cpu: true, memory: true, pids: true },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: dockerMaxTimeoutMs },
  volumes: 'host-path-or-named',
  gpu: false,
  images: { reference: true, build: true, snapshot: true },
} as const);

/** `{ [sandboxPort]: hostUnixSocketPath }` (see `hostForwards`). */
const hostForwardsSchema = z.record(
  z
    .string()
    .regex(/^\d+$/, { message: 'keys are sandbox port numbers' })
    .refine((port) => Number(port) >= 1 && Number(port) <= 65535, { message: 'ports are 1-65535' }),
  z.string().startsWith('/', { message: 'must be an absolute host socket path' }),
);

/**
 * `providerOptions.docker` of `create`.
 * - `runtime`: an OCI runtime registered with the engine, e.g. `'runsc'` (gVisor) for a
 *   hardened sandbox. The create fails when the engine does not have it.
 * - `hostForwards`: `{ [sandboxPort]: hostUnixSocketPath }`: inside the container,
 *   127.0.0.1:<port> forwards each connection to the host socket (bind-mounted; the forwarder
 *   needs node or python3 in the image). One deliberate path to one host service, with the
 *   host's network still out of reach.
 */
export const dockerCreateOptionsSchema = z
  .object({
    runtime: z.string().min(1).optional(),
    hostForwards: hostForwardsSchema.optional(),
  })
  .strict();
export type DockerCreateOptions = z.input<typeof dockerCreateOptionsSchema>;
export type ParsedDockerCreateOptions = z.output<typeof dockerCreateOptionsSchema>;

/** Where the container's image comes from. */
export type DockerImagePlan =
  | { kind: 'reference'; reference: string }
  | { kind: 'snapshot'; reference: string }
  /** Built once per content: `tag` is derived from the Dockerfile. */
  | { kind: 'build'; base: string; dockerfile: string; tag: string };

export interface DockerCreatePlan {
  image: DockerImagePlan;
  /** The engine's create options; `Image` is the reference, snapshot or build tag. */
  container: Docker.ContainerCreateOptions;
  /** `isolated`: the provider makes sure {@link isolatedNetworkName} exists first. `none` for 'block' and allowlists. */
  network: 'none' | 'isolated';
  /** The environment of every exec: the create env, plus the proxy variables of an allowlist (which the container's config never holds). */
  env: Record<string, string>;
  /** An allowlist: the provider starts its egress proxy on a socket in `hostDirectory` (bind-mounted). */
  egress: { policy: DockerAllowlist; hostDirectory: string } | undefined;
  /** Sandbox ports published on 127.0.0.1. */
  ports: number[];
  /** Stored on the state tmpfs after start, never in the container config. */
  secrets: Record<string, string> | undefined;
  /** Sandbox ports forwarded to host sockets (bind-mounted by `container`). */
  forwards: number[];
  runtime: string | undefined;
  createdAt: number;
  expiresAt: number;
  warnings: SandboxWarning[];
}

export interface DockerPlanDefaults {
  /** Image when the options name none. */
  image: string;
  pidsLimit: number;
  /**
   * The host directory (not yet made) for the egress proxy's socket, mounted read-only at
   * `/run/sandport-egress`. Needed when the network is an allowlist.
   */
  egressDirectory?: string;
  /** Creation time, epoch milliseconds. @default Date.now() */
  now?: number;
}

/** Where a host socket of `hostForwards` appears inside the container. */
export const forwardSocketPath = (port: number) => `/run/sandport-forward/${port}.sock`;

/** Where the host directory of an allowlist's egress proxy socket appears inside the container (read-only). */
export const egressContainerDirectory = '/run/sandport-egress';

/** A named volume's name, as the engine accepts it. */
const volumeName = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Mount targets that would hide or expose what the sandbox depends on. */
const reservedTarget = /^\/(proc|sys|dev)(\/|$)/;

/** The Dockerfile of a `{ base, commands }` image and the tag it is built under. */
export function buildPlan(base: string, commands: readonly string[]): Extract<DockerImagePlan, { kind: 'build' }> {
  const dockerfile = [`FROM ${base}`, ...commands.map((command) => `RUN ${command.replace(/\n/g, ' \\\n')}`)].join('\n') + '\n';
  const tag = `sandport/build:${createHash('sha256').update(dockerfile).digest('hex').slice(0, 20)}`;
  return { kind: 'build', base, dockerfile, tag };
}

/**
 * Refusals only Docker has (the capability-driven ones are the kit's `refuseUnsupported`):
 * published ports need a network, and volumes must be a host path or a volume name, mounted
 * nowhere that hides procfs, sysfs, devices, the root or sandport's state.
 */
function refuseDockerSpecific(options: ParsedCreateSandboxOptions, dockerOptions: ParsedDockerCreateOptions): void {
  // 'block' and allowlists: the container has no network, so nothing can be published.
  if (options.network !== undefined && options.network !== 'allow' && (options.ports ?? []).length > 0) {
    throw new SandboxCapabilityUnsupportedError({
      message:
        'Docker cannot publish ports of a container without a network (network "block" or an allowlist); use network: "allow" with ports',
      capability: 'tunnels',
      provider: 'docker',
    });
  }
  if (typeof options.network === 'object' && dockerOptions.hostForwards?.[String(egressProxyPort)] !== undefined) {
    throw new SandboxInvalidArgumentError({
      message: `providerOptions.docker.hostForwards.${egressProxyPort}: that sandbox port is the egress proxy's bridge of a network allowlist`,
      argument: `providerOptions.docker.hostForwards.${egressProxyPort}`,
      provider: 'docker',
    });
  }
  for (const { target, source } of volumeMounts(options.volumes)) {
    if (!source.startsWith('/') && !volumeName.test(source)) {
      throw new SandboxInvalidArgumentError({
        message: `volumes.${target}: give an absolute host path or a volume name`,
        argument: `volumes.${target}`,
        provider: 'docker',
      });
    }
    if (target === '/' || reservedTarget.test(target) || target === stateDirectory || target.startsWith(`${stateDirectory}/`)) {
      throw new SandboxInvalidArgumentError({
        message: `volumes.${target}: cannot mount over ${target}`,
        argument: `volumes.${target}`,
        provider: 'docker',
      });
    }
  }
}

/**
 * Builds the plan. An allowlist is planned as no network plus the proxy variables and the
 * mount of `defaults.egressDirectory`. Throws `SandboxCapabilityUnsupportedError` for what the
 * engine cannot enforce (GPUs, ports without a network) and `SandboxInvalidArgumentError` for
 * values it would refuse or that would weaken the sandbox (a lifetime past 24 hours, a foreign
 * snapshot, a volume over procfs).
 */
export function planDockerCreate(
  options: ParsedCreateSandboxOptions,
  dockerOptions: ParsedDockerCreateOptions,
  defaults: DockerPlanDefaults,
): DockerCreatePlan {
  const warnings = refuseUnsupported(options, dockerCapabilities, 'docker');
  refuseDockerSpecific(options, dockerOptions);
  const allowlist = typeof options.network === 'object' ? options.network : undefined;
  if (allowlist && defaults.egressDirectory === undefined) {
    throw new SandboxProviderError({ message: 'planDockerCreate: a network allowlist needs defaults.egressDirectory', provider: 'docker' });
  }
  const egress = allowlist && defaults.egressDirectory ? { policy: allowlist, hostDirectory: defaults.egressDirectory } : undefined;
  const { env: containerEnv, secrets: keptSecrets } = egress
    ? withoutProxyNames(options, warnings)
    : { env: options.env ?? {}, secrets: options.secrets };
  // The proxy variables go to every exec, never into the container's config: `commit` would
  // copy them into a snapshot, whose sandboxes (with any network) would then point at a proxy
  // they do not have. A lookup in another process adds them back from the network label.
  const env = egress ? { ...containerEnv, ...egressProxyEnv() } : containerEnv;
  const requested = options.image ?? defaults.image;
  const image: DockerImagePlan =
    typeof requested === 'string'
      ? { kind: 'reference', reference: requested }
      : 'type' in requested
        ? { kind: 'snapshot', reference: requested.id }
        : buildPlan(requested.base, requested.commands);
  const createdAt = defaults.now ?? Date.now();
  const expiresAt = createdAt + (options.timeoutMs ?? dockerDefaultTimeoutMs);
  const workdir = options.workdir ?? '/workspace';
  const ports = portNumbers(options.ports, 'docker');
  const forwards = Object.keys(dockerOptions.hostForwards ?? {}).map(Number);
  const network = options.network === undefined || options.network === 'allow' ? 'isolated' : 'none';
  const memory = options.memoryMiB === undefined ? undefined : options.memoryMiB * 1024 * 1024;
  const container: Docker.ContainerCreateOptions = {
    name: options.name === undefined ? undefined : `${containerNamePrefix}${options.name}`,
    Image: image.kind === 'build' ? image.tag : image.reference,
    // The main process holds the container up until the deadline, so the lifetime holds even
    // if this process dies; AutoRemove then deletes the container.
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: [lifetimeKeeper, String(Math.ceil(expiresAt / 1000)), String(Math.floor((createdAt + dockerMaxTimeoutMs) / 1000))],
    // Secrets stay out of Env: `docker inspect` shows it and `commit` copies it into snapshots.
    Env: Object.entries(containerEnv).map(([key, value]) => `${key}=${value}`),
    WorkingDir: workdir,
    Tty: false,
    Labels: {
      [labels.managed]: 'true',
      [labels.name]: options.name ?? '',
      [labels.tags]: JSON.stringify(options.tags ?? {}),
      [labels.createdAt]: String(createdAt),
      [labels.expiresAt]: String(expiresAt),
      [labels.workdir]: workdir,
      [labels.env]: JSON.stringify(Object.keys(options.env ?? {})),
      [labels.entrypoint]: options.command === undefined ? 'false' : 'true',
      [labels.creator]: thisCreator,
      [labels.network]: typeof options.network === 'object' ? 'allowlist' : (options.network ?? 'allow'),
    },
    ExposedPorts: Object.fromEntries(ports.map((port) => [`${port}/tcp`, {}])),
    HostConfig: {
      AutoRemove: true,
      Init: true,
      NetworkMode: network === 'none' ? 'none' : isolatedNetworkName,
      PortBindings: Object.fromEntries(ports.map((port) => [`${port}/tcp`, [{ HostIp: '127.0.0.1', HostPort: '' }]])),
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: options.cpu === undefined ? undefined : Math.round(options.cpu * 1e9),
      PidsLimit: options.pidsLimit ?? defaults.pidsLimit,
      CapDrop: ['ALL'],
      CapAdd: keptCapabilities,
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      Tmpfs: { [stateDirectory]: 'rw,nosuid,nodev,noexec,size=1m,mode=0700' },
      // Mounts, not Binds: a bind of a missing host path is an error here, where Binds would
      // silently create a root-owned directory on the host.
      Mounts: [
        ...volumeMounts(options.volumes).map(({ target, source, readOnly }) => ({
          Type: source.startsWith('/') ? ('bind' as const) : ('volume' as const),
          Source: source,
          Target: target,
          ReadOnly: readOnly,
        })),
        ...Object.entries(dockerOptions.hostForwards ?? {}).map(([port, socket]) => ({
          Type: 'bind' as const,
          Source: socket,
          Target: forwardSocketPath(Number(port)),
          ReadOnly: false,
        })),
        // Read-only: connecting to a socket needs no write access to its file system.
        ...(egress ? [{ Type: 'bind' as const, Source: egress.hostDirectory, Target: egressContainerDirectory, ReadOnly: true }] : []),
      ],
      Runtime: dockerOptions.runtime,
    },
  };
  const secrets = keptSecrets && Object.keys(keptSecrets).length > 0 ? keptSecrets : undefined;
  return {
    image,
    container,
    network,
    env,
    egress,
    ports,
    secrets,
    forwards,
    runtime: dockerOptions.runtime,
    createdAt,
    expiresAt,
    warnings,
  };
}

/**
 * The create env and secrets of an allowlisted sandbox, without the names of the egress proxy's
 * variables (in any case): the proxy's win, since the sandbox has no route to another proxy.
 * Each one dropped, and the allowlist itself, is a warning. An exec's own env still wins for its
 * command.
 */
function withoutProxyNames(
  options: ParsedCreateSandboxOptions,
  warnings: SandboxWarning[],
): { env: Record<string, string>; secrets: Record<string, string> | undefined } {
  warnings.push(egressProxyWarning());
  const env = withoutProxyVariables(options.env, 'env', warnings) ?? {};
  const secrets = withoutProxyVariables(options.secrets, 'secrets', warnings);
  return { env, secrets };
}
