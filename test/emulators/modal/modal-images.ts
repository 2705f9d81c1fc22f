/**
 * Handlers for images: a registry tag is a local image with the tag's userland
 * (modal-registry-images.ts), RUN steps run in a builder
 * sandbox that is then snapshotted, and a filesystem snapshot of a running sandbox is an image.
 */
import * as grpc from '@grpc/grpc-js';
import { randomToken } from '../shared/ids.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import { registryImage } from './modal-registry-images.js';
import { containerSandbox } from './modal-sidecars.js';
import type { ModalState } from './modal-state.js';
import { genericStatus } from './modal-wire.js';

export function imageHandlers(
  state: ModalState,
): Pick<RpcHandlers, 'imageGetOrCreate' | 'imageJoinStreaming' | 'imageFromId' | 'taskSnapshotFilesystem'> {
  return {
    async imageGetOrCreate(request) {
      return { imageId: await buildImage(state, request), result: { status: genericStatus.success } };
    },
    async *imageJoinStreaming(request) {
      if (!state.images.has(request.imageId)) throw new RpcError(grpc.status.NOT_FOUND, `Image ${request.imageId} not found`);
      yield { result: { status: genericStatus.success }, entryId: '1', eof: true };
    },
    async imageFromId(request) {
      if (!state.images.has(request.imageId)) throw new RpcError(grpc.status.NOT_FOUND, `Could not find image with ID ${request.imageId}`);
      return { imageId: request.imageId };
    },
    async taskSnapshotFilesystem(request) {
      const found = state.runningTask(request.taskId);
      const snapshot = await containerSandbox(found, request.containerId).snapshot!().catch((error: unknown) => {
        throw asRpcError(error);
      });
      const id = `im-${randomToken(22)}`;
      state.images.set(id, { snapshot });
      return { imageId: id };
    },
  };
}

async function buildImage(state: ModalState, request: Json): Promise<string> {
  const commands: string[] = [...(request.image?.dockerfileCommands ?? [])];
  const from = commands.shift() ?? '';
  let base: string;
  if (from === 'FROM base') {
    base = request.image.baseImages?.[0]?.imageId ?? '';
    if (!state.images.has(base)) throw new RpcError(grpc.status.NOT_FOUND, `Base image ${base} not found`);
  } else if (/^FROM \S+$/.test(from)) {
    base = registryImage(state, from.slice('FROM '.length));
  } else {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator cannot build "${from}"`);
  }
  const steps = commands.map((line) => {
    const match = /^RUN\s+([\s\S]+)$/.exec(line.trim());
    if (!match) throw new RpcError(grpc.status.INVALID_ARGUMENT, `The emulator only builds RUN steps, not "${line}"`);
    return match[1]!;
  });
  if (steps.length === 0) return base;
  const key = JSON.stringify([base, steps, request.image?.secretIds ?? []]);
  const known = state.imageKeys.get(key);
  if (known && !request.forceBuild) return known;
  const builder = await state.provider.create({
    ...state.imageOption(base),
    env: state.env([], request.image?.secretIds ?? []),
    network: 'allow',
    timeoutMs: 30 * 60 * 1000,
  });
  state.building.add(builder);
  try {
    for (const step of steps) {
      const result = await builder.run(['/bin/sh', '-c', step]);
      if (result.exitCode !== 0)
        throw new RpcError(grpc.status.FAILED_PRECONDITION, `RUN ${step} exited ${result.exitCode}: ${result.stderr.slice(-2000)}`);
    }
    const snapshot = await builder.snapshot!();
    const id = `im-${randomToken(22)}`;
    state.images.set(id, { snapshot });
    state.imageKeys.set(key, id);
    return id;
  } finally {
    state.building.delete(builder);
    await builder.terminate();
  }
}
