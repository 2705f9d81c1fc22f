/**
 * Files through Vercel's file calls where they stream, and through commands for the rest (the
 * kit's exec fallback: list, stat, exists, mkdir, remove).
 * - read: `readFile` streams the file; a `null` answer (404) is told apart from a directory by
 *   one command;
 * - write: `writeFiles` builds its gzip tar whole in memory, so data goes in parts of
 *   {@link vercelWritePartBytes}, each its own `writeFiles` into a staging directory, and one
 *   command puts them together over the target (the target keeps its mode and inode, as a
 *   write through `cat` would; a symlink is written through). Host memory stays bounded by the
 *   part size, whatever the length of a streamed write.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Sandbox as VercelSdkSandbox } from '@vercel/sandbox';
import {
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  fileExit,
  fromNodeReadable,
  type NativeFiles,
  type SandboxError,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';

const provider = 'vercel';

/** Size of one `writeFiles` call of a write, in bytes (its tar is built whole in memory). */
export const vercelWritePartBytes = 4 * 1024 * 1024;

/** Where the parts of a write wait before they are joined. */
export const vercelStagingDirectory = '/tmp/.sandport-writes';

/** A helper command run to its end: its exit code and stderr. */
export type VercelRunHelper = (argv: string[], signal: AbortSignal | undefined) => Promise<{ exitCode: number; stderr: string }>;

/** Joins the parts (`$2/*`, named in order) over the target `$1`, with mode `$3` when given; `$2` goes. */
export const joinPartsScript = [
  'target=$1; stage=$2; mode=$3',
  'fail() { rm -rf -- "$stage"; exit "$1"; }',
  'mkdir -p -- "$(dirname -- "$target")" || fail 1',
  `[ -d "$target" ] && fail ${fileExit.isDirectory}`,
  'set -- "$stage"/*',
  'if [ -e "$1" ]; then cat -- "$@" > "$target" || fail 1; else : > "$target" || fail 1; fi',
  'if [ -n "$mode" ]; then chmod -- "$mode" "$target" || fail 1; fi',
  'rm -rf -- "$stage"',
].join('\n');

/** What a path is, for a read Vercel answered with 404: exit 45 a directory, 44 missing. */
const whatIsScript = `[ -d "$1" ] && exit ${fileExit.isDirectory}; [ -e "$1" ] || exit ${fileExit.notFound}; exit 0`;

export class VercelFiles implements NativeFiles {
  constructor(
    private readonly native: () => VercelSdkSandbox,
    private readonly runHelper: VercelRunHelper,
    private readonly mapError: (error: unknown, operation: string, path?: string) => SandboxError,
    /** Aborts (with `SandboxNotFoundError`) when the sandbox ends: a write in parts stops at the next part. */
    private readonly ended: AbortSignal,
  ) {}

  async readStream(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    let stream: NodeJS.ReadableStream | null;
    try {
      stream = await this.native().readFile({ path }, { signal: options.signal });
    } catch (error) {
      const status = (error as { response?: { status?: number } }).response?.status;
      if (status === undefined || status >= 500) throw this.mapError(error, 'files.read', path);
      stream = null;
    }
    if (stream === null) throw await this.#readRefusal(path, options.signal);
    return fromNodeReadable(stream as Readable);
  }

  async write(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void> {
    const stage = `${vercelStagingDirectory}/${randomBytes(8).toString('hex')}`;
    let index = 0;
    const signal = options.signal === undefined ? this.ended : AbortSignal.any([options.signal, this.ended]);
    const put = async (part: Uint8Array) => {
      if (this.ended.aborted) throw this.ended.reason;
      const name = `${stage}/${String(index++).padStart(8, '0')}`;
      try {
        await this.native().writeFiles([{ path: name, content: part }], { signal });
      } catch (error) {
        if (this.ended.aborted) throw this.ended.reason;
        throw this.mapError(error, 'files.write');
      }
    };
    try {
      if (data instanceof Uint8Array) {
        for (let at = 0; at < data.byteLength; at += vercelWritePartBytes) await put(data.subarray(at, at + vercelWritePartBytes));
      } else {
        await forEachPart(data, vercelWritePartBytes, put);
      }
      const mode = options.mode === undefined ? '' : options.mode.toString(8);
      if (this.ended.aborted) throw this.ended.reason;
      const { exitCode, stderr } = await this.runHelper(
        ['/bin/sh', '-c', joinPartsScript, 'sandport-write', path, stage, mode],
        options.signal,
      );
      if (exitCode === fileExit.isDirectory)
        throw new SandboxInvalidArgumentError({ message: `${path} is a directory`, argument: 'path', provider });
      if (exitCode !== 0)
        throw new SandboxProviderError({ message: `Writing ${path} failed (exit ${exitCode}): ${stderr.slice(0, 500)}`, provider });
    } catch (error) {
      if (index > 0 && !this.ended.aborted) void this.runHelper(['rm', '-rf', '--', stage], undefined).catch(() => undefined);
      throw error;
    }
  }

  async #readRefusal(path: string, signal: AbortSignal | undefined): Promise<Error> {
    const { exitCode } = await this.runHelper(['/bin/sh', '-c', whatIsScript, 'sandport-what', path], signal);
    if (exitCode === fileExit.isDirectory)
      return new SandboxInvalidArgumentError({ message: `${path} is a directory, not a file`, argument: 'path', provider });
    if (exitCode === fileExit.notFound)
      return new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider });
    return new SandboxProviderError({ message: `Vercel could not read ${path} (it exists but the file call refused it)`, provider });
  }
}

/**
 * Reads a byte stream into parts of `size` bytes (the last one shorter) and hands each to `put`
 * before reading on, so at most one part (plus one chunk) is held.
 */
export async function forEachPart(
  source: ReadableStream<Uint8Array>,
  size: number,
  put: (part: Uint8Array) => Promise<void>,
): Promise<void> {
  const reader = source.getReader();
  let buffer = new Uint8Array(size);
  let filled = 0;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      let chunk = next.value;
      if (!(chunk instanceof Uint8Array))
        throw new SandboxInvalidArgumentError({ message: 'a write stream must carry Uint8Array chunks', argument: 'data', provider });
      while (chunk.byteLength > 0) {
        const take = Math.min(size - filled, chunk.byteLength);
        buffer.set(chunk.subarray(0, take), filled);
        filled += take;
        chunk = chunk.subarray(take);
        if (filled === size) {
          await put(buffer);
          buffer = new Uint8Array(size);
          filled = 0;
        }
      }
    }
    if (filled > 0) await put(buffer.subarray(0, filled));
  } catch (error) {
    await reader.cancel(error).catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
}
