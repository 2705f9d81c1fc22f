import type { z } from 'zod';
import { SandboxInvalidArgumentError } from '../errors/index.js';

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

/** A sandbox path argument: absolute, or relative to `base` (the sandbox workdir). */
export function checkSandboxPath(value: unknown, base: string, provider?: string): string {
  const path = checkStringArgument(value, 'path', provider);
  return path.startsWith('/') ? path : `${base.replace(/\/$/, '')}/${path}`;
}
