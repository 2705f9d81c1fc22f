export { createModalSandboxProvider, ModalSandboxProvider, modalCapabilities, type ModalSandboxProviderOptions } from './modal-provider.js';
export { ModalSandbox, ModalSandboxProcess, ModalFiles } from './modal-sandbox.js';
export { mapModalError, type ModalErrorContext } from './modal-errors.js';
export {
  planModalCreate,
  modalCreateOptionsSchema,
  modalDefaultTimeoutMs,
  modalMaxTimeoutMs,
  type ModalCreateOptions,
  type ModalCreatePlan,
  type ModalImagePlan,
} from './modal-options.js';
