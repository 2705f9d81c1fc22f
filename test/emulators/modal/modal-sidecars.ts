/**
 * Sidecar containers (`sb.experimentalSidecars`): create (SandboxContainerCreateV2 on the control
 * plane, the SDK's default, or TaskContainerCreate on the router), get, list, terminate and wait,
 * and the routing of everything else the SDK sends with a `containerId` (exec, the filesystem
 * tool, mounts, directory and filesystem snapshots) to that container. Each sidecar is its own
 * local sandbox started from its own image, as on Modal, where it is a separate container with
 * its own filesystem; it ends when its command exits, on terminate, or with the sandbox.
 *
 * How the emulator differs from Modal (also in the README's emulator section):
 * - Modal joins a sandbox and its sidecars on an internal bridge network; here each local
 *   sandbox has a network namespace of its own, so a sidecar cannot reach the main container or
 *   another sidecar over TCP, and they share no files (the filesystem is not shared on Modal
 *   either; its shared volumes are refused here, below);
 * - refused with FAILED_PRECONDITION naming the call: volumes, a PTY,
 *   a memory reserve, cloud bucket mounts; `reloadVolumes` of a sidecar is whatever the
 *   router's TaskReloadVolumes answers;
 * - the main container is listed as `main` with a container id of the emulator's own making.
 */
import * as grpc from '@grpc/grpc-js';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { localMaxTimeoutMs } from '../../../adapters/local/local-options.js';
import { randomToken } from '../shared/ids.js';
import type { SandboxEnd } from '../shared/sandbox-registry.js';
import { allowlistNetwork, networkAccessType } from './modal-network.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import { genericResult, type EmulatedSandbox, type ModalState } from './modal-state.js';

type SidecarRpc =
  | 'sandboxContainerCreateV2'
  | 'taskContainerCreate'
  | 'taskContainerGet'
  | 'taskContainerList'
  | 'taskContainerTerminate'
  | 'taskContainerWait';

const mainName = 'main';
/** How long one TaskContainerWait holds; the SDK polls every 10 s. */
const maxWaitMs = 50_000;

interface Sidecar {
  readonly id: string;
  readonly name: string;
  readonly local: LocalSandbox;
  end?: SandboxEnd;
  readonly ended: Promise<SandboxEnd>;
}

/** Sidecars by container id, oldest first, per sandbox. */
const sidecarsOf = new WeakMap<EmulatedSandbox, Map<string, Sidecar>>();

/**
 * The local sandbox a router request targets: the main container for an empty `containerId`,
 * else that running sidecar. Throws NOT_FOUND.
 */
export function containerSandbox(found: EmulatedSandbox, containerId: string | undefined): LocalSandbox {
  if (!containerId || containerId === mainId(found)) return found.local;
  const sidecar = sidecarsOf.get(found)?.get(containerId);
  if (!sidecar) throw new RpcError(grpc.status.NOT_FOUND, `Container ${containerId} not found in sandbox ${found.id}`);
  if (sidecar.end) throw new RpcError(grpc.status.NOT_FOUND, `Container ${containerId} has finished`);
  return sidecar.local;
}

export function sidecarHandlers(state: ModalState): Pick<RpcHandlers, SidecarRpc> {
  return {
    async sandboxContainerCreateV2(request) {
      const found = state.sandbox(request.sandboxId);
      const definition: Json = request.definition ?? {};
      if (Object.keys(request.ephemeralSecrets?.contents ?? {}).length > 0) {
        throw new RpcError(
          grpc.status.FAILED_PRECONDITION,
          'SandboxContainerCreateV2: the emulator does not take ephemeral_secrets (use secret_sources)',
        );
      }
      if (definition.resources?.memoryMb) refuse('SandboxContainerCreateV2', 'a sidecar memory reserve');
      if (definition.ptyInfo?.enabled) refuse('SandboxContainerCreateV2', 'a PTY for a sidecar');
      return createSidecar(state, found, 'SandboxContainerCreateV2', {
        name: request.containerName,
        imageId: definition.imageId,
        args: definition.entrypointArgs ?? [],
        workdir: definition.workdir,
        env: state.env(request.secretSources, definition.secretIds, definition.environmentVariables?.contents),
        volumeMounts: definition.volumeMounts ?? [],
        networkAccess: definition.networkAccess,
      });
    },
    async taskContainerCreate(request) {
      const found = state.runningTask(request.taskId);
      if (request.ptyInfo?.enabled) refuse('TaskContainerCreate', 'a PTY for a sidecar');
      if (request.memoryReserveConsumeMib) refuse('TaskContainerCreate', 'a sidecar memory reserve');
      return createSidecar(state, found, 'TaskContainerCreate', {
        name: request.containerName,
        imageId: request.imageId,
        args: request.args ?? [],
        workdir: request.workdir,
        env: state.env(request.secretSources, request.secretIds, request.env),
        volumeMounts: request.volumeMounts ?? [],
        networkAccess: request.networkAccess,
      });
    },
    async taskContainerGet(request) {
      const found = state.runningTask(request.taskId);
      const match = containerInfos(found, Boolean(request.includeTerminated))
        .filter((info) => info.containerName === request.containerName)
        .at(-1);
      if (!match) throw new RpcError(grpc.status.NOT_FOUND, `Container "${request.containerName}" not found`);
      return { container: match };
    },
    async taskContainerList(request) {
      return { containers: containerInfos(state.runningTask(request.taskId), Boolean(request.includeTerminated)) };
    },
    async taskContainerTerminate(request) {
      const sidecar = sidecarOf(state.runningTask(request.taskId), request.containerId);
      await sidecar.local.terminate();
      await sidecar.ended;
      return {};
    },
    async taskContainerWait(request) {
      const sidecar = sidecarOf(state.runningTask(request.taskId), request.containerId);
      if (sidecar.end) return { result: genericResult(sidecar.end) };
      const waitMs = Math.min(Math.max(Number(request.timeout) || 0, 0) * 1000, maxWaitMs);
      let timer: NodeJS.Timeout | undefined;
      const end = await Promise.race([
        sidecar.ended,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs))),
      ]);
      clearTimeout(timer);
      return end ? { result: genericResult(end) } : {};
    },
  };
}

interface SidecarSpec {
  name: string;
  imageId: string;
  args: string[];
  workdir: string | undefined;
  env: Record<string, string>;
  volumeMounts: Json[];
  networkAccess: Json | null | undefined;
}

async function createSidecar(state: ModalState, found: EmulatedSandbox, call: string, spec: SidecarSpec): Promise<Json> {
  if (found.end) throw new RpcError(grpc.status.NOT_FOUND, `${call}: sandbox ${found.id} has finished`);
  if (!spec.name || spec.name === mainName)
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `${call}: invalid container name "${spec.name}"`);
  if (!spec.imageId) throw new RpcError(grpc.status.INVALID_ARGUMENT, `${call}: a sidecar needs a built image`);
  if (spec.volumeMounts.length > 0) refuse(call, 'volumes in a sidecar');
  const access = spec.networkAccess?.networkAccessType ?? 0;
  if (access === 2) throw new RpcError(grpc.status.INVALID_ARGUMENT, `${call}: a sidecar cannot have its network blocked`);
  const sidecars = sidecarsOf.get(found) ?? new Map<string, Sidecar>();
  sidecarsOf.set(found, sidecars);
  if ([...sidecars.values()].some((sidecar) => sidecar.name === spec.name && !sidecar.end)) {
    throw new RpcError(grpc.status.ALREADY_EXISTS, `${call}: a sidecar named "${spec.name}" is already running in the sandbox`);
  }
  const local = await state.provider
    .create({
      ...state.imageOption(spec.imageId),
      command: spec.args.length > 0 ? spec.args : undefined,
      env: spec.env,
      workdir: spec.workdir || undefined,
      // An allowlist is the local provider's, as for the sandbox itself (modal-network.ts).
      network: access === networkAccessType.allowlist ? allowlistNetwork(spec.networkAccess) : 'allow',
      // It lives as long as the sandbox it belongs to, which ends it (below).
      timeoutMs: localMaxTimeoutMs,
    })
    .catch((error: unknown) => {
      throw asRpcError(error);
    });
  const sidecar: Sidecar = {
    id: `ctr-${randomToken(26)}`,
    name: spec.name,
    local,
    ended: local.wait().then((end) => (sidecar.end = end)),
  };
  sidecars.set(sidecar.id, sidecar);
  const stop = async () => {
    await local.terminate().catch(() => undefined);
  };
  state.closers.add(stop);
  void found.ended.then(stop);
  void sidecar.ended.then(() => state.closers.delete(stop));
  return { containerId: sidecar.id, containerName: sidecar.name };
}

function sidecarOf(found: EmulatedSandbox, containerId: string): Sidecar {
  const sidecar = sidecarsOf.get(found)?.get(containerId);
  if (!sidecar) throw new RpcError(grpc.status.NOT_FOUND, `Container ${containerId} not found in sandbox ${found.id}`);
  return sidecar;
}

function mainId(found: EmulatedSandbox): string {
  return `ctr-main-${found.data.taskId}`;
}

/** The main container, then the sidecars, oldest first. */
function containerInfos(found: EmulatedSandbox, includeTerminated: boolean): Json[] {
  const main = { containerId: mainId(found), containerName: mainName, status: 'running' };
  const sidecars = [...(sidecarsOf.get(found)?.values() ?? [])]
    .filter((sidecar) => includeTerminated || !sidecar.end)
    .map((sidecar) => ({
      containerId: sidecar.id,
      containerName: sidecar.name,
      status: sidecar.end ? 'terminated' : 'running',
      result: sidecar.end ? genericResult(sidecar.end) : undefined,
    }));
  return [main, ...sidecars];
}

function refuse(call: string, what: string): never {
  throw new RpcError(grpc.status.FAILED_PRECONDITION, `${call}: the Modal emulator does not support ${what}`);
}
