import type { FileInfo as ModalFileInfo, Sandbox as ModalSdkSandbox } from 'modal';
import {
  SandboxInvalidArgumentError,
  SandboxProviderError,
  readBytes,
  type FileInfo,
  type NativeFiles,
  type SandboxError,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';
import { fileToolErrorKind } from './modal-errors.js';

/** The SDK's own file tool; its read and write are streamed here because the SDK's API buffers. */
const fsTools = '/__modal/.bin/modal-sandbox-fs-tools';

/**
 * Modal's filesystem API as the kit's native file calls (the kit validates paths and options and
 * races the caller's signal). Streamed reads and writes go through Modal's own file tool.
 */
export class ModalFiles implements NativeFiles {
  constructor(
    private readonly sdk: ModalSdkSandbox,
    private readonly mapError: (error: unknown, operation: string, path?: string) => SandboxError,
    private readonly run: (argv: string[], options: SignalOptions) => Promise<{ exitCode: number; stderr: string }>,
  ) {}

  private async call<T>(operation: string, path: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw this.mapError(error, operation, path);
    }
  }

  read(path: string): Promise<Uint8Array> {
    return this.call('read', path, () => this.sdk.filesystem.readBytes(path));
  }

  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    const info = await this.stat(path);
    if (info.type === 'directory')
      throw new SandboxInvalidArgumentError({ message: `Cannot read ${path}: it is a directory`, argument: 'path', provider: 'modal' });
    options.signal?.throwIfAborted();
    const process = await this.call('read', path, () =>
      this.sdk.exec([fsTools, JSON.stringify({ ReadFile: { path } })], { mode: 'binary' }),
    );
    void process.stdin.close().catch(() => undefined);
    const reader = process.stdout.getReader();
    const mapError = this.mapError;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await reader.read().catch((error: unknown) => Promise.reject(mapError(error, 'read', path)));
          if (!next.done) return controller.enqueue(next.value);
          const code = await process.wait().catch((error: unknown) => Promise.reject(mapError(error, 'read', path)));
          if (code === 0) return controller.close();
          const detail = new TextDecoder().decode(await process.stderr.readBytes().catch(() => new Uint8Array()));
          controller.error(new SandboxProviderError({ message: `Reading ${path} failed (exit ${code}): ${detail}`, provider: 'modal' }));
        },
        cancel: () => reader.cancel(),
      },
      { highWaterMark: 0 },
    );
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    if (data instanceof ReadableStream) await this.writeStream(path, data, options);
    else await this.call('write', path, () => this.sdk.filesystem.writeBytes(data, path));
    if (options.mode !== undefined) {
      const result = await this.run(['chmod', options.mode.toString(8), path], { signal: options.signal });
      if (result.exitCode !== 0) throw new SandboxProviderError({ message: `chmod ${path} failed: ${result.stderr}`, provider: 'modal' });
    }
  }

  async list(path: string): Promise<FileInfo[]> {
    const entries = await this.call('list', path, () => this.sdk.filesystem.listFiles(path));
    return entries.map(toFileInfo);
  }

  async stat(path: string): Promise<FileInfo> {
    return toFileInfo(await this.call('stat', path, () => this.sdk.filesystem.stat(path)));
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === 'file_not_found') return false;
      // Nor does a path below a regular file, for which Modal's stat says NotADirectory.
      if ((error as { cause?: { name?: string } }).cause?.name === 'SandboxFilesystemNotADirectoryError') return false;
      throw error;
    }
  }

  async mkdir(path: string): Promise<void> {
    await this.call('mkdir', path, () => this.sdk.filesystem.makeDirectory(path, { createParents: true }));
  }

  async remove(path: string, options: SignalOptions & { recursive?: boolean | undefined }): Promise<void> {
    await this.call('remove', path, () => this.sdk.filesystem.remove(path, { recursive: options.recursive ?? false }));
  }

  private async writeStream(path: string, data: ReadableStream<Uint8Array>, options: SignalOptions): Promise<void> {
    const process = await this.call('write', path, () =>
      this.sdk.exec([fsTools, JSON.stringify({ WriteFile: { path } })], { mode: 'binary' }),
    );
    void process.stdout.cancel().catch(() => undefined);
    const stderr: Promise<Uint8Array> = readBytes(process.stderr).catch(() => new Uint8Array());
    // The tool can exit before it read everything (a directory, say): feeding it stops then.
    const stopFeeding = new AbortController();
    const exited = process.wait().finally(() => stopFeeding.abort());
    exited.catch(() => undefined);
    const onAbort = () => stopFeeding.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await data.pipeTo(process.stdin, { signal: stopFeeding.signal }).catch((error: unknown) => {
        if (stopFeeding.signal.aborted && !options.signal?.aborted) return;
        throw options.signal?.aborted ? options.signal.reason : this.mapError(error, 'write', path);
      });
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const code = await exited.catch((error: unknown) => Promise.reject(this.mapError(error, 'write', path)));
    if (code === 0) return;
    const detail = new TextDecoder().decode(await stderr);
    const kind = fileToolErrorKind(detail);
    // Like the SDK's writeBytes: the tool says AlreadyExists when the direct parent is a file.
    if (kind === 'IsDirectory' || kind === 'NotDirectory' || kind === 'AlreadyExists') {
      throw new SandboxInvalidArgumentError({
        message: `Cannot write ${path}: ${kind === 'IsDirectory' ? 'it is a directory' : 'a parent is not a directory'}`,
        argument: 'path',
        provider: 'modal',
      });
    }
    throw new SandboxProviderError({ message: `Writing ${path} failed (exit ${code}): ${detail}`, provider: 'modal' });
  }
}

function toFileInfo(entry: ModalFileInfo): FileInfo {
  const type = entry.type === 'file' || entry.type === 'directory' || entry.type === 'symlink' ? entry.type : 'other';
  return {
    name: entry.name,
    path: entry.path,
    type,
    size: entry.size,
    mode: entry.mode & 0o7777,
    modifiedAt: Math.round(entry.modifiedTime * 1000),
    ...(type === 'symlink' && entry.symlinkTarget !== null ? { linkTarget: entry.symlinkTarget } : {}),
  };
}
