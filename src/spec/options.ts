/**
 * Option bags of the contract, as zod schemas plus their inferred types.
 *
 * Every provider validates its options with these schemas before any I/O, so a bad option is a
 * `SandboxInvalidArgumentError` naming the field, whatever the provider. Units are in the names:
 * `…Ms` is milliseconds, `…MiB` is mebibytes, `cpu` is a count of (fractional) cores.
 */
import { z } from 'zod';

const noNul = (what: string) =>
  z.string().refine((value) => !value.includes('\0'), { message: `${what} must not contain NUL bytes` });

/** An absolute POSIX path inside the sandbox, without NUL bytes. */
export const sandboxPathSchema = noNul('a path').refine((value) => value.startsWith('/'), {
  message: 'must be an absolute path (start with "/")',
});

/**
 * A command: an argv array passes through byte for byte (the first element is looked up on
 * `PATH`); a string runs through `sh -c`. Neither may contain NUL bytes, and an argv needs at
 * least one element.
 */
export const commandSchema = z.union([
  noNul('the command').refine((value) => value.length > 0, { message: 'must not be empty' }),
  z.array(noNul('an argument')).min(1, { message: 'needs at least one element (the program)' }).readonly(),
]);
export type Command = z.infer<typeof commandSchema>;

const envSchema = z.record(
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'environment variable names are letters, digits and _' }),
  noNul('an environment value'),
);

/** A snapshot handle returned by `Sandbox.snapshot()`; passing it as `image` starts from it. */
export const snapshotRefSchema = z.object({
  type: z.literal('snapshot'),
  provider: z.string(),
  id: z.string().min(1),
});
export type SandboxSnapshotRef = z.infer<typeof snapshotRefSchema>;

/**
 * What the sandbox's filesystem starts from.
 * - `string`: a provider image reference. Registry providers take an image name (`'python:3.12'`);
 *   the local provider takes an absolute path to a root filesystem directory, or `'host'`.
 * - `{ base, commands }`: `base` plus shell commands run at build time, like a Dockerfile's `RUN`s.
 * - a snapshot returned by `snapshot()` of the same provider.
 */
export const imageSchema = z.union([
  noNul('the image').min(1),
  z.object({ base: noNul('the base image').min(1), commands: z.array(noNul('a build command')).default([]) }),
  snapshotRefSchema,
]);
export type SandboxImage = z.infer<typeof imageSchema>;

/**
 * Network policy. Security setting: a provider that cannot honour it throws
 * `SandboxCapabilityUnsupportedError`; it never silently allows more.
 * - `'allow'` (default): outbound access. Providers never expose the host's own loopback services.
 * - `'block'`: no network at all, only the sandbox's loopback.
 * - `{ allowCidrs, allowDomains }`: outbound only to the listed destinations.
 */
export const networkSchema = z.union([
  z.literal('allow'),
  z.literal('block'),
  z.object({
    allowCidrs: z.array(z.string().min(1)).default([]),
    allowDomains: z.array(z.string().min(1)).default([]),
  }),
]);
export type NetworkPolicy = z.infer<typeof networkSchema>;

/** A port in the sandbox to expose as a tunnel. `encrypted` asks for TLS where the provider offers both. */
export const portSchema = z.union([
  z.number().int().min(1).max(65535),
  z.object({ port: z.number().int().min(1).max(65535), encrypted: z.boolean().optional() }),
]);

/**
 * A volume mounted at the record's key (an absolute sandbox path). `source` is provider-specific:
 * a host directory for the local and Docker providers, a volume name for Modal.
 * Mounts are security settings: read-only is honoured or the create fails.
 */
export const volumeSchema = z.union([
  noNul('a volume source').min(1),
  z.object({ source: noNul('a volume source').min(1), readOnly: z.boolean().default(false) }),
]);

const milliseconds = z.number().int().positive();

export const createSandboxOptionsSchema = z
  .object({
    image: imageSchema.optional(),
    /** Entrypoint. When set, the sandbox ends when it exits and `wait()` reports its exit. */
    command: commandSchema.optional(),
    env: envSchema.optional(),
    /** Like `env`, but never echoed in errors, events or `inspect` output. */
    secrets: envSchema.optional(),
    workdir: sandboxPathSchema.optional(),
    cpu: z.number().positive().max(1024).optional(),
    memoryMiB: z.number().int().min(16).optional(),
    pidsLimit: z.number().int().min(8).optional(),
    gpu: z.string().min(1).optional(),
    timeoutMs: milliseconds.optional(),
    idleTimeoutMs: milliseconds.optional(),
    network: networkSchema.optional(),
    ports: z.array(portSchema).max(64).optional(),
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { message: 'names are 1-63 of A-Z a-z 0-9 . _ - and start alphanumeric' })
      .optional(),
    tags: z.record(z.string().min(1).max(63), z.string().max(255)).optional(),
    volumes: z.record(sandboxPathSchema, volumeSchema).optional(),
    providerOptions: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/**
 * Options of `SandboxProvider.create`. Every field is optional; defaults are the provider's,
 * documented in its capability table. The most common:
 * - `timeoutMs`: sandbox lifetime. Local default 300_000 (5 minutes, like Modal).
 * - `idleTimeoutMs`: terminate after this long with no exec running and no file operation.
 * - `cpu` (cores), `memoryMiB`, `pidsLimit`: limits. Security settings: never silently dropped.
 */
export type CreateSandboxOptions = z.input<typeof createSandboxOptionsSchema>;
export type ParsedCreateSandboxOptions = z.output<typeof createSandboxOptionsSchema>;

export const execOptionsSchema = z
  .object({
    /** Extra environment for this command, on top of the sandbox's. */
    env: envSchema.optional(),
    /** Working directory inside the sandbox. @default the sandbox's `workdir` */
    cwd: sandboxPathSchema.optional(),
    /** Kill the command and its whole process tree after this many milliseconds. No default. */
    timeoutMs: milliseconds.optional(),
    signal: z.instanceof(AbortSignal).optional(),
    providerOptions: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  })
  .strict();
export type ExecOptions = z.input<typeof execOptionsSchema>;

export const runOptionsSchema = execOptionsSchema
  .extend({
    /** Written to the command's stdin, which is then closed. @default no input (EOF at once) */
    stdin: z.union([z.string(), z.instanceof(Uint8Array)]).optional(),
    /** Throw `CommandExitError` on a non-zero exit instead of returning it. @default false */
    throwOnNonZeroExit: z.boolean().optional(),
    /** Keep at most this many bytes of each of stdout and stderr; the rest is dropped and `truncated` set. @default 64 MiB */
    maxOutputBytes: z.number().int().positive().optional(),
  })
  .strict();
export type RunOptions = z.input<typeof runOptionsSchema>;

/** Options accepted by every other async method: only a cancellation signal. */
export interface SignalOptions {
  signal?: AbortSignal;
}

export const listSandboxesOptionsSchema = z
  .object({
    /** Only sandboxes carrying every one of these tags. */
    tags: z.record(z.string(), z.string()).optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();
export type ListSandboxesOptions = z.input<typeof listSandboxesOptionsSchema>;
