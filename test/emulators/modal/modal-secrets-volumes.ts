/** Handlers for secrets (ephemeral and named). Volumes are in modal-volumes.ts. */
import * as grpc from '@grpc/grpc-js';
import { randomToken } from '../shared/ids.js';
import { RpcError, type RpcHandlers } from './modal-rpc.js';
import type { ModalState } from './modal-state.js';

export function secretVolumeHandlers(state: ModalState): Pick<RpcHandlers, 'secretGetOrCreate'> {
  return {
    async secretGetOrCreate(request) {
      if (request.objectCreationType === 5) {
        const id = `st-${randomToken(11)}`;
        state.secrets.set(id, { ...request.envDict });
        return { secretId: id };
      }
      const id = state.namedSecrets.get(request.deploymentName);
      if (!id) throw new RpcError(grpc.status.NOT_FOUND, `Secret '${request.deploymentName}' not found`);
      const missing = (request.requiredKeys as string[]).filter((key) => !(key in state.secrets.get(id)!));
      if (missing.length > 0) throw new RpcError(grpc.status.FAILED_PRECONDITION, `Secret is missing key(s): ${missing.join(', ')}`);
      return { secretId: id };
    },
  };
}
