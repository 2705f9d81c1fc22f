/**
 * Neutral create options → the `modal` SDK's `SandboxCreateParams`, as a plan with no I/O, so
 * units, defaults and refusals are unit-testable. The provider turns the plan's images, secrets
 * and volumes into SDK objects.
 */
import type { SandboxCreateParams, SandboxUpdateNetworkPolicyParams } from 'modal';
import { z } from 'zod';
import {
  SandboxInvalidArgumentError,
  defaultPtyTerm,
  parseOptions,
  ptyToolsExit,
  wrapArgv,
  portRequests,
  refuseUnsupported,
  volumeMounts,
  wholeSeconds,
  type FileEvent,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type PtySize,
  type SandboxCapabilities,
  type SandboxWarning,
} from '../../src/kit/index.js';

/** Modal's default sandbox lifetime. */
export const modalDefaultTimeoutMs = 5 * 60 * 1000;
/** Modal's longest sandbox lifetime. */
export const modalMaxTimeoutMs = 24 * 60 * 60 * 1000;

export const modalCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'gvisor',
  // Modal has no kill for an exec; the adapter kills the command's marked process tree with a
  // second exec, so kill and signals work.
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: true },
  files: { watch: true },
  entrypointStdio: true,
  tunnels: true,
  tunnelsTls: true,
  snapshot: true,
  deleteSnapshot: false,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  // Modal cannot change a running sandbox's lifetime.
  pause: false,
  extendTimeout: false,
  // Modal filters egress itself and changes the allowlists live (`updateNetworkPolicy`), to allow-all too.
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: true },
  limits: { cpu: true, memory: true, pids: false },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: modalMaxTimeoutMs },
  volumes: 'named',
  gpu: true,
  images: { reference: true, build: true, snapshot: true },
} as const);

/**
 * `providerOptions.modal` of `create`: Modal settings with no neutral equivalent.
 * - `secrets`: names of Modal Secrets (`secrets.fromName`) injected as environment variables.
 * - `regions`, `cloud`, `runtime` (`'gvisor' | 'vm'`), `h2Ports`, `inboundCidrAllowlist`, `i6pn`,
 *   `customDomain`, `includeOidcIdentityToken`, `verbose`, `experimentalOptions`: passed to
 *   `sandboxes.create` unchanged.
 */
export const modalCreateOptionsSchema = z
  .object({
    secrets: z.array(z.string().min(1)).optional(),
    regions: z.array(z.string().min(1)).optional(),
    cloud: z.string().min(1).optional(),
    runtime: z.enum(['gvisor', 'vm']).optional(),
    h2Ports: z.array(z.number().int().min(1).max(65535)).optional(),
    inboundCidrAllowlist: z.array(z.string().min(1)).optional(),
    i6pn: z.boolean().optional(),
    customDomain: z.string().min(1).optional(),
    includeOidcIdentityToken: z.boolean().optional(),
    verbose: z.boolean().optional(),
    experimentalOptions: z.record(z.string(), z.union([z.string(), z.boolean()])).optional(),
  })
  .strict();
export type ModalCreateOptions = z.input<typeof modalCreateOptionsSchema>;

export type ModalImagePlan =
  | { kind: 'registry'; tag: string }
  | { kind: 'build'; base: string; commands: string[] }
  | { kind: 'snapshot'; imageId: string };

export interface ModalCreatePlan {
  image: ModalImagePlan;
  /** Everything but `secrets` and `volumes`, which need SDK objects. */
  params: Omit<SandboxCreateParams, 'secrets' | 'volumes'>;
  /** Inline secret values (`secrets.fromObject`), never logged. */
  secretValues: Record<string, string> | undefined;
  /** Named Modal Secrets (`secrets.fromName`). */
  secretNames: string[];
  volumes: Array<{ mountPath: string; name: string; readOnly: boolean }>;
  warnings: SandboxWarning[];
}

/**
 * Builds the plan. Throws `SandboxInvalidArgumentError` for values Modal would refuse (lifetime
 * beyond 24 hours, a foreign snapshot) and `SandboxCapabilityUnsupportedError` for limits Modal
 * cannot enforce (`pidsLimit`).
 */
export function planModalCreate(options: ParsedCreateSandboxOptions, defaults: { image: string; encryptPorts: boolean }): ModalCreatePlan {
  const provider = 'modal';
  const warnings: SandboxWarning[] = [];
  const extra = parseOptions(modalCreateOptionsSchema, options.providerOptions?.modal, { provider, what: 'providerOptions.modal' });
  // Refusals the capabilities state (pids limit, lifetimes past 24 hours, foreign snapshots), in the kit.
  warnings.push(...refuseUnsupported(options, modalCapabilities, provider));

  let image: ModalImagePlan;
  const source = options.image ?? defaults.image;
  if (typeof source === 'string') image = { kind: 'registry', tag: source };
  else if ('type' in source) image = { kind: 'snapshot', imageId: source.id };
  else image = { kind: 'build', base: source.base, commands: source.commands };

  const params: ModalCreatePlan['params'] = {
    timeoutMs: inWholeSeconds('timeoutMs', options.timeoutMs ?? modalDefaultTimeoutMs, warnings),
  };
  if (options.idleTimeoutMs !== undefined) params.idleTimeoutMs = inWholeSeconds('idleTimeoutMs', options.idleTimeoutMs, warnings);
  if (options.command !== undefined)
    params.command = typeof options.command === 'string' ? ['/bin/sh', '-c', options.command] : [...options.command];
  if (options.env !== undefined) params.env = { ...options.env };
  if (options.workdir !== undefined) params.workdir = options.workdir;
  // Our cpu and memory are limits (security settings); Modal's plain values are only
  // reservations, so both the reservation and the hard limit are set.
  if (options.cpu !== undefined) {
    params.cpu = options.cpu;
    params.cpuLimit = options.cpu;
  }
  if (options.memoryMiB !== undefined) {
    params.memoryMiB = options.memoryMiB;
    params.memoryLimitMiB = options.memoryMiB;
  }
  if (options.gpu !== undefined) params.gpu = options.gpu;
  const network = options.network ?? 'allow';
  if (network === 'block') params.blockNetwork = true;
  else if (typeof network === 'object') {
    params.outboundCidrAllowlist = [...network.allowCidrs];
    params.outboundDomainAllowlist = [...network.allowDomains];
  }
  for (const request of portRequests(options.ports, provider)) {
    if (request.encrypted ?? defaults.encryptPorts) (params.encryptedPorts ??= []).push(request.port);
    else (params.unencryptedPorts ??= []).push(request.port);
  }
  if (options.name !== undefined) params.name = options.name;
  if (options.tags !== undefined) params.tags = { ...options.tags };
  const { secrets: secretNames = [], experimentalOptions, ...passThrough } = extra;
  Object.assign(params, passThrough);
  if (experimentalOptions) params.experimentalOptions = { ...experimentalOptions };

  const volumes = volumeMounts(options.volumes).map((mount) => ({ mountPath: mount.target, name: mount.source, readOnly: mount.readOnly }));
  for (const volume of volumes) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(volume.name)) {
      throw new SandboxInvalidArgumentError({
        message: `volumes.${volume.mountPath}: Modal volumes are named (letters, digits, . _ -), not host paths: ${volume.name}`,
        argument: `volumes.${volume.mountPath}`,
        provider,
      });
    }
  }
  return {
    image,
    params,
    secretValues: options.secrets && Object.keys(options.secrets).length > 0 ? { ...options.secrets } : undefined,
    secretNames,
    volumes,
    warnings,
  };
}

/** The CIDR block Modal's update takes for "everything" (its SDK documents `0.0.0.0/0` as allow-all). */
const allTraffic = '0.0.0.0/0';

/**
 * The params of `updateNetworkPolicy` for a policy (pure). Modal's update takes both lists (its
 * SDK refuses one alone) and replaces them: `'block'` is two empty lists, `'allow'` the allow-all
 * CIDR block, an allowlist its own lists.
 */
export function planModalNetworkUpdate(network: ParsedNetworkPolicy): Required<SandboxUpdateNetworkPolicyParams> {
  if (network === 'allow') return { outboundCidrAllowlist: [allTraffic], outboundDomainAllowlist: [] };
  if (network === 'block') return { outboundCidrAllowlist: [], outboundDomainAllowlist: [] };
  return { outboundCidrAllowlist: [...network.allowCidrs], outboundDomainAllowlist: [...network.allowDomains] };
}

/** A duration in Modal's unit (whole seconds, rounded up, with a warning), kept in milliseconds for the SDK. */
function inWholeSeconds(setting: string, milliseconds: number, warnings: SandboxWarning[]): number {
  const converted = wholeSeconds(milliseconds, setting);
  if (converted.warning) warnings.push(converted.warning);
  return converted.value * 1000;
}

/** What `sdk.exec` gets for one neutral exec: the argv to run and the SDK's exec params. */
export interface ModalExecPlan {
  argv: string[];
  params: { mode: 'binary'; env?: Record<string, string>; pty?: true };
}

/**
 * The shell that runs first on Modal's terminal: Modal opens it at 80x24 (the JS SDK's fixed
 * `PTYInfo`, with no resize call), so it sets the requested size and `TERM`, then becomes the
 * kit's exec wrapper. Arguments: rows, cols, TERM, then the wrapper's argv.
 */
export const modalTerminalScript = `stty rows "$1" cols "$2" || exit ${ptyToolsExit}; TERM=$3; export TERM; shift 3; exec "$@"`;

/**
 * Plans one exec (pure). Pipes: the kit's wrapper, with an empty stdin when `stdinNull` (a `run`
 * without input). With `pty`: the SDK's `pty: true`, {@link modalTerminalScript} on the terminal,
 * and the wrapper in its terminal mode, whose start report names the terminal for `resize`
 * (`stty -F`, a second exec). `TERM` is `env.TERM`, else `xterm-256color`.
 */
export function planModalExec(
  execId: string,
  argv: readonly string[],
  options: { cwd?: string | undefined; env?: Record<string, string> | undefined; pty?: PtySize | undefined; stdinNull?: boolean },
): ModalExecPlan {
  const params: ModalExecPlan['params'] = { mode: 'binary' };
  if (options.env !== undefined) params.env = { ...options.env };
  if (options.pty === undefined) return { argv: wrapArgv(execId, argv, { cwd: options.cwd, stdinNull: options.stdinNull }), params };
  const { rows, cols } = options.pty;
  params.pty = true;
  return {
    argv: [
      '/bin/sh',
      '-c',
      modalTerminalScript,
      'sandport-pty',
      String(rows),
      String(cols),
      options.env?.TERM ?? defaultPtyTerm,
      ...wrapArgv(execId, argv, { cwd: options.cwd, pty: true }),
    ],
    params,
  };
}

/** One event of the SDK's `filesystem.watch`: Modal's kind and the paths it is about. */
export interface ModalWatchEvent {
  readonly eventType: string;
  readonly paths: readonly string[];
}

/**
 * Whether Modal's event says changes went unreported (pure): `Unknown` is what its watcher sends
 * when the kernel's event queue overflowed, so the watch ends with an error instead of a gap.
 */
export function isModalWatchGap(event: ModalWatchEvent): boolean {
  return event.eventType === 'Unknown';
}

/**
 * Modal's watch event as the contract's (pure), or `undefined` for kinds the contract has no
 * word for (`Access`; `Unknown`, see {@link isModalWatchGap}). The SDK reports every rename as `Modify`: with two paths
 * (`[from, to]`, both inside the watched tree) it is our `rename`; with one (a move across the
 * edge of the tree, only one side visible) Modal cannot tell it from a change, so it is `modify`.
 */
export function planModalWatchEvent(event: ModalWatchEvent): FileEvent | undefined {
  const [first, second] = event.paths;
  if (first === undefined) return undefined;
  switch (event.eventType) {
    case 'Create':
      return { type: 'create', path: first };
    case 'Remove':
      return { type: 'remove', path: first };
    case 'Modify':
      return second === undefined ? { type: 'modify', path: first } : { type: 'rename', path: second, oldPath: first };
    default:
      return undefined;
  }
}
