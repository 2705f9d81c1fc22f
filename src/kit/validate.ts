import type { z } from 'zod';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { isSandboxSignal, sandboxSignals, tagsSchema, type SandboxSignal, type SandboxTags } from '../spec/options.js';

/**
 * Parses options with a contract schema; the first issue becomes a `SandboxInvalidArgumentError`
 * whose `argument` is the dotted path of the offending field.
 */
export function parseOptions<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  context: { provider?: string; what: string },
): z.output<Schema> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const argument = issue.path.map(String).join('.') || context.what;
  const detail = issue.code === 'unrecognized_keys' ? `unknown option(s) ${issue.keys.join(', ')}` : issue.message;
  throw new SandboxInvalidArgumentError({
    message: `Invalid ${context.what}: ${argument}: ${detail}`,
    argument,
    provider: context.provider,
    cause: result.error,
  });
}

/** Validates one positional string argument (a path, an id, a name): non-empty, no NUL bytes. */
export function checkStringArgument(value: unknown, argument: string, provider?: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new SandboxInvalidArgumentError({ message: `${argument} must be a non-empty string`, argument, provider });
  }
  if (value.includes('\0')) {
    throw new SandboxInvalidArgumentError({ message: `${argument} must not contain NUL bytes`, argument, provider });
  }
  return value;
}

/** The longest path the files API accepts, in bytes of UTF-8 (Linux's PATH_MAX). */
export const maxSandboxPathBytes = 4096;

/**
 * A sandbox path argument: absolute, without NUL bytes, at most {@link maxSandboxPathBytes}.
 * Relative paths are refused rather than resolved against some working directory: the contract
 * says paths are absolute, and a guess about the base is how files land in the wrong place.
 * `_base` is accepted for compatibility and ignored.
 */
export function checkSandboxPath(value: unknown, _base?: string, provider?: string): string {
  const path = checkStringArgument(value, 'path', provider);
  if (!path.startsWith('/')) {
    throw new SandboxInvalidArgumentError({
      message: `path must be absolute (start with "/"): ${JSON.stringify(path.slice(0, 200))}`,
      argument: 'path',
      provider,
    });
  }
  if (Buffer.byteLength(path) > maxSandboxPathBytes) {
    throw new SandboxInvalidArgumentError({ message: `path is longer than ${maxSandboxPathBytes} bytes`, argument: 'path', provider });
  }
  return path;
}

/** Signal names `kill` accepts (the contract's `sandboxSignals`). */
export const killSignals = sandboxSignals;
export type KillSignal = SandboxSignal;

/** Throws `SandboxInvalidArgumentError` (argument `signal`) unless `signal` is a `SandboxSignal`. */
export function checkSignal(signal: unknown, provider?: string): KillSignal {
  if (isSandboxSignal(signal)) return signal;
  throw new SandboxInvalidArgumentError({
    message: `Invalid signal ${JSON.stringify(signal) ?? String(signal)}: use an upper-case name like 'SIGTERM' or 'SIGKILL'`,
    argument: 'signal',
    provider,
  });
}

/** Validates tags for `setTags` with the same schema as `create`'s `tags`. */
export function parseTags(tags: unknown, provider?: string): SandboxTags {
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new SandboxInvalidArgumentError({ message: 'tags must be an object of string values', argument: 'tags', provider });
  }
  return parseOptions(tagsSchema, tags, { provider, what: 'tags' });
}
