/**
 * The SDK's filesystem API execs a tool inside the sandbox
 * (`/__modal/.bin/modal-sandbox-fs-tools <json>`); the local sandbox has no such binary, so the
 * emulator answers those execs itself by running POSIX sh in the sandbox (paths resolve in the
 * sandbox's own view) and translating to the tool's wire format: JSON on stdout, file bytes on
 * stdout/stdin, and on failure a non-zero exit with `{error_kind, message, detail}` on stderr.
 */
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { ExecRecord, OutputPipe, type ExitInfo } from './modal-exec.js';

export const fsToolsPath = '/__modal/.bin/modal-sandbox-fs-tools';

const errorKinds: Record<number, [kind: string, message: string]> = {
  44: ['NotFound', 'No such file or directory'],
  45: ['IsDirectory', 'Is a directory'],
  46: ['PermissionDenied', 'Permission denied'],
  47: ['PathAlreadyExists', 'Path already exists'],
  48: ['NotDirectory', 'Not a directory'],
  49: ['DirectoryNotEmpty', 'Directory not empty'],
};

const entryFormat = `'%y\\0%s\\0%m\\0%T@\\0%l\\0%u\\0%g\\0%p\\0'`;
const scripts = {
  read: '[ -e "$1" ] || exit 44; [ -d "$1" ] && exit 45; [ -r "$1" ] || exit 46; printf R; exec cat -- "$1"',
  write: 'dir=$(dirname -- "$1"); mkdir -p -- "$dir" 2>/dev/null || exit 48; [ -d "$1" ] && exit 45; cat > "$1" || exit 46',
  stat: `[ -e "$1" ] || [ -L "$1" ] || exit 44; find "$1" -maxdepth 0 -printf ${entryFormat}`,
  list: `[ -d "$1" ] || { [ -e "$1" ] && exit 48; exit 44; }; find -H "$1" -mindepth 1 -maxdepth 1 -printf ${entryFormat}`,
  mkdirParents: '[ -e "$1" ] && [ ! -d "$1" ] && exit 47; mkdir -p -- "$1" 2>/dev/null || exit 48',
  mkdir: '[ -e "$1" ] && exit 47; [ -d "$(dirname -- "$1")" ] || exit 44; mkdir -- "$1"',
  remove:
    '[ -e "$1" ] || [ -L "$1" ] || exit 44; if [ -d "$1" ] && [ ! -L "$1" ]; then if [ "$2" = 1 ]; then rm -rf -- "$1"; else rmdir -- "$1" 2>/dev/null || exit 49; fi; else rm -f -- "$1"; fi',
};

const encoder = new TextEncoder();
const typeNames: Record<string, string> = { f: 'file', d: 'directory', l: 'symlink' };
const typeBits: Record<string, number> = { f: 0o100000, d: 0o040000, l: 0o120000 };

function errorBytes(code: number, path: string, stderr = ''): Uint8Array | undefined {
  const known = errorKinds[code];
  if (!known) return stderr ? encoder.encode(stderr) : undefined;
  return encoder.encode(JSON.stringify({ error_kind: known[0], message: known[1], detail: path }));
}

function failed(code: number, path: string, stderr = ''): ExecRecord {
  return ExecRecord.finished(new Uint8Array(), errorBytes(code, path, stderr) ?? new Uint8Array(), 1);
}

function entries(output: string): Array<Record<string, unknown>> {
  const fields = output.split('\0');
  const result: Array<Record<string, unknown>> = [];
  for (let index = 0; index + 8 <= fields.length; index += 8) {
    const [type, size, mode, modified, link, owner, group, path] = fields.slice(index, index + 8) as string[];
    const permissions = Number.parseInt(mode!, 8);
    result.push({
      name: path!.slice(path!.lastIndexOf('/') + 1) || '/',
      path: path!,
      type: typeNames[type!] ?? 'file',
      size: Number(size),
      mode: (typeBits[type!] ?? 0) | permissions,
      permissions: permissionString(permissions),
      owner,
      group,
      modified_time: Number(modified),
      symlink_target: type === 'l' ? link : null,
    });
  }
  return result;
}

function permissionString(bits: number): string {
  return [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((flag, i) => ((bits >> shift) & (4 >> i) ? flag : '-')).join('')).join('');
}

/** Runs one fs-tools request (the JSON argument) in the sandbox. */
export async function runFsTool(sandbox: LocalSandbox, request: string): Promise<ExecRecord> {
  let parsed: Record<string, Record<string, unknown>>;
  try {
    parsed = JSON.parse(request) as typeof parsed;
  } catch {
    return ExecRecord.finished(new Uint8Array(), encoder.encode('invalid fs-tools request'), 2);
  }
  const [operation, args] = Object.entries(parsed)[0] ?? [];
  const path = String(args?.path ?? '');
  const sh = (script: string, ...rest: string[]) => ['/bin/sh', '-c', script, 'modal-fs-tools', path, ...rest];
  const quick = async (script: string, ...rest: string[]) => {
    const result = await sandbox.run(sh(script, ...rest));
    return result;
  };
  switch (operation) {
    case 'ReadFile':
      return readFile(sandbox, sh(scripts.read), path);
    case 'WriteFile':
      return writeFile(sandbox, sh(scripts.write), path);
    case 'Stat': {
      const result = await quick(scripts.stat);
      if (result.exitCode !== 0) return failed(result.exitCode, path, result.stderr);
      return ExecRecord.finished(encoder.encode(JSON.stringify(entries(result.stdout)[0])), new Uint8Array(), 0);
    }
    case 'ListFiles': {
      const result = await quick(scripts.list);
      if (result.exitCode !== 0) return failed(result.exitCode, path, result.stderr);
      const list = entries(result.stdout).sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1));
      return ExecRecord.finished(encoder.encode(JSON.stringify(list)), new Uint8Array(), 0);
    }
    case 'MakeDirectory': {
      const result = await quick(args?.parents === false ? scripts.mkdir : scripts.mkdirParents);
      return result.exitCode === 0 ? ExecRecord.finished(new Uint8Array(), new Uint8Array(), 0) : failed(result.exitCode, path, result.stderr);
    }
    case 'Remove': {
      const result = await quick(scripts.remove, args?.recursive ? '1' : '0');
      return result.exitCode === 0 ? ExecRecord.finished(new Uint8Array(), new Uint8Array(), 0) : failed(result.exitCode, path, result.stderr);
    }
    default:
      return ExecRecord.finished(
        new Uint8Array(),
        encoder.encode(JSON.stringify({ error_kind: 'NotSupported', message: `the emulator does not implement fs-tools ${operation}`, detail: '' })),
        1,
      );
  }
}

/**
 * The SDK waits for the tool's exit before it reads the file from stdout, which on Modal works
 * because the output is buffered server-side. The emulator keeps its buffers bounded instead and
 * reports success as soon as the file is open, then streams it.
 */
async function readFile(sandbox: LocalSandbox, argv: string[], path: string): Promise<ExecRecord> {
  const process = await sandbox.exec(argv);
  void process.stdin.close().catch(() => undefined);
  const reader = process.stdout.getReader();
  const first = await reader.read();
  if (first.done || first.value[0] !== 0x52 /* R */) {
    reader.releaseLock();
    void process.stdout.cancel();
    const stderr = await new Response(process.stderr).text();
    const { exitCode } = await process.wait();
    return failed(exitCode === 0 ? 1 : exitCode, path, stderr);
  }
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
  let pending: Uint8Array | undefined = first.value.subarray(1);
  const rest = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (pending) {
          const chunk = pending;
          pending = undefined;
          if (chunk.byteLength > 0) return controller.enqueue(chunk);
        }
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: () => reader.cancel(),
    },
    { highWaterMark: 0 },
  );
  return new ExecRecord({ stdout: new OutputPipe(rest), stderr: new OutputPipe(), exited: Promise.resolve({ code: 0 }) });
}

async function writeFile(sandbox: LocalSandbox, argv: string[], path: string): Promise<ExecRecord> {
  const process = await sandbox.exec(argv);
  void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
  const stderrText = new Response(process.stderr).text();
  let errorOutput: Uint8Array | undefined;
  const exited = process.wait().then(
    async ({ exitCode }): Promise<ExitInfo> => {
      if (exitCode === 0) return { code: 0 };
      errorOutput = errorBytes(exitCode, path, await stderrText);
      return { code: 1 };
    },
    (error: unknown): ExitInfo => ({ gone: String(error) }),
  );
  const stderr = new ReadableStream<Uint8Array>({
    async start(controller) {
      await exited;
      if (errorOutput) controller.enqueue(errorOutput);
      controller.close();
    },
  });
  return new ExecRecord({ stdout: new OutputPipe(), stderr: new OutputPipe(stderr), exited, stdin: process.stdin });
}
