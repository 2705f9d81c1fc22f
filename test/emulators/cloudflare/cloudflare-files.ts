/**
 * Files and workspaces: `GET`/`PUT /v1/sandbox/:id/file/<path>` and `POST /persist`,
 * `POST /hydrate`, as cloudflare-bridge.md §1.2 and §1.4 record them.
 *
 * - `<path>` is the rest of the URL path, percent-decoded, with `/` put in front; after `.` and
 *   `..` it must be `/workspace` or below (403 otherwise; `a.txt` is `/a.txt`, outside).
 * - GET answers `200 application/octet-stream`, chunked. A missing file or a directory: the
 *   connection is dropped with no status line, as the bridge's dead 404 branch makes it happen;
 *   with `missingFile: '404'` a missing file is the documented
 *   `404 {"code":"workspace_read_not_found"}` instead (a directory then a 502).
 * - PUT buffers the body, refuses more than 32 MiB with 413 `payload_too_large`, makes parents,
 *   answers `{"ok":true}`.
 * - persist: `tar cf /tmp/sandbox-persist-<ms>.tar [--exclude ./x]… -C /workspace .` in the
 *   container, then the file is streamed and removed. hydrate: 1 B to 32 MiB of tar, extracted
 *   over `/workspace` (no wipe).
 */
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EmulatorFiles, FileToolError } from '../shared/file-tools.js';
import { BridgeError, invalidRequest, readBody, sendJson, type BridgeRequest, type BridgeRoute } from './cloudflare-http.js';
import { checkSessionHeader, type ContainerOf } from './cloudflare-exec.js';
import type { BridgeState, Container } from './cloudflare-state.js';
import { resolveWorkspacePath, shellQuote } from './cloudflare-wire.js';

/** The most a PUT body or a hydrate tar may be: 32 MiB. */
export const maxWriteBytes = 32 * 1024 * 1024;

/** What GET does for a missing file: drop the connection (observed) or answer the documented 404. */
export type MissingFileAnswer = 'drop' | '404';

function filePath(request: BridgeRequest): string {
  const rest = request.params['*'] ?? '';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw invalidRequest('file path must not be empty');
  }
  if (decoded === '') throw invalidRequest('file path must not be empty');
  const resolved = resolveWorkspacePath(`/${decoded}`);
  if (!resolved) throw invalidRequest('path must resolve to a location within /workspace', 403);
  return resolved;
}

/** Streams `stream` as a 200 octet-stream, chunked, with backpressure; a failure mid-way cuts the connection. */
async function sendBytes(response: ServerResponse, stream: ReadableStream<Uint8Array>): Promise<void> {
  response.writeHead(200, { 'content-type': 'application/octet-stream' });
  await pipeline(Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>), response).catch(() =>
    response.destroy(),
  );
}

async function run(container: Container, command: string): Promise<{ exitCode: number; stderr: string }> {
  const result = await container.local.run(['/bin/bash', '-c', command], { cwd: '/' });
  return { exitCode: result.exitCode, stderr: result.stderr };
}

export function fileRoutes(state: BridgeState, containerOf: ContainerOf, missingFile: MissingFileAnswer): BridgeRoute[] {
  const hydrateFailure = (message: string) => (state.version === '0.12' ? message : `hydrate failed: ${message}`);
  return [
    {
      method: 'GET',
      pattern: '/v1/sandbox/:id/file/*',
      async handle(request, response) {
        const path = filePath(request);
        // 0.12 honours Session-Id on files (and refuses a malformed one); 0.13 has no sessions.
        if (state.version === '0.12') checkSessionHeader(request);
        const files = new EmulatorFiles(containerOf(request).local, '/workspace');
        let stream: ReadableStream<Uint8Array>;
        try {
          stream = await files.readStream(path);
        } catch (error) {
          const fault = error instanceof FileToolError ? error.fault : 'failed';
          if ((fault === 'not_found' || fault === 'is_directory' || fault === 'not_directory') && missingFile === 'drop') {
            // No status line at all: what a client of the real bridge sees (curl: empty reply).
            request.raw.socket.destroy();
            return;
          }
          if (fault === 'not_found' || fault === 'not_directory') {
            throw new BridgeError(404, `File not found: ${path}`, 'workspace_read_not_found');
          }
          throw new BridgeError(502, `read failed: ${error instanceof Error ? error.message : String(error)}`, 'exec_transport_error');
        }
        await sendBytes(response, stream);
      },
    },
    {
      method: 'PUT',
      pattern: '/v1/sandbox/:id/file/*',
      async handle(request, response) {
        const path = filePath(request);
        // 0.12 honours Session-Id on files (and refuses a malformed one); 0.13 has no sessions.
        if (state.version === '0.12') checkSessionHeader(request);
        const { bytes, total } = await readBody(request.raw, maxWriteBytes);
        if (total > maxWriteBytes) {
          throw new BridgeError(413, `payload too large: ${total} bytes exceeds the ${maxWriteBytes}-byte limit`, 'payload_too_large');
        }
        try {
          await new EmulatorFiles(containerOf(request).local, '/workspace').write(path, bytes);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new BridgeError(502, `write failed: ${message}`, 'workspace_archive_write_error');
        }
        sendJson(response, 200, { ok: true });
      },
    },
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/persist',
      async handle(request, response) {
        request.raw.resume();
        const param = request.url.searchParams.get('excludes') ?? '';
        const excludes = param.split(',').filter((entry) => entry.length > 0);
        if (excludes.some((entry) => entry.includes('..'))) throw invalidRequest('exclude paths must not contain ".."');
        const container = containerOf(request);
        const archive = `/tmp/sandbox-persist-${Date.now()}.tar`;
        const excludeArgs = excludes.map((entry) => `--exclude ${shellQuote(`./${entry.replace(/^\.\//, '')}`)}`);
        const command = ['tar cf', shellQuote(archive), ...excludeArgs, '-C', shellQuote('/workspace'), '.'].join(' ');
        const packed = await run(container, command).catch((error: unknown) => {
          throw new BridgeError(502, `persist failed: ${String(error)}`, 'workspace_archive_read_error');
        });
        if (packed.exitCode !== 0) {
          throw new BridgeError(502, `tar failed (exit ${packed.exitCode}): ${packed.stderr}`, 'workspace_archive_read_error');
        }
        const files = new EmulatorFiles(container.local);
        let stream: ReadableStream<Uint8Array>;
        try {
          stream = await files.readStream(archive);
        } catch (error) {
          throw new BridgeError(502, `persist failed: ${String(error)}`, 'workspace_archive_read_error');
        }
        await sendBytes(response, stream);
        await run(container, `rm -f ${shellQuote(archive)}`).catch(() => undefined);
      },
    },
    {
      method: 'POST',
      pattern: '/v1/sandbox/:id/hydrate',
      async handle(request, response) {
        const container = containerOf(request);
        const { bytes, total } = await readBody(request.raw, maxWriteBytes);
        if (total === 0) throw invalidRequest('Empty tar payload');
        if (total > maxWriteBytes) {
          throw invalidRequest(`tar payload too large: ${total} bytes exceeds the ${maxWriteBytes}-byte limit`);
        }
        const archive = `/tmp/sandbox-hydrate-${Date.now()}.tar`;
        try {
          await new EmulatorFiles(container.local).write(archive, bytes);
          const extracted = await run(container, `mkdir -p /workspace && tar xf ${shellQuote(archive)} -C /workspace`);
          if (extracted.exitCode !== 0) {
            const message = `tar extract failed (exit ${extracted.exitCode}): ${extracted.stderr}`;
            throw new BridgeError(502, hydrateFailure(message), 'workspace_archive_write_error');
          }
        } catch (error) {
          if (error instanceof BridgeError) throw error;
          throw new BridgeError(502, `hydrate failed: ${String(error)}`, 'workspace_archive_write_error');
        } finally {
          await run(container, `rm -f ${shellQuote(archive)}`).catch(() => undefined);
        }
        sendJson(response, 200, { ok: true });
      },
    },
  ];
}
