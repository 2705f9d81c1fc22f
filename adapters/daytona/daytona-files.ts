/**
 * Files through Daytona's toolbox file API (`sandbox.fs`): streamed download and upload. What the
 * contract asks beyond those (mkdir -p, lstat-style stat, sorted listings, remove semantics) runs
 * through the kit's exec fallback, which keeps the contract's exact error behaviour.
 */
import { posix } from 'node:path';
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

  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    await this.#refuseDirectory(path, 'files.read');
    try {
      const stream = await this.sdk().fs.downloadFileStream(path, { signal: options.signal, timeout: 0 });
      return Readable.toWeb(stream) as unknown as ReadableStream<Uint8Array>;
    } catch (error) {
      throw this.mapError(error, 'files.read', path);
    }
  }

  async read(path: string, options: SignalOptions): Promise<Uint8Array> {
    await this.#refuseDirectory(path, 'files.read');
    options.signal?.throwIfAborted();
    try {
      const buffer = await this.sdk().fs.downloadFile(path, 0);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      throw this.mapError(error, 'files.read', path);
    }
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    const fs = this.sdk().fs;
    const info = await this.#details(path);
    if (info?.isDir) {
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${path}: it is a directory`, argument: 'path', provider: 'daytona' });
    }
    try {
      if (info === undefined) await fs.createFolder(posix.dirname(path), '755');
      await fs.uploadFileStream(data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : data, path, {
        signal: options.signal,
        timeout: 0,
      });
      if (options.mode !== undefined) await fs.setFilePermissions(path, { mode: options.mode.toString(8) });
    } catch (error) {
      throw this.mapError(error, 'files.write', path);
    }
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

  async #refuseDirectory(path: string, operation: string): Promise<void> {
    const info = await this.#details(path);
    if (info === undefined) {
      throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider: 'daytona' });
    }
    if (info.isDir) {
      throw new SandboxInvalidArgumentError({
        message: `Cannot ${operation} ${path}: it is a directory`,
        argument: 'path',
        provider: 'daytona',
      });
    }
  }
}
