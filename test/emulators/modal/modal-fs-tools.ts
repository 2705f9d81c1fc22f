/**
 * The SDK's filesystem API execs a tool inside the sandbox
 * (`/__modal/.bin/modal-sandbox-fs-tools <json>`); the local sandbox has no such binary, so the
 * emulator answers those execs itself with the shared file tools (../shared/file-tools.ts) and
 * translates to the tool's wire format: JSON on stdout, file bytes on stdout/stdin, and on
 * failure a non-zero exit with `{error_kind, message, detail}` on stderr. Only that translation
 * lives here.
 */
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { ExecRecord, type ExitInfo } from '../shared/exec-record.js';
import { EmulatorFiles, FileToolError, permissionString, type FileEntry, type FileFault } from '../shared/file-tools.js';
import { OutputPipe } from '../shared/output-pipe.js';

export const fsToolsPath = '/__modal/.bin/modal-sandbox-fs-tools';

const errorKinds: Record<Exclude<FileFault, 'failed'>, [kind: string, message: string]> = {
  not_found: ['NotFound', 'No such file or directory'],
  is_directory: ['IsDirectory', 'Is a directory'],
  permission_denied: ['PermissionDenied', 'Permission denied'],
  already_exists: ['PathAlreadyExists', 'Path already exists'],
  not_directory: ['NotDirectory', 'Not a directory'],
  not_empty: ['DirectoryNotEmpty', 'Directory not empty'],
};

const encoder = new TextEncoder();
const empty = new Uint8Array();
const typeBits: Record<string, number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000 };

/** The tool's stderr for a failure: its JSON error, or the command's own text when the fault is unknown. */
function errorBytes(error: FileToolError): Uint8Array {
  if (error.fault === 'failed') return encoder.encode(error.detail);
  const [kind, message] = errorKinds[error.fault];
  return encoder.encode(JSON.stringify({ error_kind: kind, message, detail: error.path }));
}

function json(value: unknown): ExecRecord {
  return ExecRecord.finished(encoder.encode(JSON.stringify(value)), empty, 0);
}

function wireEntry(entry: FileEntry): Record<string, unknown> {
  return {
    name: entry.name,
    path: entry.path,
    type: entry.type === 'other' ? 'file' : entry.type,
    size: entry.size,
    mode: (typeBits[entry.type] ?? 0) | entry.mode,
    permissions: permissionString(entry.mode),
    owner: entry.owner,
    group: entry.group,
    modified_time: entry.modifiedAt / 1000,
    symlink_target: entry.type === 'symlink' ? (entry.linkTarget ?? '') : null,
  };
}

/** Runs one fs-tools request (the JSON argument) in the sandbox. */
export async function runFsTool(sandbox: LocalSandbox, request: string): Promise<ExecRecord> {
  let parsed: Record<string, Record<string, unknown>>;
  try {
    parsed = JSON.parse(request) as typeof parsed;
  } catch {
    return ExecRecord.finished(empty, encoder.encode('invalid fs-tools request'), 2);
  }
  const [operation, args] = Object.entries(parsed)[0] ?? [];
  const path = String(args?.path ?? '');
  const files = new EmulatorFiles(sandbox);
  try {
    switch (operation) {
      case 'ReadFile':
        return await readFile(files, path);
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
      default:
        return ExecRecord.finished(
          empty,
          encoder.encode(
            JSON.stringify({ error_kind: 'NotSupported', message: `the emulator does not implement fs-tools ${operation}`, detail: '' }),
          ),
          1,
        );
    }
  } catch (error) {
    if (error instanceof FileToolError) return ExecRecord.finished(empty, errorBytes(error), 1);
    throw error;
  }
}

/**
 * The SDK waits for the tool's exit before it reads the file from stdout, which on Modal works
 * because the output is buffered server-side. The emulator keeps its buffers bounded instead and
 * reports success as soon as the file is open, then streams it.
 */
async function readFile(files: EmulatorFiles, path: string): Promise<ExecRecord> {
  const contents = await files.readStream(path);
  return new ExecRecord({ stdout: new OutputPipe(contents), stderr: new OutputPipe(), exited: Promise.resolve({ code: 0 }) });
}

/** The SDK streams the file to the tool's stdin, then waits for its exit, then reads its stderr. */
async function writeFile(files: EmulatorFiles, path: string): Promise<ExecRecord> {
  const { stdin, done } = await files.openWrite(path);
  let errorOutput: Uint8Array | undefined;
  const exited = done.then(
    (): ExitInfo => ({ code: 0 }),
    (error: unknown): ExitInfo => {
      if (!(error instanceof FileToolError)) return { gone: String(error) };
      errorOutput = errorBytes(error);
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
