/**
 * Message codecs for the emulator, from our own protocol subset (modal-wire.proto), and the
 * table of RPCs it serves: gRPC path, message types and streaming shape.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';

// Every `modal-wire*.proto` beside this file: one file per area, all in one package.
const root = protobuf.loadSync(
  readdirSync(import.meta.dirname)
    .filter((name) => name.startsWith('modal-wire') && name.endsWith('.proto'))
    .sort()
    .map((name) => join(import.meta.dirname, name)),
);

/** Encoder/decoder of one message type, with plain camelCase objects on our side. */
export interface Codec {
  decode(buffer: Buffer): Record<string, any>;
  encode(value: Record<string, unknown>): Buffer;
}

function codec(name: string): Codec {
  const type = root.lookupType(`sandport.modal_emulator.${name}`);
  return {
    decode: (buffer) => type.toObject(type.decode(buffer), { longs: Number, defaults: true, arrays: true, objects: true }),
    encode: (value) => Buffer.from(type.encode(type.fromObject(value)).finish()),
  };
}

export type RpcKind = 'unary' | 'serverStream' | 'clientStream';

export interface RpcSpec {
  path: string;
  kind: RpcKind;
  request: Codec;
  response: Codec;
}

const controlPlane = 'modal.client.ModalClient';
const commandRouter = 'modal.task_command_router.TaskCommandRouter';

function rpc(service: string, method: string, request: string, response: string, kind: RpcKind = 'unary'): RpcSpec {
  return { path: `/${service}/${method}`, kind, request: codec(request), response: codec(response) };
}

/** Every RPC the emulator answers. Anything else is UNIMPLEMENTED (grpc-js's default), never a hang. */
export const rpcs = {
  authTokenGet: rpc(controlPlane, 'AuthTokenGet', 'Empty', 'AuthTokenGetResponse'),
  appGetOrCreate: rpc(controlPlane, 'AppGetOrCreate', 'AppGetOrCreateRequest', 'AppGetOrCreateResponse'),
  environmentGetOrCreate: rpc(controlPlane, 'EnvironmentGetOrCreate', 'EnvironmentGetOrCreateRequest', 'EnvironmentGetOrCreateResponse'),
  imageGetOrCreate: rpc(controlPlane, 'ImageGetOrCreate', 'ImageGetOrCreateRequest', 'ImageGetOrCreateResponse'),
  imageJoinStreaming: rpc(controlPlane, 'ImageJoinStreaming', 'ImageJoinStreamingRequest', 'ImageJoinStreamingResponse', 'serverStream'),
  imageFromId: rpc(controlPlane, 'ImageFromId', 'ImageFromIdRequest', 'ImageFromIdResponse'),
  secretGetOrCreate: rpc(controlPlane, 'SecretGetOrCreate', 'SecretGetOrCreateRequest', 'SecretGetOrCreateResponse'),
  // Volumes and their views (modal-volumes.ts, messages in modal-wire-volumes.proto).
  volumeGetOrCreate: rpc(controlPlane, 'VolumeGetOrCreate', 'VolumeGetOrCreateFullRequest', 'VolumeGetOrCreateFullResponse'),
  volumeHeartbeat: rpc(controlPlane, 'VolumeHeartbeat', 'VolumeIdRequest', 'Empty'),
  volumeDelete: rpc(controlPlane, 'VolumeDelete', 'VolumeIdRequest', 'Empty'),
  volumeCommit: rpc(controlPlane, 'VolumeCommit', 'VolumeCommitRequest', 'VolumeCommitResponse'),
  volumeReload: rpc(controlPlane, 'VolumeReload', 'VolumeIdRequest', 'Empty'),
  taskReloadVolumes: rpc(commandRouter, 'TaskReloadVolumes', 'TaskReloadVolumesRequest', 'Empty'),
  // The V1 create, which the SDK uses for GPU sandboxes; the emulator refuses it (no GPUs here).
  sandboxCreate: rpc(controlPlane, 'SandboxCreate', 'SandboxCreateV2Request', 'SandboxCreateV2Response'),
  sandboxCreateV2: rpc(controlPlane, 'SandboxCreateV2', 'SandboxCreateV2Request', 'SandboxCreateV2Response'),
  sandboxGetTaskIdV2: rpc(controlPlane, 'SandboxGetTaskIdV2', 'SandboxIdRequest', 'SandboxGetTaskIdResponse'),
  sandboxGetCommandRouterAccess: rpc(
    controlPlane,
    'SandboxGetCommandRouterAccess',
    'SandboxIdRequest',
    'SandboxGetCommandRouterAccessResponse',
  ),
  sandboxWaitV2: rpc(controlPlane, 'SandboxWaitV2', 'SandboxIdRequest', 'SandboxWaitResponse'),
  sandboxTerminateV2: rpc(controlPlane, 'SandboxTerminateV2', 'SandboxIdRequest', 'SandboxTerminateResponse'),
  sandboxTagsSetV2: rpc(controlPlane, 'SandboxTagsSetV2', 'SandboxTagsSetRequest', 'Empty'),
  sandboxTagsGetV2: rpc(controlPlane, 'SandboxTagsGetV2', 'SandboxIdRequest', 'SandboxTagsGetResponse'),
  sandboxGetTunnelsV2: rpc(controlPlane, 'SandboxGetTunnelsV2', 'SandboxIdRequest', 'SandboxGetTunnelsResponse'),
  sandboxGetFromNameV2: rpc(controlPlane, 'SandboxGetFromNameV2', 'SandboxGetFromNameRequest', 'SandboxGetFromNameResponse'),
  // The SDK falls back to the V1 lookup when the V2 one finds nothing.
  sandboxGetFromName: rpc(controlPlane, 'SandboxGetFromName', 'SandboxGetFromNameRequest', 'SandboxGetFromNameResponse'),
  sandboxListV2: rpc(controlPlane, 'SandboxListV2', 'SandboxListRequest', 'SandboxListResponse'),

  taskExecStart: rpc(commandRouter, 'TaskExecStart', 'TaskExecStartRequest', 'Empty'),
  taskExecStdioRead: rpc(commandRouter, 'TaskExecStdioRead', 'TaskExecStdioReadRequest', 'TaskExecStdioReadResponse', 'serverStream'),
  taskExecStdinWrite: rpc(commandRouter, 'TaskExecStdinWrite', 'TaskExecStdinWriteRequest', 'Empty'),
  taskExecStdinWriteStream: rpc(commandRouter, 'TaskExecStdinWriteStream', 'TaskExecStdinWriteStreamRequest', 'Empty', 'clientStream'),
  taskExecStdinStatus: rpc(commandRouter, 'TaskExecStdinStatus', 'TaskExecIdRequest', 'TaskExecStdinStatusResponse'),
  taskExecPoll: rpc(commandRouter, 'TaskExecPoll', 'TaskExecIdRequest', 'TaskExecExitResponse'),
  taskExecWait: rpc(commandRouter, 'TaskExecWait', 'TaskExecIdRequest', 'TaskExecExitResponse'),
  taskSnapshotFilesystem: rpc(commandRouter, 'TaskSnapshotFilesystem', 'TaskSnapshotFilesystemRequest', 'TaskSnapshotFilesystemResponse'),
  // The live outbound policy (modal-network.ts, message in modal-wire-network.proto).
  taskSetNetworkAccess: rpc(commandRouter, 'TaskSetNetworkAccess', 'TaskSetNetworkAccessRequest', 'Empty'),

  // Platform calls (modal-wire-platform.proto): probes, connect tokens, mounts, sidecars.
  sandboxWaitUntilReady: rpc(commandRouter, 'SandboxWaitUntilReady', 'SandboxWaitUntilReadyRequest', 'SandboxWaitUntilReadyResponse'),
  sandboxCreateConnectToken: rpc(
    controlPlane,
    'SandboxCreateConnectToken',
    'SandboxCreateConnectTokenRequest',
    'SandboxCreateConnectTokenResponse',
  ),
  sandboxCreateConnectTokenV2: rpc(
    controlPlane,
    'SandboxCreateConnectTokenV2',
    'SandboxCreateConnectTokenRequest',
    'SandboxCreateConnectTokenResponse',
  ),
  taskMountDirectory: rpc(commandRouter, 'TaskMountDirectory', 'TaskMountDirectoryRequest', 'Empty'),
  taskUnmountDirectory: rpc(commandRouter, 'TaskUnmountDirectory', 'TaskUnmountDirectoryRequest', 'Empty'),
  taskSnapshotDirectory: rpc(commandRouter, 'TaskSnapshotDirectory', 'TaskSnapshotDirectoryRequest', 'TaskSnapshotDirectoryResponse'),
  sandboxContainerCreateV2: rpc(controlPlane, 'SandboxContainerCreateV2', 'SandboxContainerCreateV2Request', 'TaskContainerCreateResponse'),
  taskContainerCreate: rpc(commandRouter, 'TaskContainerCreate', 'TaskContainerCreateRequest', 'TaskContainerCreateResponse'),
  taskContainerGet: rpc(commandRouter, 'TaskContainerGet', 'TaskContainerGetRequest', 'TaskContainerGetResponse'),
  taskContainerList: rpc(commandRouter, 'TaskContainerList', 'TaskContainerListRequest', 'TaskContainerListResponse'),
  taskContainerTerminate: rpc(commandRouter, 'TaskContainerTerminate', 'TaskContainerTerminateRequest', 'Empty'),
  taskContainerWait: rpc(commandRouter, 'TaskContainerWait', 'TaskContainerWaitRequest', 'TaskContainerWaitResponse'),
  // The entrypoint's stdio of a V2 sandbox (modal-stdio.ts).
  sandboxStdioReadV2: rpc(commandRouter, 'SandboxStdioReadV2', 'SandboxStdioReadV2Request', 'SandboxStdioReadV2Response', 'serverStream'),
  sandboxStdinWriteV2: rpc(commandRouter, 'SandboxStdinWriteV2', 'SandboxStdinWriteV2Request', 'Empty'),
} as const;

export type RpcName = keyof typeof rpcs;

/** GenericResult.status values. */
export const genericStatus = { unspecified: 0, success: 1, failure: 2, terminated: 3, timeout: 4, idleTimeout: 7 } as const;
