/**
 * The SDK's filesystem API execs a tool inside the sandbox
 * (`/__modal/.bin/modal-sandbox-fs-tools <json>`); the local sandbox has no such binary, so the
 * emulator answers those execs itself with the shared file tools (../shared/file-tools.ts) and
 * translates to the tool's wire format: JSON on stdout, file bytes on stdout/stdin, and on
 * failure exit 1 with `{version, error_kind, message, detail}` on stderr. The error kinds and
 * messages per operation are the tool's (the SDK maps each kind to its own error class, per
 * operation); Watch lives in modal-fs-watch.ts.
 */
import * as grpc from '@grpc/grpc-js';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { ExecRecord, type ExitInfo } from '../shared/exec-record.js';
import { EmulatorFiles, FileToolError, permissionDigits, type FileEntry } from '../shared/file-tools.js';
import { OutputPipe } from '../shared/output-pipe.js';
import { runWatch } from './modal-fs-watch.js';
import { RpcError } from './modal-rpc.js';

export const fsToolsPath = '/__modal/.bin/modal-sandbox-fs-tools';

/**
 * Modal's limit on a whole-file read through `sb.filesystem` (readBytes, readText, copyToLocal):
 * 5 GiB, the figure of Modal's filesystem guide ("read files of up to 5GB") and of the fake tool
 * in Modal's own client tests. The older `sb.open` API had 100 MiB.
 */
export const modalReadFileLimitBytes = 5 * 1024 * 1024 * 1024;

export interface FsToolOptions {
  /** Whole-file reads above this fail with FileTooLarge. @default modalReadFileLimitBytes */
  maxReadFileBytes?: number;
}

type Operation = 'ReadFile' | 'WriteFile' | 'Stat' | 'ListFiles' | 'MakeDirectory' | 'Remove' | 'Watch';

const encoder = new TextEncoder();
const empty = new Uint8Array();

/** `[error_kind, message]` of the tool for a failure, per operation (its wording differs by call). */
function errorKind(operation: Operation, error: FileToolError): [string, string] {
  switch (error.fault) {
    case 'not_found':
      return ['NotFound', operation === 'MakeDirectory' ? 'parent directory does not exist' : 'path does not exist'];
    case 'not_directory':
      if (operation === 'ListFiles' && error.extra.subject === 'path') return ['IsFile', 'expected a directory path'];
      // The tool's create_dir_all meets the file itself (EEXIST) when it is the direct parent.
      if (operation === 'WriteFile' && error.extra.subject === 'parent')
        return ['AlreadyExists', 'a component of the path is not a directory'];
      return ['NotDirectory', 'a component of the path is not a directory'];
    case 'is_directory':
      return ['IsDirectory', 'expected a file path'];
    case 'permission_denied':
      return ['PermissionDenied', 'permission denied'];
    case 'already_exists':
      return ['PathAlreadyExists', 'path already exists'];
    case 'not_empty':
      return ['DirectoryNotEmpty', 'directory is not empty'];
    case 'too_large':
      return ['FileTooLarge', `file is ${error.extra.size} bytes, which exceeds the ${error.extra.limit} byte limit`];
    default:
      // The detail says what failed (e.g. an image whose find lacks -printf, which Stat and ListFiles need).
      return ['Io', `I/O error: ${error.detail.slice(0, 300)}`];
  }
}

/** The tool's stderr for a failure. */
export function errorBytes(operation: Operation, error: FileToolError): Uint8Array {
  const [kind, message] = errorKind(operation, error);
  return encoder.encode(JSON.stringify({ version: 1, error_kind: kind, message, detail: error.detail }));
}

export function failed(operation: Operation, error: FileToolError): ExecRecord {
  return ExecRecord.finished(empty, errorBytes(operation, error), 1);
}

function json(value: unknown): ExecRecord {
  return ExecRecord.finished(encoder.encode(JSON.stringify(value)), empty, 0);
}

/** The tool's FileEntry: every field the SDK's `FileInfo` reads, `symlink_target` only on symlinks. */
function wireEntry(entry: FileEntry): Record<string, unknown> {
  return {
    name: entry.name,
    path: entry.path,
    type: entry.type === 'other' ? 'file' : entry.type,
    size: entry.size,
    mode: entry.mode,
    permissions: permissionDigits(entry.mode),
    owner: entry.owner,
    group: entry.group,
    modified_time: entry.modifiedTime,
    ...(entry.type === 'symlink' ? { symlink_target: entry.linkTarget ?? '' } : {}),
  };
}

/** Runs one fs-tools request (the JSON argument) in the sandbox. */
export async function runFsTool(sandbox: LocalSandbox, request: string, options: FsToolOptions = {}): Promise<ExecRecord> {
  let parsed: Record<string, Record<string, unknown>>;
  try {
    parsed = JSON.parse(request) as typeof parsed;
  } catch {
    return ExecRecord.finished(empty, encoder.encode(`error: invalid command JSON: ${request}\n`), 2);
  }
  const [operation, args] = Object.entries(parsed ?? {})[0] ?? [];
  const path = String(args?.path ?? '');
  const files = new EmulatorFiles(sandbox);
  try {
    switch (operation) {
      case 'ReadFile':
        return await readFile(files, path, options.maxReadFileBytes ?? modalReadFileLimitBytes);
      case 'WriteFile':
        return await writeFile(files, path);
      case 'Stat':
        return json(wireEntry(await files.statEntry(path)));
      case 'ListFiles':
        return json((await files.listEntries(path)).map(wireEntry));
      case 'MakeDirectory':
        await files.makeDirectory(path, { parents: args?.parents !== false });
        return ExecRecord.finished(empty, empty, 0);
      case 'Remove':
        await files.remove(path, { recursive: Boolean(args?.recursive) });
        return ExecRecord.finished(empty, empty, 0);
      case 'Watch':
        return await runWatch(sandbox, files, {
          path,
          recursive: Boolean(args?.recursive),
          filter: Array.isArray(args?.filter) ? args.filter.map(String) : null,
          timeoutSecs: typeof args?.timeout_secs === 'number' ? args.timeout_secs : null,
        });
      default:
        // Loudly: an SDK that sends a tool command the emulator does not know gets an error naming it.
        return ExecRecord.finished(
          empty,
          encoder.encode(
            JSON.stringify({
              version: 1,
              error_kind: 'Io',
              message: `the Modal emulator does not implement fs-tools command ${operation}`,
              detail: request,
            }),
          ),
          1,
        );
    }
  } catch (error) {
    if (error instanceof FileToolError) return failed(operation as Operation, error);
    throw error;
  }
}

/**
 * The SDK waits for the tool's exit before it reads the file from stdout, which on Modal works
 * because the output is buffered server-side. The emulator keeps its buffers bounded instead and
 * reports success as soon as the file is open and known to be within the limit, then streams it.
 * A file that grows past the limit meanwhile fails the stdout read (RESOURCE_EXHAUSTED), so no
 * read ever hands the client more than the limit.
 */
async function readFile(files: EmulatorFiles, path: string, maxBytes: number): Promise<ExecRecord> {
  const stdout = new FailingPipe(await files.readStream(path, { maxBytes }));
  return new ExecRecord({ stdout, stderr: new OutputPipe(), exited: Promise.resolve({ code: 0 }) });
}

/** An output pipe whose source's error reaches the reader (after the bytes before it), as a gRPC status. */
class FailingPipe extends OutputPipe {
  private readonly outcome: { failure?: RpcError };

  constructor(source: ReadableStream<Uint8Array>) {
    const outcome: { failure?: RpcError } = {};
    const reader = source.getReader();
    super(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const next = await reader.read();
            if (next.done) controller.close();
            else controller.enqueue(next.value);
          } catch (error) {
            outcome.failure = new RpcError(grpc.status.RESOURCE_EXHAUSTED, error instanceof Error ? error.message : String(error));
            controller.close();
          }
        },
        cancel: () => reader.cancel(),
      }),
    );
    this.outcome = outcome;
  }

  override async take(offset: number): Promise<Uint8Array | null> {
    const chunk = await super.take(offset);
    if (chunk === null && this.outcome.failure) throw this.outcome.failure;
    return chunk;
  }
}

/** The SDK streams the file to the tool's stdin, then waits for its exit, then reads its stderr. */
async function writeFile(files: EmulatorFiles, path: string): Promise<ExecRecord> {
  const { stdin, done } = await files.openWrite(path);
  let errorOutput: Uint8Array | undefined;
  const exited = done.then(
    (): ExitInfo => ({ code: 0 }),
    (error: unknown): ExitInfo => {
      if (!(error instanceof FileToolError)) return { gone: String(error) };
      errorOutput = errorBytes('WriteFile', error);
      return { code: 1 };
    },
  );
  const stderr = new ReadableStream<Uint8Array>({
    async start(controller) {
      await exited;
      if (errorOutput) controller.enqueue(errorOutput);
      controller.close();
    },
  });
  return new ExecRecord({ stdout: new OutputPipe(), stderr: new OutputPipe(stderr), exited, stdin });
}
