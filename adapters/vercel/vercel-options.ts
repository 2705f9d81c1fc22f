/**
 * Neutral options → the `@vercel/sandbox` SDK's parameters, as pure plans (no I/O), so that every
 * trap of Vercel's API is unit-tested without a network: credentials that come all three or not
 * at all, milliseconds of lifetime that Vercel only extends (never sets), vCPUs with memory fixed
 * at 2048 MB each, at most 15 ports and 5 tags, a network policy of domains and subnets, and
 * commands that arrive as an argv (`cmd` + `args`) with no stdin.
 */
import type { NetworkPolicy as VercelNetworkPolicy } from '@vercel/sandbox';
import { z } from 'zod';
import {
  SandboxAuthenticationError,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  parseOptions,
  portRequests,
  refuseUnsupported,
  signalFromExitCode,
  type ExitStatus,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type SandboxCapabilities,
  type SandboxTags,
  type SandboxWarning,
  type Tunnel,
} from '../../src/kit/index.js';

const provider = 'vercel';

/** Vercel's default sandbox lifetime (the contract's default too), in milliseconds. */
export const vercelDefaultTimeoutMs = 5 * 60 * 1000;
/** Vercel's longest sandbox lifetime (Pro and Enterprise plans: 5 hours; Hobby: 45 minutes, which Vercel refuses beyond). */
export const vercelMaxTimeoutMs = 5 * 60 * 60 * 1000;
/** Most ports a Vercel sandbox exposes (`ports`, per the SDK's documentation). */
export const vercelMaxPorts = 15;
/** Most tags a Vercel sandbox carries. */
export const vercelMaxTags = 5;
/** Memory per vCPU on Vercel, in MiB (fixed: memory is not chosen separately). */
export const vercelMemoryPerVcpuMiB = 2048;
/** The vCPU counts Vercel offers. */
export const vercelMaxVcpus = 8;
/** Vercel's working directory of a session when the image sets none. */
export const vercelDefaultCwd = '/vercel/sandbox';

export const vercelCapabilities: SandboxCapabilities = Object.freeze({
  // Every Vercel sandbox is a Firecracker microVM.
  isolation: 'microvm',
  // No stdin on Vercel: commands read /dev/null (the kit's wrapper in `null` mode), so closing
  // stdin is true to its word (EOF from the start) and a write is refused. Kill is the kit's
  // marker killer run as a second command: every signal, the whole tree.
  exec: { stdin: false, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: false },
  files: { watch: false },
  // The create `command` runs as a detached command whose exit ends the sandbox; its output is
  // read and dropped (Vercel has no entrypoint stdio, and no stdin to give it).
  entrypointStdio: false,
  tunnels: true,
  // `sandbox.domain(port)` is always https (`https://<subdomain>.vercel.run`).
  tunnelsTls: true,
  // Vercel's snapshot stops the source session: the adapter resumes it from that very snapshot
  // (see `VercelSandbox.snapshot`), so the sandbox keeps its id and files.
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  // Vercel's stop keeps the filesystem but not the processes or memory: not the contract's pause.
  pause: false,
  extendTimeout: true,
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: true },
  // vCPUs are Vercel's, and memory comes with them (2048 MiB each); no process-count limit.
  limits: { cpu: true, memory: true, pids: false },
  timeouts: { lifetime: true, idle: false, maxLifetimeMs: vercelMaxTimeoutMs },
  volumes: false,
  gpu: false,
  images: { reference: true, build: false, snapshot: true },
} as const);

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

/** Credentials as the SDK takes them: all three, or none (then the SDK reads `VERCEL_OIDC_TOKEN`). */
export type VercelCredentialsPlan = { token: string; teamId: string; projectId: string } | { oidc: true };

/**
 * The credentials of every SDK call (pure). Explicit options win over the environment
 * (`VERCEL_TOKEN`, `VERCEL_TEAM_ID`, `VERCEL_PROJECT_ID`); a token needs its team and project
 * (the SDK's all-or-none rule), else `SandboxInvalidArgumentError` naming the missing ones. With
 * no token at all, `VERCEL_OIDC_TOKEN` (set by `vercel env pull` or inside Vercel functions) is
 * used; without it, `SandboxAuthenticationError` saying what to set.
 */
export function planVercelCredentials(
  options: { token?: string | undefined; teamId?: string | undefined; projectId?: string | undefined },
  env: Record<string, string | undefined> = process.env,
): VercelCredentialsPlan {
  const token = options.token ?? env.VERCEL_TOKEN;
  const teamId = options.teamId ?? env.VERCEL_TEAM_ID;
  const projectId = options.projectId ?? env.VERCEL_PROJECT_ID;
  const given = { token, teamId, projectId };
  const missing = Object.entries(given)
    .filter(([, value]) => value === undefined || value === '')
    .map(([key]) => key);
  if (missing.length === 0) return { token: token!, teamId: teamId!, projectId: projectId! };
  if (missing.length < 3 && missing.includes('token') === false) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel needs the access token with its team and project: ${missing.join(' and ')} missing (pass ${missing.join(', ')} or set ${missing.map(envName).join(', ')})`,
      argument: missing[0]!,
      provider,
    });
  }
  if (missing.length < 3) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel credentials are a token, a teamId and a projectId together: ${missing.join(' and ')} missing (pass ${missing.join(', ')} or set ${missing.map(envName).join(', ')})`,
      argument: missing[0]!,
      provider,
    });
  }
  if (env.VERCEL_OIDC_TOKEN) return { oidc: true };
  throw new SandboxAuthenticationError({
    message:
      'No Vercel credentials: pass { token, teamId, projectId } (or set VERCEL_TOKEN, VERCEL_TEAM_ID and VERCEL_PROJECT_ID), or set VERCEL_OIDC_TOKEN (`vercel env pull`)',
    provider,
  });
}

function envName(option: string): string {
  return { token: 'VERCEL_TOKEN', teamId: 'VERCEL_TEAM_ID', projectId: 'VERCEL_PROJECT_ID' }[option] ?? option;
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

/**
 * `providerOptions.vercel` of `create`: Vercel settings with no neutral equivalent.
 * - `sudo`: run every command of this sandbox as root (Vercel's `sudo: true`). @default false
 * - `denyCidrs`: subnets to deny even where the policy allows (Vercel's `subnets.deny`).
 * - `region`: the region to create the sandbox in (`iad1`, `sfo1`, …). @default Vercel's (`iad1`)
 * - `persistent`: keep the filesystem across sessions (Vercel's `persistent`). @default Vercel's
 */
export const vercelCreateOptionsSchema = z
  .object({
    sudo: z.boolean().optional(),
    denyCidrs: z.array(z.union([z.cidrv4(), z.cidrv6()])).optional(),
    region: z.string().min(1).optional(),
    persistent: z.boolean().optional(),
  })
  .strict();
export type VercelCreateOptions = z.input<typeof vercelCreateOptionsSchema>;

/** `providerOptions.vercel` of `exec` and `run`: `sudo` runs this command as root. */
export const vercelExecOptionsSchema = z.object({ sudo: z.boolean().optional() }).strict();

/** `Sandbox.create`'s parameters (but for credentials and `fetch`, which the provider adds). */
export interface VercelCreateParams {
  name?: string;
  image?: string;
  source?: { type: 'snapshot'; snapshotId: string };
  ports?: number[];
  timeout: number;
  resources?: { vcpus: number };
  networkPolicy?: VercelNetworkPolicy;
  env?: Record<string, string>;
  tags?: Record<string, string>;
  region?: string;
  persistent?: boolean;
}

export interface VercelCreatePlan {
  params: VercelCreateParams;
  /** The create `command`, started as a detached command once the sandbox is up. */
  entrypoint: string[] | undefined;
  /** `workdir`: made at create, the default cwd of every command. */
  workdir: string | undefined;
  /** Declared ports, for `tunnels()`. */
  ports: number[];
  /** Run every command as root. */
  sudo: boolean;
  /** Lifetime asked for, in milliseconds (the local clock ends the sandbox then too). */
  timeoutMs: number;
  warnings: SandboxWarning[];
}

/**
 * Builds the create plan. Throws `SandboxInvalidArgumentError` for values Vercel would refuse
 * (more than 15 ports or 5 tags, a memory that is not 2048 MiB per vCPU) and
 * `SandboxCapabilityUnsupportedError` for what it cannot do (volumes, gpu, idle timeouts, pids,
 * image builds).
 */
export function planVercelCreate(options: ParsedCreateSandboxOptions): VercelCreatePlan {
  const extra = parseOptions(vercelCreateOptionsSchema, options.providerOptions?.vercel, { provider, what: 'providerOptions.vercel' });
  const warnings: SandboxWarning[] = [...refuseUnsupported(options, vercelCapabilities, provider)];
  const timeoutMs = options.timeoutMs ?? vercelDefaultTimeoutMs;
  const params: VercelCreateParams = { timeout: timeoutMs };
  if (options.name !== undefined) params.name = options.name;

  const image = options.image;
  if (typeof image === 'string') params.image = image;
  else if (typeof image === 'object' && 'type' in image) params.source = { type: 'snapshot', snapshotId: image.id };

  const ports = portRequests(options.ports, provider).map((request) => {
    if (request.encrypted === false) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'ports.encrypted',
        details: `Vercel serves every port over https: port ${request.port} is encrypted`,
      });
    }
    return request.port;
  });
  if (ports.length > vercelMaxPorts) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel exposes at most ${vercelMaxPorts} ports per sandbox (got ${ports.length})`,
      argument: 'ports',
      provider,
    });
  }
  if (ports.length > 0) params.ports = ports;

  const vcpus = planVercelResources(options.cpu, options.memoryMiB, warnings);
  if (vcpus !== undefined) params.resources = { vcpus };

  const network = planVercelNetwork(options.network, extra.denyCidrs);
  if (network !== undefined) params.networkPolicy = network;

  const env = { ...options.secrets, ...options.env };
  if (options.secrets !== undefined && Object.keys(options.secrets).length > 0) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'secrets',
      details: 'Vercel has no secret environment: secrets are set as ordinary environment variables of the sandbox',
    });
  }
  if (Object.keys(env).length > 0) params.env = env;
  const tags = planVercelTags(options.tags);
  if (tags !== undefined) params.tags = tags;
  if (extra.region !== undefined) params.region = extra.region;
  if (extra.persistent !== undefined) params.persistent = extra.persistent;

  return {
    params,
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    workdir: options.workdir,
    ports,
    sudo: extra.sudo ?? false,
    timeoutMs,
    warnings,
  };
}

/**
 * `cpu` and `memoryMiB` as Vercel's vCPU count (pure). Vercel gives whole vCPUs (1-8) with
 * 2048 MiB of memory each: a fractional `cpu` is rounded up (a warning says so); `memoryMiB`
 * alone picks the vCPUs it matches; a `memoryMiB` that is not 2048 per vCPU is refused (it cannot
 * be honoured, and memory is a security setting). `undefined`: Vercel's default.
 */
export function planVercelResources(
  cpu: number | undefined,
  memoryMiB: number | undefined,
  warnings: SandboxWarning[] = [],
): number | undefined {
  if (cpu === undefined && memoryMiB === undefined) return undefined;
  let vcpus: number;
  if (cpu !== undefined) {
    vcpus = Math.ceil(cpu);
    if (vcpus !== cpu) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'cpu',
        details: `Vercel counts whole vCPUs: cpu ${cpu} was rounded up to ${vcpus}`,
      });
    }
  } else {
    vcpus = memoryMiB! / vercelMemoryPerVcpuMiB;
    if (!Number.isInteger(vcpus)) {
      throw new SandboxInvalidArgumentError({
        message: `memoryMiB on Vercel is ${vercelMemoryPerVcpuMiB} MiB per vCPU (2048, 4096, … ${vercelMaxVcpus * vercelMemoryPerVcpuMiB}); got ${memoryMiB}`,
        argument: 'memoryMiB',
        provider,
      });
    }
  }
  if (vcpus < 1 || vcpus > vercelMaxVcpus) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel sandboxes have 1 to ${vercelMaxVcpus} vCPUs (got ${vcpus})`,
      argument: cpu !== undefined ? 'cpu' : 'memoryMiB',
      provider,
    });
  }
  if (memoryMiB !== undefined && memoryMiB !== vcpus * vercelMemoryPerVcpuMiB) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel fixes memory at ${vercelMemoryPerVcpuMiB} MiB per vCPU: ${vcpus} vCPU${vcpus === 1 ? '' : 's'} have ${vcpus * vercelMemoryPerVcpuMiB} MiB, not ${memoryMiB} (remove memoryMiB or make it ${vcpus * vercelMemoryPerVcpuMiB})`,
      argument: 'memoryMiB',
      provider,
    });
  }
  return vcpus;
}

/**
 * The network policy as Vercel's (pure): `'allow'` is Vercel's default (nothing sent, unless
 * subnets are denied), `'block'` is `'deny-all'`, an allowlist is `{ allow: domains, subnets: {
 * allow: cidrs } }` (Vercel denies what the lists leave out); an empty allowlist is `'deny-all'`.
 * `denyCidrs` (providerOptions.vercel) become `subnets.deny` on top of any of them.
 */
export function planVercelNetwork(
  network: ParsedNetworkPolicy | undefined,
  denyCidrs: readonly string[] = [],
): VercelNetworkPolicy | undefined {
  const deny = denyCidrs.length > 0 ? [...denyCidrs] : undefined;
  if (network === undefined || network === 'allow') {
    return deny === undefined ? undefined : { allow: ['*'], subnets: { deny } };
  }
  if (network === 'block') return 'deny-all';
  if (network.allowCidrs.length === 0 && network.allowDomains.length === 0) return 'deny-all';
  const policy: Exclude<VercelNetworkPolicy, string> = {};
  // An empty domain list with subnets would still allow every name on Vercel: say none.
  policy.allow = [...network.allowDomains];
  if (network.allowCidrs.length > 0 || deny) {
    policy.subnets = {
      ...(network.allowCidrs.length > 0 && { allow: [...network.allowCidrs] }),
      ...(deny && { deny }),
    };
  }
  return policy;
}

/** The policy of `updateNetwork` (pure): `'allow'` is `'allow-all'`, the rest as at create. */
export function planVercelNetworkUpdate(network: ParsedNetworkPolicy): VercelNetworkPolicy {
  return network === 'allow' ? 'allow-all' : planVercelNetwork(network)!;
}

/**
 * Tags within Vercel's limit (pure): at most 5. `undefined` for none. Throws
 * `SandboxInvalidArgumentError` (argument `tags`) past the limit.
 */
export function planVercelTags(tags: SandboxTags | undefined): Record<string, string> | undefined {
  if (tags === undefined) return undefined;
  const count = Object.keys(tags).length;
  if (count > vercelMaxTags) {
    throw new SandboxInvalidArgumentError({
      message: `Vercel keeps at most ${vercelMaxTags} tags per sandbox (got ${count})`,
      argument: 'tags',
      provider,
    });
  }
  return count === 0 ? undefined : { ...tags };
}

/**
 * How `list({ tags })` filters (pure): Vercel's API filters by one tag only, so the first tag is
 * sent and the rest are matched on the answers.
 */
export function planVercelListFilter(tags: SandboxTags | undefined): { server: Record<string, string> | undefined; client: SandboxTags } {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0) return { server: undefined, client: {} };
  const [first, ...rest] = entries;
  return { server: Object.fromEntries([first!]), client: Object.fromEntries(rest) };
}

// ---------------------------------------------------------------------------------------------
// Exec
// ---------------------------------------------------------------------------------------------

/**
 * The outer shell every command runs in (its `cmd` is `/bin/sh`). It stays the wrapped
 * command's parent, so a death by signal n reaches Vercel as the shell's exit code 128 + n (the
 * kit's wrapper `exec`s the command, and Vercel reports a signalled process without a code).
 */
export const vercelOuterScript = '"$@"; exit $?';

/** `runCommand`'s parameters for one command (pure), `detached` so that its output streams. */
export interface VercelExecPlan {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  sudo?: boolean;
  detached: true;
}

/**
 * Plans one command of an already wrapped argv (pure): the argv goes as `cmd` + `args`, byte for
 * byte (Vercel takes an argv, no shell in between), under {@link vercelOuterScript}.
 */
export function planVercelExec(
  argv: readonly string[],
  options: { env?: Record<string, string> | undefined; sudo?: boolean | undefined } = {},
): VercelExecPlan {
  if (argv.length === 0) throw new SandboxInvalidArgumentError({ message: 'command: an empty argv', argument: 'command', provider });
  const plan: VercelExecPlan = { cmd: '/bin/sh', args: ['-c', vercelOuterScript, 'sandport', ...argv], detached: true };
  if (options.env !== undefined && Object.keys(options.env).length > 0) plan.env = { ...options.env };
  if (options.sudo) plan.sudo = true;
  return plan;
}

/** A command's exit code as Vercel reports it → the contract's status (pure): 128 + n is death by signal n. */
export function vercelExitStatus(exitCode: number): ExitStatus {
  return { exitCode, signal: signalFromExitCode(exitCode) };
}

// ---------------------------------------------------------------------------------------------
// Tunnels, timeouts
// ---------------------------------------------------------------------------------------------

/**
 * The tunnel of a declared port (pure), from `sandbox.domain(port)` (`https://<subdomain>.vercel.run`).
 * With `tunnelBaseUrl` (an emulator's edge, `http://vercel.localhost:PORT`), the subdomain is kept
 * and the rest is the base's: `http://<subdomain>.vercel.localhost:PORT`.
 */
export function planVercelTunnel(port: number, domain: string, tunnelBaseUrl?: string): Tunnel {
  let url = new URL(domain);
  if (tunnelBaseUrl !== undefined) {
    const base = new URL(tunnelBaseUrl);
    const subdomain = url.hostname.split('.')[0]!;
    url = new URL(`${base.protocol}//${subdomain}.${base.hostname}${base.port === '' ? '' : `:${base.port}`}`);
  }
  const encrypted = url.protocol === 'https:';
  return {
    port,
    url: url.origin,
    host: url.hostname,
    hostPort: url.port === '' ? (encrypted ? 443 : 80) : Number(url.port),
    encrypted,
  };
}

/**
 * What `extendTimeout(timeoutMs)` asks of Vercel (pure). The contract sets the deadline to
 * `timeoutMs` from now; Vercel only extends, by a duration. The extension is what the new
 * deadline adds to what is left (`remainingMs`); 0 when it is not later (the adapter's own clock
 * then ends the sandbox at the earlier deadline, as Vercel cannot shorten a session).
 */
export function planVercelExtension(timeoutMs: number, remainingMs: number): number {
  return Math.max(0, Math.ceil(timeoutMs - remainingMs));
}

/** Refuses a snapshot of another provider, for `deleteSnapshot` (pure). */
export function checkVercelSnapshot(snapshot: unknown): string {
  const ref = snapshot as { type?: unknown; provider?: unknown; id?: unknown } | null;
  if (ref === null || typeof ref !== 'object' || ref.type !== 'snapshot' || typeof ref.id !== 'string' || ref.id === '')
    throw new SandboxInvalidArgumentError({ message: 'snapshot must be a snapshot reference', argument: 'snapshot', provider });
  if (ref.provider !== provider)
    throw new SandboxInvalidArgumentError({
      message: `A ${String(ref.provider)} snapshot is not Vercel's`,
      argument: 'snapshot',
      provider,
    });
  return ref.id;
}

/** The error for `run({ stdin })` and a write to a command's stdin: Vercel carries no stdin. */
export function vercelNoStdinError(what: string): SandboxCapabilityUnsupportedError {
  return new SandboxCapabilityUnsupportedError({
    message: `Vercel commands have no stdin (${what}): pass the input as a file (files.write) or an argument`,
    capability: 'exec.stdin',
    provider,
  });
}
