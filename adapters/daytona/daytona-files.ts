/**
 * Files through Daytona's toolbox file API (`sandbox.fs`): streamed download and upload. What the
 * contract asks beyond those (mkdir -p, lstat-style stat, sorted listings, remove semantics) runs
 * through the kit's exec fallback, which keeps the contract's exact error behaviour.
 */
import { Readable } from 'node:stream';
import type { Sandbox as DaytonaSdkSandbox } from '@daytonaio/sdk';
import {
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  type NativeFiles,
  type SandboxError,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';

type MapError = (error: unknown, operation: string, path: string) => SandboxError;

export class DaytonaFiles implements NativeFiles {
  constructor(
    private readonly sdk: () => DaytonaSdkSandbox,
    private readonly mapError: MapError,
  ) {}

  // The happy path is one call; only a failure asks what the path is, to say it the contract's way.
  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    try {
      const stream = await this.sdk().fs.downloadFileStream(path, { signal: options.signal, timeout: 0 });
      return Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
    } catch (error) {
      throw await this.#explain(error, path, 'files.read');
    }
  }

  async read(path: string, options: SignalOptions): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    try {
      const buffer = await this.sdk().fs.downloadFile(path, 0);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      throw await this.#explain(error, path, 'files.read');
    }
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    const fs = this.sdk().fs;
    const body = data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : data;
    try {
      // Daytona's upload makes the parents.
      await fs.uploadFileStream(body, path, { signal: options.signal, timeout: 0 });
      if (options.mode !== undefined) await fs.setFilePermissions(path, { mode: options.mode.toString(8) });
    } catch (error) {
      throw await this.#explain(error, path, 'files.write');
    }
  }

  /** A failed read or write as the contract says it: a directory is `SandboxInvalidArgumentError(path)`, a missing file not found. */
  async #explain(error: unknown, path: string, operation: string): Promise<SandboxError> {
    const mapped = this.mapError(error, operation, path);
    if (SandboxFileNotFoundError.isInstance(mapped) && operation === 'files.read') return mapped;
    const info = await this.#details(path).catch(() => undefined);
    if (info?.isDir) {
      return new SandboxInvalidArgumentError({
        message: `Cannot ${operation} ${path}: it is a directory`,
        argument: 'path',
        provider: 'daytona',
      });
    }
    return mapped;
  }

  /** The path's details, or `undefined` when it does not exist. */
  async #details(path: string): Promise<{ isDir: boolean } | undefined> {
    try {
      const info = await this.sdk().fs.getFileDetails(path);
      return { isDir: info.isDir === true };
    } catch (error) {
      const mapped = this.mapError(error, 'files.stat', path);
      if (SandboxFileNotFoundError.isInstance(mapped)) return undefined;
      throw mapped;
    }
  }
}
