export { SandboxError, type SandboxErrorCode, type SandboxErrorOptions } from './sandbox-error.js';
export {
  SandboxAuthenticationError,
  SandboxNotFoundError,
  SandboxFileNotFoundError,
  SandboxAlreadyExistsError,
  SandboxTimeoutError,
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  CommandExitError,
  SandboxProviderError,
} from './sandbox-errors.js';
