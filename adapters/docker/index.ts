export {
  createDockerSandboxProvider,
  DockerSandboxProvider,
  dockerCapabilities,
  dockerCreateOptionsSchema,
  type DockerSandboxProviderOptions,
} from './docker-provider.js';
export { DockerSandbox } from './docker-sandbox.js';
export { DockerSandboxProcess } from './docker-exec.js';
export { mapDockerError } from './docker-errors.js';
