/**
 * Neutral options → Fly Machines API bodies, as pure plans (no I/O), so that every trap of Fly's
 * API is unit-tested without a network: whole vCPUs, memory in 256 MB steps, metadata for tags and
 * the marker, the machine `name` for the sandbox's name, volumes by name → mounts, declared ports →
 * services, the lifetime keeper as the machine's init, and the per-sandbox app's name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  SandboxInvalidArgumentError,
  parseOptions,
  portRequests,
  refuseUnsupported,
  volumeMounts,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxTags,
  type SandboxWarning,
} from '../../src/kit/index.js';
import { flyKeeperArgv } from './fly-scripts.js';

const provider = 'fly';

/** The contract's default lifetime when a create names none (Fly itself has no lifetime). */
export const flyDefaultTimeoutMs = 5 * 60 * 1000;
/** Longest lifetime this adapter accepts (the keeper's cap; Fly has no maximum of its own). */
export const flyMaxTimeoutMs = 24 * 60 * 60 * 1000;
/** The image a create without `image` starts from (needs sh, coreutils, find, base64 and mkfifo). */
export const flyDefaultImage = 'docker.io/library/debian:bookworm';
/** Fly's memory steps, in MB: a guest has a multiple of 256. */
export const flyMemoryStepMb = 256;
/** Size of a volume the adapter creates for a `volumes` name it does not find, in GB. */
export const flyDefaultVolumeSizeGb = 1;

/**
 * Metadata keys the adapter reserves: the marker of sandboxes made by sandport (`list` and
 * `fromName` look only at those) and the sandbox's name. Tags may not use the `sandport_` prefix.
 */
export const flyMetadataKeys = { managed: 'sandport_managed', name: 'sandport_name', entrypoint: 'sandport_entrypoint' } as const;
const reservedPrefix = 'sandport_';

export const flyCapabilities: SandboxCapabilities = Object.freeze({
  // Every Fly Machine is a Firecracker microVM.
  isolation: 'microvm',
  // Fly's exec is buffered (the output comes back when the command ends) with its stdin given
  // whole up front. The adapter starts every command detached under a small runner in the machine
  // (output to files, stdin through a FIFO fed by later execs, the exit status to a file), so
  // stdin is a real stream with EOF, kill reaches the marked tree with any signal, and a command
  // may outlive Fly's exec timeout; output arrives when the command has exited.
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: false, separateStderr: true, pty: false },
  files: { watch: false },
  // The create `command` runs detached beside the keeper: its stdio is not kept.
  entrypointStdio: false,
  tunnels: true,
  tunnelsTls: true,
  // Fly snapshots volumes only: nothing a machine's root filesystem can be created from.
  snapshot: false,
  deleteSnapshot: false,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  // suspend (memory kept) and start.
  pause: true,
  extendTimeout: true,
  // Fly has no egress firewall for a machine.
  network: { block: false, allowCidrs: false, allowDomains: false, allowlistViaProxy: false, update: false },
  // Fly sets whole vCPUs and memory per machine; it has no process-count limit.
  limits: { cpu: true, memory: true, pids: false },
  // The lifetime is kept in the machine (the keeper); the idle timer by the creating process, as Docker's.
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: flyMaxTimeoutMs },
  volumes: 'named',
  gpu: false,
  images: { reference: true, build: false, snapshot: false },
} as const);

/**
 * `providerOptions.fly` of `create`: Fly settings with no neutral equivalent.
 * - `region`: the region to place the machine in. @default Fly's choice (near the caller)
 * - `cpuKind`: `'shared'` or `'performance'` vCPUs. @default 'shared'
 * - `volumeSizeGb`: size of a volume created for a `volumes` name not found in the app. @default 1
 * - `metadata`: extra machine metadata (keys outside `sandport_`), merged under the tags.
 */
export const flyCreateOptionsSchema = z
  .object({
    region: z.string().min(1).optional(),
    cpuKind: z.enum(['shared', 'performance']).optional(),
    volumeSizeGb: z.number().int().positive().max(500).optional(),
    metadata: z.record(z.string().min(1), z.string()).optional(),
  })
  .strict();
export type FlyCreateOptions = z.input<typeof flyCreateOptionsSchema>;

/** A Fly guest: vCPU kind and count, memory in MB. */
export interface FlyGuest {
  cpu_kind: 'shared' | 'performance';
  cpus: number;
  memory_mb: number;
}

/** One Fly service: a machine port published on the app's public host name. */
export interface FlyService {
  protocol: 'tcp';
  internal_port: number;
  ports: Array<{ port: number; handlers: string[] }>;
  autostop: false;
  autostart: false;
}

/** A volume the machine mounts, by name (its id is found or created at create). */
export interface FlyMountPlan {
  /** Path inside the machine. */
  path: string;
  /** Fly volume name: lower-case letters, digits and underscores. */
  name: string;
}

/** A declared port: the machine's port, and the public port and scheme it is reached on. */
export interface FlyPortPlan {
  port: number;
  encrypted: boolean;
}

export interface FlyMachineConfig {
  image: string;
  env?: Record<string, string>;
  guest?: FlyGuest;
  metadata: Record<string, string>;
  services?: FlyService[];
  mounts?: Array<{ volume: string; path: string }>;
  init: { exec: string[] };
  auto_destroy: true;
  restart: { policy: 'no' };
}

export interface FlyCreatePlan {
  /** The machine's `name` (Fly keeps it unique in the app); undefined: Fly makes one. */
  name: string | undefined;
  region: string | undefined;
  /** The config but for `mounts`, which need the volumes' ids. */
  config: Omit<FlyMachineConfig, 'mounts'>;
  mounts: FlyMountPlan[];
  volumeSizeGb: number;
  /** Secrets: written into the machine after it starts (kept out of its config). */
  secrets: Record<string, string>;
  /** The create `command`, started detached once the machine runs. */
  entrypoint: string[] | undefined;
  workdir: string | undefined;
  ports: FlyPortPlan[];
  /** The lifetime, in milliseconds (the keeper's deadline). */
  lifetimeMs: number;
  idleTimeoutMs: number | undefined;
  warnings: SandboxWarning[];
}

export interface FlyCreateDefaults {
  /** @default flyDefaultImage */
  image?: string;
  /** Epoch milliseconds of "now", for the keeper's deadline (tests pass a fixed one). */
  now?: number;
}

/**
 * Builds the create plan. Throws `SandboxInvalidArgumentError` for values Fly would refuse (a tag
 * key under `sandport_`, a volume name Fly cannot take) and `SandboxCapabilityUnsupportedError`
 * for what it cannot do (network block and allowlists, pids, gpu, image builds, snapshots).
 */
export function planFlyCreate(options: ParsedCreateSandboxOptions, defaults: FlyCreateDefaults = {}): FlyCreatePlan {
  const extra = parseOptions(flyCreateOptionsSchema, options.providerOptions?.fly, { provider, what: 'providerOptions.fly' });
  const warnings: SandboxWarning[] = [...refuseUnsupported(options, flyCapabilities, provider)];
  const lifetimeMs = options.timeoutMs ?? flyDefaultTimeoutMs;
  const now = defaults.now ?? Date.now();
  const guest = planFlyGuest(options.cpu, options.memoryMiB, extra.cpuKind);
  warnings.push(...guest.warnings);
  const ports = planFlyPorts(options.ports);
  const config: FlyCreatePlan['config'] = {
    image: typeof options.image === 'string' ? options.image : (defaults.image ?? flyDefaultImage),
    metadata: {
      ...planFlyMetadata(options.tags, options.name, extra.metadata),
      // The machine's end is then the entrypoint's (for any process that finds it).
      ...(options.command === undefined ? {} : { [flyMetadataKeys.entrypoint]: '1' }),
    },
    init: { exec: flyKeeperArgv(planFlyDeadline(now, lifetimeMs), planFlyDeadline(now, flyMaxTimeoutMs)) },
    auto_destroy: true,
    restart: { policy: 'no' },
  };
  if (options.env !== undefined && Object.keys(options.env).length > 0) config.env = { ...options.env };
  if (guest.guest) config.guest = guest.guest;
  if (ports.length > 0) config.services = planFlyServices(ports);
  return {
    name: options.name,
    region: extra.region,
    config,
    mounts: planFlyMounts(options.volumes),
    volumeSizeGb: extra.volumeSizeGb ?? flyDefaultVolumeSizeGb,
    secrets: { ...options.secrets },
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    workdir: options.workdir,
    ports,
    lifetimeMs,
    idleTimeoutMs: options.idleTimeoutMs,
    warnings,
  };
}

/** A deadline in whole epoch seconds, rounded up (a lifetime is never shortened). */
export function planFlyDeadline(nowMs: number, lifetimeMs: number): number {
  return Math.ceil((nowMs + lifetimeMs) / 1000);
}

/**
 * cpu and memory as a Fly guest (pure). Fly counts whole vCPUs and memory in multiples of 256 MB:
 * a fraction of a core, or memory between steps, is rounded up, with a warning. Undefined when
 * neither was asked for (Fly's default guest: 1 shared vCPU, 256 MB).
 */
export function planFlyGuest(
  cpu: number | undefined,
  memoryMiB: number | undefined,
  cpuKind: 'shared' | 'performance' = 'shared',
): { guest: FlyGuest | undefined; warnings: SandboxWarning[] } {
  if (cpu === undefined && memoryMiB === undefined && cpuKind === 'shared') return { guest: undefined, warnings: [] };
  const warnings: SandboxWarning[] = [];
  const cpus = Math.max(1, Math.ceil(cpu ?? 1));
  if (cpu !== undefined && cpus !== cpu) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'cpu',
      details: `Fly counts whole vCPUs: ${cpu} was rounded up to ${cpus}`,
    });
  }
  const asked = memoryMiB ?? flyMemoryStepMb * cpus;
  const memory = Math.max(flyMemoryStepMb, Math.ceil(asked / flyMemoryStepMb) * flyMemoryStepMb);
  if (memoryMiB !== undefined && memory !== memoryMiB) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'memoryMiB',
      details: `Fly sets memory in multiples of ${flyMemoryStepMb} MB: ${memoryMiB} MiB was rounded up to ${memory}`,
    });
  }
  return { guest: { cpu_kind: cpuKind, cpus, memory_mb: memory }, warnings };
}

/**
 * Machine metadata for the tags and the name (pure): the tags verbatim (Fly's list filter
 * `metadata.<key>=<value>` sees them), `sandport_managed` as the marker and `sandport_name`.
 * Throws `SandboxInvalidArgumentError` (argument `tags`) for a tag key under `sandport_`.
 */
export function planFlyMetadata(
  tags: SandboxTags | undefined,
  name: string | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  for (const [source, record] of [
    ['tags', tags ?? {}],
    ['providerOptions.fly.metadata', extra],
  ] as const) {
    for (const key of Object.keys(record)) {
      if (key.startsWith(reservedPrefix)) {
        throw new SandboxInvalidArgumentError({
          message: `${source}: keys starting with "${reservedPrefix}" are the adapter's: ${key}`,
          argument: source,
          provider,
        });
      }
    }
  }
  return { ...extra, ...tags, [flyMetadataKeys.managed]: '1', ...(name === undefined ? {} : { [flyMetadataKeys.name]: name }) };
}

/** The tags out of machine metadata (pure): everything but the adapter's keys and Fly's own (`fly_`). */
export function tagsFromFlyMetadata(metadata: Record<string, string> | undefined): SandboxTags {
  return Object.fromEntries(Object.entries(metadata ?? {}).filter(([key]) => !key.startsWith(reservedPrefix) && !key.startsWith('fly_')));
}

/**
 * The metadata calls that turn `current` into `tags` (pure): keys to set and keys to delete. The
 * adapter's own keys are kept.
 */
export function planFlyTagUpdate(current: Record<string, string>, tags: SandboxTags): { set: Array<[string, string]>; remove: string[] } {
  const existing = tagsFromFlyMetadata(current);
  planFlyMetadata(tags, undefined);
  return {
    set: Object.entries(tags).filter(([key, value]) => existing[key] !== value),
    remove: Object.keys(existing).filter((key) => !(key in tags)),
  };
}

/** Declared ports (pure): TLS unless `encrypted: false` (Fly terminates TLS on its edge). */
export function planFlyPorts(ports: ParsedCreateSandboxOptions['ports']): FlyPortPlan[] {
  return portRequests(ports, provider).map((request) => ({ port: request.port, encrypted: request.encrypted !== false }));
}

/**
 * Declared ports as Fly services (pure): each machine port is published on the same port of the
 * app's public host name, TLS-terminated by Fly (`tls` + `http` handlers) unless `encrypted: false`
 * (`http` only); the first declared port is also the app's default, on 443 (TLS) and 80, so that
 * `https://<app>.fly.dev` reaches it. The machine is never stopped or started by Fly's proxy: its
 * life is the keeper's.
 */
export function planFlyServices(ports: readonly FlyPortPlan[]): FlyService[] {
  return ports.map(({ port, encrypted }, index) => {
    const own = { port, handlers: encrypted ? ['tls', 'http'] : ['http'] };
    const defaults =
      index === 0 && port !== 443 && port !== 80
        ? [
            { port: 443, handlers: ['tls', 'http'] },
            { port: 80, handlers: ['http'] },
          ]
        : [];
    return { protocol: 'tcp', internal_port: port, ports: [...defaults, own], autostop: false, autostart: false };
  });
}

/** Fly volume names: lower-case letters, digits and underscores, at most 30. */
const volumeNamePattern = /^[a-z0-9_]{1,30}$/;

/**
 * `volumes` as mounts by volume name (pure). A source is the name of a Fly volume in the
 * sandbox's app. Throws `SandboxInvalidArgumentError` (argument `volumes`) for a name Fly cannot
 * take and for a read-only mount (Fly mounts volumes read-write only).
 */
export function planFlyMounts(volumes: ParsedCreateSandboxOptions['volumes']): FlyMountPlan[] {
  return volumeMounts(volumes).map((mount) => {
    if (!volumeNamePattern.test(mount.source)) {
      throw new SandboxInvalidArgumentError({
        message: `volumes: ${JSON.stringify(mount.source)} is not a Fly volume name (1-30 of a-z 0-9 _)`,
        argument: 'volumes',
        provider,
      });
    }
    if (mount.readOnly) {
      throw new SandboxInvalidArgumentError({
        message: `volumes: Fly mounts volumes read-write only (${mount.target})`,
        argument: 'volumes',
        provider,
      });
    }
    return { path: mount.target, name: mount.source };
  });
}

/** Fly app names: lower-case letters, digits and dashes, at most 63 (a DNS label). */
const appPrefixPattern = /^[a-z][a-z0-9-]{0,30}$/;

/** Throws `SandboxInvalidArgumentError` (argument `appPrefix`) unless it can start a Fly app name. */
export function checkFlyAppPrefix(prefix: string): void {
  if (!appPrefixPattern.test(prefix)) {
    throw new SandboxInvalidArgumentError({
      message: 'appPrefix must be 1-31 of a-z 0-9 - and start with a letter',
      argument: 'appPrefix',
      provider,
    });
  }
}

/**
 * The app a sandbox lives in (pure, but for the random part of an unnamed one). Each sandbox has
 * its own app: a named one's is derived from the org and the name (app names are global on Fly,
 * so the org keeps two accounts' "web" apart), so a second create of the name meets the first.
 */
export function planFlyAppName(prefix: string, org: string, name: string | undefined, random: () => string = randomSuffix): string {
  if (name === undefined) return `${prefix}-${random()}`;
  const digest = createHash('sha256').update(`${org}\0${name}`).digest('hex').slice(0, 20);
  return `${prefix}-n${digest}`;
}

function randomSuffix(): string {
  return randomBytes(8).toString('hex');
}

/** Sandbox ids are `<app>:<machine id>`; the app alone is kept apart from the machine for the API. */
export function flySandboxId(app: string, machineId: string): string {
  return `${app}:${machineId}`;
}

/** Splits a sandbox id; undefined when it is not one of ours. */
export function parseFlySandboxId(id: string): { app: string; machineId: string } | undefined {
  const match = /^([a-z0-9][a-z0-9-]{0,62}):([A-Za-z0-9]{1,64})$/.exec(id);
  return match ? { app: match[1]!, machineId: match[2]! } : undefined;
}

export interface FlyTunnelPlan {
  url: string;
  host: string;
  hostPort: number;
  encrypted: boolean;
}

/**
 * The public URL of a declared port (pure): `https://<app>.<domain>:<port>`, the port's own
 * external port (the first declared port is reached on `https://<app>.<domain>` too, see
 * {@link planFlyServices}); `http:` for a port declared `encrypted: false` or under an `http`
 * scheme (an emulator's edge). The port is left out when it is the scheme's default.
 */
export function planFlyTunnel(options: { app: string; port: FlyPortPlan; domain: string; scheme: 'https' | 'http' }): FlyTunnelPlan {
  const { app, port, domain, scheme } = options;
  const [domainHost] = splitHostPort(domain);
  const host = `${app}.${domainHost}`;
  const encrypted = scheme === 'https' && port.encrypted;
  const urlScheme = encrypted ? 'https' : 'http';
  const defaultPort = urlScheme === 'https' ? 443 : 80;
  return { url: `${urlScheme}://${host}${port.port === defaultPort ? '' : `:${port.port}`}`, host, hostPort: port.port, encrypted };
}

function splitHostPort(domain: string): [string, number | undefined] {
  const colon = domain.lastIndexOf(':');
  if (colon < 0) return [domain, undefined];
  const port = Number(domain.slice(colon + 1));
  return Number.isInteger(port) && port > 0 ? [domain.slice(0, colon), port] : [domain, undefined];
}
