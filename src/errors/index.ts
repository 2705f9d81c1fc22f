export { SandboxError, type SandboxErrorCode, type SandboxErrorOptions } from './sandbox-error.js';
export {
  SandboxAuthenticationError,
  SandboxNotFoundError,
  SandboxPausedError,
  SandboxFileNotFoundError,
  SandboxAlreadyExistsError,
  SandboxTimeoutError,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  CommandExitError,
  SandboxProviderError,
  type SandboxCapabilityName,
  type SandboxCapabilityPath,
  type SandboxTimeoutOperation,
} from './sandbox-errors.js';
