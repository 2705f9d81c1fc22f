import { SandboxCapabilityUnsupportedError } from '../errors/index.js';
import type { Sandbox } from '../spec/sandbox.js';

type OptionalSandboxMethod = 'snapshot' | 'extendTimeout' | 'pause' | 'resume' | 'updateNetwork';

/**
 * Returns the optional method bound to the sandbox, or throws
 * `SandboxCapabilityUnsupportedError`. The one way the core calls optional operations, so an
 * unsupported operation is always an error and never a silent no-op.
 */
export function requireCapability<Name extends OptionalSandboxMethod>(sandbox: Sandbox, name: Name): NonNullable<Sandbox[Name]> {
  const method = sandbox[name];
  if (typeof method !== 'function') {
    throw new SandboxCapabilityUnsupportedError({
      message: `The ${sandbox.provider} provider does not support ${name}()`,
      capability: name === 'resume' ? 'pause' : name === 'updateNetwork' ? 'network.update' : name,
      provider: sandbox.provider,
    });
  }
  return method.bind(sandbox) as NonNullable<Sandbox[Name]>;
}
