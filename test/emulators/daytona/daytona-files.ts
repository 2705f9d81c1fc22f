/**
 * The daemon's file system API (`/toolbox/<sandboxId>/files...`, the SDK's `sandbox.fs`), run
 * in the sandbox through ../shared/file-tools.ts (and a few sh programs of its own for move,
 * permissions, find and search). Relative paths resolve against the working directory.
 * - `POST /files/bulk-upload`: multipart `files[i].path` + `files[i].file`, each file streamed
 *   into the sandbox as it arrives (parents made); `POST /files/upload-v2?path=` one file.
 * - `POST /files/bulk-download` `{ paths }`: a multipart answer, one part per path in order,
 *   `name="file"` with the bytes streamed, or `name="error"` with Daytona's JSON error
 *   (`FILE_NOT_FOUND`, …) for a path that cannot be read; `GET /files/download?path=` one file.
 * - list (`?depth=`, entries with `path`), info, folder (`?mode=` octal), delete (`?recursive=`;
 *   a non-empty directory without it is a 400), move, permissions (`mode` octal, `owner`,
 *   `group`), find (content, like `grep -rn`), search (names, a glob), replace (a plain string in
 *   each file, one result per file).
 * Faults are the daemon's errors: 404 `FILE_NOT_FOUND`, 403 `FILE_ACCESS_DENIED`, 400 otherwise.
 */
import type { ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { readBytes, readText } from '../../../src/kit/index.js';
import { EmulatorFiles, FileToolError, permissionDigits, permissionString, type FileEntry } from '../shared/file-tools.js';
import { randomToken } from '../shared/ids.js';
import { multipartBoundary, multipartParts } from '../e2b/e2b-multipart.js';
import { HttpError, errorBody, sendJson, type DaytonaRequest, type DaytonaRoute } from './daytona-http.js';
import type { DaytonaSandbox, DaytonaState } from './daytona-state.js';
import type { LocalSandbox } from '../../../adapters/local/index.js';

function faultError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof FileToolError) {
    switch (error.fault) {
      case 'not_found':
        return new HttpError(404, `file not found: ${error.path}`, 'FILE_NOT_FOUND');
      case 'permission_denied':
        return new HttpError(403, `permission denied: ${error.path}`, 'FILE_ACCESS_DENIED');
      case 'is_directory':
        return new HttpError(400, `${error.path} is a directory`, 'BAD_REQUEST');
      case 'not_directory':
        return new HttpError(400, `${error.path}: not a directory`, 'BAD_REQUEST');
      case 'already_exists':
        return new HttpError(409, `${error.path} already exists`, 'CONFLICT');
      case 'not_empty':
        return new HttpError(400, `directory ${error.path} is not empty: delete it with recursive`, 'BAD_REQUEST');
      default:
        return new HttpError(400, error.message, 'BAD_REQUEST');
    }
  }
  return new HttpError(500, error instanceof Error ? error.message : String(error));
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw faultError(error);
  }
}

/** Go's `FileMode.String()`: the type letter and the nine permission bits. */
function goMode(entry: FileEntry): string {
  const letter = entry.type === 'directory' ? 'd' : entry.type === 'symlink' ? 'L' : entry.type === 'other' ? '?' : '-';
  return `${letter}${permissionString(entry.mode)}`;
}

function fileInfo(entry: FileEntry) {
  const modified = new Date(entry.modifiedTime * 1000).toISOString();
  return {
    name: entry.name,
    path: entry.path,
    isDir: entry.type === 'directory',
    size: entry.size,
    mode: goMode(entry),
    permissions: permissionDigits(entry.mode),
    owner: entry.owner,
    group: entry.group,
    modTime: modified,
    modifiedAt: modified,
  };
}

interface Context {
  sandbox: DaytonaSandbox;
  local: LocalSandbox;
  files: EmulatorFiles;
  resolve(path: string | null): string;
}

function context(state: DaytonaState, request: DaytonaRequest): Context {
  const { sandbox, local } = state.running(request.params.sandboxId!);
  const workdir = sandbox.localOptions.workdir ?? sandbox.home;
  return {
    sandbox,
    local,
    files: new EmulatorFiles(local, workdir),
    resolve(path) {
      if (path === null || path === '') throw new HttpError(400, 'path is required', 'BAD_REQUEST');
      return posix.isAbsolute(path) ? posix.normalize(path) : posix.join(workdir, path);
    },
  };
}

/** Runs an sh program in the sandbox; its stderr becomes the error of a non-zero exit. */
async function sh(local: LocalSandbox, script: string, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const result = await local.run(['/bin/sh', '-c', script, 'daytona-files', ...args]);
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** Answers 404 for a path that does not exist (before a program that would say less). */
async function mustExist(files: EmulatorFiles, path: string): Promise<void> {
  if (!(await files.exists(path))) throw new HttpError(404, `file not found: ${path}`, 'FILE_NOT_FOUND');
}

async function list(ctx: Context, path: string, depth: number) {
  const out: ReturnType<typeof fileInfo>[] = [];
  let level = [path];
  for (let current = 1; current <= depth && level.length > 0; current++) {
    const next: string[] = [];
    for (const directory of level) {
      const entries = await ctx.files.listEntries(directory);
      for (const entry of entries) {
        out.push(fileInfo(entry));
        if (entry.type === 'directory') next.push(entry.path);
      }
    }
    level = next;
  }
  return out;
}

/** One part of a multipart answer; the filename as the SDK matches it (its own path, byte for byte). */
function partHeader(boundary: string, name: 'file' | 'error', filename: string, contentType: string, length?: number): string {
  const plain = /^[\x20-\x7e]*$/.test(filename) && !/["\\]/.test(filename);
  const disposition = plain ? `filename="${filename}"` : `filename*=UTF-8''${encodeURIComponent(filename)}`;
  const lines = [`--${boundary}`, `Content-Disposition: form-data; name="${name}"; ${disposition}`, `Content-Type: ${contentType}`];
  if (length !== undefined) lines.push(`Content-Length: ${length}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Writes into the response, waiting when it pushes back. */
function writeOut(response: ServerResponse, chunk: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (response.destroyed) return reject(new Error('the client went away'));
    if (response.write(chunk)) return resolve();
    const onDrain = () => {
      response.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      response.off('drain', onDrain);
      reject(new Error('the client went away'));
    };
    response.once('drain', onDrain);
    response.once('close', onClose);
  });
}

async function bulkDownload(ctx: Context, request: DaytonaRequest, response: ServerResponse): Promise<void> {
  const body = z.object({ paths: z.array(z.string()).min(1) }).safeParse(await request.json());
  if (!body.success) throw new HttpError(400, 'paths must be a non-empty list', 'INVALID_REQUEST_BODY');
  const boundary = `daytona-${randomToken(24)}`;
  response.writeHead(200, { 'content-type': `multipart/form-data; boundary=${boundary}` });
  try {
    for (const path of body.data.paths) {
      let stream: ReadableStream<Uint8Array>;
      let size: number | undefined;
      try {
        const target = ctx.resolve(path);
        const entry = await ctx.files.statEntry(target).catch(() => undefined);
        if (entry?.type === 'directory') throw new HttpError(400, `${target} is a directory`, 'BAD_REQUEST');
        stream = await ctx.files.readStream(target);
        size = entry?.type === 'file' ? entry.size : undefined;
      } catch (error) {
        const failure = faultError(error);
        const text = JSON.stringify(
          errorBody('daemon', failure.status, failure.message, { method: 'POST', path: request.url.pathname }, failure.code),
        );
        await writeOut(response, partHeader(boundary, 'error', path, 'application/json'));
        await writeOut(response, `${text}\r\n`);
        continue;
      }
      await writeOut(response, partHeader(boundary, 'file', path, 'application/octet-stream', size));
      const reader = stream.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await writeOut(response, value);
        }
      } finally {
        reader.releaseLock();
      }
      await writeOut(response, '\r\n');
    }
    await writeOut(response, `--${boundary}--\r\n`);
    response.end();
  } catch {
    response.destroy();
  }
}

async function bulkUpload(ctx: Context, request: DaytonaRequest, response: ServerResponse, singlePath?: string): Promise<void> {
  const boundary = multipartBoundary(String(request.headers['content-type'] ?? ''));
  if (!boundary) throw new HttpError(400, 'expected a multipart/form-data body', 'BAD_REQUEST');
  const paths = new Map<string, string>();
  try {
    for await (const part of multipartParts(request.raw as AsyncIterable<Uint8Array>, boundary)) {
      const name = part.name ?? '';
      const pathField = /^files\[(\d+)\]\.path$/.exec(name);
      if (pathField) {
        const chunks: Buffer[] = [];
        for await (const chunk of part.body) chunks.push(chunk);
        paths.set(pathField[1]!, Buffer.concat(chunks).toString('utf8'));
        continue;
      }
      const fileField = /^files\[(\d+)\]\.file$/.exec(name);
      const destination = fileField ? paths.get(fileField[1]!) : name === 'file' ? (singlePath ?? part.filename) : undefined;
      if (destination === undefined) {
        for await (const _chunk of part.body) {
          // A field the daemon does not know: read past it.
        }
        continue;
      }
      await ctx.files.write(ctx.resolve(destination), Readable.toWeb(Readable.from(part.body)) as ReadableStream<Uint8Array>);
    }
  } catch (error) {
    throw faultError(error);
  }
  response.writeHead(200).end();
}

const moveScript = 'mv -f -- "$1" "$2"';
const chmodScript = 'chmod -- "$2" "$1"';
const chownScript = 'chown -- "$2" "$1"';
const findScript = 'grep -rnIH -e "$2" -- "$1"; [ $? -le 1 ]';
const searchScript = 'find "$1" -name "$2" 2>/dev/null; exit 0';

export function fileRoutes(state: DaytonaState): DaytonaRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/files',
      async handle(request, response) {
        const ctx = context(state, request);
        const depth = Number(request.url.searchParams.get('depth') ?? 1) || 1;
        const path = ctx.resolve(request.url.searchParams.get('path') ?? ctx.sandbox.localOptions.workdir ?? ctx.sandbox.home);
        sendJson(response, 200, await guarded(() => list(ctx, path, Math.max(1, depth))));
      },
    },
    {
      method: 'DELETE',
      pattern: '/files',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        const recursive = request.url.searchParams.get('recursive') === 'true';
        await guarded(async () => {
          const entry = await ctx.files.statEntry(path);
          if (entry.type === 'directory' && !recursive) {
            const children = await ctx.files.listEntries(path);
            if (children.length > 0) throw new HttpError(400, `directory ${path} is not empty: delete it with recursive`, 'BAD_REQUEST');
          }
          await ctx.files.remove(path, { recursive: true });
        });
        response.writeHead(204).end();
      },
    },
    {
      method: 'GET',
      pattern: '/files/download',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        const entry = await guarded(() => ctx.files.statEntry(path));
        if (entry.type === 'directory') throw new HttpError(400, `${path} is a directory`, 'BAD_REQUEST');
        const stream = await guarded(() => ctx.files.readStream(path));
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-disposition': `attachment; filename="${posix.basename(path).replace(/["\\]/g, '_')}"`,
        });
        Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>).pipe(response);
      },
    },
    {
      method: 'POST',
      pattern: '/files/bulk-download',
      handle: async (request, response) => bulkDownload(context(state, request), request, response),
    },
    {
      method: 'POST',
      pattern: '/files/bulk-upload',
      handle: async (request, response) => bulkUpload(context(state, request), request, response),
    },
    {
      method: 'POST',
      pattern: '/files/upload-v2',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        if (String(request.headers['content-type'] ?? '').startsWith('multipart/')) return bulkUpload(ctx, request, response, path);
        await guarded(() => ctx.files.write(path, Readable.toWeb(request.raw) as ReadableStream<Uint8Array>));
        response.writeHead(200).end();
      },
    },
    {
      method: 'POST',
      pattern: '/files/folder',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        const mode = request.url.searchParams.get('mode');
        if (mode !== null && !/^[0-7]{3,4}$/.test(mode)) throw new HttpError(400, `invalid mode ${mode}`, 'BAD_REQUEST');
        await guarded(async () => {
          await ctx.files.makeDirectory(path, { parents: true });
          if (mode) await sh(ctx.local, chmodScript, [path, mode]);
        });
        response.writeHead(201).end();
      },
    },
    {
      method: 'GET',
      pattern: '/files/info',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        sendJson(response, 200, fileInfo(await guarded(() => ctx.files.statEntry(path))));
      },
    },
    {
      method: 'POST',
      pattern: '/files/move',
      async handle(request, response) {
        const ctx = context(state, request);
        const source = ctx.resolve(request.url.searchParams.get('source'));
        const destination = ctx.resolve(request.url.searchParams.get('destination'));
        await mustExist(ctx.files, source);
        const result = await sh(ctx.local, moveScript, [source, destination]);
        if (result.exitCode !== 0) throw new HttpError(400, `move failed: ${result.stderr.trim()}`, 'BAD_REQUEST');
        response.writeHead(200).end();
      },
    },
    {
      method: 'POST',
      pattern: '/files/permissions',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        await mustExist(ctx.files, path);
        const mode = request.url.searchParams.get('mode');
        const owner = request.url.searchParams.get('owner');
        const group = request.url.searchParams.get('group');
        if (mode) {
          if (!/^[0-7]{3,4}$/.test(mode)) throw new HttpError(400, `invalid mode ${mode}`, 'BAD_REQUEST');
          const result = await sh(ctx.local, chmodScript, [path, mode]);
          if (result.exitCode !== 0) throw new HttpError(400, `chmod failed: ${result.stderr.trim()}`, 'BAD_REQUEST');
        }
        if (owner || group) {
          const result = await sh(ctx.local, chownScript, [path, `${owner ?? ''}${group ? `:${group}` : ''}`]);
          if (result.exitCode !== 0) {
            throw new HttpError(
              400,
              `chown failed (the emulator's local sandbox maps only root, so files cannot change owner): ${result.stderr.trim()}`,
              'BAD_REQUEST',
            );
          }
        }
        response.writeHead(200).end();
      },
    },
    {
      method: 'GET',
      pattern: '/files/find',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        const pattern = request.url.searchParams.get('pattern') ?? '';
        await mustExist(ctx.files, path);
        const result = await sh(ctx.local, findScript, [path, pattern]);
        if (result.exitCode !== 0) throw new HttpError(400, `search failed: ${result.stderr.trim()}`, 'BAD_REQUEST');
        const matches = result.stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => {
            const match = /^(.*?):(\d+):(.*)$/.exec(line);
            return match ? { file: match[1]!, line: Number(match[2]), content: match[3]! } : undefined;
          })
          .filter((match) => match !== undefined);
        sendJson(response, 200, matches);
      },
    },
    {
      method: 'GET',
      pattern: '/files/search',
      async handle(request, response) {
        const ctx = context(state, request);
        const path = ctx.resolve(request.url.searchParams.get('path'));
        await mustExist(ctx.files, path);
        const result = await sh(ctx.local, searchScript, [path, request.url.searchParams.get('pattern') ?? '*']);
        sendJson(response, 200, { files: result.stdout.split('\n').filter(Boolean) });
      },
    },
    {
      method: 'POST',
      pattern: '/files/replace',
      async handle(request, response) {
        const ctx = context(state, request);
        const body = z.object({ files: z.array(z.string()), pattern: z.string(), newValue: z.string() }).safeParse(await request.json());
        if (!body.success) throw new HttpError(400, 'files, pattern and newValue are required', 'INVALID_REQUEST_BODY');
        const results = [];
        for (const file of body.data.files) {
          try {
            const path = ctx.resolve(file);
            const text = await readText(await ctx.files.readStream(path));
            await ctx.files.write(path, text.replaceAll(body.data.pattern, body.data.newValue));
            results.push({ file, success: true });
          } catch (error) {
            results.push({ file, success: false, error: faultError(error).message });
          }
        }
        sendJson(response, 200, results);
      },
    },
  ];
}

/** Reads a file whole (tests and the snapshot builder). */
export async function readSandboxFile(local: LocalSandbox, path: string): Promise<Uint8Array> {
  return readBytes(await new EmulatorFiles(local).readStream(path));
}
