/**
 * Files of a session, as Vercel's file API has them:
 * - `POST …/fs/write`: the body is a gzipped tar (the SDK's `writeFiles` packs one), extracted
 *   under the `x-cwd` header's directory (the SDK sends `/` and paths relative to it). It streams
 *   into `tar -xz` in the sandbox as it arrives, so a large write is never held in memory; parents
 *   are made as needed, modes come from the archive, owners do not (`--no-same-owner`). A broken
 *   archive or a path the sandbox refuses (below a file, say) is a 400 with tar's words.
 * - `POST …/fs/read` `{ path, cwd }`: the file's bytes as `application/octet-stream`, streamed;
 *   404 for a missing file (the SDK's `readFile` answers null), 400 for a directory.
 * - `POST …/fs/mkdir` `{ path, cwd, recursive }`: parents made unless `recursive: false` (the
 *   default is recursive, as Vercel documents); an existing file in the way is a 400 (409 for
 *   `recursive: false` on an existing directory).
 * Relative paths resolve against `cwd`, default `/vercel/sandbox`.
 */
import { posix } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EmulatorFiles, FileToolError } from '../shared/file-tools.js';
import { HttpError, badRequest, optionalBoolean, optionalString, sendJson, type VercelRoute } from './vercel-http.js';
import { defaultCwd } from './vercel-images.js';
import type { VercelState } from './vercel-state.js';

function resolvePath(body: Record<string, unknown>): string {
  const path = optionalString(body, 'path');
  if (!path) throw badRequest('path', 'is required');
  if (path.includes('\0')) throw badRequest('path', 'must not contain NUL bytes');
  const cwd = optionalString(body, 'cwd') ?? defaultCwd;
  return posix.resolve(defaultCwd, cwd, path);
}

function fileError(error: unknown, path: string): HttpError {
  if (error instanceof HttpError || !(error instanceof FileToolError)) throw error;
  switch (error.fault) {
    case 'not_found':
      return new HttpError(404, 'file_not_found', `${path}: no such file or directory`);
    case 'is_directory':
      return new HttpError(400, 'is_a_directory', `${path} is a directory`);
    case 'not_directory':
      return new HttpError(400, 'not_a_directory', `${path}: a parent is not a directory`);
    case 'permission_denied':
      return new HttpError(403, 'permission_denied', `${path}: permission denied`);
    case 'already_exists':
      return new HttpError(409, 'already_exists', `${path} already exists`);
    default:
      return new HttpError(400, 'file_error', error.message);
  }
}

export function fileRoutes(state: VercelState): VercelRoute[] {
  return [
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/fs/write',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const header = request.headers['x-cwd'];
        const extractDir = posix.resolve(defaultCwd, typeof header === 'string' && header !== '' ? header : defaultCwd);
        const tar = await state.whileRunning(session, () =>
          session.entry.local.exec(['tar', '-xzf', '-', '--no-same-owner', '-C', extractDir], { cwd: '/' }),
        );
        void tar.stdout.cancel().catch(() => undefined);
        const said = (async () => {
          let text = '';
          const decoder = new TextDecoder();
          for await (const chunk of tar.stderr) if (text.length < 4000) text += decoder.decode(chunk, { stream: true });
          return text.trim();
        })();
        // The body streams into tar; tar's own failure shows in its exit code and words.
        await pipeline(request.raw, Writable.fromWeb(tar.stdin)).catch(() => undefined);
        const { exitCode } = await state.whileRunning(
          session,
          () => tar.wait(),
          (status) => status.exitCode !== 0,
        );
        if (exitCode !== 0) {
          throw new HttpError(
            400,
            'file_write_failed',
            `writing files under ${extractDir} failed: ${(await said) || `tar exited ${exitCode}`}`,
          );
        }
        sendJson(response, 200, {});
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/fs/read',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const path = resolvePath(await request.json());
        let stream: ReadableStream<Uint8Array>;
        try {
          stream = await state.whileRunning(session, () => new EmulatorFiles(session.entry.local, defaultCwd).readStream(path));
        } catch (error) {
          throw fileError(error, path);
        }
        response.writeHead(200, { 'content-type': 'application/octet-stream' });
        await pipeline(Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>), response).catch(() =>
          response.destroy(),
        );
      },
    },
    {
      method: 'POST',
      pattern: '/v2/sandboxes/sessions/:sessionId/fs/mkdir',
      async handle(request, response) {
        const session = state.runningSession(request.params.sessionId!);
        const body = await request.json();
        const path = resolvePath(body);
        const recursive = optionalBoolean(body, 'recursive') ?? true;
        try {
          await state.whileRunning(session, () =>
            new EmulatorFiles(session.entry.local, defaultCwd).makeDirectory(path, { parents: recursive }),
          );
        } catch (error) {
          throw fileError(error, path);
        }
        sendJson(response, 200, {});
      },
    },
  ];
}
