/**
 * Files through Fly's buffered exec, one exec per operation, in chunks: a read is a size check and
 * then base64 slices pulled as the stream is read; a write is base64 slices appended to a part file
 * that is moved into place at the end (so a half-written file is never seen at the path). Each
 * slice is `flyChunkBytes`, well inside Fly's request size limits; bytes are exact both ways.
 */
import {
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  checkFileMode,
  checkSandboxPath,
  fileExit,
  fileScripts,
  parseEntries,
  readBytes,
  type FileInfo,
  type SandboxFiles,
  type SignalOptions,
  type WriteFileData,
} from '../../src/kit/index.js';
import type { FlyExecResponse } from './fly-client.js';
import { flyChunkBytes, type FlyExecHost } from './fly-process.js';
import { flyAbandonWriteScript, flyFileSizeScript, flyReadChunkScript, flyWriteChunkScript } from './fly-scripts.js';

const provider = 'fly';
const fileTimeoutSeconds = 120;

export class FlyFiles implements SandboxFiles {
  constructor(
    private readonly host: FlyExecHost,
    private readonly workdir: string,
  ) {}

  async read(path: string, options: SignalOptions = {}): Promise<Uint8Array> {
    return readBytes(await this.readStream(path, options));
  }

  async readText(path: string, options: SignalOptions = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, options));
  }

  async readStream(path: string, options: SignalOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const target = this.path(path);
    const sized = await this.sh(flyFileSizeScript, [target], 'files.read', options.signal);
    if (sized.exitCode !== 0) this.fail(sized, target, 'read');
    const size = Number(sized.stdout.trim());
    let offset = 0;
    const host = this;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (offset >= size) return controller.close();
          const answer = await host.sh(
            flyReadChunkScript,
            [target, String(offset), String(Math.min(flyChunkBytes, size - offset))],
            'files.read',
          );
          if (answer.exitCode !== 0) {
            controller.error(new SandboxProviderError({ message: `Reading ${target} failed (exit ${answer.exitCode})`, provider }));
            return;
          }
          const bytes = new Uint8Array(Buffer.from(answer.stdout, 'base64'));
          // The file shrank under the read: what is there is all there is.
          if (bytes.byteLength === 0) return controller.close();
          offset += bytes.byteLength;
          controller.enqueue(bytes);
        },
      },
      { highWaterMark: 0 },
    );
  }

  async write(path: string, data: WriteFileData, options: SignalOptions & { mode?: number } = {}): Promise<void> {
    const target = this.path(path);
    checkFileMode(options.mode, provider);
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const chunks = sliced(data);
    let first = true;
    let pending: Uint8Array | undefined;
    try {
      // One slice of lookahead: the last one is sent as `last` (or `only`), which moves the file into place.
      for await (const chunk of chunks) {
        if (pending !== undefined) {
          await this.writeChunk(target, pending, first ? 'first' : 'next', mode, options.signal);
          first = false;
        }
        pending = chunk;
      }
      await this.writeChunk(target, pending ?? new Uint8Array(0), first ? 'only' : 'last', mode, options.signal);
    } catch (error) {
      if (!first) await this.sh(flyAbandonWriteScript, [target], 'files.write').catch(() => undefined);
      throw error;
    }
  }

  private async writeChunk(target: string, chunk: Uint8Array, step: string, mode: string, signal: AbortSignal | undefined): Promise<void> {
    const answer = await this.sh(flyWriteChunkScript, [target, step, mode], 'files.write', signal, Buffer.from(chunk).toString('base64'));
    if (answer.exitCode === fileExit.isDirectory) {
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${target}: it is a directory`, argument: 'path', provider });
    }
    if (answer.exitCode !== 0) {
      throw new SandboxProviderError({ message: `Writing ${target} failed: ${answer.stderr.slice(0, 500)}`, provider });
    }
  }

  async list(path: string, options: SignalOptions = {}): Promise<FileInfo[]> {
    const target = this.path(path);
    const answer = await this.sh(fileScripts.list, [target], 'files.list', options.signal);
    if (answer.exitCode !== 0) this.fail(answer, target, 'list');
    return parseEntries(new TextEncoder().encode(answer.stdout)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string, options: SignalOptions = {}): Promise<FileInfo> {
    const target = this.path(path);
    const answer = await this.sh(fileScripts.stat, [target], 'files.stat', options.signal);
    if (answer.exitCode !== 0) this.fail(answer, target, 'stat');
    const [entry] = parseEntries(new TextEncoder().encode(answer.stdout));
    if (!entry) throw new SandboxProviderError({ message: `stat ${target} returned nothing`, provider });
    return entry;
  }

  async exists(path: string, options: SignalOptions = {}): Promise<boolean> {
    const answer = await this.sh(fileScripts.exists, [this.path(path)], 'files.exists', options.signal);
    return answer.exitCode === 0;
  }

  async mkdir(path: string, options: SignalOptions = {}): Promise<void> {
    const target = this.path(path);
    const answer = await this.sh(fileScripts.mkdir, [target], 'files.mkdir', options.signal);
    if (answer.exitCode !== 0) this.fail(answer, target, 'mkdir');
  }

  async remove(path: string, options: SignalOptions & { recursive?: boolean } = {}): Promise<void> {
    const target = this.path(path);
    const answer = await this.sh(fileScripts.remove, [target, options.recursive ? 'recursive' : ''], 'files.remove', options.signal);
    if (answer.exitCode !== 0) this.fail(answer, target, 'remove');
  }

  private path(path: string): string {
    return checkSandboxPath(path, this.workdir, provider);
  }

  private sh(script: string, args: string[], operation: string, signal?: AbortSignal, stdin?: string): Promise<FlyExecResponse> {
    return this.host.direct(['/bin/sh', '-c', script, operation, ...args], {
      timeoutSeconds: fileTimeoutSeconds,
      operation,
      signal,
      ...(stdin === undefined ? {} : { stdin }),
    });
  }

  private fail(answer: FlyExecResponse, path: string, operation: string): never {
    if (answer.exitCode === fileExit.notFound)
      throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider });
    if (answer.exitCode === fileExit.isDirectory)
      throw new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path}: it is a directory`, argument: 'path', provider });
    if (answer.exitCode === fileExit.notDirectory)
      throw new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path}: not a directory`, argument: 'path', provider });
    throw new SandboxProviderError({
      message: `${operation} ${path} failed (exit ${answer.exitCode}): ${answer.stderr.slice(0, 500)}`,
      provider,
    });
  }
}

/** The data as slices of at most `flyChunkBytes`, read from a stream as they are needed. */
async function* sliced(data: WriteFileData): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') data = new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) data = new Uint8Array(data);
  if (data instanceof Uint8Array) {
    for (let offset = 0; offset < data.byteLength; offset += flyChunkBytes) yield data.subarray(offset, offset + flyChunkBytes);
    return;
  }
  if (!(data instanceof ReadableStream)) {
    throw new SandboxInvalidArgumentError({ message: 'data must be a string, bytes or a ReadableStream', argument: 'data', provider });
  }
  const reader = (data as ReadableStream<Uint8Array>).getReader();
  // Each slice is filled in place from the chunks as they come: one allocation per slice, so a
  // long write does not churn through copies of copies.
  let slice = new Uint8Array(flyChunkBytes);
  let filled = 0;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      let chunk = next.value;
      while (chunk.byteLength > 0) {
        const taken = Math.min(chunk.byteLength, flyChunkBytes - filled);
        slice.set(chunk.subarray(0, taken), filled);
        filled += taken;
        chunk = chunk.subarray(taken);
        if (filled === flyChunkBytes) {
          yield slice;
          slice = new Uint8Array(flyChunkBytes);
          filled = 0;
        }
      }
    }
    if (filled > 0) yield slice.subarray(0, filled);
  } finally {
    reader.releaseLock();
  }
}
