/**
 * The native half of the Docker files API (the kit's `defineFiles` validates, checks liveness,
 * races the signal and maps late failures): the engine's archive endpoints (tar in, tar out),
 * which resolve paths inside the container's root, symlinks included. Listing, mkdir and remove,
 * streams of unknown length and paths the archive API cannot see go through exec (`ExecFiles`).
 *
 * Aborts: the engine's request is never handed the signal (docker-modem would then destroy a
 * response nobody listens to, an uncaught `AbortError`). Instead the tar stream we feed or read
 * is destroyed on abort and every error after that is swallowed here; the wrapper has already
 * rejected with `signal.reason`.
 */
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import {
  ExecFiles,
  SandboxInvalidArgumentError,
  fromNodeReadable,
  type ExecCapable,
  type FileInfo,
  type NativeFiles,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';
import { isFileNotFound, mapDockerError } from './docker-errors.js';

const maxLinkHops = 16;

/**
 * The archive API sees the container's root filesystem and its volumes, but not procfs, sysfs or
 * tmpfs mounts (/dev/shm, sandport's own state): it reports them missing, and writes there land
 * in the layer underneath. Those paths go through exec instead.
 */
const outsideArchiveView = /^\/(proc|sys|dev|\.sandport)(\/|$)/;

/** Calls `onAbort` once when `signal` aborts; returns the function that stops listening. */
function onAbort(signal: AbortSignal | undefined, onAbort: () => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    onAbort();
    return () => undefined;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** Go's os.FileMode type bits (above the permission bits), as `X-Docker-Container-Path-Stat` carries them. */
const goMode = { directory: 0x80000000, symlink: 0x08000000, anyType: 0x8f000000 } as const;

export class DockerFiles implements NativeFiles {
  readonly #container: Docker.Container;
  readonly #exec: ExecFiles;

  constructor(sandbox: ExecCapable, container: Docker.Container) {
    this.#container = container;
    this.#exec = new ExecFiles(sandbox, '/', 'docker');
  }

  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    let target = path;
    for (let hop = 0; hop < maxLinkHops; hop++) {
      // Also after a hop: a link may point into procfs or a tmpfs.
      if (outsideArchiveView.test(target)) return this.#exec.readStream(target, options);
      const entry = await this.#firstEntry(target, path, options.signal);
      if (entry.header.type === 'symlink') {
        entry.discard();
        const link = entry.header.linkname ?? '';
        target = link.startsWith('/') ? link : posix.join(posix.dirname(target), link);
        continue;
      }
      if (entry.header.type === 'directory') {
        entry.discard();
        throw new SandboxInvalidArgumentError({ message: `Cannot read ${path}: it is a directory`, argument: 'path', provider: 'docker' });
      }
      return entry.stream;
    }
    throw new SandboxInvalidArgumentError({
      message: `Too many levels of symbolic links at ${path}`,
      argument: 'path',
      provider: 'docker',
    });
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    if (outsideArchiveView.test(path)) return this.#exec.write(path, data, options);
    const existing = await this.#info(path).catch(() => undefined);
    if (existing?.type === 'directory') {
      if (data instanceof ReadableStream) void data.cancel().catch(() => undefined);
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${path}: it is a directory`, argument: 'path', provider: 'docker' });
    }
    // A tar entry needs its size up front; a stream of unknown length goes through `cat` in an
    // exec instead, which streams with backpressure and spools nothing on the host. The archive
    // API also replaces a symlink with a file; writing through the link, as a command would (and
    // as the local provider does), needs the exec path too.
    if (data instanceof ReadableStream || existing?.type === 'symlink') return this.#exec.write(path, data, options);
    const directory = posix.dirname(path);
    const put = () => this.#putFile(directory, posix.basename(path), data, options.mode ?? 0o644, options.signal);
    try {
      await put();
    } catch (error) {
      const mapped = mapDockerError(error, { operation: 'write', path: directory });
      if (!isFileNotFound(mapped) || options.signal?.aborted) throw mapped;
      await this.#exec.mkdir(directory, options);
      await put().catch((retryError: unknown) => {
        throw mapDockerError(retryError, { operation: 'write', path });
      });
    }
  }

  async stat(path: string, options: SignalOptions): Promise<FileInfo> {
    if (outsideArchiveView.test(path)) return this.#exec.stat(path, options);
    return this.#info(path);
  }

  async exists(path: string, options: SignalOptions): Promise<boolean> {
    return this.stat(path, options).then(
      () => true,
      (error: unknown) => {
        if (isFileNotFound(error)) return false;
        throw error;
      },
    );
  }

  /** One tar entry into `directory`; the pack is destroyed on abort (the request then fails, quietly). */
  async #putFile(directory: string, name: string, bytes: Uint8Array, mode: number, signal: AbortSignal | undefined): Promise<void> {
    const pack = tar.pack();
    pack.on('error', () => undefined);
    const stop = onAbort(signal, () => pack.destroy(new Error('aborted')));
    try {
      pack.entry(
        { name, size: bytes.byteLength, mode, uid: 0, gid: 0, mtime: new Date() },
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      );
      pack.finalize();
      await this.#container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: directory });
    } finally {
      stop();
    }
  }

  /** Stat through the engine; symlinks are reported as links (lstat). */
  async #info(target: string): Promise<FileInfo> {
    const response = (await this.#container.infoArchive({ path: target }).catch((error: unknown) => {
      // The container is known to run (the files wrapper checked), so a 404 here is the path.
      throw mapDockerError(error, { operation: 'stat', path: target, pathOnly: true });
    })) as unknown as { headers?: Record<string, string>; resume?: () => void };
    response.resume?.();
    const header = response.headers?.['x-docker-container-path-stat'];
    if (!header) throw mapDockerError(new Error('the engine returned no path stat'), { operation: 'stat', path: target });
    const stat = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
      name: string;
      size: number;
      mode: number;
      mtime: string;
      linkTarget: string;
    };
    const isDirectory = (stat.mode & goMode.directory) !== 0;
    const isSymlink = (stat.mode & goMode.symlink) !== 0;
    return {
      name: stat.name,
      path: target,
      type: isDirectory ? 'directory' : isSymlink ? 'symlink' : (stat.mode & goMode.anyType) === 0 ? 'file' : 'other',
      size: stat.size,
      mode: stat.mode & 0o7777,
      modifiedAt: Date.parse(stat.mtime),
      ...(isSymlink ? { linkTarget: stat.linkTarget } : {}),
    };
  }

  /**
   * The first entry of the archive of `target`: its header, and its content as a Web stream with
   * backpressure down to the engine's response. An abort destroys the response and the parser.
   */
  async #firstEntry(
    target: string,
    path: string,
    signal: AbortSignal | undefined,
  ): Promise<{ header: tar.Header; stream: ReadableStream<Uint8Array>; discard: () => void }> {
    const archive = (await this.#container.getArchive({ path: target }).catch((error: unknown) => {
      throw mapDockerError(error, { operation: 'read', path });
    })) as unknown as Readable;
    const extract = tar.extract();
    let content: Readable | undefined;
    const destroy = (reason?: unknown) => {
      // The reader of the content learns why: an abort ends its stream with `signal.reason`.
      content?.destroy(reason as Error | undefined);
      extract.destroy();
      archive.destroy();
    };
    archive.on('error', () => undefined);
    extract.on('error', () => undefined);
    const stop = onAbort(signal, () => destroy(signal!.reason));
    return new Promise((resolve, reject) => {
      let seen = false;
      const fail = (error: unknown) => {
        stop();
        destroy();
        reject(signal?.aborted ? signal.reason : mapDockerError(error, { operation: 'read', path }));
      };
      extract.on('entry', (header, stream, next) => {
        if (seen) {
          stream.resume();
          return next();
        }
        seen = true;
        content = stream as unknown as Readable;
        stream.on('end', () => {
          stop();
          next();
        });
        resolve({
          header,
          stream: fromNodeReadable(stream as unknown as Readable),
          discard: () => {
            stop();
            content = undefined;
            stream.resume();
            destroy();
          },
        });
      });
      extract.once('error', (error) => (seen ? undefined : fail(error)));
      archive.once('error', (error) => (seen ? undefined : fail(error)));
      extract.once('finish', () => {
        if (!seen) fail(new Error('empty archive from the engine'));
      });
      extract.once('close', () => {
        if (!seen) fail(signal?.reason ?? new Error('the archive ended early'));
      });
      archive.pipe(extract);
    });
  }
}
