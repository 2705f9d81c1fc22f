/**
 * Neutral options → the `e2b` SDK's parameters, as pure plans (no I/O), so that every trap of
 * E2B's API is unit-tested without a network: seconds for lifetimes, templates for images and
 * for cpu/memory, metadata for tags and the name, egress rules for the network, `/bin/bash -l -c`
 * for commands, and the SDK's 60 s command default.
 */
import { createHash } from 'node:crypto';
import type { SandboxNetworkUpdate, SandboxOpts } from 'e2b';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  parseOptions,
  portRequests,
  refuseUnsupported,
  shellQuote,
  wholeSeconds,
  type FileEvent,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type SandboxCapabilities,
  type SandboxTags,
  type SandboxWarning,
} from '../../src/kit/index.js';

/** E2B's default sandbox lifetime when a create names none (the contract's default too). */
export const e2bDefaultTimeoutMs = 5 * 60 * 1000;
/** E2B's longest sandbox lifetime (Pro teams; Hobby teams get 1 hour, which E2B itself refuses beyond). */
export const e2bMaxTimeoutMs = 24 * 60 * 60 * 1000;
/** The template a create without `image` starts from. */
export const e2bDefaultTemplate = 'base';

/**
 * Metadata keys the adapter reserves: the sandbox's `name` and the marker of sandboxes made by
 * sandport (`list` and `fromName` look only at those). Tags may not use the `sandport.` prefix.
 */
export const e2bMetadataKeys = { name: 'sandport.name', managed: 'sandport.managed' } as const;
const reservedPrefix = 'sandport.';

export const e2bCapabilities: SandboxCapabilities = Object.freeze({
  // Every E2B sandbox is a Firecracker microVM.
  isolation: 'microvm',
  // E2B kills one pid with SIGKILL only: the adapter kills the command's marked tree with a
  // second command, so every signal reaches the whole tree.
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: true },
  files: { watch: true },
  // E2B has no per-sandbox entrypoint: `command` runs as a background command the adapter holds
  // the streams of (as Docker's), so its stdio is reachable from the process that created it.
  entrypointStdio: true,
  tunnels: true,
  tunnelsTls: true,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  pause: true,
  extendTimeout: true,
  // E2B filters egress itself and changes it live (`updateNetwork`), to and from open access too.
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: true },
  // E2B sets cpu and memory per template: the adapter builds (or picks) a template that has them.
  limits: { cpu: true, memory: true, pids: false },
  // E2B has no idle timeout.
  timeouts: { lifetime: true, idle: false, maxLifetimeMs: e2bMaxTimeoutMs },
  volumes: false,
  gpu: false,
  images: { reference: true, build: true, snapshot: true },
} as const);

/**
 * `providerOptions.e2b` of `create`: E2B settings with no neutral equivalent.
 * - `template`: the template to start from when `image` is not given. @default the provider's `defaultTemplate`
 * - `metadata`: extra E2B metadata (keys outside `sandport.`), merged under the tags.
 * - `allowPublicTraffic`: `false` makes the sandbox's URLs require its traffic token (the adapter's
 *   tunnels carry it). @default E2B's (true)
 * - `secure`: passed to the SDK (2.x secures every sandbox's envd and ignores it).
 * - `autoPause`: on timeout, pause instead of kill (E2B's `lifecycle.onTimeout: 'pause'`).
 */
export const e2bCreateOptionsSchema = z
  .object({
    template: z.string().min(1).optional(),
    metadata: z.record(z.string().min(1), z.string()).optional(),
    allowPublicTraffic: z.boolean().optional(),
    secure: z.boolean().optional(),
    autoPause: z.boolean().optional(),
  })
  .strict();
export type E2bCreateOptions = z.input<typeof e2bCreateOptionsSchema>;

/** A template with known resources, for `planE2bCreate`'s cpu/memory choice (`E2bSandboxProviderOptions.templates`). */
export interface E2bResourceTemplate {
  /** Template name or id. */
  readonly template: string;
  /** vCPUs of the template. */
  readonly cpu: number;
  /** Memory of the template, in MiB. */
  readonly memoryMiB: number;
}

/** What a sandbox starts from: a template by name, or one the adapter builds with the SDK's template API. */
export type E2bTemplatePlan =
  | { kind: 'name'; template: string }
  | {
      kind: 'build';
      /** Where the build starts: a registry image (`{ base, commands }`) or an E2B template (cpu/memory only). */
      from: { image: string } | { template: string };
      commands: string[];
      cpuCount: number | undefined;
      memoryMB: number | undefined;
      /** A name derived from what is built, so an identical build is reused. */
      name: string;
    };

export interface E2bCreatePlan {
  template: E2bTemplatePlan;
  /** `Sandbox.create`'s options, but for the connection settings the provider adds. */
  opts: Pick<SandboxOpts, 'timeoutMs' | 'metadata' | 'envs' | 'network' | 'allowInternetAccess' | 'secure' | 'lifecycle'>;
  /** The create `command`, started as a background command once the sandbox is up. */
  entrypoint: string[] | undefined;
  /** `workdir`: the default cwd of every command (E2B has none at create). */
  workdir: string | undefined;
  /** Declared ports, for `tunnels()`. */
  ports: number[];
  warnings: SandboxWarning[];
}

export interface E2bCreateDefaults {
  /** @default e2bDefaultTemplate */
  template?: string;
  /** Templates with known cpu/memory to pick from before building one. */
  templates?: readonly E2bResourceTemplate[];
}

/**
 * Builds the create plan. Throws `SandboxInvalidArgumentError` for values E2B would refuse
 * (lifetime beyond 24 hours, a tag key under `sandport.`, secrets: E2B has no secret env) and
 * `SandboxCapabilityUnsupportedError` for what it cannot do (volumes, gpu, idle timeouts, pids).
 */
export function planE2bCreate(options: ParsedCreateSandboxOptions, defaults: E2bCreateDefaults = {}): E2bCreatePlan {
  const provider = 'e2b';
  const extra = parseOptions(e2bCreateOptionsSchema, options.providerOptions?.e2b, { provider, what: 'providerOptions.e2b' });
  const warnings: SandboxWarning[] = [...refuseUnsupported(options, e2bCapabilities, provider)];
  const timeout = wholeSeconds(options.timeoutMs ?? e2bDefaultTimeoutMs, 'timeoutMs');
  if (timeout.warning) warnings.push(timeout.warning);

  const opts: E2bCreatePlan['opts'] = {
    timeoutMs: timeout.value * 1000,
    metadata: planE2bMetadata(options.tags, options.name, extra.metadata),
  };
  const envs = { ...options.secrets, ...options.env };
  if (options.secrets !== undefined && Object.keys(options.secrets).length > 0) {
    // E2B keeps no secret store for env: secrets become plain envs of the sandbox, like env.
    warnings.push({
      type: 'unsupported-setting',
      setting: 'secrets',
      details: 'E2B has no secret environment: secrets are set as ordinary environment variables of the sandbox',
    });
  }
  if (Object.keys(envs).length > 0) opts.envs = envs;
  const network = planE2bNetwork(options.network, extra.allowPublicTraffic);
  if (network) opts.network = network;
  if (extra.secure !== undefined) opts.secure = extra.secure;
  if (extra.autoPause) opts.lifecycle = { onTimeout: 'pause' };

  const ports = portRequests(options.ports, provider).map((request) => {
    if (request.encrypted === false) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'ports.encrypted',
        details: `E2B serves every port over https: port ${request.port} is encrypted`,
      });
    }
    return request.port;
  });

  return {
    template: planE2bTemplate(options, extra.template ?? defaults.template ?? e2bDefaultTemplate, defaults.templates ?? [], warnings),
    opts,
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    workdir: options.workdir,
    ports,
    warnings,
  };
}

/**
 * E2B metadata for the tags and the name (pure): the tags verbatim (so that E2B's own list filter
 * and dashboard see them), `sandport.name` for the name and `sandport.managed` as the marker.
 * Throws `SandboxInvalidArgumentError` (argument `tags`) for a tag key under `sandport.`.
 */
export function planE2bMetadata(
  tags: SandboxTags | undefined,
  name: string | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  for (const [source, record] of [
    ['tags', tags ?? {}],
    ['providerOptions.e2b.metadata', extra],
  ] as const) {
    for (const key of Object.keys(record)) {
      if (key.startsWith(reservedPrefix)) {
        throw new SandboxInvalidArgumentError({
          message: `${source}: keys starting with "${reservedPrefix}" are the adapter's (it keeps the name there): ${key}`,
          argument: source,
          provider: 'e2b',
        });
      }
    }
  }
  return { ...extra, ...tags, [e2bMetadataKeys.managed]: '1', ...(name === undefined ? {} : { [e2bMetadataKeys.name]: name }) };
}

/** The tags out of E2B metadata (pure): everything but the adapter's keys. */
export function tagsFromE2bMetadata(metadata: Record<string, string> | undefined): SandboxTags {
  return Object.fromEntries(Object.entries(metadata ?? {}).filter(([key]) => !key.startsWith(reservedPrefix)));
}

/**
 * The network policy as E2B's egress rules (pure). `'block'` denies all traffic; an allowlist
 * denies all and allows its CIDRs and domains (E2B lets `allowOut` win over `denyOut`, and its
 * `allowOut` takes CIDRs, IPs and host names alike). `allowPublicTraffic: false` keeps the
 * sandbox's URLs behind its traffic token.
 */
export function planE2bNetwork(
  network: ParsedCreateSandboxOptions['network'],
  allowPublicTraffic?: boolean,
): NonNullable<SandboxOpts['network']> | undefined {
  const rules: NonNullable<SandboxOpts['network']> = {};
  if (network === 'block') rules.denyOut = [allTraffic];
  else if (typeof network === 'object') {
    rules.denyOut = [allTraffic];
    const allowOut = [...network.allowCidrs, ...network.allowDomains];
    if (allowOut.length > 0) rules.allowOut = allowOut;
  }
  if (allowPublicTraffic !== undefined) rules.allowPublicTraffic = allowPublicTraffic;
  return Object.keys(rules).length > 0 ? rules : undefined;
}

/** E2B's "all traffic" CIDR (the SDK's `ALL_TRAFFIC`). */
const allTraffic = '0.0.0.0/0';

/**
 * The body of `updateNetwork` for a policy (pure). E2B's update replaces every egress rule, so
 * each policy is spelt out whole: `'allow'` is internet access with no rules, `'block'` denies all
 * traffic, an allowlist denies all but its CIDRs and domains (as at create, {@link planE2bNetwork}).
 */
export function planE2bNetworkUpdate(network: ParsedNetworkPolicy): SandboxNetworkUpdate {
  if (network === 'allow') return { allowInternetAccess: true };
  const allowOut = network === 'block' ? [] : [...network.allowCidrs, ...network.allowDomains];
  return { denyOut: [allTraffic], ...(allowOut.length > 0 && { allowOut }) };
}

/**
 * The template a create starts from (pure). A string `image` is a template name or id; a snapshot
 * is the snapshot's template; `{ base, commands }` is a template build from the registry image.
 * `cpu`/`memoryMiB` are E2B template settings: a template of `templates` with exactly those
 * resources is used when the image is the default one, else a build from the image with them.
 * E2B counts whole vCPUs: a fractional `cpu` is rounded up, with a warning.
 */
function planE2bTemplate(
  options: ParsedCreateSandboxOptions,
  defaultTemplate: string,
  templates: readonly E2bResourceTemplate[],
  warnings: SandboxWarning[],
): E2bTemplatePlan {
  const image = options.image;
  let cpuCount: number | undefined;
  if (options.cpu !== undefined) {
    cpuCount = Math.ceil(options.cpu);
    if (cpuCount !== options.cpu) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'cpu',
        details: `E2B counts whole vCPUs: cpu ${options.cpu} was rounded up to ${cpuCount}`,
      });
    }
  }
  const memoryMB = options.memoryMiB;
  const resources = cpuCount !== undefined || memoryMB !== undefined;
  if (typeof image === 'object' && 'type' in image) {
    if (resources) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'E2B sets cpu and memory per template; a snapshot keeps those of its sandbox: remove cpu and memoryMiB',
        capability: 'limits.cpu',
        provider: 'e2b',
      });
    }
    return { kind: 'name', template: image.id };
  }
  if (typeof image === 'object') {
    if (image.commands.some((command) => command.trim() === '')) {
      throw new SandboxInvalidArgumentError({
        message: 'image.commands: a build command is empty',
        argument: 'image.commands',
        provider: 'e2b',
      });
    }
    return build({ image: image.base }, image.commands, cpuCount, memoryMB);
  }
  const template = image ?? defaultTemplate;
  if (!resources) return { kind: 'name', template };
  const match = templates.find(
    (candidate) =>
      (image === undefined || candidate.template === image) &&
      (cpuCount === undefined || candidate.cpu === cpuCount) &&
      (memoryMB === undefined || candidate.memoryMiB === memoryMB),
  );
  if (match) return { kind: 'name', template: match.template };
  return build({ template }, [], cpuCount, memoryMB);
}

function build(
  from: { image: string } | { template: string },
  commands: string[],
  cpuCount: number | undefined,
  memoryMB: number | undefined,
): E2bTemplatePlan {
  const digest = createHash('sha256').update(JSON.stringify({ from, commands, cpuCount, memoryMB })).digest('hex').slice(0, 16);
  return { kind: 'build', from, commands: [...commands], cpuCount, memoryMB, name: `sandport-${digest}` };
}

/**
 * The command string E2B runs for an argv (pure). E2B's SDK runs every command as
 * `/bin/bash -l -c <string>`: each argument is single-quoted (every byte kept, `'` spelled
 * `'\''`), so the argv arrives byte for byte. bash stays the program's parent (`; exit $?`
 * keeps it from replacing itself), so a death by signal n reaches E2B as bash's exit code
 * 128 + n, which E2B reports like any exit code.
 */
export function e2bCommandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new SandboxInvalidArgumentError({ message: 'command: an empty argv', argument: 'command', provider: 'e2b' });
  return `${argv.map(shellQuote).join(' ')}; exit $?`;
}

/**
 * The command line typed into the interactive bash of E2B's PTY (pure): `sandbox.pty.create`
 * starts `/bin/bash -i -l` and nothing else, so the command is handed over in the environment
 * variable `SANDPORT_PTY_LINE` (the terminal's line buffer takes 4095 bytes; an argv may be
 * longer) and typed as one short line that `eval`s it. The variable unsets itself, the exec's
 * `env` is exported again (the login shell's profile may have changed PS1 or PATH), and `exec`
 * replaces the shell with the command, whose exit is the terminal's.
 */
export function e2bPtyLine(argv: readonly string[], env: Record<string, string> = {}): { envs: Record<string, string>; input: string } {
  // The login shell's profile may reset variables the exec asked for (PS1, PATH): they are set again last.
  const exports = Object.entries(env).map(([key, value]) => `export ${shellQuote(`${key}=${value}`)}; `);
  return {
    envs: { [e2bPtyVariable]: `unset ${e2bPtyVariable}; ${exports.join('')}exec ${argv.map(shellQuote).join(' ')}` },
    input: ` eval "$${e2bPtyVariable}"\n`,
  };
}

/** The variable {@link e2bPtyLine} carries the command line in. */
export const e2bPtyVariable = 'SANDPORT_PTY_LINE';

/** Signal names as E2B's envd words them in an end event's status (`signal: killed`), for exits without a code. */
const envdSignalWords: Record<string, number> = {
  hangup: 1,
  interrupt: 2,
  quit: 3,
  aborted: 6,
  killed: 9,
  'user defined signal 1': 10,
  'segmentation fault': 11,
  'user defined signal 2': 12,
  'broken pipe': 13,
  'alarm clock': 14,
  terminated: 15,
};

/**
 * A command's exit as E2B reports it → our exit code (pure). A code ≥ 0 is the code. envd reports
 * a process killed by a signal with exit code -1 and a status such as `signal: killed`: that is
 * 128 + n. An unknown signal word is 128 + 9 only when nothing better is known.
 */
export function planE2bExitCode(exitCode: number, status: string | undefined): number {
  if (exitCode >= 0) return exitCode;
  const word = /signal:\s*([a-z0-9 ]+)/i
    .exec(status ?? '')?.[1]
    ?.trim()
    .toLowerCase();
  const number = word === undefined ? undefined : (envdSignalWords[word] ?? (/^\d+$/.test(word) ? Number(word) : undefined));
  return 128 + (number ?? 9);
}

/** `commands.run`'s options for one exec (pure): no timeout (E2B's default is 60 s), stdin asked for at start. */
export interface E2bExecPlan {
  cmd: string;
  opts: { background: true; stdin: boolean; timeoutMs: 0; envs?: Record<string, string>; user?: string };
}

/**
 * Plans one exec of an already wrapped argv (pure). `stdin` must be requested when the command
 * starts (E2B cannot open it later), so it is, unless the command runs with an empty stdin
 * (`stdinNull`: a `run` without input). `timeoutMs: 0` disables the SDK's 60 s default; the kit
 * times the command itself and kills its tree.
 */
export function planE2bExec(
  argv: readonly string[],
  options: { env?: Record<string, string> | undefined; stdinNull?: boolean; user?: string | undefined },
): E2bExecPlan {
  const opts: E2bExecPlan['opts'] = { background: true, stdin: !options.stdinNull, timeoutMs: 0 };
  if (options.user !== undefined) opts.user = options.user;
  const env = options.env ?? {};
  if (Object.keys(env).length === 0) return { cmd: e2bCommandLine(argv), opts };
  // E2B's login shell runs the profile after taking `envs`, which resets PATH or PS1 the exec
  // asked for: the values are set again, from a variable (never the command line, which `ps`
  // shows), before the command runs.
  const exports = Object.entries(env).map(([key, value]) => `export ${shellQuote(`${key}=${value}`)}; `);
  opts.envs = { ...env, [e2bExecEnvVariable]: `unset ${e2bExecEnvVariable}; ${exports.join('')}` };
  return { cmd: `eval "$${e2bExecEnvVariable}"; ${e2bCommandLine(argv)}`, opts };
}

/** The variable {@link planE2bExec} carries an exec's `env` in, to set it again after the profile. */
export const e2bExecEnvVariable = 'SANDPORT_EXEC_ENV';

/** One event of the SDK's `watchDir`: its kind and the path relative to the watched directory. */
export interface E2bWatchEvent {
  readonly type: string;
  readonly name: string;
}

/**
 * E2B's watch event as the contract's (pure), or `undefined` for kinds the contract has no word
 * for. E2B reports paths relative to the watched directory (`.` for the directory itself);
 * `chmod` is a metadata change (`modify`). A `rename` event is the old name of a move (inotify's
 * MOVED_FROM; the new name follows as `create`): alone it is a `remove` (moved out of the tree),
 * and {@link pairE2bRename} joins it with the `create` that follows it.
 */
export function planE2bWatchEvent(root: string, event: E2bWatchEvent): FileEvent | undefined {
  // envd names the watched directory's own events `.`.
  const path = event.name === '' || event.name === '.' ? root : `${root.replace(/\/+$/, '')}/${event.name.replace(/^\.\//, '')}`;
  switch (event.type) {
    case 'create':
      return { type: 'create', path };
    case 'write':
    case 'chmod':
      return { type: 'modify', path };
    case 'remove':
    case 'rename':
      return { type: 'remove', path };
    default:
      return undefined;
  }
}

/**
 * Joins the two sides of a move (pure): envd sends a move as `rename` of the old name followed by
 * `create` of the new one, without a cookie tying them. A `remove` that came from a `rename`
 * (`pending`) followed at once by a `create` is one `rename`; anything else leaves them apart.
 * A move out of the tree followed by an unrelated create at the same moment would be paired too.
 */
export function pairE2bRename(pending: FileEvent, next: FileEvent): FileEvent[] {
  if (next.type === 'create' && next.path !== pending.path) return [{ type: 'rename', path: next.path, oldPath: pending.path }];
  return [pending, next];
}

/**
 * The tunnel of a declared port (pure): E2B serves every port at `https://<getHost(port)>`
 * (`http` only where there is no TLS terminator, such as the local emulator). A sandbox created
 * with `allowPublicTraffic: false` answers 403 to a request without its
 * `e2b-traffic-access-token` header, which a URL cannot carry: send the header yourself (the
 * token is `sandbox.trafficAccessToken`).
 */
export function planE2bTunnel(port: number, host: string, scheme: 'https' | 'http' = 'https') {
  const url = new URL(`${scheme}://${host}`);
  const defaultPort = scheme === 'https' ? 443 : 80;
  return {
    port,
    url: `${scheme}://${host}`,
    host: url.hostname,
    hostPort: url.port === '' ? defaultPort : Number(url.port),
    encrypted: scheme === 'https',
  };
}

/** The header E2B's proxy wants the traffic token in, for a sandbox whose traffic is not public. */
export const e2bTrafficTokenHeader = 'e2b-traffic-access-token';

/** Milliseconds to E2B's whole seconds for `extendTimeout` (pure), with the warning when rounded. */
export function planE2bTimeout(timeoutMs: number): { timeoutMs: number; warning: SandboxWarning | undefined } {
  const converted = wholeSeconds(timeoutMs, 'timeoutMs');
  return { timeoutMs: converted.value * 1000, warning: converted.warning };
}
