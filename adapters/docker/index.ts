export { createDockerSandboxProvider, type DockerSandboxProvider, type DockerSandboxProviderOptions } from './docker-provider.js';
export {
  dockerCapabilities,
  dockerCreateOptionsSchema,
  planDockerCreate,
  type DockerCreateOptions,
  type DockerCreatePlan,
  type DockerImagePlan,
  type DockerPlanDefaults,
} from './docker-options.js';
export type { DockerSandbox } from './docker-sandbox.js';
export type { DockerSandboxProcess } from './docker-exec.js';
export { mapDockerError, type DockerErrorContext } from './docker-errors.js';
