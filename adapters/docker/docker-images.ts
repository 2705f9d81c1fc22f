/**
 * Images for a create: a reference (pulled when missing), a snapshot (never pulled), or a
 * `{ base, commands }` build, made once per content and shared by concurrent creates.
 */
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import {
  SandboxCapabilityUnsupportedError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  type SandboxEmitter,
} from '../../src/kit/index.js';
import { isEngineNotFound, mapDockerError } from './docker-errors.js';
import type { DockerImagePlan } from './docker-options.js';

export interface ImageContext {
  docker: Docker;
  events: SandboxEmitter;
  /** Builds in progress or done, by tag (a failed build is forgotten). */
  builds: Map<string, Promise<string>>;
}

/** Makes the plan's image present on the engine; resolves with the reference to create from. */
export async function resolveImage(context: ImageContext, image: DockerImagePlan, signal: AbortSignal | undefined): Promise<string> {
  if (image.kind === 'reference') {
    await ensureImage(context.docker, image.reference, true);
    return image.reference;
  }
  if (image.kind === 'snapshot') {
    await ensureImage(context.docker, image.reference, false);
    return image.reference;
  }
  return build(context, image, signal);
}

async function ensureImage(docker: Docker, reference: string, mayPull: boolean): Promise<void> {
  const present = await docker
    .getImage(reference)
    .inspect()
    .then(
      () => true,
      (error: unknown) => {
        if (isEngineNotFound(error)) return false;
        throw mapDockerError(error, { operation: 'image inspect', image: reference });
      },
    );
  if (present) return;
  if (!mayPull)
    throw new SandboxInvalidArgumentError({
      message: `Image ${reference} does not exist on this engine`,
      argument: 'image',
      provider: 'docker',
    });
  try {
    const stream = await docker.pull(reference);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve())));
  } catch (error) {
    throw new SandboxInvalidArgumentError({
      message: `Image ${reference} is not present and could not be pulled: ${(error as Error).message}`,
      argument: 'image',
      provider: 'docker',
      cause: error,
    });
  }
}

/** Label of a built image: the id of the base image it was built on. */
const baseImageLabel = 'dev.sandport.base-image-id';

/** Builds `base` + `RUN` lines once per content and base; later creates reuse the tagged image. */
function build(
  context: ImageContext,
  image: Extract<DockerImagePlan, { kind: 'build' }>,
  signal: AbortSignal | undefined,
): Promise<string> {
  const { docker, events, builds } = context;
  const { tag, dockerfile } = image;
  const pending = builds.get(tag);
  if (pending) return pending;
  const building = (async () => {
    await ensureImage(docker, image.base, true);
    // The tag hashes the Dockerfile's text only; a built image is reused while its base is the
    // image it was built on (a re-imported or re-pulled base under the same name rebuilds it).
    const baseId = (await docker.getImage(image.base).inspect()).Id;
    const built = await docker
      .getImage(tag)
      .inspect()
      .catch(() => undefined);
    if (built?.Config?.Labels?.[baseImageLabel] === baseId) return tag;
    const buildContext = tar.pack();
    buildContext.entry({ name: 'Dockerfile' }, dockerfile);
    buildContext.finalize();
    const log: string[] = [];
    try {
      const stream = (await docker.buildImage(
        buildContext as unknown as NodeJS.ReadableStream,
        { t: tag, rm: true, forcerm: true, labels: { [baseImageLabel]: baseId }, abortSignal: signal } as Docker.ImageBuildOptions,
      )) as NodeJS.ReadableStream;
      await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(
          stream,
          (error, output: Array<{ error?: string }>) => {
            const failed = error ?? output.find((item) => item.error)?.error;
            if (failed) reject(failed instanceof Error ? failed : new Error(String(failed)));
            else resolve();
          },
          (event: { stream?: string; error?: string }) => {
            const line = (event.stream ?? event.error ?? '').trimEnd();
            if (!line) return;
            log.push(line);
            events.emit('image-build', { provider: 'docker', image: tag, line });
          },
        ),
      );
    } catch (error) {
      throw new SandboxProviderError({
        message: `Building the image failed: ${(error as Error).message}\n${log.slice(-15).join('\n')}`,
        provider: 'docker',
        cause: error,
      });
    }
    return tag;
  })();
  builds.set(tag, building);
  building.catch(() => builds.delete(tag));
  return building;
}

/** Throws `SandboxCapabilityUnsupportedError` unless the engine has the OCI runtime `runtime`. */
export async function checkRuntime(docker: Docker, runtime: string): Promise<void> {
  const info = (await docker.info().catch((error: unknown) => {
    throw mapDockerError(error, { operation: 'info' });
  })) as { Runtimes?: Record<string, unknown> };
  if (!info.Runtimes || !(runtime in info.Runtimes)) {
    throw new SandboxCapabilityUnsupportedError({
      message: `The engine has no runtime "${runtime}" (it has: ${Object.keys(info.Runtimes ?? {}).join(', ')})`,
      capability: 'providerOptions.docker.runtime',
      provider: 'docker',
    });
  }
}
