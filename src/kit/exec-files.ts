import { SandboxFileNotFoundError, SandboxInvalidArgumentError, SandboxProviderError } from '../errors/index.js';
import type { Command, ExecOptions, RunOptions, SignalOptions } from '../spec/options.js';
import type { ExecResult, FileInfo, SandboxFiles, SandboxProcess } from '../spec/sandbox.js';
import { collect, concatBytes, prependChunk, readBytes } from '../streams/index.js';
import { checkSandboxPath } from './validate.js';

/** Exit codes the file scripts use to say what went wrong. */
export const fileExit = { notFound: 44, isDirectory: 45, notDirectory: 48 } as const;

const missing = `[ -e "$1" ] || [ -L "$1" ] || exit ${fileExit.notFound}`;

/**
 * POSIX sh programs for file operations, run inside the sandbox as its own user, so that every
 * path resolves in the sandbox's view: a symlink pointing at a host path reaches the sandbox's
 * copy of that path, never the host's. They need sh, coreutils and GNU find in the image.
 */
export const fileScripts = {
  // -e follows symlinks: a dangling link (one pointing at a host-only path, say) is not found.
  /** Prints a marker byte once the file is known to be readable, then the file. */
  read: `[ -e "$1" ] || exit ${fileExit.notFound}; [ -d "$1" ] && exit ${fileExit.isDirectory}; [ -r "$1" ] || { cat -- "$1"; exit 1; }; printf R; exec cat -- "$1"`,
  write: `dir=$(dirname -- "$1"); mkdir -p -- "$dir" || exit 1; [ -d "$1" ] && exit ${fileExit.isDirectory}; cat > "$1" || exit 1; if [ -n "$2" ]; then chmod -- "$2" "$1" || exit 1; fi`,
  stat: `${missing}; find "$1" -maxdepth 0 -printf '%y\\0%s\\0%m\\0%T@\\0%l\\0%p\\0'`,
  list: `[ -d "$1" ] || { [ -e "$1" ] && exit ${fileExit.notDirectory}; exit ${fileExit.notFound}; }; find -H "$1" -mindepth 1 -maxdepth 1 -printf '%y\\0%s\\0%m\\0%T@\\0%l\\0%p\\0'`,
  exists: '[ -e "$1" ] || [ -L "$1" ]',
  mkdir: 'mkdir -p -- "$1"',
  remove: `${missing}; if [ -d "$1" ] && [ ! -L "$1" ]; then if [ "$2" = recursive ]; then rm -rf -- "$1"; else rmdir -- "$1"; fi; else rm -f -- "$1"; fi`,
} as const;

/** Throws `SandboxInvalidArgumentError` unless `mode` is absent or a permission mode (0 to 0o7777). */
export function checkFileMode(mode: number | undefined, provider: string): void {
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new SandboxInvalidArgumentError({ message: 'mode must be an integer permission mode like 0o644', argument: 'mode', provider });
  }
}

/** The part of a sandbox that `ExecFiles` needs. */
export interface ExecCapable {
  exec(command: Command, options?: ExecOptions): Promise<SandboxProcess>;
  run(command: Command, options?: RunOptions): Promise<ExecResult>;
}

/**
 * `SandboxFiles` built on `exec` alone, for providers without a file API of their own (the local
 * provider uses it whole; others override what their API does better). Data streams through the
 * exec pipes and is never buffered whole on the host.
 */
export class ExecFiles implements SandboxFiles {
  constructor(
    protected readonly sandbox: ExecCapable,
    protected readonly workdir: string,
    protected readonly provider: string,
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
    const rest = prependChunk(reader, first.value!.subarray(1)).getReader();
    const stderr = process.stderr;
    const provider = this.provider;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await rest.read();
          if (!next.done) return controller.enqueue(next.value);
          const { exitCode } = await process.wait();
          void stderr.cancel();
          if (exitCode !== 0)
            controller.error(new SandboxProviderError({ message: `Reading ${target} failed (exit ${exitCode})`, provider }));
          else controller.close();
        },
        async cancel() {
          await rest.cancel();
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
    this.checkMode(options.mode);
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileScripts.write, 'write', target, mode], { signal: options.signal });
    const stderrText = collect(process.stderr, 4000);
    const drain = process.stdout.cancel();
    const input = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    // The writer can exit before it read everything (the path is a directory, the disk is full):
    // then feeding it stops, instead of waiting on a pipe nobody drains.
    const stopFeeding = new AbortController();
    const exited = process.wait().then(
      () => stopFeeding.abort(),
      () => stopFeeding.abort(),
    );
    try {
      if (input instanceof Uint8Array) {
        const writer = process.stdin.getWriter();
        await Promise.race([writer.write(input).then(() => writer.close()), exited]).catch(() => undefined);
      } else {
        await input.pipeTo(process.stdin, { signal: stopFeeding.signal }).catch(async (error: unknown) => {
          if (stopFeeding.signal.aborted) return; // the writer exited; its exit status says why
          await process.kill().catch(() => undefined);
          // Its stdin may have closed because it exited first (the path is a directory): then
          // its exit status says why (the kill above reaches no process).
          if ((await process.wait().catch(() => undefined))?.exitCode === fileExit.isDirectory) return;
          throw error;
        });
      }
    } catch (error) {
      await exited;
      throw error;
    }
    const { exitCode } = await process.wait();
    await drain;
    if (exitCode === fileExit.isDirectory) {
      throw new SandboxInvalidArgumentError({
        message: `Cannot write ${target}: it is a directory`,
        argument: 'path',
        provider: this.provider,
      });
    }
    if (exitCode !== 0) {
      const { chunks, total } = await stderrText;
      throw new SandboxProviderError({
        message: `Writing ${target} failed: ${decode(concatBytes(chunks, total))}`,
        provider: this.provider,
      });
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
    if (!entry) throw new SandboxProviderError({ message: `stat ${target} returned nothing`, provider: this.provider });
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

  protected checkMode(mode: number | undefined): void {
    checkFileMode(mode, this.provider);
  }

  protected path(path: string): string {
    return checkSandboxPath(path, this.workdir, this.provider);
  }

  protected async script(script: string, args: string[], operation: string, options: SignalOptions): Promise<Uint8Array> {
    const process = await this.sandbox.exec(['/bin/sh', '-c', script, operation, ...args], { signal: options.signal });
    void process.stdin.close().catch(() => undefined);
    const [stdout] = await Promise.all([readBytes(process.stdout), process.wait().catch(() => undefined)]);
    const { exitCode } = await process.wait();
    if (exitCode !== 0) await this.fail(process, args[0]!, operation, exitCode);
    void process.stderr.cancel();
    return stdout;
  }

  protected async fail(process: SandboxProcess, path: string, operation: string, knownExit?: number): Promise<never> {
    const stderr = decode(await readBytes(process.stderr));
    const exitCode = knownExit ?? (await process.wait()).exitCode;
    if (exitCode === fileExit.notFound) {
      throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider: this.provider });
    }
    if (exitCode === fileExit.isDirectory) {
      throw new SandboxInvalidArgumentError({
        message: `Cannot ${operation} ${path}: it is a directory`,
        argument: 'path',
        provider: this.provider,
      });
    }
    if (exitCode === fileExit.notDirectory) {
      throw new SandboxInvalidArgumentError({
        message: `Cannot ${operation} ${path}: not a directory`,
        argument: 'path',
        provider: this.provider,
      });
    }
    throw new SandboxProviderError({ message: `${operation} ${path} failed (exit ${exitCode}): ${stderr}`, provider: this.provider });
  }
}

const typeNames: Record<string, FileInfo['type']> = { f: 'file', d: 'directory', l: 'symlink' };

/** Parses `find -printf` records: type, size, mode, mtime, link target, path; NUL-separated. */
export function parseEntries(output: Uint8Array): FileInfo[] {
  const fields = decode(output).split('\0');
  const entries: FileInfo[] = [];
  for (let index = 0; index + 6 <= fields.length; index += 6) {
    const [type, size, mode, modified, linkTarget, path] = fields.slice(index, index + 6) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
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
