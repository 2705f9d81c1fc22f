/**
 * Neutral create options → what the local provider builds, as a plan with no I/O, so defaults,
 * refusals and host checks are unit-testable. The provider turns the plan into directories,
 * cgroups, a bwrap argv and a launcher.
 */
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  egressProxyEnv,
  egressProxyWarning,
  withoutProxyVariables,
  egressProxyPort,
  portNumbers,
  refuseUnsupported,
  toArgv,
  volumeMounts,
  type EgressNetwork,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type SandboxCapabilities,
  type SandboxTags,
  type SandboxWarning,
  type VolumeMount,
} from '../../src/kit/index.js';
import type { CgroupLimits } from './local-cgroups.js';
import type { LocalSystem } from './local-system.js';

const provider = 'local';

/** PATH inside the sandbox, for the entrypoint and every exec. */
export const sandboxPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Lifetime when `create` gives none, like Modal's: 5 minutes. */
export const localDefaultTimeoutMs = 5 * 60 * 1000;
/** Longest lifetime: 24 hours. */
export const localMaxTimeoutMs = 24 * 60 * 60 * 1000;

/** What the local provider can do (see `SandboxCapabilities`). */
export const localCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'namespaces',
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
  crossProcessLookup: false,
  // The cgroup freezer: without root there are no cgroups, and pause() refuses (capability 'pause').
  pause: true,
  extendTimeout: true,
  // An allowlist is a sandbox without a route out plus a bridge to a per-sandbox egress proxy.
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: true, update: true },
  limits: { cpu: true, memory: true, pids: true },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: localMaxTimeoutMs },
  volumes: 'host-path',
  gpu: false,
  images: { reference: true, build: false, snapshot: true },
} as const);

/** Sandbox paths a volume may not cover: the sandbox needs its own view of them. */
const reservedTargets = ['/', '/proc', '/dev', '/usr', '/etc'];

const socketPathSchema = z
  .string()
  .startsWith('/', { message: 'must be an absolute host socket path' })
  .refine((path) => !/[\s\0:]/.test(path), { message: 'must not contain whitespace, ":" or NUL' });

const sandboxPortSchema = z
  .string()
  .regex(/^\d+$/, { message: 'keys are sandbox port numbers' })
  .refine((port) => Number(port) >= 1 && Number(port) <= 65535, { message: 'ports are 1-65535' });

/**
 * `providerOptions.local` of `create`.
 * - `hostForwards`: `{ [sandboxPort]: hostUnixSocketPath }`. Inside the sandbox, 127.0.0.1:<port>
 *   accepts connections and forwards each to the host unix socket: one deliberately opened path
 *   from the sandbox to one host service (a credential proxy, say), with the host's network
 *   still unreachable. The socket must be connectable by the sandbox's host uid (`sandboxUid`
 *   when running as root: make it mode 0666 or owned by that uid). `provider.openHostRoute` (the
 *   contract's host route) returns create options that set it.
 */
export const localCreateOptionsSchema = z.strictObject({
  hostForwards: z.record(sandboxPortSchema, socketPathSchema).optional(),
});
export type LocalCreateOptions = z.input<typeof localCreateOptionsSchema>;

export interface LocalSandboxProviderOptions {
  /**
   * Host directory for sandbox layers, snapshots and prepared images. Must not be shared with
   * untrusted users. @default `<os.tmpdir()>/sandport-<uid>`
   */
  stateDir?: string;
  /**
   * Host uid and gid that the sandbox's root user maps to when the library runs as root. Never 0:
   * mapping the sandbox to host root would let it read root-only host files through its binds.
   * @default 65534 (nobody)
   */
  sandboxUid?: number;
  /** Pids limit applied when `create` gives none and cgroups are available. @default 1024 */
  defaultPidsLimit?: number;
  /**
   * How the egress proxies of allowlisted sandboxes (`network: { allowDomains, allowCidrs }`)
   * resolve names and open connections. For tests (names resolving to servers of their own)
   * and for apps with their own resolver or dialer (a corporate DNS, an upstream proxy). The
   * policy is checked on the addresses it returns, so it cannot widen an allowlist.
   * @default systemEgressNetwork (the host's resolver and `net.connect`)
   */
  egressNetwork?: EgressNetwork;
}

/** Provider settings after validation. */
export interface LocalSettings {
  readonly stateDir: string;
  readonly sandboxUid: number;
  readonly defaultPidsLimit: number;
}

/** What the sandbox's filesystem starts from. */
export type LocalImagePlan = { kind: 'host' } | { kind: 'rootfs'; path: string } | { kind: 'snapshot'; id: string };

/** A network allowlist after parsing. */
export type LocalAllowlist = Extract<ParsedNetworkPolicy, object>;

export interface LocalCreatePlan {
  image: LocalImagePlan;
  /** Outbound network through slirp4netns; false: no network device but loopback. */
  networked: boolean;
  /**
   * The allowlist, enforced by an egress proxy that a bridge on the sandbox's loopback
   * (`egressProxyPort`) reaches; `undefined` for `'allow'` and `'block'`.
   */
  allowlist: LocalAllowlist | undefined;
  /** Sandbox ports published on the host's loopback. */
  ports: number[];
  /** Sandbox loopback ports forwarded to host unix sockets. */
  forwards: Array<{ port: number; socketPath: string }>;
  /** cgroup limits; undefined when the host has no usable cgroups (then none were asked for). */
  limits: CgroupLimits | undefined;
  /** Environment of the entrypoint and every exec (secrets included). */
  env: Record<string, string>;
  workdir: string;
  timeoutMs: number;
  idleTimeoutMs: number | undefined;
  volumes: VolumeMount[];
  /** The entrypoint's argv, when there is one. */
  entrypoint: string[] | undefined;
  name: string | undefined;
  tags: SandboxTags;
  warnings: SandboxWarning[];
}

/** The host facts the plan depends on (a subset of `LocalSystem`). */
export type LocalHostFacts = Pick<LocalSystem, 'isRoot' | 'cgroups' | 'tunUsable'> & {
  binaries: Pick<LocalSystem['binaries'], 'slirp4netns' | 'socat'>;
};

/**
 * Builds the plan. Throws what `refuseUnsupported` throws for settings the capabilities rule
 * out, `SandboxInvalidArgumentError` for an image or volume the local provider cannot read, and
 * `SandboxCapabilityUnsupportedError` for what this host lacks (cgroups for limits, slirp4netns
 * or a usable tun device for outbound network, socat for tunnels, root for rootfs images).
 */
export function planLocalCreate(
  options: ParsedCreateSandboxOptions,
  capabilities: SandboxCapabilities,
  system: LocalHostFacts,
  settings: Pick<LocalSettings, 'defaultPidsLimit'>,
): LocalCreatePlan {
  const warnings = refuseUnsupported(options, capabilities, provider);
  const extra = parseLocalOptions(options.providerOptions?.local);
  const ports = portNumbers(options.ports, provider);
  const forwards = Object.entries(extra.hostForwards ?? {}).map(([port, socketPath]) => ({ port: Number(port), socketPath }));
  const networked = (options.network ?? 'allow') === 'allow';
  const allowlist = typeof options.network === 'object' ? options.network : undefined;
  const image = planImage(options.image, system);
  const volumes = volumeMounts(options.volumes);
  for (const volume of volumes) checkVolumeTarget(volume);
  checkHost(options, system, { networked, allowlist: allowlist !== undefined, tunnels: ports.length > 0 || forwards.length > 0 });
  if (allowlist) checkEgressConflicts(ports, forwards);
  return {
    image,
    networked,
    allowlist,
    ports,
    forwards,
    limits: system.cgroups
      ? { cpu: options.cpu, memoryMiB: options.memoryMiB, pidsLimit: options.pidsLimit ?? settings.defaultPidsLimit }
      : undefined,
    env: {
      PATH: sandboxPath,
      HOME: '/root',
      ...(allowlist ? egressEnvironment(options, warnings) : { ...options.env, ...options.secrets }),
    },
    workdir: options.workdir ?? '/workspace',
    timeoutMs: options.timeoutMs ?? localDefaultTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    volumes,
    entrypoint: options.command === undefined ? undefined : toArgv(options.command),
    name: options.name,
    tags: { ...options.tags },
    warnings,
  };
}

/** `providerOptions.local`, validated; a bad field is named by its full path (`providerOptions.local.hostForwards.80`). */
function parseLocalOptions(value: unknown): z.output<typeof localCreateOptionsSchema> {
  const parsed = localCreateOptionsSchema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.map(String).join('.');
  const argument = ['providerOptions.local', field].filter(Boolean).join('.');
  throw new SandboxInvalidArgumentError({ message: `Invalid ${argument}: ${issue.message}`, argument, provider, cause: parsed.error });
}

function planImage(image: ParsedCreateSandboxOptions['image'], system: LocalHostFacts): LocalImagePlan {
  if (image === undefined || image === 'host') return { kind: 'host' };
  if (typeof image === 'object') {
    // refuseUnsupported has refused builds and other providers' snapshots.
    return { kind: 'snapshot', id: checkSnapshotId((image as { id: string }).id) };
  }
  if (!image.startsWith('/')) {
    throw new SandboxInvalidArgumentError({
      message: 'The local provider takes "host" or an absolute path to a root filesystem directory as image',
      argument: 'image',
      provider,
    });
  }
  if (!system.isRoot) {
    throw new SandboxCapabilityUnsupportedError({
      message: 'Root filesystem images need the library to run as root (they use an overlay mount); use the default host image',
      capability: 'images.reference',
      provider,
    });
  }
  return { kind: 'rootfs', path: image };
}

/** Throws `SandboxInvalidArgumentError` unless `id` is one `snapshot()` makes (it names files on the host). */
export function checkSnapshotId(id: string): string {
  if (!/^snap-[0-9a-f]{16}$/.test(id)) {
    throw new SandboxInvalidArgumentError({ message: `Not a local snapshot id: ${id}`, argument: 'image', provider });
  }
  return id;
}

function checkVolumeTarget({ target, source }: VolumeMount): void {
  const argument = `volumes.${target}`;
  if (!source.startsWith('/')) {
    throw new SandboxInvalidArgumentError({
      message: `${argument}: the local provider mounts host directories; give an absolute path`,
      argument,
      provider,
    });
  }
  if (reservedTargets.includes(target.replace(/\/+$/, '') || '/')) {
    throw new SandboxInvalidArgumentError({ message: `${argument}: cannot mount over ${target}`, argument, provider });
  }
}

/**
 * The environment of an allowlisted sandbox: the proxy variables win over any of the same name
 * (in any case) in the create's `env` or `secrets`, since the sandbox has no route to another
 * proxy; each one dropped, and the allowlist itself, is a warning (as on the Docker provider).
 * An exec's own `env` still wins for its command: an explicit choice, and it fails closed.
 */
function egressEnvironment(options: ParsedCreateSandboxOptions, warnings: SandboxWarning[]): Record<string, string> {
  const env = { ...withoutProxyVariables(options.env, 'env', warnings), ...withoutProxyVariables(options.secrets, 'secrets', warnings) };
  warnings.push(egressProxyWarning());
  return { ...env, ...egressProxyEnv() };
}

/** The egress bridge owns `egressProxyPort` on the sandbox's loopback: nothing else may claim it. */
function checkEgressConflicts(ports: readonly number[], forwards: ReadonlyArray<{ port: number }>): void {
  const taken = `port ${egressProxyPort} is the egress proxy's inside a sandbox with a network allowlist`;
  if (forwards.some(({ port }) => port === egressProxyPort)) {
    const argument = `providerOptions.local.hostForwards.${egressProxyPort}`;
    throw new SandboxInvalidArgumentError({ message: `${argument}: ${taken}`, argument, provider });
  }
  if (ports.includes(egressProxyPort)) {
    throw new SandboxInvalidArgumentError({ message: `ports: ${taken}`, argument: 'ports', provider });
  }
}

function checkHost(
  options: ParsedCreateSandboxOptions,
  system: LocalHostFacts,
  needs: { networked: boolean; allowlist: boolean; tunnels: boolean },
): void {
  const limits = (['cpu', 'memoryMiB', 'pidsLimit'] as const).filter((name) => options[name] !== undefined);
  if (limits.length > 0 && !system.cgroups) {
    throw new SandboxCapabilityUnsupportedError({
      message:
        `Cannot enforce ${limits.join(', ')}: no writable cgroup hierarchy ` +
        (system.isRoot
          ? 'was found on this host.'
          : '(the library is not running as root). Run as root, or create the sandbox without limits.'),
      capability: 'limits',
      provider,
    });
  }
  if (needs.networked && !system.binaries.slirp4netns) {
    throw new SandboxCapabilityUnsupportedError({
      message: 'Outbound network needs slirp4netns (apt-get install slirp4netns); or pass network: "block".',
      capability: 'network',
      provider,
    });
  }
  if (needs.networked && !system.isRoot && !system.tunUsable) {
    throw new SandboxCapabilityUnsupportedError({
      message:
        'Outbound network without root needs /dev/net/tun to be readable and writable by this user (it is not on this host); pass network: "block" or run as root.',
      capability: 'network',
      provider,
    });
  }
  if (needs.tunnels && !system.binaries.socat) {
    throw new SandboxCapabilityUnsupportedError({ message: 'Tunnels need socat (apt-get install socat)', capability: 'tunnels', provider });
  }
}

/**
 * The one I/O check of the options: every volume source exists, and (as root) a read-write one
 * is writable by the sandbox's host uid. Throws `SandboxInvalidArgumentError` naming the volume.
 */
export async function checkVolumeSources(
  volumes: readonly VolumeMount[],
  system: Pick<LocalSystem, 'isRoot'>,
  sandboxUid: number,
): Promise<void> {
  for (const { target, source, readOnly } of volumes) {
    const argument = `volumes.${target}`;
    const info = await stat(source).catch(() => undefined);
    if (!info) throw new SandboxInvalidArgumentError({ message: `${argument}: host path ${source} does not exist`, argument, provider });
    if (readOnly || !system.isRoot) continue;
    const writable = (info.uid === sandboxUid && (info.mode & 0o200) !== 0) || (info.mode & 0o002) !== 0;
    if (!writable) {
      throw new SandboxInvalidArgumentError({
        message: `${argument}: ${source} is not writable by the sandbox's host uid ${sandboxUid}; chown it to that uid or mount it readOnly`,
        argument,
        provider,
      });
    }
  }
}
