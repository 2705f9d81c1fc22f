/**
 * Option bags of the contract: hand-written interfaces (what an app sees on hover, every field
 * documented) and the zod schemas that validate them (what an adapter runs before any I/O).
 *
 * - A bad option is a `SandboxInvalidArgumentError` whose `argument` names the field, whatever
 *   the provider (the kit's `parseOptions` turns the first zod issue into it).
 * - Units are in the names: `…Ms` is milliseconds, `…MiB` is mebibytes, `cpu` is a count of
 *   (fractional) cores.
 * - Every object is strict: an unknown key is rejected, never ignored. A typo such as
 *   `{ source, readonly: true }` in a volume must fail, not mount read-write.
 * - Each schema is typed by its interfaces through `schemaFor`, which does not compile when the
 *   schema and the interfaces drift apart (test/core/options-types.test.ts checks that too).
 * - Settings marked "Security setting" are never silently weakened: a provider that cannot honour
 *   one throws `SandboxCapabilityUnsupportedError` at create.
 */
import { z } from 'zod';
import { SandboxInvalidArgumentError } from '../errors/index.js';

// ---------------------------------------------------------------------------------------------
// Agreement of a schema with its hand-written types
// ---------------------------------------------------------------------------------------------

/**
 * A type in a canonical form for comparison: arrays as readonly arrays (an input interface may
 * accept readonly arrays that zod copies), properties without `readonly`, interfaces and
 * intersections flattened into plain object types.
 */
type Canonical<T> = T extends readonly (infer Item)[]
  ? readonly Canonical<Item>[]
  : T extends AbortSignal | Uint8Array | ArrayBuffer | ReadableStream<unknown>
    ? T
    : T extends object
      ? { -readonly [Key in keyof T]: Canonical<T[Key]> }
      : T;

/** Whether two types are identical once canonical: same keys, same optionality, same value types. */
type SameType<A, B> = (<T>() => T extends Canonical<A> ? 1 : 2) extends <T>() => T extends Canonical<B> ? 1 : 2 ? true : false;

/** `unknown` when the schema's inferred types equal the declared pair, an impossible object otherwise. */
export type SchemaAgreement<Schema extends z.ZodType, Output, Input> =
  SameType<z.output<Schema>, Output> extends true
    ? SameType<z.input<Schema>, Input> extends true
      ? unknown
      : { readonly 'the schema input differs from the declared input type': z.input<Schema> }
    : { readonly 'the schema output differs from the declared output type': z.output<Schema> };

/**
 * Types a zod schema by a hand-written pair of types, so the emitted declarations show the
 * documented interfaces instead of zod internals. Does not compile unless the schema's own input
 * and output types equal `Input` and `Output`: the same keys, the same optionality and the same
 * value types (arrays compared as readonly, `readonly` properties as plain ones).
 *
 * @example
 * const schema = schemaFor<ParsedThing, Thing>()(z.strictObject({ … }));
 */
export function schemaFor<Output, Input = Output>() {
  return <Schema extends z.ZodType>(schema: Schema & SchemaAgreement<Schema, Output, Input>): z.ZodType<Output, Input> =>
    schema as unknown as z.ZodType<Output, Input>;
}

// ---------------------------------------------------------------------------------------------
// Scalars: times, limits, signals, paths
// ---------------------------------------------------------------------------------------------

/**
 * The longest duration a Node.js timer can hold: 2**31 - 1 ms, about 24.8 days. A longer
 * `setTimeout` fires after 1 ms, so `idleTimeoutMs: 2 ** 31` would end a sandbox at once.
 */
export const maxTimerMs = 2_147_483_647;

/**
 * A duration in milliseconds: a positive integer, at most `maxTimerMs`. Every `…Ms` option uses
 * it, and so do `Sandbox.extendTimeout` arguments.
 */
export const millisecondsSchema = z
  .number()
  .int({ message: 'must be a whole number of milliseconds' })
  .positive({ message: 'must be a positive number of milliseconds' })
  .max(maxTimerMs, { message: `must be at most ${maxTimerMs} ms (about 24.8 days, the longest timer Node.js can set)` });

/** Largest `cpu` accepted, in cores. */
export const maxCpu = 1024;
/** Smallest and largest `memoryMiB` accepted: 16 MiB and 16 TiB. */
export const minMemoryMiB = 16;
export const maxMemoryMiB = 16_777_216;
/** Smallest and largest `pidsLimit` accepted; the upper bound is the Linux kernel's `pid_max` limit. */
export const minPidsLimit = 8;
export const maxPidsLimit = 4_194_304;

/**
 * The signals `SandboxProcess.kill` can send: the POSIX signals, upper case with the `SIG`
 * prefix, in Linux's numeric order. Each has the same name on Linux, macOS and the BSDs
 * (platform-only names such as `SIGPWR`, `SIGINFO` or `SIGBREAK` are left out), and each is a
 * `NodeJS.Signals` name too, so a `SandboxSignal` can be handed to Node's `process.kill`.
 */
export const sandboxSignals = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGSYS',
] as const;

/** A signal `SandboxProcess.kill` can send: `'SIGTERM'`, `'SIGKILL'`, `'SIGINT'`, … */
export type SandboxSignal = (typeof sandboxSignals)[number];

/**
 * A signal name from `sandboxSignals`. Lower case (`'sigterm'`), no prefix (`'KILL'`), numbers,
 * unknown names (`'SIGFOO'`) and the empty string are invalid.
 */
export const signalNameSchema: z.ZodType<SandboxSignal, SandboxSignal> = z.enum(sandboxSignals, {
  message: 'must be an upper-case POSIX signal name such as "SIGTERM" or "SIGKILL"',
});

/** True when `value` is a `SandboxSignal`. */
export function isSandboxSignal(value: unknown): value is SandboxSignal {
  return typeof value === 'string' && (sandboxSignals as readonly string[]).includes(value);
}

const noNul = (what: string) => z.string().refine((value) => !value.includes('\0'), { message: `${what} must not contain NUL bytes` });

/** An absolute POSIX path inside the sandbox, without NUL bytes. */
export const sandboxPathSchema = noNul('a path').refine((value) => value.startsWith('/'), {
  message: 'must be an absolute path (start with "/")',
});

/** The caller's cancellation signal; anything else is an invalid argument named `signal`. */
const abortSignalSchema = z.instanceof(AbortSignal, { message: 'must be an AbortSignal' });

// ---------------------------------------------------------------------------------------------
// The parts of the option bags
// ---------------------------------------------------------------------------------------------

/**
 * A command to run.
 * - a string runs through `sh -c`, so shell syntax (pipes, `&&`, globs) works;
 * - an argv array passes through byte for byte, with no shell: the first element is the program,
 *   looked up on `PATH`, and needs to be present.
 *
 * Neither may contain NUL bytes; a string must not be empty. A bad command is a
 * `SandboxInvalidArgumentError` (argument `command`, or `command.<index>`).
 */
export type Command = string | readonly string[];

/** Validates a `Command`. */
export const commandSchema: z.ZodType<Command, Command> = schemaFor<Command>()(
  z.union([
    noNul('the command').refine((value) => value.length > 0, { message: 'must not be empty' }),
    z.array(noNul('an argument')).min(1, { message: 'needs at least one element (the program)' }).readonly(),
  ]),
);

/**
 * Environment variables: names are letters, digits and `_` (not starting with a digit); values
 * are strings without NUL bytes.
 */
export type EnvironmentVariables = Record<string, string>;

const envSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'environment variable names are letters, digits and _' }),
  noNul('an environment value'),
);

/** The longest tag key and value, and the most tags a sandbox carries. */
export const maxTagKeyLength = 63;
export const maxTagValueLength = 255;
export const maxTags = 64;

/**
 * Tags: string keys of 1-63 characters to string values of at most 255 characters, at most 64
 * of them, no NUL bytes. Set at create, replaced by `setTags`, matched by `list({ tags })`.
 */
export type SandboxTags = Record<string, string>;

/**
 * Validates `SandboxTags` (create's `tags`, `Sandbox.setTags`, the `list` filter) and copies
 * them. A non-string value, an empty or long key, a long value or too many tags are invalid.
 * Every issue is reported on the tags as a whole (argument `tags`), with the key in the message:
 * a key can be empty, so it cannot name the argument.
 */
export const tagsSchema: z.ZodType<SandboxTags, SandboxTags> = schemaFor<SandboxTags>()(
  z
    .custom<SandboxTags>((value) => isPlainObject(value), { message: 'tags must be an object of string keys to string values' })
    .superRefine((tags, context) => {
      const problem = tagsProblem(tags);
      if (problem !== undefined) context.addIssue({ code: 'custom', message: problem });
    })
    .transform((tags) => ({ ...tags })),
);

function tagsProblem(tags: Record<string, unknown>): string | undefined {
  const entries = Object.entries(tags);
  if (entries.length > maxTags) return `at most ${maxTags} tags (got ${entries.length})`;
  for (const [key, value] of entries) {
    const shown = JSON.stringify(key.length > 20 ? `${key.slice(0, 20)}…` : key);
    if (key.length === 0 || key.length > maxTagKeyLength) {
      return `tag keys are 1-${maxTagKeyLength} characters (got ${shown}, ${key.length})`;
    }
    if (typeof value !== 'string') return `the value of tag ${shown} must be a string (got ${describe(value)})`;
    if (value.length > maxTagValueLength) return `the value of tag ${shown} is longer than ${maxTagValueLength} characters`;
    if (key.includes('\0') || value.includes('\0')) return `tag ${shown} must not contain NUL bytes`;
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

/**
 * A snapshot handle returned by `Sandbox.snapshot()`. Pass it as `image` to start a sandbox of
 * the same provider from it; a snapshot of another provider is a `SandboxInvalidArgumentError`.
 */
export interface SandboxSnapshotRef {
  readonly type: 'snapshot';
  /** `SandboxProvider.id` of the provider that made it. */
  readonly provider: string;
  /** The provider's own snapshot id (an image id, a tag, a directory name). */
  readonly id: string;
}

/** Validates a `SandboxSnapshotRef`. */
export const snapshotRefSchema: z.ZodType<SandboxSnapshotRef, SandboxSnapshotRef> = schemaFor<SandboxSnapshotRef>()(
  z.strictObject({ type: z.literal('snapshot'), provider: z.string().min(1), id: z.string().min(1) }),
);

/** An image built at create: `base` plus shell commands run at build time, like a Dockerfile's `RUN`s. */
export interface SandboxImageBuild {
  /** The base image reference, as for a string `image`. */
  base: string;
  /** Shell commands run in order at build time; a failing one fails the create. @default [] */
  commands?: readonly string[];
}

/**
 * What the sandbox's filesystem starts from.
 * - a string: a provider image reference. Registry providers take an image name
 *   (`'python:3.12'`); the local provider takes an absolute path to a root filesystem directory,
 *   or `'host'`;
 * - a `SandboxImageBuild`: built at create (`capabilities.images.build`);
 * - a `SandboxSnapshotRef` from `snapshot()` of the same provider (`capabilities.images.snapshot`).
 */
export type SandboxImage = string | SandboxImageBuild | SandboxSnapshotRef;
/** A `SandboxImage` after parsing: a build's `commands` is always present. */
export type ParsedSandboxImage = string | { base: string; commands: string[] } | SandboxSnapshotRef;

/** Validates a `SandboxImage`. */
export const imageSchema: z.ZodType<ParsedSandboxImage, SandboxImage> = schemaFor<ParsedSandboxImage, SandboxImage>()(
  z.union([
    noNul('the image').min(1),
    z.strictObject({ base: noNul('the base image').min(1), commands: z.array(noNul('a build command')).default([]) }),
    snapshotRefSchema,
  ]),
);

/**
 * Outbound destinations a sandbox may reach; everything else is blocked. An empty allowlist
 * allows nothing.
 */
export interface NetworkAllowlist {
  /** IPv4 or IPv6 CIDR blocks, for example `'10.0.0.0/8'`. Needs `capabilities.network.allowCidrs`. @default [] */
  allowCidrs?: readonly string[];
  /** Host names, optionally with a leading `*.` wildcard (`'*.example.com'`). Needs `capabilities.network.allowDomains`. @default [] */
  allowDomains?: readonly string[];
}

/**
 * Network policy. Security setting: a provider that cannot enforce it throws
 * `SandboxCapabilityUnsupportedError`; it never silently allows more.
 * - `'allow'` (default): outbound access. Providers never expose the host's own loopback services;
 * - `'block'`: no network at all, only the sandbox's own loopback (`capabilities.network.block`);
 * - a `NetworkAllowlist`: outbound only to the listed destinations.
 */
export type NetworkPolicy = 'allow' | 'block' | NetworkAllowlist;
/** A `NetworkPolicy` after parsing: both allowlists are always present. */
export type ParsedNetworkPolicy = 'allow' | 'block' | { allowCidrs: string[]; allowDomains: string[] };

const cidrV4 = z.cidrv4();
const cidrV6 = z.cidrv6();
// One string schema, not a union, so an issue keeps its path (`network.allowCidrs.0`).
const cidrSchema = z.string().refine((value) => cidrV4.safeParse(value).success || cidrV6.safeParse(value).success, {
  message: 'must be an IPv4 or IPv6 CIDR block such as "10.0.0.0/8"',
});
const domainSchema = z
  .string()
  .max(253, { message: 'domain names are at most 253 characters' })
  .regex(/^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/, {
    message: 'must be a host name, optionally with a leading "*." (for example "*.example.com")',
  });

/** Validates a `NetworkPolicy`. */
export const networkSchema: z.ZodType<ParsedNetworkPolicy, NetworkPolicy> = schemaFor<ParsedNetworkPolicy, NetworkPolicy>()(
  z.union([
    z.literal('allow'),
    z.literal('block'),
    z.strictObject({
      allowCidrs: z.array(cidrSchema).default([]),
      allowDomains: z.array(domainSchema).default([]),
    }),
  ]),
);

/**
 * A port in the sandbox to expose as a tunnel (`Sandbox.tunnels()`): a number (1-65535), or an
 * object that also says whether the tunnel should be TLS-encrypted.
 */
export type PortSpec =
  | number
  | {
      /** The port inside the sandbox, 1-65535. */
      port: number;
      /**
       * Ask for TLS (`https:`/`wss:` URLs). Where `capabilities.tunnelsTls` is false the tunnel is
       * plain and the create returns an `unsupported-setting` warning.
       * @default the provider's (Modal: true; local and Docker: false)
       */
      encrypted?: boolean;
    };

const portNumberSchema = z
  .number()
  .int({ message: 'ports are whole numbers' })
  .min(1, { message: 'ports are 1-65535' })
  .max(65535, { message: 'ports are 1-65535' });

/** Validates a `PortSpec`. */
export const portSchema: z.ZodType<PortSpec, PortSpec> = schemaFor<PortSpec>()(
  z.union([portNumberSchema, z.strictObject({ port: portNumberSchema, encrypted: z.boolean().optional() })]),
);

/**
 * A volume, mounted at the key of `volumes` (an absolute sandbox path). Security setting: a
 * mount gives the sandbox access to something outside it, and read-only is honoured or the
 * create fails.
 * - a string: the source, mounted read-write;
 * - `{ source, readOnly }`: the source, read-only when `readOnly` is true. The key is `readOnly`
 *   (camel case); any other key is rejected.
 *
 * `source` is provider-specific: an absolute host directory for the local provider, a host
 * directory or a volume name for Docker, a volume name for Modal (`capabilities.volumes`).
 */
export type VolumeSpec =
  | string
  | {
      /** Host directory or volume name, by provider; not empty, no NUL bytes. */
      source: string;
      /** Mount read-only. @default false */
      readOnly?: boolean;
    };
/** A `VolumeSpec` after parsing: `readOnly` is always present. */
export type ParsedVolumeSpec = string | { source: string; readOnly: boolean };

/** Validates a `VolumeSpec`. */
export const volumeSchema: z.ZodType<ParsedVolumeSpec, VolumeSpec> = schemaFor<ParsedVolumeSpec, VolumeSpec>()(
  z.union([
    noNul('a volume source').min(1),
    z.strictObject({ source: noNul('a volume source').min(1), readOnly: z.boolean().default(false) }),
  ]),
);

/**
 * Settings for one provider only, keyed by provider id: `{ modal: { regions: ['us-east'] } }`.
 * Each provider validates its own entry strictly and ignores the others, so one options object
 * can serve several providers.
 */
export type ProviderOptions = Record<string, Record<string, unknown>>;

const providerOptionsSchema = z.record(z.string(), z.record(z.string(), z.unknown()));

// ---------------------------------------------------------------------------------------------
// SandboxProvider.create
// ---------------------------------------------------------------------------------------------

/**
 * Options of `SandboxProvider.create`. Every field is optional; a field a provider cannot honour
 * is a `SandboxCapabilityUnsupportedError` when it is a security setting and a returned warning
 * (`sandbox.warnings`) otherwise. Validation happens before any I/O: a bad value is a
 * `SandboxInvalidArgumentError` naming the field.
 */
export interface CreateSandboxOptions {
  /**
   * What the filesystem starts from: an image reference, an image to build, or a snapshot.
   *
   * Throws `SandboxInvalidArgumentError` for a form the provider cannot read (the local provider
   * takes `'host'` or an absolute directory) or another provider's snapshot, and
   * `SandboxCapabilityUnsupportedError` for a form outside `capabilities.images`.
   * @default the provider's (local: `'host'`, the host's own read-only system directories;
   * Docker: `'debian:bookworm-slim'`; Modal: `'python:3.13-slim'`)
   */
  image?: SandboxImage;
  /**
   * Entrypoint. When set, it starts with the sandbox, the sandbox ends when it exits, and
   * `wait()` reports its exit code (reason `'entrypoint-exited'`). An empty command or one with
   * NUL bytes is a `SandboxInvalidArgumentError` (argument `command`).
   * @default none: the sandbox idles until it is terminated or times out
   */
  command?: Command;
  /**
   * Environment of the entrypoint and of every `exec`. A name that is not letters, digits and
   * `_`, or a value with a NUL byte, is a `SandboxInvalidArgumentError` (argument `env.<name>`).
   * @default the provider's (`PATH`, `HOME`)
   */
  env?: EnvironmentVariables;
  /**
   * Like `env`, but never echoed in errors, events, labels or `inspect` output, and kept out of
   * snapshots where the provider can. Security setting. Validated like `env` (argument
   * `secrets.<name>`); the values never appear in the error.
   * @default none
   */
  secrets?: EnvironmentVariables;
  /**
   * Working directory of the entrypoint and of every `exec` without a `cwd`: an absolute sandbox
   * path, created when missing. A relative path is a `SandboxInvalidArgumentError`.
   * @default '/workspace' (local, Docker); the image's (Modal)
   */
  workdir?: string;
  /**
   * CPU limit, in cores (fractions allowed: `0.5`), greater than 0 and at most 1024. Security
   * setting: a provider that cannot enforce it throws `SandboxCapabilityUnsupportedError`
   * (`capabilities.limits.cpu`).
   * @default no limit
   */
  cpu?: number;
  /**
   * Memory limit, in **mebibytes**: an integer from 16 to 16_777_216 (16 TiB). A command that
   * exceeds it is killed (`ExitStatus.oomKilled`). Security setting
   * (`capabilities.limits.memory`).
   * @default no limit
   */
  memoryMiB?: number;
  /**
   * Most processes and threads the sandbox may run at once: an integer from 8 to 4_194_304 (the
   * kernel's `pid_max` limit). Security setting (`capabilities.limits.pids`): Modal throws
   * `SandboxCapabilityUnsupportedError`.
   * @default the provider's (local and Docker: 1024, when cgroups are available)
   */
  pidsLimit?: number;
  /**
   * GPU request in the provider's notation (`'A100'`, `'T4:2'`). Throws
   * `SandboxCapabilityUnsupportedError` where `capabilities.gpu` is false.
   * @default none
   */
  gpu?: string;
  /**
   * Lifetime of the sandbox, in **milliseconds** from create: when it runs out the sandbox is
   * terminated (reason `'lifetime-timeout'`). A positive integer, at most `maxTimerMs`
   * (2_147_483_647) and at most `capabilities.timeouts.maxLifetimeMs` (24 hours for the built-in
   * providers); beyond either it is a `SandboxInvalidArgumentError`. `Sandbox.extendTimeout`
   * pushes it back.
   * @default 300_000 (5 minutes, like Modal)
   */
  timeoutMs?: number;
  /**
   * Terminate the sandbox after this many **milliseconds** with no exec running and no file
   * operation (reason `'idle-timeout'`). A positive integer, at most `maxTimerMs`. Throws
   * `SandboxCapabilityUnsupportedError` where `capabilities.timeouts.idle` is false.
   * @default none: only `timeoutMs` ends an idle sandbox
   */
  idleTimeoutMs?: number;
  /**
   * Network policy: `'allow'`, `'block'`, or an allowlist. Security setting: an allowlist the
   * provider cannot enforce throws `SandboxCapabilityUnsupportedError`
   * (`capabilities.network.*`).
   * @default 'allow' (outbound only; the host's loopback services are never reachable)
   */
  network?: NetworkPolicy;
  /**
   * Ports inside the sandbox to reach from the host through `Sandbox.tunnels()`, at most 64.
   * A port outside 1-65535 is a `SandboxInvalidArgumentError` (argument `ports.<index>`);
   * `SandboxCapabilityUnsupportedError` where `capabilities.tunnels` is false.
   * @default none
   */
  ports?: readonly PortSpec[];
  /**
   * Unique name, for `SandboxProvider.fromName`: 1-63 characters of `A-Z a-z 0-9 . _ -`,
   * starting alphanumeric (otherwise `SandboxInvalidArgumentError`). A name a running sandbox
   * of the provider already has is a `SandboxAlreadyExistsError`.
   * @default none
   */
  name?: string;
  /**
   * Tags (see `SandboxTags`: keys 1-63 characters, values up to 255, at most 64) for
   * `list({ tags })`; replaced later with `setTags`. Tags outside these rules are a
   * `SandboxInvalidArgumentError` (argument `tags`).
   * @default {}
   */
  tags?: SandboxTags;
  /**
   * Mounts, keyed by absolute sandbox path (see `VolumeSpec`). Security setting: a provider
   * without `capabilities.volumes` throws `SandboxCapabilityUnsupportedError`, and a mount over
   * a system path (`/`, `/proc`, …) is a `SandboxInvalidArgumentError`.
   * @default none
   */
  volumes?: Record<string, VolumeSpec>;
  /**
   * Settings of one provider only (see `ProviderOptions`), validated by that provider: a bad one
   * is a `SandboxInvalidArgumentError` (argument `providerOptions.<provider>.<field>`).
   * @default none
   */
  providerOptions?: ProviderOptions;
  /**
   * Cancels the create: it rejects with `signal.reason` and releases what it started. Anything
   * but an `AbortSignal` is a `SandboxInvalidArgumentError` (argument `signal`).
   */
  signal?: AbortSignal;
}

/** `CreateSandboxOptions` after parsing, as adapters receive them: defaults of the parts filled in. */
export interface ParsedCreateSandboxOptions extends Omit<CreateSandboxOptions, 'image' | 'network' | 'ports' | 'volumes'> {
  image?: ParsedSandboxImage;
  network?: ParsedNetworkPolicy;
  ports?: PortSpec[];
  volumes?: Record<string, ParsedVolumeSpec>;
}

const nameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
  message: 'names are 1-63 of A-Z a-z 0-9 . _ - and start alphanumeric',
});

/** Validates `CreateSandboxOptions`. */
export const createSandboxOptionsSchema: z.ZodType<ParsedCreateSandboxOptions, CreateSandboxOptions> = schemaFor<
  ParsedCreateSandboxOptions,
  CreateSandboxOptions
>()(
  z.strictObject({
    image: imageSchema.optional(),
    command: commandSchema.optional(),
    env: envSchema.optional(),
    secrets: envSchema.optional(),
    workdir: sandboxPathSchema.optional(),
    cpu: z
      .number()
      .positive({ message: 'cpu is a positive number of cores' })
      .max(maxCpu, { message: `cpu is at most ${maxCpu} cores` })
      .optional(),
    memoryMiB: z
      .number()
      .int({ message: 'memoryMiB is a whole number of mebibytes' })
      .min(minMemoryMiB, { message: `memoryMiB is at least ${minMemoryMiB}` })
      .max(maxMemoryMiB, { message: `memoryMiB is at most ${maxMemoryMiB} (16 TiB)` })
      .optional(),
    pidsLimit: z
      .number()
      .int({ message: 'pidsLimit is a whole number' })
      .min(minPidsLimit, { message: `pidsLimit is at least ${minPidsLimit}` })
      .max(maxPidsLimit, { message: `pidsLimit is at most ${maxPidsLimit} (the kernel's pid_max limit)` })
      .optional(),
    gpu: noNul('the gpu').min(1).optional(),
    timeoutMs: millisecondsSchema.optional(),
    idleTimeoutMs: millisecondsSchema.optional(),
    network: networkSchema.optional(),
    ports: z.array(portSchema).max(64, { message: 'at most 64 ports' }).optional(),
    name: nameSchema.optional(),
    tags: tagsSchema.optional(),
    volumes: z.record(sandboxPathSchema, volumeSchema).optional(),
    providerOptions: providerOptionsSchema.optional(),
    signal: abortSignalSchema.optional(),
  }),
);

// ---------------------------------------------------------------------------------------------
// Sandbox.exec and Sandbox.run
// ---------------------------------------------------------------------------------------------

/** Options of `Sandbox.exec`. */
export interface ExecOptions {
  /** Extra environment for this command, on top of the sandbox's `env` and `secrets`; validated like create's `env`. @default none */
  env?: EnvironmentVariables;
  /**
   * Working directory inside the sandbox: an absolute path. A relative path is a
   * `SandboxInvalidArgumentError`; a missing directory fails the exec with one too.
   * @default the sandbox's `workdir`
   */
  cwd?: string;
  /**
   * Kill the command and its whole process tree after this many **milliseconds**; `wait()` then
   * rejects (and `run` throws) `SandboxTimeoutError` (operation `'exec'`). A positive integer, at
   * most `maxTimerMs` (2_147_483_647). Wall-clock time, a pause included: when it runs out while
   * the sandbox is paused, the command is killed as the sandbox resumes.
   * @default none: the command may run until the sandbox ends
   */
  timeoutMs?: number;
  /**
   * Aborting kills the command's process tree; the pending call (and `wait()`) rejects with
   * `signal.reason`. Anything but an `AbortSignal` is a `SandboxInvalidArgumentError`
   * (argument `signal`).
   */
  signal?: AbortSignal;
  /**
   * Run the command on a terminal of this size (in character cells) instead of pipes: `stdin`
   * is the terminal's input (with the terminal's echo and line discipline: a `\x03` is Ctrl-C),
   * `stdout` carries everything it prints (stderr included, with `\r\n` line ends) and `stderr`
   * is empty; `isatty` is true inside, `stty size` reports `rows cols`, and `TERM` is
   * `xterm-256color` unless `env` sets it. The process then has `resize`. Where
   * `capabilities.exec.pty` is false it is a `SandboxCapabilityUnsupportedError` (capability
   * `exec.pty`). `cols` and `rows` are integers from 1 to 65535 (otherwise
   * `SandboxInvalidArgumentError`, argument `pty.cols` or `pty.rows`; `pty` when it is no object).
   * @default none: pipes
   */
  pty?: PtySize;
  /** Settings of one provider only, validated by that provider. @default none */
  providerOptions?: ProviderOptions;
}

/** A terminal's size in character cells (see `ExecOptions.pty`). */
export interface PtySize {
  /** Columns: an integer from 1 to 65535. */
  cols: number;
  /** Rows: an integer from 1 to 65535. */
  rows: number;
}

const cellsSchema = (what: string) =>
  z
    .number({ message: `pty.${what} is a whole number of character cells` })
    .int({ message: `pty.${what} is a whole number of character cells` })
    .min(1, { message: `pty.${what} is at least 1` })
    .max(65535, { message: `pty.${what} is at most 65535` });

/** Validates a `PtySize` (`ExecOptions.pty`, `SandboxProcess.resize`). */
export const ptySizeSchema: z.ZodType<PtySize, PtySize> = schemaFor<PtySize>()(
  z.strictObject({ cols: cellsSchema('cols'), rows: cellsSchema('rows') }),
);

/** Options of `Sandbox.run`: those of `exec`, plus input and output handling. */
export interface RunOptions extends ExecOptions {
  /**
   * Written to the command's stdin (a string as UTF-8), which is then closed. Anything else is a
   * `SandboxInvalidArgumentError` (argument `stdin`).
   * @default no input (EOF at once)
   */
  stdin?: string | Uint8Array;
  /** Throw `CommandExitError` on a non-zero exit instead of returning it. @default false */
  throwOnNonZeroExit?: boolean;
  /**
   * Keep at most this many **bytes** of each of stdout and stderr: a positive integer
   * (otherwise `SandboxInvalidArgumentError`); the rest is read and dropped, so the command never
   * stalls, and `ExecResult.truncated` is set.
   * @default 67_108_864 (64 MiB)
   */
  maxOutputBytes?: number;
}

const execOptionsShape = {
  env: envSchema.optional(),
  cwd: sandboxPathSchema.optional(),
  timeoutMs: millisecondsSchema.optional(),
  signal: abortSignalSchema.optional(),
  pty: ptySizeSchema.optional(),
  providerOptions: providerOptionsSchema.optional(),
};

/** Validates `ExecOptions`. */
export const execOptionsSchema: z.ZodType<ExecOptions, ExecOptions> = schemaFor<ExecOptions>()(z.strictObject(execOptionsShape));

/** Validates `RunOptions`. */
export const runOptionsSchema: z.ZodType<RunOptions, RunOptions> = schemaFor<RunOptions>()(
  z.strictObject({
    ...execOptionsShape,
    stdin: z
      .union([z.string(), z.custom<Uint8Array>((value) => value instanceof Uint8Array)], { message: 'stdin is a string or a Uint8Array' })
      .optional(),
    throwOnNonZeroExit: z.boolean().optional(),
    maxOutputBytes: z
      .number()
      .int({ message: 'maxOutputBytes is a whole number of bytes' })
      .positive({ message: 'maxOutputBytes is a positive number of bytes' })
      .optional(),
  }),
);

// ---------------------------------------------------------------------------------------------
// The other methods
// ---------------------------------------------------------------------------------------------

/** Options accepted by every other async method: only a cancellation signal. */
export interface SignalOptions {
  /**
   * Aborting rejects the call with `signal.reason` (never a `SandboxError`) and releases what it
   * started. Anything but an `AbortSignal` is a `SandboxInvalidArgumentError` (argument `signal`).
   */
  signal?: AbortSignal;
}

/** Validates `SignalOptions`. */
export const signalOptionsSchema: z.ZodType<SignalOptions, SignalOptions> = schemaFor<SignalOptions>()(
  z.strictObject({ signal: abortSignalSchema.optional() }),
);

/** Options of `SandboxProvider.list`. */
export interface ListSandboxesOptions extends SignalOptions {
  /** Only sandboxes carrying every one of these tags (same rules as `SandboxTags`). @default no filter */
  tags?: SandboxTags;
}

/** Validates `ListSandboxesOptions`. */
export const listSandboxesOptionsSchema: z.ZodType<ListSandboxesOptions, ListSandboxesOptions> = schemaFor<ListSandboxesOptions>()(
  z.strictObject({ tags: tagsSchema.optional(), signal: abortSignalSchema.optional() }),
);

/** Options of `SandboxFiles.write`. */
export interface WriteFileOptions extends SignalOptions {
  /**
   * Permission bits of the file, an integer from 0 to 0o7777 (for example `0o755`). Anything else
   * is a `SandboxInvalidArgumentError` (argument `mode`).
   * @default 0o644 for a new file; an existing file keeps its mode
   */
  mode?: number;
}

/** Validates `WriteFileOptions`. */
export const writeFileOptionsSchema: z.ZodType<WriteFileOptions, WriteFileOptions> = schemaFor<WriteFileOptions>()(
  z.strictObject({
    signal: abortSignalSchema.optional(),
    mode: z
      .number()
      .int({ message: 'mode must be an integer permission mode like 0o644' })
      .min(0, { message: 'mode must be an integer permission mode like 0o644' })
      .max(0o7777, { message: 'mode must be an integer permission mode like 0o644' })
      .optional(),
  }),
);

/** Options of `SandboxFiles.watch`. */
export interface WatchOptions extends SignalOptions {
  /**
   * Also report changes in every subdirectory, at any depth (including ones created while
   * watching). Without it only the entries directly inside the watched directory are reported.
   * @default false
   */
  recursive?: boolean;
}

/** Validates `WatchOptions`. */
export const watchOptionsSchema: z.ZodType<WatchOptions, WatchOptions> = schemaFor<WatchOptions>()(
  z.strictObject({ signal: abortSignalSchema.optional(), recursive: z.boolean().optional() }),
);

/** Options of `SandboxFiles.remove`. */
export interface RemoveOptions extends SignalOptions {
  /** Remove a directory and everything in it (`rm -r`). Without it a non-empty directory is refused. @default false */
  recursive?: boolean;
}

/** Validates `RemoveOptions`. */
export const removeOptionsSchema: z.ZodType<RemoveOptions, RemoveOptions> = schemaFor<RemoveOptions>()(
  z.strictObject({ signal: abortSignalSchema.optional(), recursive: z.boolean().optional() }),
);

/**
 * Data `SandboxFiles.write` accepts: text (written as UTF-8), bytes, or a stream of byte chunks
 * written as it arrives (with backpressure).
 */
export type WriteFileData = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;

/**
 * Checks the `data` argument of `SandboxFiles.write` and normalises it: an `ArrayBuffer` becomes
 * a `Uint8Array` view of it (no copy). Throws `SandboxInvalidArgumentError` (argument `data`) for
 * anything else (a number, `null`, a plain object, an array, another typed array). The chunks of
 * a stream can only be checked as they arrive.
 */
export function checkWriteData(value: unknown, provider?: string): string | Uint8Array | ReadableStream<Uint8Array> {
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (value instanceof ReadableStream) return value as ReadableStream<Uint8Array>;
  throw new SandboxInvalidArgumentError({
    message: `data must be a string, Uint8Array, ArrayBuffer or ReadableStream, not ${describe(value)}`,
    argument: 'data',
    provider,
  });
}

/** A short description of a bad value for a message: its kind, never its content. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  return `a ${typeof value}`;
}
