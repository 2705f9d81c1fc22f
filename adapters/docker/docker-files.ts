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
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import {
  ExecFiles,
  SandboxInvalidArgumentError,
  fromNodeReadable,
  type ExecCapable,
  readText,
  type FileInfo,
  type NativeFiles,
  type SandboxProcess,
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

/** The largest part of a streamed write held in memory (see `#putStream`). */
const partBytes = 4 * 1024 * 1024;

/** Part files sort in upload order. */
const partName = (index: number) => String(index).padStart(8, '0');

/**
 * Appends the parts of a streamed write to the file ($1) from the scratch directory ($2) as they
 * arrive: part n is whole once part n+1 (or `end`) exists, since the engine extracts in order.
 */
const appendParts = [
  'target=$1; dir=$2; n=1',
  'while :; do',
  '  cur=$dir/$(printf %08d "$n"); next=$dir/$(printf %08d $((n + 1)))',
  '  if [ -e "$next" ] || [ -e "$dir/end" ]; then',
  '    [ -e "$cur" ] || break',
  '    cat -- "$cur" >> "$target" || exit 1',
  '    rm -f -- "$cur"; n=$((n + 1)); continue',
  '  fi',
  '  sleep 0.01 2>/dev/null || sleep 1',
  'done',
  'rm -rf -- "$dir"',
].join('\n');

/** Reads a stream in parts of at most `limit` bytes (whole chunks, split at the limit). */
class PartReader {
  #carry: Uint8Array | undefined;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next part; `done`: the stream ended with it. */
  async next(limit: number): Promise<{ chunks: Uint8Array[]; size: number; done: boolean }> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    while (size < limit) {
      const chunk = this.#carry ?? (await this.reader.read()).value;
      this.#carry = undefined;
      if (chunk === undefined) return { chunks, size, done: true };
      if (size + chunk.byteLength > limit) {
        // What does not fit opens the next part.
        chunks.push(chunk.subarray(0, limit - size));
        this.#carry = chunk.subarray(limit - size);
        return { chunks, size: limit, done: false };
      }
      chunks.push(chunk);
      size += chunk.byteLength;
    }
    return { chunks, size, done: false };
  }
}

/** Writes one tar entry, waiting for the pack to drain between chunks (backpressure). */
async function writeEntry(pack: tar.Pack, header: Partial<tar.Header> & Pick<tar.Header, 'name'>, chunks: Uint8Array[]): Promise<void> {
  if (pack.destroyed) return;
  const entry = pack.entry(header);
  // Settles when the entry is written or the pack is destroyed (the caller checks why).
  const done = new Promise<void>((resolve) => {
    entry.on('finish', resolve);
    entry.on('close', resolve);
    entry.on('error', () => resolve());
  });
  for (const chunk of chunks) {
    if (entry.destroyed) break;
    if (!entry.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
      await new Promise<void>((resolve) => {
        entry.once('drain', resolve);
        entry.once('close', resolve);
      });
    }
  }
  entry.end(undefined);
  await done;
}

/** Go's os.FileMode type bits (above the permission bits), as `X-Docker-Container-Path-Stat` carries them. */
const goMode = { directory: 0x80000000, symlink: 0x08000000, anyType: 0x8f000000 } as const;

export class DockerFiles implements NativeFiles {
  readonly #container: Docker.Container;
  readonly #exec: ExecFiles;

  readonly #execAsRoot: (argv: string[], signal: AbortSignal | undefined) => Promise<SandboxProcess>;

  /** `execAsRoot`: an exec as uid 0, for the appender of streamed writes (its parts are root's, like every archive write). */
  constructor(
    sandbox: ExecCapable,
    container: Docker.Container,
    execAsRoot: (argv: string[], signal: AbortSignal | undefined) => Promise<SandboxProcess>,
  ) {
    this.#execAsRoot = execAsRoot;
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
    // The archive API replaces a symlink with a file; writing through the link, as a command
    // would (and as the local provider does), needs the exec path.
    if (existing?.type === 'symlink') return this.#exec.write(path, data, options);
    const directory = posix.dirname(path);
    if (data instanceof ReadableStream) {
      // A stream cannot be replayed after a missing directory: make sure it exists first.
      if (!existing && !(await this.#info(directory).catch(() => undefined))) await this.#exec.mkdir(directory, options);
      return this.#putStream(directory, posix.basename(path), data, options.mode ?? 0o644, options.signal);
    }
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
      // An entry of a destroyed pack errors too: nobody else listens, so it would be uncaught.
      pack
        .entry(
          { name, size: bytes.byteLength, mode, uid: 0, gid: 0, mtime: new Date() },
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        )
        .on('error', () => undefined);
      pack.finalize();
      await this.#container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: directory });
    } finally {
      stop();
    }
  }

  /**
   * A stream of unknown length through the archive API (several times faster than an exec's
   * stdin): a tar entry needs its size up front, so the stream is cut into parts of at most
   * `partBytes`, each sized once it is read. The first part is the file itself; later parts land
   * in a scratch directory beside it, in the same request, and a command in the sandbox appends
   * each one as soon as the next begins (extraction is in order), so appending overlaps the
   * upload. That command starts before the upload: the engine starts no exec while it extracts.
   * Memory holds one part; the tar stream is backpressured down to the engine.
   */
  async #putStream(
    directory: string,
    name: string,
    data: ReadableStream<Uint8Array>,
    mode: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const target = posix.join(directory, name);
    const scratchName = `.${name}.sandport-${randomBytes(6).toString('hex')}`;
    const scratch = posix.join(directory, scratchName);
    const reader = data.getReader();
    const source = new PartReader(reader);
    let appender: SandboxProcess | undefined;
    let pack: tar.Pack | undefined;
    const stop = onAbort(signal, () => {
      pack?.destroy(new Error('aborted'));
      void reader.cancel().catch(() => undefined);
    });
    try {
      let part = await source.next(partBytes);
      signal?.throwIfAborted();
      if (!part.done) {
        appender = await this.#execAsRoot(['/bin/sh', '-c', appendParts, 'append-parts', target, scratch], signal);
        void appender.stdin.close().catch(() => undefined);
        void appender.stdout.cancel().catch(() => undefined);
      }
      const tarball = tar.pack();
      pack = tarball;
      tarball.on('error', () => undefined);
      const put = this.#container.putArchive(tarball as unknown as NodeJS.ReadableStream, { path: directory });
      // The request failing (the container gone, an abort) stops the feeding at once: the source
      // and the pack end, so no wait below outlives it. (No race with a long-lived promise: each
      // race would keep its part's chunks reachable until the upload ends.)
      let putFailure: { error: unknown } | undefined;
      put.catch((error: unknown) => {
        putFailure = { error };
        void reader.cancel().catch(() => undefined);
        tarball.destroy();
      });
      const check = () => {
        if (putFailure) throw putFailure.error;
        // A cancelled source ends early: never write its truncation as the file's end.
        signal?.throwIfAborted();
      };
      const header = (entry: string, size: number, entryMode: number) => ({
        name: entry,
        size,
        mode: entryMode,
        uid: 0,
        gid: 0,
        mtime: new Date(),
      });
      await writeEntry(tarball, header(name, part.size, mode), part.chunks);
      check();
      if (appender) tarball.entry({ name: scratchName, type: 'directory', mode: 0o700, uid: 0, gid: 0 }).on('error', () => undefined);
      for (let index = 1; !part.done; index++) {
        part = await source.next(partBytes);
        check();
        if (part.size === 0) break;
        await writeEntry(tarball, header(`${scratchName}/${partName(index)}`, part.size, 0o600), part.chunks);
        check();
      }
      if (appender) tarball.entry(header(`${scratchName}/end`, 0, 0o600), '').on('error', () => undefined);
      tarball.finalize();
      await put;
    } catch (error) {
      void reader.cancel().catch(() => undefined);
      pack?.destroy();
      if (appender) {
        // The scratch directory may exist (the request got far enough): remove it, in the background.
        void appender
          .kill()
          .then(
            async () => {
              const remover = await this.#execAsRoot(['rm', '-rf', '--', scratch], undefined);
              void remover.stdin.close().catch(() => undefined);
              void remover.stdout.cancel().catch(() => undefined);
              void remover.stderr.cancel().catch(() => undefined);
              await remover.wait();
            },
            () => undefined,
          )
          .catch(() => undefined);
      }
      throw error;
    } finally {
      stop();
    }
    if (!appender) return;
    const [exit, stderr] = await Promise.all([appender.wait(), readText(appender.stderr)]);
    if (exit.exitCode !== 0)
      throw mapDockerError(new Error(`appending the parts of ${target} failed: ${stderr.trim()}`), { operation: 'write', path: target });
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
