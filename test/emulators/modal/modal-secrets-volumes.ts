/** Handlers for secrets (ephemeral and named) and volumes (host directories under the state dir). */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { randomToken } from '../shared/ids.js';
import { RpcError, type RpcHandlers } from './modal-rpc.js';
import type { ModalState } from './modal-state.js';

export function secretVolumeHandlers(state: ModalState): Pick<RpcHandlers, 'secretGetOrCreate' | 'volumeGetOrCreate'> {
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
    async volumeGetOrCreate(request) {
      const ephemeral = request.objectCreationType === 5;
      const key = ephemeral ? `ephemeral-${randomToken(8)}` : `${request.environmentName}/${request.deploymentName}`;
      let volume = state.volumes.get(key);
      if (!volume) {
        if (!ephemeral && request.objectCreationType !== 1)
          throw new RpcError(grpc.status.NOT_FOUND, `Volume '${request.deploymentName}' not found`);
        const id = `vo-${randomToken(22)}`;
        const dir = join(state.stateDir, 'volumes', id);
        await mkdir(dir, { recursive: true });
        // The sandbox's root maps to an unprivileged host uid; the volume must be writable to it.
        await chmod(dir, 0o777);
        volume = { id, dir };
        state.volumes.set(key, volume);
        state.volumeDirs.set(id, dir);
      }
      return { volumeId: volume.id };
    },
  };
}
