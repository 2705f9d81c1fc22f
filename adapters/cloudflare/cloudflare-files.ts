/**
 * Files of a Cloudflare sandbox. The bridge has two file routes, GET and PUT of one path under
 * `/workspace`; everything else (list, stat, exists, mkdir, remove) runs through exec (the kit's
 * `ExecFiles`, by `defineFiles`' fallback). Read and write use the routes:
 * - a path under `/workspace` goes straight through them;
 * - any other path is staged: copied by an exec to a file under
 *   `/workspace/.sandport-staging` and read from there, or written there and moved into place by
 *   an exec (the bridge's `/workspace` rule is about its routes, not a boundary: exec reaches
 *   every path), so every path of the contract works the same;
 * - a write above the part size (4 MiB, under the bridge's 32 MiB limit) or from a stream goes as
 *   parts, each a PUT of a staging file, joined by one exec (`cat`), so host memory holds one part.
 * A missing file or a directory makes the bridge drop the read's connection instead of its
 * documented 404: either way the sandbox is asked what the path is, and a missing one is
 * `SandboxFileNotFoundError`.
 */
import { randomUUID } from 'node:crypto';
import {
  SandboxFileNotFoundError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  fileExit,
  type ExecResult,
  type NativeFiles,
  type RunOptions,
  type SandboxError,
  type SignalOptions,
  type WriteData,
} from '../../src/kit/index.js';
import type { BridgeClient } from './cloudflare-client.js';
import { CloudflareBridgeHttpError, CloudflareDroppedReadError, mapCloudflareError } from './cloudflare-errors.js';
import { cloudflareStagingDirectory, planCloudflareFileRoute } from './cloudflare-options.js';

const provider = 'cloudflare';

/** Bytes per PUT of a chunked write: well under the bridge's 32 MiB, and what host memory holds at once. */
export const cloudflareWritePartBytes = 4 * 1024 * 1024;

/** Shell programs the files run in the sandbox (exit codes of the kit's `fileExit`). */
export const cloudflareFileScripts = {
  /** What a path is, after a read the bridge dropped: missing, a directory, or something readable. */
  classify: `[ -d "$1" ] && exit ${fileExit.isDirectory}; [ -e "$1" ] || exit ${fileExit.notFound}; exit 0`,
  /** Copies a file outside `/workspace` to a staging file the GET route reaches. */
  stageOut: `[ -e "$1" ] || exit ${fileExit.notFound}; [ -d "$1" ] && exit ${fileExit.isDirectory}; mkdir -p -- "$(dirname -- "$2")" && cp -- "$1" "$2"`,
  /** Joins staged parts (`$3…`) into the target `$1`, with mode `$2` when not empty, and removes the parts. */
  join: [
    'target=$1; mode=$2; shift 2',
    'dir=$(dirname -- "$target"); mkdir -p -- "$dir" || { rm -f -- "$@"; exit 1; }',
    `if [ -d "$target" ]; then rm -f -- "$@"; exit ${fileExit.isDirectory}; fi`,
    'cat -- "$@" > "$target" || { status=$?; rm -f -- "$@"; exit $status; }',
    'rm -f -- "$@"',
    'if [ -n "$mode" ]; then chmod -- "$mode" "$target" || exit 1; fi',
  ].join('\n'),
  chmod: 'chmod -- "$2" "$1"',
  remove: 'rm -f -- "$@"',
} as const;

export interface CloudflareFilesInit {
  client: BridgeClient;
  sandboxId: string;
  /** The sandbox's `run` (wrapped, counted as activity, refused once the sandbox ended). */
  run: (argv: string[], options?: RunOptions) => Promise<ExecResult>;
  /** Aborts when the sandbox ends: a request still running then stops (the bridge would give the id a new container). */
  ended: AbortSignal;
  /** Bytes per part of a chunked write. @default cloudflareWritePartBytes */
  partBytes?: number;
}

export class CloudflareFiles implements NativeFiles {
  readonly #init: CloudflareFilesInit;
  readonly #partBytes: number;

  constructor(init: CloudflareFilesInit) {
    this.#init = init;
    this.#partBytes = init.partBytes ?? cloudflareWritePartBytes;
  }

  async readStream(path: string, callerOptions: SignalOptions): Promise<ReadableStream<Uint8Array>> {
    const options = { signal: this.#signal(callerOptions.signal) };
    const route = planCloudflareFileRoute(path);
    if (route.kind === 'direct') return this.#get(route.route, path, options.signal);
    const stage = stagingPath();
    const copied = await this.#script(cloudflareFileScripts.stageOut, [path, stage], options.signal);
    this.#check(copied, path, 'read');
    const direct = planCloudflareFileRoute(stage);
    if (direct.kind !== 'direct') throw new Error(`staging path ${stage} is not under /workspace`);
    const cleanup = () => void this.#script(cloudflareFileScripts.remove, [stage]).catch(() => undefined);
    let body: ReadableStream<Uint8Array>;
    try {
      body = await this.#get(direct.route, path, options.signal);
    } catch (error) {
      cleanup();
      throw error;
    }
    return onceDone(body, cleanup);
  }

  async write(path: string, data: WriteData, callerOptions: SignalOptions & { mode?: number | undefined }): Promise<void> {
    const options = { mode: callerOptions.mode, signal: this.#signal(callerOptions.signal) };
    const route = planCloudflareFileRoute(path);
    const mode = options.mode === undefined ? '' : options.mode.toString(8);
    const parts = partsOf(data, this.#partBytes);
    const first = await parts.next();
    const second = first.done ? first : await parts.next();
    if (route.kind === 'direct' && second.done) {
      // One part under /workspace: one PUT (parents are created by the bridge).
      await this.#put(route.route, first.done ? new Uint8Array(0) : first.value, path, options.signal);
      if (mode !== '') this.#check(await this.#script(cloudflareFileScripts.chmod, [path, mode], options.signal), path, 'write');
      return;
    }
    const staged: string[] = [];
    try {
      const pending = [first, second];
      for (;;) {
        const next = pending.length > 0 ? pending.shift()! : await parts.next();
        if (next.done) break;
        const stage = stagingPath();
        const stageRoute = planCloudflareFileRoute(stage);
        if (stageRoute.kind !== 'direct') throw new Error(`staging path ${stage} is not under /workspace`);
        staged.push(stage);
        await this.#put(stageRoute.route, next.value, stage, options.signal);
      }
      // An empty write still joins one (empty) part, so the target exists afterwards.
      if (staged.length === 0) {
        const stage = stagingPath();
        const stageRoute = planCloudflareFileRoute(stage);
        if (stageRoute.kind !== 'direct') throw new Error(`staging path ${stage} is not under /workspace`);
        staged.push(stage);
        await this.#put(stageRoute.route, new Uint8Array(0), stage, options.signal);
      }
      const joined = await this.#script(cloudflareFileScripts.join, [path, mode, ...staged], options.signal);
      staged.length = 0;
      this.#check(joined, path, 'write');
    } finally {
      await parts.return(undefined).catch(() => undefined);
      if (staged.length > 0) void this.#script(cloudflareFileScripts.remove, staged).catch(() => undefined);
    }
  }

  /** The caller's signal joined with the sandbox's end. */
  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.#init.ended]) : this.#init.ended;
  }

  /** GET of a route; a dropped or refused read asks the sandbox what `path` is. */
  async #get(route: string, path: string, signal: AbortSignal | undefined): Promise<ReadableStream<Uint8Array>> {
    try {
      const body = await this.#init.client.readFile(this.#init.sandboxId, route, signal);
      return mappedStream(body, (error) => this.#map(error, 'files.read', path));
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // A dropped connection, the documented 404, or a 5xx for a directory: the sandbox says what the path is.
      if (
        error instanceof CloudflareDroppedReadError ||
        (error instanceof CloudflareBridgeHttpError && (error.status === 404 || error.status >= 500))
      ) {
        this.#check(await this.#script(cloudflareFileScripts.classify, [path], signal), path, 'read');
        // It is there and readable, yet the bridge dropped the read: worth another try.
        throw new SandboxProviderError({
          message: `The bridge dropped the read of ${path}, which exists`,
          provider,
          retryable: true,
          cause: error,
        });
      }
      throw this.#map(error, 'files.read', path);
    }
  }

  /** PUT of a route; a refusal for a directory is told apart by asking the sandbox. */
  async #put(route: string, data: Uint8Array, path: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#init.client.writeFile(this.#init.sandboxId, route, data, signal);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof CloudflareBridgeHttpError && error.status >= 500) {
        const probe = await this.#script(cloudflareFileScripts.classify, [path], signal);
        if (probe.exitCode === fileExit.isDirectory) this.#check(probe, path, 'write');
      }
      throw this.#map(error, 'files.write', path);
    }
  }

  #script(script: string, args: string[], signal?: AbortSignal): Promise<ExecResult> {
    return this.#init.run(['/bin/sh', '-c', script, 'sandport-files', ...args], signal ? { signal } : {});
  }

  /** Throws the typed error for a file script's exit code; returns on 0. */
  #check(result: ExecResult, path: string, operation: string): void {
    if (result.exitCode === 0) return;
    if (result.exitCode === fileExit.notFound)
      throw new SandboxFileNotFoundError({ message: `No such file or directory in the sandbox: ${path}`, path, provider });
    if (result.exitCode === fileExit.isDirectory)
      throw new SandboxInvalidArgumentError({ message: `Cannot ${operation} ${path}: it is a directory`, argument: 'path', provider });
    throw new SandboxProviderError({
      message: `${operation} ${path} failed (exit ${result.exitCode}): ${result.stderr.trim().slice(0, 500)}`,
      provider,
    });
  }

  #map(error: unknown, operation: string, path: string): SandboxError {
    return mapCloudflareError(error, { operation, sandboxId: this.#init.sandboxId, path });
  }
}

function stagingPath(): string {
  return `${cloudflareStagingDirectory}/${randomUUID()}`;
}

/**
 * `data` as parts of exactly `size` bytes (the last one shorter), holding one part at a time.
 * Nothing for empty data.
 */
export async function* partsOf(data: WriteData, size: number): AsyncGenerator<Uint8Array, void, undefined> {
  if (data instanceof Uint8Array) {
    for (let offset = 0; offset < data.byteLength; offset += size) yield data.subarray(offset, Math.min(data.byteLength, offset + size));
    return;
  }
  const reader = data.getReader();
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let finished = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        finished = true;
        break;
      }
      let chunk = next.value;
      while (heldBytes + chunk.byteLength >= size) {
        const take = size - heldBytes;
        held.push(chunk.subarray(0, take));
        // One piece needs no copy: a part is then held once, not twice.
        yield held.length === 1 ? held[0]! : Buffer.concat(held);
        held = [];
        heldBytes = 0;
        chunk = chunk.subarray(take);
      }
      if (chunk.byteLength > 0) {
        held.push(chunk);
        heldBytes += chunk.byteLength;
      }
    }
    if (heldBytes > 0) yield held.length === 1 ? held[0]! : Buffer.concat(held);
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/** `body` with its errors mapped (a connection that drops mid-file). */
function mappedStream(body: ReadableStream<Uint8Array>, map: (error: unknown) => SandboxError): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          controller.error(map(error));
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** `body`, calling `done` once when it ends, errors or is cancelled. */
function onceDone(body: ReadableStream<Uint8Array>, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let called = false;
  const finish = () => {
    if (called) return;
    called = true;
    done();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await reader.read();
          if (next.done) {
            finish();
            controller.close();
          } else controller.enqueue(next.value);
        } catch (error) {
          finish();
          controller.error(error);
        }
      },
      async cancel(reason) {
        finish();
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
