/**
 * `SandboxFiles` for any adapter, from the provider's native file calls with exec as the
 * fallback. The wrapper does what every adapter must do the same way: validate the path (absolute,
 * no NUL, bounded), the data and the options before anything starts; refuse when the sandbox has
 * ended; count the call as activity; reject with `signal.reason` the moment the caller aborts; and
 * report a failure caused by the sandbox ending as `SandboxNotFoundError`. `readText` and
 * `exists` are derived when the native side lacks them.
 */
import { SandboxError, SandboxInvalidArgumentError } from '../errors/index.js';
import { checkWriteData, type SignalOptions } from '../spec/options.js';
import type { FileInfo, SandboxFiles } from '../spec/sandbox.js';
import { abortableStream, readBytes } from '../streams/index.js';
import { ExecFiles, checkFileMode, type ExecCapable } from './exec-files.js';
import type { SandboxLifecycle } from './lifecycle.js';
import { raceWithSignal } from './signals.js';
import { checkSandboxPath } from './validate.js';

/** Data `files.write` accepts, once normalised: bytes or a byte stream. */
export type WriteData = Uint8Array | ReadableStream<Uint8Array>;

/** The provider's own file calls. Paths arrive validated and absolute; options are validated. */
export interface NativeFiles {
  read?(path: string, options: SignalOptions): Promise<Uint8Array>;
  readStream?(path: string, options: SignalOptions): Promise<ReadableStream<Uint8Array>>;
  write?(path: string, data: WriteData, options: SignalOptions & { mode?: number | undefined }): Promise<void>;
  list?(path: string, options: SignalOptions): Promise<FileInfo[]>;
  stat?(path: string, options: SignalOptions): Promise<FileInfo>;
  exists?(path: string, options: SignalOptions): Promise<boolean>;
  mkdir?(path: string, options: SignalOptions): Promise<void>;
  remove?(path: string, options: SignalOptions & { recursive?: boolean | undefined }): Promise<void>;
}

export interface DefineFilesOptions {
  provider: string;
  /** Native calls; what is missing runs through `exec` (`fallback`). */
  native?: NativeFiles;
  /** The sandbox, for the exec fallback. Needed unless `native` has every call. */
  fallback?: ExecCapable;
  lifecycle?: SandboxLifecycle;
}

/** Turns `files.write` data into bytes or a stream (the contract's `checkWriteData`, text encoded as UTF-8). */
export function normaliseWriteData(data: unknown, provider: string): WriteData {
  const checked = checkWriteData(data, provider);
  return typeof checked === 'string' ? new TextEncoder().encode(checked) : checked;
}

const allowedKeys = { plain: ['signal'], write: ['signal', 'mode'], remove: ['signal', 'recursive'] } as const;

/** Validates a files call's options object: only known keys, a real `AbortSignal`, booleans and modes typed. */
function checkOptions<T extends SignalOptions>(options: unknown, keys: readonly string[], provider: string): T {
  if (options === undefined || options === null) return {} as T;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new SandboxInvalidArgumentError({ message: 'options must be an object', argument: 'options', provider });
  }
  for (const key of Object.keys(options)) {
    if (!keys.includes(key)) throw new SandboxInvalidArgumentError({ message: `Unknown option ${key}`, argument: key, provider });
  }
  const { signal, recursive, mode } = options as { signal?: unknown; recursive?: unknown; mode?: unknown };
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new SandboxInvalidArgumentError({ message: 'signal must be an AbortSignal', argument: 'signal', provider });
  }
  if (recursive !== undefined && typeof recursive !== 'boolean') {
    throw new SandboxInvalidArgumentError({ message: 'recursive must be a boolean', argument: 'recursive', provider });
  }
  if (mode !== undefined) checkFileMode(mode as number, provider);
  return options as T;
}

/** Builds the files API. See the module doc. */
export function defineFiles(options: DefineFilesOptions): SandboxFiles {
  const { provider, native = {}, lifecycle } = options;
  const exec = options.fallback ? new ExecFiles(options.fallback, '/', provider) : undefined;
  const impl = <K extends keyof NativeFiles>(name: K): NonNullable<NativeFiles[K]> => {
    const own = native[name];
    if (own) return own.bind(native) as NonNullable<NativeFiles[K]>;
    if (!exec) throw new Error(`defineFiles: ${provider} has no native ${name} and no exec fallback`);
    return (exec[name as keyof ExecFiles] as (...args: unknown[]) => unknown).bind(exec) as NonNullable<NativeFiles[K]>;
  };
  /** Runs one call with the shared checks around it. */
  const call = async <T>(
    operation: string,
    path: unknown,
    rawOptions: unknown,
    keys: readonly string[],
    body: (path: string, options: SignalOptions & Record<string, unknown>) => Promise<T>,
  ): Promise<T> => {
    const checked = checkOptions<SignalOptions & Record<string, unknown>>(rawOptions, keys, provider);
    const target = checkSandboxPath(path, undefined, provider);
    checked.signal?.throwIfAborted();
    lifecycle?.assertRunning();
    lifecycle?.touch();
    try {
      return await raceWithSignal(body(target, checked), { signal: checked.signal, operation: `files.${operation}`, provider });
    } catch (error) {
      if (checked.signal?.aborted && error === checked.signal.reason) throw error;
      if (lifecycle && !lifecycle.isRunning()) throw lifecycle.notFound();
      if (!SandboxError.isInstance(error) && checked.signal?.aborted) throw checked.signal.reason;
      throw error;
    } finally {
      lifecycle?.touch();
    }
  };
  const files: SandboxFiles = {
    read: (path, opts) =>
      call('read', path, opts, allowedKeys.plain, (p, o) =>
        native.read ? impl('read')(p, o) : impl('readStream')(p, o).then((stream) => readBytes(stream)),
      ),
    readText: (path, opts) => files.read(path, opts).then((bytes) => new TextDecoder().decode(bytes)),
    readStream: (path, opts) =>
      call('readStream', path, opts, allowedKeys.plain, async (p, o) => abortableStream(await impl('readStream')(p, o), o.signal)),
    write: async (path, data, opts) => {
      // Checked first: nothing starts for data of the wrong type.
      const normalised = normaliseWriteData(data, provider);
      return call('write', path, opts, allowedKeys.write, (p, o) => impl('write')(p, normalised, o));
    },
    list: (path, opts) =>
      call('list', path, opts, allowedKeys.plain, async (p, o) =>
        (await impl('list')(p, o)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      ),
    stat: (path, opts) => call('stat', path, opts, allowedKeys.plain, (p, o) => impl('stat')(p, o)),
    exists: (path, opts) => call('exists', path, opts, allowedKeys.plain, (p, o) => impl('exists')(p, o)),
    mkdir: (path, opts) => call('mkdir', path, opts, allowedKeys.plain, (p, o) => impl('mkdir')(p, o)),
    remove: (path, opts) => call('remove', path, opts, allowedKeys.remove, (p, o) => impl('remove')(p, o)),
  };
  return files;
}
