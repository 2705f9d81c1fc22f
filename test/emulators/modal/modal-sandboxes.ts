/**
 * Handlers for the sandbox lifecycle: create (a local sandbox under a Modal id and task id),
 * task and router lookups, wait, terminate, tags, tunnels, lookup by name and list. The network
 * settings map onto the local sandbox in modal-network.ts.
 */
import * as grpc from '@grpc/grpc-js';
import type { CreateSandboxOptions } from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { createNetwork } from './modal-network.js';
import { startReadinessProbe } from './modal-probes.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import { sandboxEnded, sandboxResult, type EmulatedSandbox, type ModalState } from './modal-state.js';
import { validateSandboxDefinition } from './modal-validation.js';
import { mountVolumes, volumesReleased } from './modal-volumes.js';
import { attachEntrypointStdio } from './modal-stdio.js';

const maxTimeoutSecs = 24 * 60 * 60;

type SandboxRpc =
  | 'sandboxCreate'
  | 'sandboxCreateV2'
  | 'sandboxGetTaskIdV2'
  | 'sandboxGetCommandRouterAccess'
  | 'sandboxWaitV2'
  | 'sandboxTerminateV2'
  | 'sandboxTagsSetV2'
  | 'sandboxTagsGetV2'
  | 'sandboxGetTunnelsV2'
  | 'sandboxGetFromNameV2'
  | 'sandboxGetFromName'
  | 'sandboxListV2';

export function sandboxHandlers(state: ModalState): Pick<RpcHandlers, SandboxRpc> {
  return {
    async sandboxCreate() {
      throw new RpcError(
        grpc.status.FAILED_PRECONDITION,
        'The Modal emulator has no GPUs (GPU sandboxes use the V1 create, which it does not run)',
      );
    },
    sandboxCreateV2: (request) => createSandbox(state, request),
    async sandboxGetTaskIdV2(request) {
      const found = state.sandbox(request.sandboxId);
      const result = sandboxResult(found);
      return result ? { taskResult: result } : { taskId: found.data.taskId };
    },
    async sandboxGetCommandRouterAccess(request) {
      const found = state.sandbox(request.sandboxId);
      if (found.end) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox ${found.id} has finished`);
      return state.routerAccess(found);
    },
    async sandboxWaitV2(request) {
      const found = state.sandbox(request.sandboxId);
      const result = await waitFor(found, request.timeout);
      // Modal commits a sandbox's volumes as it exits: its end is reported once they are.
      if (result) await volumesReleased(state, found);
      return { result, metadata: { appId: found.scope, result } };
    },
    async sandboxTerminateV2(request) {
      const found = state.sandbox(request.sandboxId);
      const existing = sandboxResult(found);
      if (!existing) await found.local.terminate();
      await found.ended;
      await volumesReleased(state, found);
      return { existingResult: existing };
    },
    async sandboxTagsSetV2(request) {
      state.sandbox(request.sandboxId).tags = tagRecord(request.tags);
      return {};
    },
    async sandboxTagsGetV2(request) {
      return { tags: tagList(state.sandbox(request.sandboxId).tags) };
    },
    async sandboxGetTunnelsV2(request) {
      const found = state.sandbox(request.sandboxId);
      return { result: sandboxResult(found), tunnels: found.data.tunnels };
    },
    // The SDK falls back to the V1 lookup when the V2 one finds nothing; both answer the same.
    sandboxGetFromNameV2: async (request) => lookupByName(state, request),
    sandboxGetFromName: async (request) => lookupByName(state, request),
    async sandboxListV2(request) {
      const matches = state.sandboxes
        .list({
          scope: request.appId || undefined,
          tags: tagRecord(request.tags),
          includeEnded: Boolean(request.includeFinished),
          // The SDK pages by passing back the oldest createdAt it got, computed as below.
          where: (found) => !request.beforeTimestamp || wireTime(found) < request.beforeTimestamp,
        })
        .slice(0, 100);
      return {
        sandboxes: matches.map((found) => ({
          id: found.id,
          createdAt: wireTime(found),
          appId: found.scope,
          name: found.name ?? '',
          tags: tagList(found.tags),
        })),
      };
    },
  };
}

async function createSandbox(state: ModalState, request: Json): Promise<Json> {
  const definition: Json = request.definition ?? {};
  const appId: string = request.appId;
  if (![...state.apps.values()].includes(appId)) throw new RpcError(grpc.status.NOT_FOUND, `App ${appId} not found`);
  const timeoutSecs = definition.timeoutSecs || 300;
  if (timeoutSecs > maxTimeoutSecs) throw new RpcError(grpc.status.INVALID_ARGUMENT, `timeout must be at most ${maxTimeoutSecs} seconds`);
  if (definition.resources?.gpuConfig?.count) throw new RpcError(grpc.status.FAILED_PRECONDITION, 'The Modal emulator has no GPUs');
  // Outbound allowlists are the local provider's (modal-network.ts).
  const network = createNetwork(definition);
  validateSandboxDefinition(definition);
  // Each sandbox mounts views of its own, committed when it ends (modal-volumes.ts).
  const mounted = await mountVolumes(state, definition.volumeMounts ?? []);
  const volumes = mounted.volumes;
  const resources = definition.resources ?? {};
  const options: CreateSandboxOptions = {
    ...state.imageOption(definition.imageId || 'im-host'),
    command: definition.entrypointArgs?.length ? definition.entrypointArgs : undefined,
    env: state.env(request.secretSources, definition.secretIds, definition.environmentVariables?.contents),
    workdir: definition.workdir || undefined,
    // Modal's cpu and memory are reservations; only their limits constrain the sandbox.
    cpu: resources.milliCpuMax ? resources.milliCpuMax / 1000 : undefined,
    memoryMiB: resources.memoryMbMax || undefined,
    timeoutMs: timeoutSecs * 1000,
    idleTimeoutMs: definition.idleTimeoutSecs ? definition.idleTimeoutSecs * 1000 : undefined,
    network,
    ports: (definition.openPorts?.ports ?? []).map((spec: Json) => spec.port),
    volumes,
  };
  const found: EmulatedSandbox = await state.sandboxes
    .create(options, {
      scope: appId,
      name: definition.name || undefined,
      tags: tagRecord(request.tags),
      data: async (local) => ({
        taskId: `ta-${randomToken(22)}`,
        tunnels: Object.values(await local.tunnels()).map((tunnel) => ({
          host: tunnel.host,
          port: tunnel.hostPort,
          // Local tunnels are plain TCP; both endpoints are the same loopback port.
          unencryptedHost: tunnel.host,
          unencryptedPort: tunnel.hostPort,
          containerPort: tunnel.port,
        })),
        execs: new Map(),
        network,
      }),
    })
    .catch(async (error: unknown) => {
      await mounted.discard();
      throw asRpcError(error);
    });
  mounted.attach(found);
  void found.ended.then(() => found.data.execs.clear());
  state.byTask.set(found.data.taskId, found);
  startReadinessProbe(found, definition.readinessProbe);
  attachEntrypointStdio(found);
  return {
    sandboxId: found.id,
    taskId: found.data.taskId,
    tunnels: found.data.tunnels,
    commandRouterAccess: state.routerAccess(found),
    metadata: { appId },
  };
}

async function waitFor(found: EmulatedSandbox, timeoutSecs: number): Promise<Json | undefined> {
  const result = sandboxResult(found);
  if (result || timeoutSecs <= 0) return result;
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    sandboxEnded(found),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.min(timeoutSecs, 60) * 1000))),
  ]);
  clearTimeout(timer);
  return waited;
}

function lookupByName(state: ModalState, request: Json): Json {
  const appId = state.apps.get(`${request.environmentName}/${request.appName}`);
  const found =
    appId === undefined
      ? undefined
      : state.sandboxes.findByName(request.sandboxName, { scope: appId, includeEnded: Boolean(request.includeTerminated) });
  if (!found) throw new RpcError(grpc.status.NOT_FOUND, `Sandbox '${request.sandboxName}' not found in app '${request.appName}'`);
  return { sandboxId: found.id };
}

/** Modal's timestamps are seconds since the epoch. */
function wireTime(found: EmulatedSandbox): number {
  return found.createdAt / 1000;
}

function tagRecord(tags: Json[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((tag) => [tag.tagName, tag.tagValue]));
}

function tagList(tags: Record<string, string>): Json[] {
  return Object.entries(tags).map(([tagName, tagValue]) => ({ tagName, tagValue }));
}
