import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import {
  ExecFiles,
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  fromNodeReadable,
  readBytes,
  type ExecCapable,
  type FileInfo,
  type SignalOptions,
} from '../../src/kit/index.js';
import { mapDockerError } from './docker-errors.js';

const maxLinkHops = 16;

/**
 * The archive API sees the container's root filesystem and its volumes, but not procfs, sysfs or
 * tmpfs mounts (/dev/shm, sandport's own state): it reports them missing, and writes there land
 * in the layer underneath. Those paths go through exec instead.
 */
const outsideArchiveView = /^\/(proc|sys|dev|\.sandport)(\/|$)/;

/**
 * Files through the engine's archive endpoints (tar in, tar out), which resolve paths inside the
 * container's root, symlinks included. Listing, mkdir and remove go through exec (ExecFiles).
 */
export class DockerFiles extends ExecFiles {
  constructor(
    private readonly owner: ExecCapable & { touch(): void; assertRunning(): void },
    private readonly container: Docker.Container,
    workdir: string,
  ) {
    super(owner, workdir, 'docker');
  }

  /** Archive calls bypass exec, so they check liveness and count as activity themselves. */
  private enter(signal: AbortSignal | undefined): void {
    signal?.throwIfAborted();
    this.owner.assertRunning();
    this.owner.touch();
  }

  override async read(path: string, options: SignalOptions = {}): Promise<Uint8Array> {
    return readBytes(await this.readStream(path, options));
  }

  override async readStream(path: string, options: SignalOptions = {}): Promise<ReadableStream<Uint8Array>> {
    let target = this.path(path);
    this.enter(options.signal);
    for (let hop = 0; hop < maxLinkHops; hop++) {
      // Also after a hop: a link may point into procfs or a tmpfs.
      if (outsideArchiveView.test(target)) return super.readStream(target, options);
      const archive = (await this.container.getArchive({ path: target, abortSignal: options.signal } as never).catch((error: unknown) => {
        throw mapDockerError(error, { operation: 'read', path });
      })) as unknown as NodeJS.ReadableStream;
      const entry = await firstEntry(archive);
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
      return fromNodeReadable(entry.stream);
    }
    throw new SandboxInvalidArgumentError({ message: `Too many levels of symbolic links at ${path}`, argument: 'path', provider: 'docker' });
  }

  override async write(
    path: string,
    data: string | Uint8Array | ReadableStream<Uint8Array>,
    options: SignalOptions & { mode?: number } = {},
  ): Promise<void> {
    const target = this.path(path);
    this.checkMode(options.mode);
    this.enter(options.signal);
    // A tar entry needs its size up front; a stream of unknown length goes through `cat` in an
    // exec instead, which streams with backpressure and spools nothing on the host.
    if (!(typeof data === 'string' || data instanceof Uint8Array) || outsideArchiveView.test(target)) return super.write(path, data, options);
    const existing = await this.info(target).catch(() => undefined);
    if (existing?.type === 'directory') {
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${path}: it is a directory`, argument: 'path', provider: 'docker' });
    }
    // The archive API replaces a symlink with a file; writing through the link, as a command
    // would (and as the local provider does), needs the exec path.
    if (existing?.type === 'symlink') return super.write(path, data, options);
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const directory = posix.dirname(target);
    const put = () => this.putFile(directory, posix.basename(target), bytes, options.mode ?? 0o644, options.signal);
    try {
      await put();
    } catch (error) {
      const mapped = mapDockerError(error, { operation: 'write', path: directory });
      if (mapped.code !== 'file_not_found') throw mapped;
      await this.mkdir(directory, options);
      await put().catch((retryError: unknown) => {
        throw mapDockerError(retryError, { operation: 'write', path });
      });
    }
  }

  override async stat(path: string, options: SignalOptions = {}): Promise<FileInfo> {
    this.enter(options.signal);
    const target = this.path(path);
    if (outsideArchiveView.test(target)) return super.stat(path, options);
    return this.info(target);
  }

  override async exists(path: string, options: SignalOptions = {}): Promise<boolean> {
    return this.stat(path, options).then(
      () => true,
      (error: unknown) => {
        if ((error as { code?: string }).code === 'file_not_found') return false;
        throw error;
      },
    );
  }

  private async putFile(directory: string, name: string, bytes: Buffer, mode: number, signal?: AbortSignal): Promise<void> {
    const pack = tar.pack();
    pack.entry({ name, size: bytes.length, mode, uid: 0, gid: 0, mtime: new Date() }, bytes);
    pack.finalize();
    await this.container.putArchive(pack as never, { path: directory, abortSignal: signal } as never);
  }

  /** Stat through the engine; symlinks are reported as links (lstat). */
  private async info(target: string): Promise<FileInfo> {
    const response = (await this.container.infoArchive({ path: target } as never).catch((error: unknown) => {
      // A HEAD request has no body to tell a missing path from a missing container; the
      // container is known to run (enter() checked), so a 404 here is the path.
      if ((error as { statusCode?: number }).statusCode === 404) {
        throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${target}`, path: target, provider: 'docker', cause: error });
      }
      throw mapDockerError(error, { operation: 'stat', path: target });
    })) as unknown as { headers?: Record<string, string>; resume?: () => void };
    response.resume?.();
    const header = response.headers?.['x-docker-container-path-stat'];
    if (!header) throw mapDockerError(new Error('the engine returned no path stat'), { operation: 'stat', path: target });
    const stat = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { name: string; size: number; mode: number; mtime: string; linkTarget: string };
    // Go's os.FileMode: type bits above the permission bits.
    const isDirectory = (stat.mode & 0x80000000) !== 0;
    const isSymlink = (stat.mode & 0x08000000) !== 0;
    return {
      name: stat.name,
      path: target,
      type: isDirectory ? 'directory' : isSymlink ? 'symlink' : (stat.mode & 0x8f000000) === 0 ? 'file' : 'other',
      size: stat.size,
      mode: stat.mode & 0o7777,
      modifiedAt: Date.parse(stat.mtime),
      ...(isSymlink ? { linkTarget: stat.linkTarget } : {}),
    };
  }
}

/** Reads the first entry of a tar stream; the caller consumes its `stream` or calls `discard`. */
function firstEntry(archive: NodeJS.ReadableStream): Promise<{ header: tar.Header; stream: Readable; discard: () => void }> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let seen = false;
    extract.on('entry', (header, stream, next) => {
      if (seen) {
        stream.resume();
        return next();
      }
      seen = true;
      stream.on('end', () => next());
      resolve({
        header,
        stream: stream as unknown as Readable,
        discard: () => {
          stream.resume();
          extract.destroy();
          (archive as unknown as Readable).destroy?.();
        },
      });
    });
    extract.on('error', reject);
    extract.on('finish', () => {
      if (!seen) reject(new Error('empty archive from the engine'));
    });
    archive.on('error', reject);
    archive.pipe(extract);
  });
}
