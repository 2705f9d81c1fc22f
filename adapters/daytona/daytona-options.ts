/**
 * Neutral options → `@daytonaio/sdk`'s parameters, as pure plans (no I/O), so that every trap of
 * Daytona's API is unit-tested without a network: GiB for memory and disk, minutes for the
 * lifetime and the auto-stop/auto-delete intervals, comma strings for the allowlists, labels for
 * tags, strings for commands (quoted here byte for byte), and the configuration the SDK would
 * otherwise read from the environment and `.env` files.
 */
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  parseOptions,
  portRequests,
  refuseUnsupported,
  shellQuote,
  wholeGiB,
  wholeMinutes,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type SandboxCapabilities,
  type SandboxTags,
  type SandboxWarning,
  volumeMounts,
} from '../../src/kit/index.js';

const provider = 'daytona';

/** The lifetime of a sandbox whose create names none (the contract's default, as E2B's). */
export const daytonaDefaultTimeoutMs = 5 * 60 * 1000;
/** The longest `timeoutMs` the adapter accepts: 30 days (Daytona's TTL has no documented bound; auto-archive's default is 7 days). */
export const daytonaMaxTimeoutMs = 30 * 24 * 60 * 60 * 1000;
/** Daytona's public API, the SDK's own default. */
export const daytonaDefaultApiUrl = 'https://app.daytona.io/api';

/**
 * Labels the adapter reserves: the marker of sandboxes made by sandport (`list` looks only at
 * those). Tags may not use the `sandport.` prefix. Names are Daytona's own (`name`).
 */
export const daytonaLabelKeys = {
  managed: 'sandport.managed',
  /** While paused: the lifetime left, in ms, so that a resume in any process sets the TTL again. */
  heldLifetime: 'sandport.held-lifetime-ms',
} as const;
const reservedPrefix = 'sandport.';

export const daytonaCapabilities: SandboxCapabilities = Object.freeze({
  // Each Daytona sandbox is a container on a Daytona runner.
  isolation: 'container',
  // Daytona has no per-command kill: the kit's marker killer ends the command's tree (any signal).
  // Session input has no end-of-file: the adapter relays stdin through a FIFO inside the sandbox
  // (daytonaStdinRelayScript), so closing stdin ends the command's input. A terminal is the kit's
  // portable one (`script` from util-linux in the sandbox) over those pipes.
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true, pty: true },
  // Daytona has no watch API: the kit's watcher runs inotifywait (inotify-tools) inside the sandbox.
  files: { watch: true },
  // `command` runs as a session command the adapter holds the streams of.
  entrypointStdio: true,
  tunnels: true,
  // Daytona serves previews over https; the adapter returns what Daytona gives.
  tunnelsTls: true,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: false,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: true,
  // Daytona's pause (not its stop, which ends processes) keeps processes and memory; start resumes it.
  // The lifetime is held in a label while paused (Daytona's TTL is cleared), see daytona-sandbox.ts.
  pause: true,
  extendTimeout: true,
  // Daytona filters egress itself (networkBlockAll, networkAllowList, domainAllowList) and changes it live.
  network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: true },
  limits: { cpu: true, memory: true, pids: false },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: daytonaMaxTimeoutMs },
  // Daytona volumes by name, read-write only; they must exist and be ready (daytona.volume.get(name, true)).
  volumes: 'named',
  // `resources.gpu` (a count) and `resources.gpuType`, see planDaytonaGpu; only on a sandbox made from an image.
  gpu: true,
  images: { reference: true, build: true, snapshot: true },
} as const);

/**
 * `providerOptions.daytona` of `create`: Daytona settings with no neutral equivalent.
 * - `snapshot`: a Daytona snapshot by name to start from (instead of `image`).
 * - `user`: the OS user commands run as. @default the image's (Daytona's default: `daytona`)
 * - `diskGiB`: disk size in GiB (only with an image). @default Daytona's
 * - `public`: previews need no token. @default false
 * - `labels`: extra Daytona labels (keys outside `sandport.`), merged under the tags.
 * - `autoArchiveMinutes`: minutes stopped before Daytona archives the sandbox. @default Daytona's (7 days)
 * - `language`: the code interpreter's language label (`python`, `typescript`, `javascript`).
 */
export const daytonaCreateOptionsSchema = z
  .object({
    snapshot: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    diskGiB: z.number().int().positive().optional(),
    public: z.boolean().optional(),
    labels: z.record(z.string().min(1), z.string()).optional(),
    autoArchiveMinutes: z.number().int().nonnegative().optional(),
    language: z.string().min(1).optional(),
  })
  .strict();
export type DaytonaCreateOptions = z.input<typeof daytonaCreateOptionsSchema>;

/** What a sandbox starts from: a Daytona snapshot, a registry image, or an image the SDK builds (`Image.base(base).runCommands(...)`). */
export type DaytonaSourcePlan =
  | { kind: 'snapshot'; snapshot: string | undefined }
  | { kind: 'image'; image: string }
  | { kind: 'build'; base: string; commands: string[] };

/** `daytona.create`'s parameters but for `image` (built from `source` by the provider, which holds the SDK). */
export interface DaytonaCreateParams {
  name?: string;
  user?: string;
  language?: string;
  envVars?: Record<string, string>;
  labels: Record<string, string>;
  public?: boolean;
  autoStopInterval: number;
  autoArchiveInterval?: number;
  autoDeleteInterval?: number;
  ttlMinutes: number;
  networkBlockAll?: boolean;
  networkAllowList?: string;
  domainAllowList?: string;
  resources?: { cpu?: number; memory?: number; disk?: number; gpu?: number; gpuType?: string };
  volumes?: DaytonaVolumeMountPlan[];
}

/** One of `daytona.create`'s `volumes`: a Daytona volume (by name) at a sandbox path. */
export interface DaytonaVolumeMountPlan {
  volumeId: string;
  mountPath: string;
}

export interface DaytonaCreatePlan {
  source: DaytonaSourcePlan;
  params: DaytonaCreateParams;
  /** The create `command`, started as a session command once the sandbox is up. */
  entrypoint: string[] | undefined;
  /** `workdir`: the default cwd of every command (Daytona has none at create). */
  workdir: string | undefined;
  /** Declared ports, for `tunnels()`. */
  ports: number[];
  /** The lifetime as Daytona counts it (whole minutes), in milliseconds, for the local clock. */
  lifetimeMs: number;
  warnings: SandboxWarning[];
}

export interface DaytonaCreateDefaults {
  /**
   * The registry image a create starts from when it asks for cpu, memory or disk without an
   * `image`: Daytona sets resources only on a sandbox made from an image, not from its default
   * snapshot. @default daytonaDefaultImage
   */
  image?: string;
}

/** The image of Daytona's default snapshot, for creates that set resources without an `image`. */
export const daytonaDefaultImage = 'daytonaio/sandbox:latest';

/**
 * Builds the create plan. Throws `SandboxInvalidArgumentError` for values Daytona would refuse
 * (a tag key under `sandport.`, resources with a snapshot) and `SandboxCapabilityUnsupportedError`
 * for what it cannot do (pids), and for a read-only volume. Rounds memory up to whole GiB and the lifetime and
 * idle timeout up to whole minutes, with a warning each.
 */
export function planDaytonaCreate(options: ParsedCreateSandboxOptions, defaults: DaytonaCreateDefaults = {}): DaytonaCreatePlan {
  const extra = parseOptions(daytonaCreateOptionsSchema, options.providerOptions?.daytona, {
    provider,
    what: 'providerOptions.daytona',
  });
  const warnings: SandboxWarning[] = [...refuseUnsupported(options, daytonaCapabilities, provider)];
  const lifetime = wholeMinutes(options.timeoutMs ?? daytonaDefaultTimeoutMs, 'timeoutMs');
  if (lifetime.warning) warnings.push(lifetime.warning);
  const params: DaytonaCreateParams = {
    labels: planDaytonaLabels(options.tags, extra.labels),
    ttlMinutes: lifetime.value,
    // Daytona stops idle sandboxes after 15 minutes by default; the contract has no idle timeout unless asked.
    autoStopInterval: 0,
  };
  if (options.name !== undefined) params.name = options.name;
  if (options.idleTimeoutMs !== undefined) {
    const idle = wholeMinutes(options.idleTimeoutMs, 'idleTimeoutMs');
    if (idle.warning) warnings.push(idle.warning);
    params.autoStopInterval = idle.value;
    // An idle sandbox ends (the contract's idle timeout), not merely stops: delete it when it stops.
    params.autoDeleteInterval = 0;
  }
  if (extra.autoArchiveMinutes !== undefined) params.autoArchiveInterval = extra.autoArchiveMinutes;
  if (extra.user !== undefined) params.user = extra.user;
  if (extra.language !== undefined) params.language = extra.language;
  if (extra.public !== undefined) params.public = extra.public;
  const envVars = { ...options.secrets, ...options.env };
  if (options.secrets !== undefined && Object.keys(options.secrets).length > 0) {
    // Daytona's `secrets` name organisation secrets; sandport's are values: they become env vars.
    warnings.push({
      type: 'unsupported-setting',
      setting: 'secrets',
      details:
        "Daytona's secrets refer to organisation secrets by name: sandport's secret values are set as ordinary environment variables of the sandbox",
    });
  }
  if (Object.keys(envVars).length > 0) params.envVars = envVars;
  Object.assign(params, planDaytonaNetwork(options.network ?? 'allow'));
  const volumes = planDaytonaVolumes(options.volumes);
  if (volumes.length > 0) params.volumes = volumes;

  const resources: NonNullable<DaytonaCreateParams['resources']> = {};
  if (options.cpu !== undefined) {
    resources.cpu = Math.ceil(options.cpu);
    if (resources.cpu !== options.cpu) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'cpu',
        details: `Daytona counts whole cores: cpu ${options.cpu} was rounded up to ${resources.cpu}`,
      });
    }
  }
  if (options.memoryMiB !== undefined) {
    const memory = wholeGiB(options.memoryMiB, 'memoryMiB');
    if (memory.warning) warnings.push(memory.warning);
    resources.memory = memory.value;
  }
  if (extra.diskGiB !== undefined) resources.disk = extra.diskGiB;
  if (options.gpu !== undefined) Object.assign(resources, planDaytonaGpu(options.gpu));
  const source = planDaytonaSource(options, extra.snapshot, Object.keys(resources).length > 0, defaults.image ?? daytonaDefaultImage);
  if (Object.keys(resources).length > 0) params.resources = resources;

  const ports = portRequests(options.ports, provider).map((request) => {
    if (request.encrypted === false) {
      warnings.push({
        type: 'unsupported-setting',
        setting: 'ports.encrypted',
        details: `Daytona serves previews over https: port ${request.port} is encrypted`,
      });
    }
    return request.port;
  });
  return {
    source,
    params,
    entrypoint:
      options.command === undefined
        ? undefined
        : typeof options.command === 'string'
          ? ['/bin/sh', '-c', options.command]
          : [...options.command],
    workdir: options.workdir,
    ports,
    lifetimeMs: lifetime.value * 60_000,
    warnings,
  };
}

/**
 * `volumes` as Daytona volume mounts (pure). A source is the name of a Daytona volume of the
 * organisation; whether it exists and is ready the provider asks Daytona before the create.
 * Throws `SandboxInvalidArgumentError` (argument `volumes`) for a read-only mount: Daytona mounts
 * volumes read-write only, and a security setting that cannot be honoured fails closed.
 */
export function planDaytonaVolumes(volumes: ParsedCreateSandboxOptions['volumes']): DaytonaVolumeMountPlan[] {
  return volumeMounts(volumes).map((mount) => {
    if (mount.readOnly) {
      throw new SandboxInvalidArgumentError({
        message: `volumes: Daytona mounts volumes read-write only (${mount.target} from ${JSON.stringify(mount.source)})`,
        argument: 'volumes',
        provider,
      });
    }
    return { volumeId: mount.source, mountPath: mount.target };
  });
}

/**
 * Where a sandbox starts (pure). A string `image` is a registry image; `{ base, commands }` is
 * Daytona's declarative builder; a snapshot reference (or `providerOptions.daytona.snapshot`) is
 * a Daytona snapshot. Resources exist only for images: with a snapshot they are refused, and
 * without an image the default image is used instead of the default snapshot.
 */
/**
 * `gpu` in Daytona's terms: `'H100'` (one of that type), `'H100:2'` (two), or a bare count `'2'`
 * (any type Daytona has). Types are matched without regard to case and sent in Daytona's
 * spelling (upper case, as its `GpuType` values: `H100`, `RTX-4090`, ...). Which types exist is
 * Daytona's to say: its API refuses an unknown one (400), so new types work without a release.
 */
export function planDaytonaGpu(gpu: string): { gpu: number; gpuType?: string } {
  const match = /^(?:(?<count>\d+)|(?<type>[A-Za-z][A-Za-z0-9-]*)(?::(?<typed>\d+))?)$/.exec(gpu.trim());
  const count = Number(match?.groups?.count ?? match?.groups?.typed ?? 1);
  if (!match || !Number.isSafeInteger(count) || count < 1) {
    throw new SandboxInvalidArgumentError({
      message: `gpu ${JSON.stringify(gpu)} is not a Daytona GPU request: give a type ('H100'), a type and a count ('H100:2'), or a count ('2')`,
      argument: 'gpu',
      provider,
    });
  }
  const type = match.groups?.type;
  return type === undefined ? { gpu: count } : { gpu: count, gpuType: type.toUpperCase() };
}

export function planDaytonaSource(
  options: Pick<ParsedCreateSandboxOptions, 'image'>,
  snapshot: string | undefined,
  resources: boolean,
  defaultImage: string = daytonaDefaultImage,
): DaytonaSourcePlan {
  const image = options.image;
  if (image !== undefined && snapshot !== undefined) {
    throw new SandboxInvalidArgumentError({
      message: 'Give either image or providerOptions.daytona.snapshot, not both',
      argument: 'providerOptions.daytona.snapshot',
      provider,
    });
  }
  const fromSnapshot = snapshot ?? (typeof image === 'object' && 'type' in image ? image.id : undefined);
  if (fromSnapshot !== undefined) {
    if (resources) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'Daytona sets cpu, memory, disk and gpu only on sandboxes made from an image; a snapshot keeps its own: remove them',
        capability: 'limits.cpu',
        provider,
      });
    }
    return { kind: 'snapshot', snapshot: fromSnapshot };
  }
  if (typeof image === 'object' && !('type' in image)) {
    if (image.commands.some((command) => command.trim() === '')) {
      throw new SandboxInvalidArgumentError({ message: 'image.commands: a build command is empty', argument: 'image.commands', provider });
    }
    return { kind: 'build', base: image.base, commands: [...image.commands] };
  }
  if (typeof image === 'string') return { kind: 'image', image };
  return resources ? { kind: 'image', image: defaultImage } : { kind: 'snapshot', snapshot: undefined };
}

/**
 * Daytona labels for the tags (pure): the tags verbatim (Daytona's list filters and dashboard see
 * them), extra labels under them and `sandport.managed` as the marker. Throws
 * `SandboxInvalidArgumentError` (argument `tags`) for a key under `sandport.`.
 */
export function planDaytonaLabels(tags: SandboxTags | undefined, extra: Record<string, string> = {}): Record<string, string> {
  for (const [source, record] of [
    ['tags', tags ?? {}],
    ['providerOptions.daytona.labels', extra],
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
  return { ...extra, ...tags, [daytonaLabelKeys.managed]: '1' };
}

/** The label the SDK sets on every sandbox it creates (its `CODE_TOOLBOX_LANGUAGE_LABEL`): Daytona's, not a tag. */
export const daytonaLanguageLabel = 'code-toolbox-language';

/** The tags out of Daytona labels (pure): everything but the adapter's keys and the SDK's language label. */
export function tagsFromDaytonaLabels(labels: Record<string, string> | undefined): SandboxTags {
  return Object.fromEntries(
    Object.entries(labels ?? {}).filter(([key]) => !key.startsWith(reservedPrefix) && key !== daytonaLanguageLabel),
  );
}

/**
 * The labels `setTags` sends (pure): Daytona's call replaces them all, so the marker and the
 * SDK's language label (which picks the code interpreter) are kept beside the new tags.
 */
export function planDaytonaSetLabels(tags: SandboxTags, current: Record<string, string> | undefined): Record<string, string> {
  const kept: Record<string, string> = {};
  // The SDK's language label, and a paused sandbox's held lifetime, outlive a change of tags.
  for (const key of [daytonaLanguageLabel, daytonaLabelKeys.heldLifetime]) {
    const value = current?.[key];
    if (value !== undefined) kept[key] = value;
  }
  return { ...planDaytonaLabels(tags), ...kept };
}

/** Daytona's network settings (create parameters and `updateNetworkSettings` alike). */
export interface DaytonaNetworkSettings {
  networkBlockAll: boolean;
  networkAllowList?: string;
  domainAllowList?: string;
}

/**
 * The network policy as Daytona's settings (pure). `'block'` blocks all; an allowlist is
 * Daytona's comma-separated CIDR list and domain list (an empty allowlist blocks all); `'allow'`
 * clears both (Daytona's update replaces the settings, so every field is spelt out).
 */
export function planDaytonaNetwork(network: ParsedNetworkPolicy): DaytonaNetworkSettings {
  if (network === 'allow') return { networkBlockAll: false, networkAllowList: '', domainAllowList: '' };
  if (network === 'block') return { networkBlockAll: true, networkAllowList: '', domainAllowList: '' };
  if (network.allowCidrs.length === 0 && network.allowDomains.length === 0) return { networkBlockAll: true };
  const settings: DaytonaNetworkSettings = { networkBlockAll: false };
  // Daytona's CIDR list takes networks; a bare address is its /32.
  settings.networkAllowList = network.allowCidrs.map((cidr) => (cidr.includes('/') ? cidr : `${cidr}/32`)).join(',');
  settings.domainAllowList = network.allowDomains.join(',');
  return settings;
}

/**
 * The command string Daytona runs for an argv (pure). Daytona's commands are strings the
 * sandbox's shell parses: each argument is single-quoted (every byte kept, `'` spelled `'\''`),
 * so the argv arrives byte for byte. Throws `SandboxInvalidArgumentError` for an empty argv or
 * a NUL byte (a shell string cannot carry one).
 */
export function daytonaCommandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new SandboxInvalidArgumentError({ message: 'command: an empty argv', argument: 'command', provider });
  if (argv.some((argument) => argument.includes('\0'))) {
    throw new SandboxInvalidArgumentError({ message: 'command: an argument contains a NUL byte', argument: 'command', provider });
  }
  return argv.map(shellQuote).join(' ');
}

/**
 * The stdin relay (POSIX sh). Daytona's session input has no end-of-file, so the command reads a
 * FIFO that a background loop fills: each line of session input is one base64 chunk, decoded
 * into the FIFO; a line `.` ends the input (the loop exits, closing the FIFO's only writer, and
 * the command reads EOF). When the command exits first, the loop is killed. The arguments are the
 * (already wrapped) argv. Exit 125: no FIFO could be made.
 */
export const daytonaStdinRelayScript = [
  'd=$(mktemp -d "${TMPDIR:-/tmp}/sandport-stdin.XXXXXX") && mkfifo "$d/in" || exit 125',
  // A background list's stdin is /dev/null in a shell without job control: the input goes by fd 3.
  'exec 3<&0',
  '(while IFS= read -r l; do [ "$l" = . ] && break; printf %s "$l" | base64 -d; done > "$d/in") <&3 3<&- &',
  'r=$!',
  '"$@" < "$d/in" 3<&-; c=$?',
  'kill "$r" 2>/dev/null; rm -rf "$d"; exit "$c"',
].join('\n');

/** The line that ends relayed stdin (see {@link daytonaStdinRelayScript}). */
export const daytonaStdinEofLine = '.\n';

/** One chunk of stdin as the relay's line (pure): base64, newline-terminated. */
export function daytonaStdinLine(chunk: Uint8Array): string {
  return `${Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64')}\n`;
}

/**
 * The session command of one exec (pure): the env exported first (typed into the session's
 * shell, so values never appear on a command line that `ps` shows), then the wrapped argv,
 * through the stdin relay unless the command gets no input (`stdinNull`).
 */
export function planDaytonaSessionCommand(
  wrappedArgv: readonly string[],
  options: { env?: Record<string, string> | undefined; stdinNull: boolean },
): string {
  const exports = Object.entries(options.env ?? {}).map(([key, value]) => `export ${shellQuote(`${key}=${value}`)}; `);
  const argv = options.stdinNull ? wrappedArgv : ['/bin/sh', '-c', daytonaStdinRelayScript, 'sandport-stdin', ...wrappedArgv];
  return `${exports.join('')}${daytonaCommandLine(argv)}`;
}

/**
 * The tunnel of a declared port (pure), from Daytona's (signed) preview URL, which a plain
 * `fetch` or WebSocket can use as it is (the token is in the URL).
 */
export function planDaytonaTunnel(port: number, previewUrl: string) {
  const url = new URL(previewUrl);
  const encrypted = url.protocol === 'https:';
  return {
    port,
    url: previewUrl.replace(/\/$/, ''),
    host: url.hostname,
    hostPort: url.port === '' ? (encrypted ? 443 : 80) : Number(url.port),
    encrypted,
  };
}

/** Milliseconds to Daytona's whole minutes for `extendTimeout` (pure), with the warning when rounded. */
export function planDaytonaTtl(timeoutMs: number): { ttlMinutes: number; warning: SandboxWarning | undefined } {
  const converted = wholeMinutes(timeoutMs, 'timeoutMs');
  return { ttlMinutes: converted.value, warning: converted.warning };
}

/**
 * The labels a pause sends (pure): the current ones plus the lifetime left (ms) under the
 * adapter's `held-lifetime` key, or without it when no lifetime is armed. Daytona's TTL would run
 * on through a pause; the adapter clears it and keeps what was left here, where any process can
 * read it back at the resume.
 */
export function planDaytonaPauseLabels(
  current: Record<string, string> | undefined,
  remainingMs: number | undefined,
): Record<string, string> {
  const labels = planDaytonaResumeLabels(current);
  if (remainingMs !== undefined) labels[daytonaLabelKeys.heldLifetime] = String(Math.max(1, Math.ceil(remainingMs)));
  return labels;
}

/** The labels a resume sends (pure): the current ones without the held lifetime. */
export function planDaytonaResumeLabels(current: Record<string, string> | undefined): Record<string, string> {
  const labels = { ...current };
  delete labels[daytonaLabelKeys.heldLifetime];
  return labels;
}

/** The lifetime a paused sandbox's labels hold, in ms (pure); undefined when none (or not a positive integer). */
export function heldLifetimeFromDaytonaLabels(labels: Record<string, string> | undefined): number | undefined {
  const raw = labels?.[daytonaLabelKeys.heldLifetime];
  if (raw === undefined || !/^[1-9]\d*$/.test(raw)) return undefined;
  const value = Number(raw);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** The TTL that gives back a held lifetime at a resume, in whole minutes (pure; rounded up: the adapter's own clock ends it on time). */
export function daytonaResumeTtlMinutes(remainingMs: number): number {
  return Math.max(1, Math.ceil(remainingMs / 60_000));
}

/** The connection settings every SDK client gets, resolved here rather than by the SDK. */
export interface DaytonaConfigPlan {
  apiKey?: string;
  jwtToken?: string;
  organizationId?: string;
  apiUrl: string;
  target?: string;
  requestTimeoutMs?: number;
  useDeprecatedPolling?: boolean;
  otelEnabled: false;
}

/**
 * The SDK's configuration (pure over `env`): every value given explicitly, so the SDK never falls
 * back to `.env` files (where an endpoint variable that is also in the process environment makes
 * its constructor throw). Explicit options win, then the process environment (`DAYTONA_API_KEY`,
 * `DAYTONA_JWT_TOKEN`, `DAYTONA_ORGANIZATION_ID`, `DAYTONA_API_URL`, `DAYTONA_SERVER_URL`,
 * `DAYTONA_TARGET`), then Daytona's public API. Throws `SandboxInvalidArgumentError` (argument
 * `apiKey`) when there are no credentials at all.
 */
export function planDaytonaConfig(
  options: {
    apiKey?: string | undefined;
    jwtToken?: string | undefined;
    organizationId?: string | undefined;
    apiUrl?: string | undefined;
    target?: string | undefined;
    requestTimeoutMs?: number | undefined;
    useDeprecatedPolling?: boolean | undefined;
  },
  env: Record<string, string | undefined> = process.env,
): DaytonaConfigPlan {
  const pick = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  const apiKey = pick(options.apiKey) ?? (pick(options.jwtToken) ? undefined : pick(env.DAYTONA_API_KEY));
  const jwtToken = apiKey ? undefined : (pick(options.jwtToken) ?? pick(env.DAYTONA_JWT_TOKEN));
  const organizationId = pick(options.organizationId) ?? pick(env.DAYTONA_ORGANIZATION_ID);
  if (!apiKey && !(jwtToken && organizationId)) {
    throw new SandboxInvalidArgumentError({
      message: 'Daytona needs credentials: pass apiKey (or jwtToken and organizationId), or set DAYTONA_API_KEY in the process environment',
      argument: 'apiKey',
      provider,
    });
  }
  const plan: DaytonaConfigPlan = {
    apiUrl: pick(options.apiUrl) ?? pick(env.DAYTONA_API_URL) ?? pick(env.DAYTONA_SERVER_URL) ?? daytonaDefaultApiUrl,
    otelEnabled: false,
  };
  if (apiKey) plan.apiKey = apiKey;
  else {
    plan.jwtToken = jwtToken;
    plan.organizationId = organizationId;
  }
  const target = pick(options.target) ?? pick(env.DAYTONA_TARGET);
  if (target !== undefined) plan.target = target;
  if (options.requestTimeoutMs !== undefined) plan.requestTimeoutMs = options.requestTimeoutMs;
  if (options.useDeprecatedPolling !== undefined) plan.useDeprecatedPolling = options.useDeprecatedPolling;
  return plan;
}
