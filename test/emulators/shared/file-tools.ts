/**
 * File operations an emulator performs inside a sandbox for its provider's file API (Modal's fs
 * tool, E2B's and Daytona's file endpoints, a Kubernetes `cp`). It is the kit's `ExecFiles`, so the
 * shell programs are the kit's `fileScripts` and every path resolves in the sandbox's own view,
 * with two additions every such API needs:
 *
 * - every failure is a `FileToolError` whose `fault` says what went wrong in provider-neutral
 *   terms (each emulator maps faults to its own wire errors), taken from the script's exit code
 *   (`fileExit`) or else from the error text of the failed command (the sandbox's C locale);
 * - entries carry their owner and group names, which those APIs report.
 */
import {
  ExecFiles,
  collect,
  concatBytes,
  fileExit,
  fileScripts,
  readBytes,
  type ExecCapable,
  type FileInfo,
  type SandboxProcess,
  type SignalOptions,
} from '../../../src/kit/index.js';

/** What went wrong with a file operation. `failed` is anything else (the detail says what). */
export type FileFault = 'not_found' | 'is_directory' | 'not_directory' | 'permission_denied' | 'already_exists' | 'not_empty' | 'failed';

export class FileToolError extends Error {
  constructor(
    readonly fault: FileFault,
    /** The path the operation was about, as resolved in the sandbox. */
    readonly path: string,
    /** The failed command's error output, or a description when it printed none. */
    readonly detail: string,
  ) {
    super(`${path}: ${fault}${detail ? ` (${detail})` : ''}`);
    this.name = 'FileToolError';
  }
}

/** A `FileInfo` with the names of its owner and group (empty when the sandbox could not say). */
export interface FileEntry extends FileInfo {
  owner: string;
  group: string;
}

// Error texts of coreutils and dash (strerror in the C locale), most specific first.
const faultTexts: ReadonlyArray<[RegExp, FileFault]> = [
  [/Directory not empty/, 'not_empty'],
  [/File exists/, 'already_exists'],
  [/Not a directory/, 'not_directory'],
  [/Is a directory/, 'is_directory'],
  [/Permission denied|Operation not permitted|Read-only file system/, 'permission_denied'],
  [/No such file or directory|Directory nonexistent/, 'not_found'],
];

/** The fault of a failed file command, from its exit code first and its error output second. */
export function classifyFileFailure(exitCode: number, stderr: string): FileFault {
  if (exitCode === fileExit.notFound) return 'not_found';
  if (exitCode === fileExit.isDirectory) return 'is_directory';
  if (exitCode === fileExit.notDirectory) return 'not_directory';
  return faultTexts.find(([pattern]) => pattern.test(stderr))?.[1] ?? 'failed';
}

/** `rwxr-xr-x` for the low nine bits of `mode`. */
export function permissionString(mode: number): string {
  return [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((flag, index) => ((mode >> shift) & (4 >> index) ? flag : '-')).join('')).join('');
}

// Owner lookups never fail: a path that vanished simply has no owner row.
const ownerFormat = `'%u\\0%g\\0%p\\0'`;
const ownerScripts = {
  self: `find "$1" -maxdepth 0 -printf ${ownerFormat} 2>/dev/null; exit 0`,
  children: `find -H "$1" -mindepth 1 -maxdepth 1 -printf ${ownerFormat} 2>/dev/null; exit 0`,
};
const mkdirExclusive = 'mkdir -- "$1"';

/** A file write under way: the bytes go to `stdin`; `done` settles once the file is written. */
export interface OpenWrite {
  readonly stdin: WritableStream<Uint8Array>;
  /** Resolves when the write succeeded; rejects with a `FileToolError`, or the sandbox's error if it went away. */
  readonly done: Promise<void>;
  /** Kills the write (the file may be left partly written). Idempotent. */
  abort(): Promise<void>;
}

export class EmulatorFiles extends ExecFiles {
  /** @param workdir what relative paths resolve against. @default '/' */
  constructor(sandbox: ExecCapable, workdir = '/') {
    super(sandbox, workdir, 'emulator');
  }

  /** `stat` plus owner and group. Throws `FileToolError`. */
  async statEntry(path: string, options: SignalOptions = {}): Promise<FileEntry> {
    const target = this.path(path);
    const [info, owners] = await Promise.all([this.stat(target, options), this.owners(target, 'self', options)]);
    return withOwner(info, owners);
  }

  /** `list` (sorted by name) plus owners and groups. Throws `FileToolError`. */
  async listEntries(path: string, options: SignalOptions = {}): Promise<FileEntry[]> {
    const target = this.path(path);
    const [infos, owners] = await Promise.all([this.list(target, options), this.owners(target, 'children', options)]);
    return infos.map((info) => withOwner(info, owners));
  }

  /** Makes a directory; without `parents`, its parent must exist and the path must not. Throws `FileToolError`. */
  async makeDirectory(path: string, options: SignalOptions & { parents: boolean }): Promise<void> {
    if (options.parents) return this.mkdir(path, options);
    await this.script(mkdirExclusive, [this.path(path)], 'mkdir', options);
  }

  /**
   * Starts writing a file (parents made as needed, `mode` applied at the end), for an emulator
   * that feeds the bytes as its client sends them.
   */
  async openWrite(path: string, options: SignalOptions & { mode?: number } = {}): Promise<OpenWrite> {
    const target = this.path(path);
    this.checkMode(options.mode);
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileScripts.write, 'write', target, mode], { signal: options.signal });
    void process.stdout.cancel().catch(() => undefined);
    const stderr = collect(process.stderr, 4000);
    const done = process.wait().then(async ({ exitCode }) => {
      if (exitCode === 0) return;
      const { chunks, total } = await stderr;
      const text = decode(concatBytes(chunks, total)).trim();
      const fault = classifyFileFailure(exitCode, text);
      // A write replaces an existing file, so "exists" can only be a file where a parent directory must be.
      throw new FileToolError(fault === 'already_exists' ? 'not_directory' : fault, target, text || `write exited ${exitCode}`);
    });
    done.catch(() => undefined); // the caller may learn the outcome from `stdin` first
    return { stdin: process.stdin, done, abort: () => process.kill() };
  }

  /** Writes a whole file. Throws `FileToolError`, or the source stream's error (the write is then stopped). */
  override async write(
    path: string,
    data: string | Uint8Array | ReadableStream<Uint8Array>,
    options: SignalOptions & { mode?: number } = {},
  ): Promise<void> {
    const { stdin, done, abort } = await this.openWrite(path, options);
    const source = typeof data === 'string' || data instanceof Uint8Array ? new Blob([data]).stream() : data;
    const pipeError = await source.pipeTo(stdin).then(
      () => undefined,
      (error: unknown) => error ?? new Error('the write was aborted'),
    );
    if (pipeError === undefined) return done;
    await abort();
    const outcome = await done.then(
      () => undefined,
      (error: unknown) => error,
    );
    // A script that failed on its own (a directory, a permission) closed stdin: that is the real error.
    throw outcome instanceof FileToolError && outcome.fault !== 'failed' ? outcome : pipeError;
  }

  protected override async fail(process: SandboxProcess, path: string, operation: string, knownExit?: number): Promise<never> {
    const stderr = decode(await readBytes(process.stderr, { maxBytes: 4000 }).catch(() => new Uint8Array())).trim();
    const exitCode = knownExit ?? (await process.wait()).exitCode;
    throw new FileToolError(classifyFileFailure(exitCode, stderr), path, stderr || `${operation} exited ${exitCode}`);
  }

  private async owners(target: string, which: keyof typeof ownerScripts, options: SignalOptions): Promise<Map<string, [string, string]>> {
    const fields = decode(await this.script(ownerScripts[which], [target], 'stat', options)).split('\0');
    const owners = new Map<string, [string, string]>();
    for (let index = 0; index + 3 <= fields.length; index += 3) owners.set(fields[index + 2]!, [fields[index]!, fields[index + 1]!]);
    return owners;
  }
}

function withOwner(info: FileInfo, owners: Map<string, [string, string]>): FileEntry {
  const [owner, group] = owners.get(info.path) ?? ['', ''];
  return { ...info, owner, group };
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
