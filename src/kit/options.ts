/**
 * Option handling every adapter shares: parsing a call's command and options, the capability
 * refusals (driven by the provider's `capabilities` object, so an adapter never writes its own),
 * and normalisers for the option shapes that have several spellings.
 */
import { SandboxCapabilityUnsupportedError, SandboxInvalidArgumentError } from '../errors/index.js';
import type { SandboxWarning } from '../spec/events.js';
import { commandSchema, execOptionsSchema, runOptionsSchema, type Command, type ParsedCreateSandboxOptions } from '../spec/options.js';
import type { SandboxCapabilities } from '../spec/sandbox-capabilities.js';
import { parseOptions } from './validate.js';

type ParsedExecOptions = ReturnType<typeof execOptionsSchema.parse>;
type ParsedRunOptions = ReturnType<typeof runOptionsSchema.parse>;

/** A command as an argv: a string runs through `sh -c`, an argv passes through unchanged. */
export function toArgv(command: Command): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
}

/**
 * Validates an `exec` call. Throws `SandboxInvalidArgumentError` naming the field, or the
 * signal's reason when it is already aborted, before any I/O.
 */
export function parseExecCall(
  provider: string,
  command: unknown,
  options: unknown,
  capabilities?: Pick<SandboxCapabilities, 'exec'>,
): { argv: string[]; command: Command; options: ParsedExecOptions } {
  const parsed = parseOptions(execOptionsSchema, options, { provider, what: 'exec options' });
  const checked = parseOptions(commandSchema, command, { provider, what: 'command' }) as Command;
  refuseExecOptions(parsed, capabilities, provider);
  parsed.signal?.throwIfAborted();
  return { argv: toArgv(checked), command: checked, options: parsed };
}

/** Validates a `run` call like {@link parseExecCall}. */
export function parseRunCall(
  provider: string,
  command: unknown,
  options: unknown,
  capabilities?: Pick<SandboxCapabilities, 'exec'>,
): { command: Command; options: ParsedRunOptions } {
  const parsed = parseOptions(runOptionsSchema, options, { provider, what: 'run options' });
  const checked = parseOptions(commandSchema, command, { provider, what: 'command' }) as Command;
  refuseExecOptions(parsed, capabilities, provider);
  parsed.signal?.throwIfAborted();
  return { command: checked, options: parsed };
}

/**
 * Exec options the provider's capabilities rule out. Without `capabilities` nothing is checked,
 * so an adapter passes its own: a `pty` on a provider without terminals must not fall back to
 * pipes silently.
 */
function refuseExecOptions(
  options: ParsedExecOptions,
  capabilities: Pick<SandboxCapabilities, 'exec'> | undefined,
  provider: string,
): void {
  if (options.pty !== undefined && capabilities !== undefined && !capabilities.exec.pty) {
    throw unsupported(provider, 'exec.pty', 'cannot run a command on a terminal; remove pty');
  }
}

/** A declared port as its number and whether TLS was asked for (`undefined`: the provider's default). */
export interface PortRequest {
  readonly port: number;
  readonly encrypted: boolean | undefined;
}

/** `ports` as `{ port, encrypted }` records. Throws `SandboxInvalidArgumentError` on a duplicate port. */
export function portRequests(ports: ParsedCreateSandboxOptions['ports'], provider: string): PortRequest[] {
  const seen = new Set<number>();
  return (ports ?? []).map((entry) => {
    const request = typeof entry === 'number' ? { port: entry, encrypted: undefined } : { port: entry.port, encrypted: entry.encrypted };
    if (seen.has(request.port)) {
      throw new SandboxInvalidArgumentError({ message: `ports: ${request.port} is listed twice`, argument: 'ports', provider });
    }
    seen.add(request.port);
    return request;
  });
}

/** The port numbers of `ports`, duplicates refused. */
export function portNumbers(ports: ParsedCreateSandboxOptions['ports'], provider: string): number[] {
  return portRequests(ports, provider).map((request) => request.port);
}

/** A volume as a mount: where, from what, and whether read-only (only when asked). */
export interface VolumeMount {
  readonly target: string;
  readonly source: string;
  readonly readOnly: boolean;
}

/** `volumes` as mounts, sorted by target so that a parent is mounted before its children. */
export function volumeMounts(volumes: ParsedCreateSandboxOptions['volumes']): VolumeMount[] {
  return Object.entries(volumes ?? {})
    .map(([target, volume]) =>
      typeof volume === 'string'
        ? { target, source: volume, readOnly: false }
        : { target, source: volume.source, readOnly: volume.readOnly === true },
    )
    .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

function unsupported(provider: string, capability: string, message: string): SandboxCapabilityUnsupportedError {
  return new SandboxCapabilityUnsupportedError({ message: `The ${provider} provider ${message}`, capability, provider });
}

/**
 * Refuses what the provider's `capabilities` say it cannot do, in one place for every adapter.
 * Security settings (network, limits, mounts) that cannot be honoured throw
 * `SandboxCapabilityUnsupportedError`; values past a documented maximum throw
 * `SandboxInvalidArgumentError`; settings honoured approximately (a plain tunnel for an encrypted
 * ask) come back as warnings.
 */
export function refuseUnsupported(
  options: ParsedCreateSandboxOptions,
  capabilities: SandboxCapabilities,
  provider: string,
): SandboxWarning[] {
  if (options.gpu !== undefined && !capabilities.gpu) throw unsupported(provider, 'gpu', 'has no GPU support; remove gpu');
  const network = options.network;
  if (network === 'block' && !capabilities.network.block) {
    throw unsupported(provider, 'network.block', 'cannot block the network; remove network: "block"');
  }
  if (typeof network === 'object') {
    if (network.allowCidrs.length > 0 && !capabilities.network.allowCidrs) {
      throw unsupported(provider, 'network.allowCidrs', 'cannot enforce a CIDR allowlist; use network: "block" or "allow"');
    }
    if (network.allowDomains.length > 0 && !capabilities.network.allowDomains) {
      throw unsupported(provider, 'network.allowDomains', 'cannot enforce a domain allowlist; use network: "block" or "allow"');
    }
    if (network.allowCidrs.length === 0 && network.allowDomains.length === 0 && !capabilities.network.block) {
      throw unsupported(provider, 'network.block', 'cannot block the network (an empty allowlist blocks everything)');
    }
  }
  if (options.cpu !== undefined && !capabilities.limits.cpu) throw unsupported(provider, 'limits.cpu', 'cannot limit cpu; remove cpu');
  if (options.memoryMiB !== undefined && !capabilities.limits.memory)
    throw unsupported(provider, 'limits.memory', 'cannot limit memory; remove memoryMiB');
  if (options.pidsLimit !== undefined && !capabilities.limits.pids)
    throw unsupported(provider, 'limits.pids', 'has no process-count limit; remove pidsLimit');
  if (options.volumes !== undefined && Object.keys(options.volumes).length > 0 && capabilities.volumes === false) {
    throw unsupported(provider, 'volumes', 'cannot mount volumes; remove volumes');
  }
  const ports = portRequests(options.ports, provider);
  if (ports.length > 0 && !capabilities.tunnels) throw unsupported(provider, 'tunnels', 'has no tunnels; remove ports');
  if (options.timeoutMs !== undefined) {
    if (!capabilities.timeouts.lifetime)
      throw unsupported(provider, 'timeouts.lifetime', 'cannot end a sandbox after a lifetime; remove timeoutMs');
    if (options.timeoutMs > capabilities.timeouts.maxLifetimeMs) {
      throw new SandboxInvalidArgumentError({
        message: `timeoutMs is at most ${describeDuration(capabilities.timeouts.maxLifetimeMs)} on the ${provider} provider`,
        argument: 'timeoutMs',
        provider,
      });
    }
  }
  if (options.idleTimeoutMs !== undefined) {
    if (!capabilities.timeouts.idle) throw unsupported(provider, 'timeouts.idle', 'has no idle timeout; remove idleTimeoutMs');
    if (options.idleTimeoutMs > capabilities.timeouts.maxLifetimeMs) {
      throw new SandboxInvalidArgumentError({
        message: `idleTimeoutMs is at most ${describeDuration(capabilities.timeouts.maxLifetimeMs)} on the ${provider} provider`,
        argument: 'idleTimeoutMs',
        provider,
      });
    }
  }
  const image = options.image;
  if (typeof image === 'string' && !capabilities.images.reference)
    throw unsupported(provider, 'images.reference', 'takes no image reference');
  if (typeof image === 'object' && 'type' in image) {
    if (!capabilities.images.snapshot) throw unsupported(provider, 'images.snapshot', 'cannot start from a snapshot');
    if (image.provider !== provider) {
      throw new SandboxInvalidArgumentError({
        message: `A ${image.provider} snapshot cannot start a ${provider} sandbox`,
        argument: 'image',
        provider,
      });
    }
  } else if (typeof image === 'object' && !capabilities.images.build) {
    throw unsupported(provider, 'images.build', 'does not build images from { base, commands }');
  }
  const warnings: SandboxWarning[] = [];
  if (!capabilities.tunnelsTls) {
    for (const request of ports) {
      if (request.encrypted) {
        warnings.push({
          type: 'unsupported-setting',
          setting: 'ports.encrypted',
          details: `${provider} tunnels are plain (no TLS); port ${request.port} is unencrypted`,
        });
      }
    }
  }
  return warnings;
}

/** `86_400_000` as "86400000 ms (24 hours)", for messages. */
export function describeDuration(milliseconds: number): string {
  const units: Array<[number, string]> = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    if (milliseconds >= size && milliseconds % size === 0) {
      const count = milliseconds / size;
      const human = name === 'day' && count === 1 ? '24 hours' : `${count} ${name}${count === 1 ? '' : 's'}`;
      return `${milliseconds} ms (${human})`;
    }
  }
  return `${milliseconds} ms`;
}
