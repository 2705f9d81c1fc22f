/** Handlers for auth tokens, apps and environments. */
import * as grpc from '@grpc/grpc-js';
import { randomToken } from '../shared/ids.js';
import { RpcError, type RpcHandlers } from './modal-rpc.js';
import type { ModalState } from './modal-state.js';

export function appHandlers(state: ModalState): Pick<RpcHandlers, 'authTokenGet' | 'appGetOrCreate' | 'environmentGetOrCreate'> {
  return {
    async authTokenGet(_request, call) {
      const tokenId = String(call.metadata.get('x-modal-token-id')[0] ?? '');
      const tokenSecret = String(call.metadata.get('x-modal-token-secret')[0] ?? '');
      const expected = state.credentials;
      if (!tokenId || !tokenSecret || (expected && (expected.tokenId !== tokenId || expected.tokenSecret !== tokenSecret))) {
        throw new RpcError(grpc.status.UNAUTHENTICATED, 'Invalid token id or secret');
      }
      const value = state.jwt(tokenId);
      state.authTokens.add(value);
      return { token: value };
    },
    async appGetOrCreate(request) {
      const key = `${request.environmentName}/${request.appName}`;
      let id = state.apps.get(key);
      if (!id) {
        if (request.objectCreationType !== 1) throw new RpcError(grpc.status.NOT_FOUND, `App '${request.appName}' not found`);
        id = `ap-${randomToken(22)}`;
        state.apps.set(key, id);
      }
      return { appId: id };
    },
    async environmentGetOrCreate(request) {
      return {
        environmentId: 'en-emulator',
        metadata: { name: request.deploymentName || 'main', settings: { imageBuilderVersion: '2025.06' } },
      };
    },
  };
}
