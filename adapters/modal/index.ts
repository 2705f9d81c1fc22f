export { createModalSandboxProvider, type ModalSandboxProvider, type ModalSandboxProviderOptions } from './modal-provider.js';
export type { ModalSandbox } from './modal-sandbox.js';
export { mapModalError, mapModalNetworkUpdateError, type ModalErrorContext } from './modal-errors.js';
export {
  planModalCreate,
  planModalNetworkUpdate,
  modalCapabilities,
  modalCreateOptionsSchema,
  modalDefaultTimeoutMs,
  modalMaxTimeoutMs,
  type ModalCreateOptions,
  type ModalCreatePlan,
  type ModalImagePlan,
} from './modal-options.js';
