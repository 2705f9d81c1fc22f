/**
 * File operations an emulator performs inside a sandbox for its provider's file API (Modal's fs
 * tool, E2B's and Daytona's file endpoints, a Kubernetes `cp`). Each operation is one POSIX sh
 * program run in the sandbox as its own user, so every path resolves in the sandbox's own view,
 * and each tells apart the failures those APIs distinguish, the way the kernel does:
 *
 * - every failure is a `FileToolError` whose `fault` says what went wrong in provider-neutral
 *   terms (each emulator maps faults to its own wire errors): the programs exit with a code per
 *   fault, taken from the errno text of the command that failed (the C locale's strerror);
 * - a path below a regular file is `not_directory` (ENOTDIR), never `not_found`;
 * - entries are `lstat` views with their owner and group names, permission bits and a
 *   fractional modification time, which those APIs report;
 * - a whole-file read can be capped: a larger file fails with `too_large` before a byte is read,
 *   and a file that grows past the cap while it is read fails the stream.
 *
 * Reads, writes, mkdir, remove and realPath need only sh and the usual applets (busybox will
 * do); stat and list need GNU find (`-printf`) in the image.
 */
import { posix } from 'node:path';
import { collect, concatBytes, fileExit, prependChunk, readBytes, type ExecCapable, type SignalOptions } from '../../../src/kit/index.js';

/** What went wrong with a file operation. `failed` is anything else (the detail says what). */
export type FileFault =
  | 'not_found'
  | 'is_directory'
  | 'not_directory'
  | 'permission_denied'
  | 'already_exists'
  | 'not_empty'
  | 'too_large'
  | 'failed';

/**
 * Which path a `not_directory` fault is about, for APIs that word them apart: `path` when the
 * path itself is not a directory (listing a file), `parent` when its direct parent is a file
 * (writing `file/below`), `ancestor` when some component on the way is.
 */
export type NotDirectorySubject = 'path' | 'parent' | 'ancestor';

export class FileToolError extends Error {
  constructor(
    readonly fault: FileFault,
    /** The path the operation was about, as resolved in the sandbox. */
    readonly path: string,
    /** The failed command's error output, or a description when it printed none. */
    readonly detail: string,
    readonly extra: { subject?: NotDirectorySubject; size?: number; limit?: number } = {},
  ) {
    super(`${path}: ${fault}${detail ? ` (${detail})` : ''}`);
    this.name = 'FileToolError';
  }
}

/** One directory entry or stat result, as `lstat` sees it (a symlink is itself, not its target). */
export interface FileEntry {
  name: string;
  /** The path as given (stat) or the listed directory's normalised path joined with `name` (list). */
  path: string;
  /** A FIFO, socket or device is `other`. */
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** `st_mode`: the file type bits and the permission bits (0o7777). */
  mode: number;
  /** `st_size` in bytes (a symlink's is the length of its target). */
  size: number;
  /** Owner and group names, or their numeric ids when the sandbox has no name for them. */
  owner: string;
  group: string;
  /** Seconds since the epoch, with the fraction the filesystem keeps. */
  modifiedTime: number;
  /** The symlink's target, as stored. Only on symlinks. */
  linkTarget?: string;
}

// Exit codes of the programs below, one per fault. `fault` maps the errno text of a failed
// command; strerror always ends the message of coreutils, find and dash.
const exitFaults: Record<number, [FileFault, NotDirectorySubject?]> = {
  60: ['not_found'],
  61: ['not_directory', 'ancestor'],
  62: ['permission_denied'],
  63: ['is_directory'],
  64: ['not_directory', 'path'],
  65: ['not_directory', 'parent'],
  66: ['too_large'],
  67: ['not_empty'],
  68: ['already_exists'],
};

const prelude = `export LC_ALL=C
fault() {
  case "$1" in
    *": Not a directory") exit 61;;
    *": Permission denied"|*": Operation not permitted"|*": Read-only file system") exit 62;;
    *": No such file or directory"|*": Directory nonexistent") exit 60;;
    *": Is a directory") exit 63;;
    *": Directory not empty") exit 67;;
    *": File exists") exit 68;;
  esac
  printf '%s\\n' "$1" >&2; exit 1
}
reach() { err=$(ls -d $2 -- "$1" 2>&1 >/dev/null) || fault "$err"; }`;

// type, size, permission bits (octal, with set-id and sticky bits), mtime, owner, group, link target, name
const entryFormat = `'%y\\0%s\\0%m\\0%T@\\0%u\\0%g\\0%l\\0%f\\0'`;

/** The programs; `$1` is always the path. */
export const fileToolScripts = {
  stat: `${prelude}\nexec 3>&1; err=$(find "$1" -maxdepth 0 -printf ${entryFormat} 2>&1 >&3) || fault "$err"`,
  // -H follows the listed path if it is a symlink, but not the entries; a dangling link is not found.
  list: `${prelude}\nreach "$1" -L; [ -d "$1" ] || { [ -e "$1" ] || exit 60; exit 64; }; [ -r "$1" ] || exit 62
find -H "$1" -mindepth 1 -maxdepth 1 -printf ${entryFormat} 2>/dev/null; exit 0`,
  // The canonical path, every symlink followed; the path must exist.
  realpath: `${prelude}\nreach "$1" -L; [ -e "$1" ] || exit 60; exec readlink -f -- "$1"`,
  // $2 = parents: like mkdir -p (an existing directory is fine, an existing file is not).
  mkdir: `${prelude}\nif [ "$2" = parents ]; then err=$(mkdir -p -- "$1" 2>&1) || fault "$err"; else err=$(mkdir -- "$1" 2>&1) || fault "$err"; fi`,
  // $2 = recursive. A symlink is removed itself, never what it points at.
  remove: `${prelude}\nreach "$1"
if [ -d "$1" ] && [ ! -L "$1" ]; then
  if [ "$2" = recursive ]; then err=$(rm -rf -- "$1" 2>&1) || fault "$err"; else err=$(rmdir -- "$1" 2>&1) || fault "$err"; fi
else err=$(rm -f -- "$1" 2>&1) || fault "$err"; fi`,
  // $2 = the byte limit or empty. Prints a marker byte once the file is known to be readable, then
  // at most one byte more than the limit, so that a file growing past it is seen and stopped.
  read: `${prelude}\nreach "$1" -L; [ -e "$1" ] || exit 60; [ -d "$1" ] && exit 63
if [ -n "$2" ]; then size=$(ls -dnL -- "$1" | awk '{ print $5 }'); [ "$size" -gt "$2" ] 2>/dev/null && { printf %s "$size" >&2; exit 66; }; fi
err=$(head -c 0 -- "$1" 2>&1) || fault "$err"
printf R
if [ -n "$2" ]; then exec head -c "$(($2 + 1))" -- "$1"; else exec cat -- "$1"; fi`,
  // $2 = a mode to apply at the end, or empty; $3 = `uid:gid` to own the file from its creation
  // on, before a byte of it is written (as envd does), or empty. The parent is made like
  // mkdir -p; a direct parent that is a file is told apart from a file further up.
  write: `${prelude}\n[ -d "$1" ] && exit 63
dir=$(dirname -- "$1"); if [ -e "$dir" ] && [ ! -d "$dir" ]; then exit 65; fi
err=$(mkdir -p -- "$dir" 2>&1) || fault "$err"
if [ -n "$3" ]; then err=$( { : > "$1" && chown -- "$3" "$1"; } 2>&1) || fault "$err"; fi
err=$( { cat > "$1"; } 2>&1) || fault "$err"
if [ -n "$2" ]; then err=$(chmod -- "$2" "$1" 2>&1) || fault "$err"; fi`,
} as const;

const typeBits: Record<string, number> = {
  f: 0o100000,
  d: 0o040000,
  l: 0o120000,
  p: 0o010000,
  c: 0o020000,
  b: 0o060000,
  s: 0o140000,
};
const typeNames: Record<string, FileEntry['type']> = { f: 'file', d: 'directory', l: 'symlink' };

/** A file write under way: the bytes go to `stdin`; `done` settles once the file is written. */
export interface OpenWrite {
  readonly stdin: WritableStream<Uint8Array>;
  /** Resolves when the write succeeded; rejects with a `FileToolError`, or the sandbox's error if it went away. */
  readonly done: Promise<void>;
  /** Kills the write (the file may be left partly written). Idempotent. */
  abort(): Promise<void>;
}

export class EmulatorFiles {
  /** @param workdir what relative paths resolve against. @default '/' */
  constructor(
    private readonly sandbox: ExecCapable,
    private readonly workdir = '/',
  ) {}

  /** `lstat` of one path; `path` and `name` are as given. Throws `FileToolError`. */
  async statEntry(path: string, options: SignalOptions = {}): Promise<FileEntry> {
    const target = this.resolve(path);
    const [entry] = parseEntries(await this.script('stat', [target], options));
    if (!entry) throw new FileToolError('failed', target, 'stat printed nothing');
    return { ...entry, name: posix.basename(path.replace(/\/+$/, '')), path };
  }

  /** The entries of a directory (following it if it is a symlink), sorted by name. Throws `FileToolError`. */
  async listEntries(path: string, options: SignalOptions = {}): Promise<FileEntry[]> {
    const target = this.resolve(path);
    const directory = posix.normalize(target);
    const entries = parseEntries(await this.script('list', [target], options)).map((entry) => ({
      ...entry,
      path: posix.join(directory, entry.name),
    }));
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The path with every symlink followed (`readlink -f`). Throws `FileToolError` when it does not exist. */
  async realPath(path: string, options: SignalOptions = {}): Promise<string> {
    return decode(await this.script('realpath', [this.resolve(path)], options)).replace(/\n$/, '');
  }

  /** Makes a directory; without `parents`, its parent must exist and the path must not. Throws `FileToolError`. */
  async makeDirectory(path: string, options: SignalOptions & { parents: boolean }): Promise<void> {
    await this.script('mkdir', [this.resolve(path), options.parents ? 'parents' : ''], options);
  }

  /** Removes a file, a symlink, an empty directory or (with `recursive`) a whole tree. Throws `FileToolError`. */
  async remove(path: string, options: SignalOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.script('remove', [this.resolve(path), options.recursive ? 'recursive' : ''], options);
  }

  /** Whether the path exists (a dangling symlink does). Never throws for a missing path. */
  async exists(path: string, options: SignalOptions = {}): Promise<boolean> {
    const result = await this.sandbox.run(['/bin/sh', '-c', '[ -e "$1" ] || [ -L "$1" ]', 'exists', this.resolve(path)], options);
    return result.exitCode === 0;
  }

  /**
   * Opens a file for a whole read, following symlinks. Resolves once the file is known to be
   * readable and no larger than `maxBytes`; the stream then errors with a `too_large`
   * `FileToolError` if the file grew past it. Throws `FileToolError`.
   */
  async readStream(path: string, options: SignalOptions & { maxBytes?: number } = {}): Promise<ReadableStream<Uint8Array>> {
    const target = this.resolve(path);
    const limit = options.maxBytes;
    const process = await this.sandbox.exec(
      ['/bin/sh', '-c', fileToolScripts.read, 'read', target, limit === undefined ? '' : String(limit)],
      {
        signal: options.signal,
      },
    );
    void process.stdin.close().catch(() => undefined);
    const reader = process.stdout.getReader();
    const first = await reader.read();
    if (first.done || first.value[0] !== 0x52 /* R */) {
      reader.releaseLock();
      void process.stdout.cancel().catch(() => undefined);
      const stderr = decode(await readBytes(process.stderr, { maxBytes: 4000 }).catch(() => new Uint8Array())).trim();
      throw failure((await process.wait()).exitCode, target, stderr, 'read', limit);
    }
    const rest = prependChunk(reader, first.value.subarray(1)).getReader();
    let total = 0;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const next = await rest.read();
          if (next.done) {
            const { exitCode } = await process.wait();
            void process.stderr.cancel().catch(() => undefined);
            if (exitCode === 0) return controller.close();
            return controller.error(new FileToolError('failed', target, `reading ${target} failed (exit ${exitCode})`));
          }
          total += next.value.byteLength;
          if (limit !== undefined && total > limit) {
            await rest.cancel().catch(() => undefined);
            await process.kill().catch(() => undefined);
            return controller.error(
              new FileToolError('too_large', target, `${target} grew past the ${limit} byte limit while it was read`, { limit }),
            );
          }
          controller.enqueue(next.value);
        },
        async cancel() {
          await rest.cancel().catch(() => undefined);
          await process.kill().catch(() => undefined);
        },
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * Starts writing a file (parents made as needed, `mode` applied at the end, `owner` given the
   * file when it is created, before its bytes), for an emulator that feeds the bytes as its
   * client sends them.
   */
  async openWrite(path: string, options: SignalOptions & { mode?: number; owner?: { uid: number; gid: number } } = {}): Promise<OpenWrite> {
    const target = this.resolve(path);
    if (options.mode !== undefined && (!Number.isInteger(options.mode) || options.mode < 0 || options.mode > 0o7777)) {
      throw new FileToolError('failed', target, `bad mode ${options.mode}`);
    }
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const owner = options.owner === undefined ? '' : `${options.owner.uid}:${options.owner.gid}`;
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileToolScripts.write, 'write', target, mode, owner], {
      signal: options.signal,
    });
    void process.stdout.cancel().catch(() => undefined);
    const stderr = collect(process.stderr, 4000);
    const done = process.wait().then(async ({ exitCode }) => {
      if (exitCode === 0) return;
      const { chunks, total } = await stderr;
      throw failure(exitCode, target, decode(concatBytes(chunks, total)).trim(), 'write');
    });
    done.catch(() => undefined); // the caller may learn the outcome from `stdin` first
    return { stdin: process.stdin, done, abort: () => process.kill() };
  }

  /** Writes a whole file. Throws `FileToolError`, or the source stream's error (the write is then stopped). */
  async write(
    path: string,
    data: string | Uint8Array | ReadableStream<Uint8Array>,
    options: SignalOptions & { mode?: number; owner?: { uid: number; gid: number } } = {},
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
    // A program that failed on its own (a directory, a permission) closed stdin: that is the real error.
    throw outcome instanceof FileToolError && outcome.fault !== 'failed' ? outcome : pipeError;
  }

  private resolve(path: string): string {
    if (path.includes('\0')) throw new FileToolError('failed', path, 'the path contains a NUL byte');
    return posix.isAbsolute(path) ? path : posix.join(this.workdir, path);
  }

  private async script(
    name: 'stat' | 'list' | 'mkdir' | 'remove' | 'realpath',
    args: string[],
    options: SignalOptions,
  ): Promise<Uint8Array> {
    const process = await this.sandbox.exec(['/bin/sh', '-c', fileToolScripts[name], name, ...args], { signal: options.signal });
    void process.stdin.close().catch(() => undefined);
    const [stdout, stderr, status] = await Promise.all([
      readBytes(process.stdout),
      readBytes(process.stderr, { maxBytes: 4000 }).catch(() => new Uint8Array()),
      process.wait(),
    ]);
    if (status.exitCode !== 0) throw failure(status.exitCode, args[0]!, decode(stderr).trim(), name);
    return stdout;
  }
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

/**
 * The fault of a failed file command that is not one of ours: the kit's `fileScripts` exit codes
 * first, its error output second.
 */
export function classifyFileFailure(exitCode: number, stderr: string): FileFault {
  if (exitCode === fileExit.notFound) return 'not_found';
  if (exitCode === fileExit.isDirectory) return 'is_directory';
  if (exitCode === fileExit.notDirectory) return 'not_directory';
  return faultTexts.find(([pattern]) => pattern.test(stderr))?.[1] ?? 'failed';
}

/** The `FileToolError` for a program's exit code (see `exitFaults`) and error output. */
function failure(exitCode: number, path: string, stderr: string, operation: string, limit?: number): FileToolError {
  const [fault, subject] = exitFaults[exitCode] ?? [classifyFileFailure(exitCode, stderr)];
  if (fault === 'too_large') return new FileToolError(fault, path, `${path} is ${stderr} bytes`, { size: Number(stderr), limit });
  return new FileToolError(fault, path, stderr || `${operation} exited ${exitCode}`, subject ? { subject } : {});
}

/** `%y %s %m %T@ %u %g %l %f` records, NUL-separated (see `entryFormat`). */
export function parseEntries(output: Uint8Array): FileEntry[] {
  const fields = decode(output).split('\0');
  const entries: FileEntry[] = [];
  for (let index = 0; index + 8 <= fields.length; index += 8) {
    const [type, size, permissions, modified, owner, group, linkTarget, name] = fields.slice(index, index + 8) as string[] as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    entries.push({
      name,
      path: name,
      type: typeNames[type] ?? 'other',
      mode: (typeBits[type] ?? 0) | Number.parseInt(permissions, 8),
      size: Number(size),
      owner,
      group,
      modifiedTime: Number(modified),
      ...(type === 'l' ? { linkTarget } : {}),
    });
  }
  return entries;
}

/** `0755`: the permission bits (with set-id and sticky bits) as Modal and `stat -c %a` spell them, four digits. */
export function permissionDigits(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** `rwxr-xr-x` for the low nine bits of `mode`. */
export function permissionString(mode: number): string {
  return [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((flag, index) => ((mode >> shift) & (4 >> index) ? flag : '-')).join('')).join('');
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
