import {
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  checkSandboxPath,
  collect,
  concatBytes,
  readBytes,
  type FileInfo,
  type SandboxFiles,
  type SignalOptions,
} from '../../src/index.js';
import type { LocalSandbox } from './local-sandbox.js';
import { fileExit, fileScripts } from './local-scripts.js';

/**
 * Files through commands run inside the sandbox, so that every path resolves in the sandbox's
 * own view (see local-scripts.ts). Data streams through the exec pipes and is never buffered
 * whole on the host.
 */
export class LocalFiles implements SandboxFiles {
  constructor(
    private readonly sandbox: LocalSandbox,
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
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileScripts.read, 'read', target], { signal: options.signal });
    void process.stdin.close().catch(() => undefined);
    const reader = process.stdout.getReader();
    const first = await reader.read();
    if (first.done || first.value[0] !== 0x52 /* R */) {
      reader.releaseLock();
      await this.fail(process, target, 'read');
    }
    let pending: Uint8Array | undefined = first.value!.subarray(1);
    const stderr = process.stderr;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (pending) {
            const chunk = pending;
            pending = undefined;
            if (chunk.byteLength > 0) return controller.enqueue(chunk);
          }
          const next = await reader.read();
          if (!next.done) return controller.enqueue(next.value);
          const { exitCode } = await process.wait();
          void stderr.cancel();
          if (exitCode !== 0) controller.error(new SandboxProviderError({ message: `Reading ${target} failed (exit ${exitCode})`, provider: 'local' }));
          else controller.close();
        },
        async cancel() {
          await reader.cancel();
          await process.kill();
        },
      },
      { highWaterMark: 0 },
    );
  }

  async write(
    path: string,
    data: string | Uint8Array | ReadableStream<Uint8Array>,
    options: SignalOptions & { mode?: number } = {},
  ): Promise<void> {
    const target = this.path(path);
    if (options.mode !== undefined && (!Number.isInteger(options.mode) || options.mode < 0 || options.mode > 0o7777)) {
      throw new SandboxInvalidArgumentError({ message: 'mode must be an integer permission mode like 0o644', argument: 'mode', provider: 'local' });
    }
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileScripts.write, 'write', target, mode], { signal: options.signal });
    const stderrText = collect(process.stderr, 4000);
    const drain = process.stdout.cancel();
    const input = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    if (input instanceof Uint8Array) {
      const writer = process.stdin.getWriter();
      await writer.write(input).catch(() => undefined);
      await writer.close().catch(() => undefined);
    } else {
      await input.pipeTo(process.stdin).catch(async (error: unknown) => {
        await process.kill();
        throw error;
      });
    }
    const { exitCode } = await process.wait();
    await drain;
    if (exitCode === fileExit.isDirectory) {
      throw new SandboxInvalidArgumentError({ message: `Cannot write ${target}: it is a directory`, argument: 'path', provider: 'local' });
    }
    if (exitCode !== 0) {
      const { chunks, total } = await stderrText;
      throw new SandboxProviderError({ message: `Writing ${target} failed: ${decode(concatBytes(chunks, total))}`, provider: 'local' });
    }
  }

  async list(path: string, options: SignalOptions = {}): Promise<FileInfo[]> {
    const target = this.path(path);
    const output = await this.script(fileScripts.list, [target], 'list', options);
    return parseEntries(output).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string, options: SignalOptions = {}): Promise<FileInfo> {
    const target = this.path(path);
    const [entry] = parseEntries(await this.script(fileScripts.stat, [target], 'stat', options));
    if (!entry) throw new SandboxProviderError({ message: `stat ${target} returned nothing`, provider: 'local' });
    return entry;
  }

  async exists(path: string, options: SignalOptions = {}): Promise<boolean> {
    const target = this.path(path);
    const result = await this.sandbox.run(['/bin/sh', '-c', fileScripts.exists, 'exists', target], { signal: options.signal });
    return result.exitCode === 0;
  }

  async mkdir(path: string, options: SignalOptions = {}): Promise<void> {
    await this.script(fileScripts.mkdir, [this.path(path)], 'mkdir', options);
  }

  async remove(path: string, options: SignalOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.script(fileScripts.remove, [this.path(path), options.recursive ? 'recursive' : ''], 'remove', options);
  }

  private path(path: string): string {
    return checkSandboxPath(path, this.workdir, 'local');
  }

  private async script(script: string, args: string[], operation: string, options: SignalOptions): Promise<Uint8Array> {
    const process = await this.sandbox.exec(['/bin/sh', '-c', script, operation, ...args], { signal: options.signal });
    void process.stdin.close().catch(() => undefined);
    const [stdout] = await Promise.all([readBytes(process.stdout), process.wait().catch(() => undefined)]);
    const { exitCode } = await process.wait();
    if (exitCode !== 0) await this.fail(process, args[0]!, operation, exitCode);
    void process.stderr.cancel();
    return stdout;
  }

  private async fail(process: import('../../src/index.js').SandboxProcess, path: string, operation: string, knownExit?: number): Promise<never> {
    const stderr = decode(await readBytes(process.stderr));
    const exitCode = knownExit ?? (await process.wait()).exitCode;
    if (exitCode === fileExit.notFound) {
      throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider: 'local' });
    }
    if (exitCode === fileExit.isDirectory) {
      throw new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path}: it is a directory`, argument: 'path', provider: 'local' });
    }
    if (exitCode === fileExit.notDirectory) {
      throw new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path}: not a directory`, argument: 'path', provider: 'local' });
    }
    throw new SandboxProviderError({ message: `${operation} ${path} failed (exit ${exitCode}): ${stderr}`, provider: 'local' });
  }
}

const typeNames: Record<string, FileInfo['type']> = { f: 'file', d: 'directory', l: 'symlink' };

/** Parses `find -printf` records: type, size, mode, mtime, link target, path; NUL-separated. */
function parseEntries(output: Uint8Array): FileInfo[] {
  const fields = decode(output).split('\0');
  const entries: FileInfo[] = [];
  for (let index = 0; index + 6 <= fields.length; index += 6) {
    const [type, size, mode, modified, linkTarget, path] = fields.slice(index, index + 6) as [string, string, string, string, string, string];
    entries.push({
      name: path.slice(path.lastIndexOf('/') + 1) || '/',
      path,
      type: typeNames[type] ?? 'other',
      size: Number(size),
      mode: Number.parseInt(mode, 8),
      modifiedAt: Math.round(Number(modified) * 1000),
      ...(type === 'l' ? { linkTarget } : {}),
    });
  }
  return entries;
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
