export {
  createKubernetesSandboxProvider,
  KubernetesSandboxProvider,
  type KubernetesSandboxProviderOptions,
} from './kubernetes-provider.js';
export type { KubernetesSandbox } from './kubernetes-sandbox.js';
export { KubernetesApi, loadKubernetesClient, resolveKubeConfig, type KubeConfigSource } from './kubernetes-api.js';
export {
  mapKubernetesError,
  KubernetesApiError,
  parseStatusBody,
  type KubernetesErrorContext,
  type KubernetesStatusBody,
} from './kubernetes-errors.js';
export {
  openKubernetesExec,
  relayPortForward,
  execProtocol as kubernetesExecProtocol,
  portForwardProtocol as kubernetesPortForwardProtocol,
  type ExecSession as KubernetesExecSession,
  type KubernetesConnection,
} from './kubernetes-exec-client.js';
export {
  kubernetesCapabilities,
  kubernetesCreateOptionsSchema,
  kubernetesDefaultImage,
  kubernetesDefaultTimeoutMs,
  kubernetesMaxTimeoutMs,
  kubernetesKeys,
  kubernetesKeptCapabilities,
  checkKubernetesReadBack,
  kubernetesEndReason,
  kubernetesStartFailure,
  parseKubernetesExitStatus,
  planKubernetesCreate,
  planKubernetesCpu,
  planKubernetesGpu,
  planKubernetesNetworkPolicy,
  planKubernetesOwnerReference,
  planKubernetesPodName,
  planKubernetesSelector,
  planKubernetesTagLabels,
  planKubernetesTagUpdate,
  tagsFromKubernetesPod,
  type KubernetesCreateOptions,
  type KubernetesCreatePlan,
  type KubernetesExecStatus,
  type KubernetesPlanContext,
} from './kubernetes-options.js';
