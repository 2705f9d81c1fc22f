export { createModalSandboxProvider, type ModalSandboxProvider, type ModalSandboxProviderOptions } from './modal-provider.js';
export type { ModalSandbox } from './modal-sandbox.js';
export { mapModalError, type ModalErrorContext } from './modal-errors.js';
export {
  planModalCreate,
  modalCapabilities,
  modalCreateOptionsSchema,
  modalDefaultTimeoutMs,
  modalMaxTimeoutMs,
  type ModalCreateOptions,
  type ModalCreatePlan,
  type ModalImagePlan,
} from './modal-options.js';
