export { createLocalSandboxProvider, LocalSandboxProvider, localCapabilities, type LocalSandboxProviderOptions } from './local-provider.js';
export { LocalSandbox, LocalSandboxProcess } from './local-sandbox.js';
