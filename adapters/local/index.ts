export {
  createLocalSandboxProvider,
  LocalSandboxProvider,
  localCapabilities,
  localCreateOptionsSchema,
  type LocalCreateOptions,
  type LocalSandboxProviderOptions,
} from './local-provider.js';
export { LocalSandbox, LocalSandboxProcess } from './local-sandbox.js';
