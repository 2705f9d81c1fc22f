/**
 * The bridge emulator's routes that both bridge versions share, called with plain `fetch` as
 * cloudflare-bridge.md §1 records the real bridge: auth and its body, id rules, lazy containers,
 * files under /workspace (the dropped connection for a missing file, and the 404 switch),
 * persist/hydrate, running, delete, the restart hook, the pool, the OpenAPI documents and
 * unknown routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloudflareBridgeEmulator, type CloudflareBridgeEmulator } from './cloudflare/index.js';
import { bridgeClient, freshId, type BridgeClient } from './cloudflare/test-client.js';

const unauthorized = { error: 'Unauthorized', code: 'unauthorized' };

/** A tar of the workspace, from an exec (0.12) or a process (0.13): runs `script` in /workspace. */
async function runIn(client: BridgeClient, version: string, id: string, script: string): Promise<string> {
  if (version === '0.12') {
    const { events } = await client.exec(id, { argv: ['sh', '-c', script] });
    return Buffer.concat(events.filter((e) => e.event === 'stdout').map((e) => Buffer.from(e.data, 'base64'))).toString();
  }
  const started = (await (
    await client.call(`/v1/sandbox/${id}/processes`, { method: 'POST', body: { argv: ['sh', '-c', script] } })
  ).json()) as { id: string };
  const logs = await (await client.call(`/v1/sandbox/${id}/processes/${started.id}/logs`)).text();
  return logs
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => JSON.parse(block.slice(6)) as { type: string; data?: string })
    .filter((event) => event.type === 'stdout')
    .map((event) => Buffer.from(event.data!, 'base64').toString())
    .join('');
}

describe.each(['0.12', '0.13'] as const)('bridge %s', (version) => {
  let emulator: CloudflareBridgeEmulator;
  let client: BridgeClient;

  beforeAll(async () => {
    emulator = await startCloudflareBridgeEmulator({ version });
    client = bridgeClient(emulator);
  });
  afterAll(() => emulator?.close());

  describe('auth and ids', () => {
    it('refuses a missing or wrong token with 401 and the bridge body, and takes the prefix in any case on /v1/sandbox', async () => {
      for (const authorization of [undefined, 'Bearer nope', `Basic ${emulator.token}`, emulator.token!]) {
        const response = await fetch(`${emulator.url}/v1/sandbox`, { method: 'POST', headers: authorization ? { authorization } : {} });
        expect(response.status).toBe(401);
        expect(response.headers.get('content-type')).toBe('application/json');
        expect(await response.json()).toEqual(unauthorized);
      }
      const lower = await fetch(`${emulator.url}/v1/sandbox`, { method: 'POST', headers: { authorization: `bearer ${emulator.token}` } });
      expect(lower.status).toBe(200);
    });

    it('POST /v1/sandbox answers a 26-character base32 id and starts nothing', async () => {
      const before = (await (await client.call('/v1/pool/stats')).json()) as { assigned: number };
      const response = await client.call('/v1/sandbox', { method: 'POST' });
      expect(response.status).toBe(200);
      const { id } = (await response.json()) as { id: string };
      expect(id).toMatch(/^[a-z2-7]{26}$/);
      const after = (await (await client.call('/v1/pool/stats')).json()) as { assigned: number };
      expect(after.assigned).toBe(before.assigned);
    });

    it('checks the id format before the token: 400 invalid_request', async () => {
      for (const id of ['My-Box', 'abc1', 'a'.repeat(129), 'abc_d']) {
        const response = await fetch(`${emulator.url}/v1/sandbox/${id}/running`);
        expect(response.status).toBe(400);
        expect(await response.json()).toEqual({ error: 'Invalid sandbox ID format', code: 'invalid_request' });
      }
      const valid = await fetch(`${emulator.url}/v1/sandbox/abcdefg/running`);
      expect(valid.status).toBe(401);
    });

    it('/health needs no token; pool and openapi take only a case-sensitive "Bearer ", openapi also ?token=', async () => {
      expect(await (await fetch(`${emulator.url}/health`)).json()).toEqual({ ok: true });
      const lower = { authorization: `bearer ${emulator.token}` };
      expect((await fetch(`${emulator.url}/v1/pool/stats`, { headers: lower })).status).toBe(401);
      expect((await fetch(`${emulator.url}/v1/openapi.json`, { headers: lower })).status).toBe(401);
      expect((await fetch(`${emulator.url}/v1/openapi.json?token=${emulator.token}`)).status).toBe(200);
      const stats = (await (await client.call('/v1/pool/stats')).json()) as Record<string, unknown>;
      expect(stats).toMatchObject({ warm: 0, config: { warmTarget: 0 }, maxInstances: null });
      expect(await (await client.call('/v1/pool/prime', { method: 'POST' })).json()).toEqual({ ok: true });
    });

    it('an emulator without a token lets every call through', async () => {
      const open = await startCloudflareBridgeEmulator({ version, token: false });
      try {
        expect(open.token).toBeUndefined();
        expect((await fetch(`${open.url}/v1/sandbox`, { method: 'POST' })).status).toBe(200);
        expect(await (await fetch(`${open.url}/v1/sandbox/abcdefg/running`)).json()).toEqual({ running: true });
      } finally {
        await open.close();
      }
    });
  });

  describe('containers', () => {
    it('gives any valid id a container on first use (GET /running allocates), and keeps it for the next calls', async () => {
      const id = freshId('lazy');
      expect(await (await client.call(`/v1/sandbox/${id}/running`)).json()).toEqual({ running: true });
      expect((await client.call(`/v1/sandbox/${id}/file/workspace/kept.txt`, { method: 'PUT', body: 'kept' })).status).toBe(200);
      expect(await (await client.call(`/v1/sandbox/${id}/file/workspace/kept.txt`)).text()).toBe('kept');
      expect(await runIn(client, version, id, 'cat kept.txt')).toBe('kept');
    });

    it('DELETE always answers 204, allocates nothing for an unknown id, and a deleted id comes back empty', async () => {
      const before = (await (await client.call('/v1/pool/stats')).json()) as { assigned: number };
      const unknown = await client.call(`/v1/sandbox/${freshId('never')}`, { method: 'DELETE' });
      expect(unknown.status).toBe(204);
      expect(await unknown.text()).toBe('');
      expect(((await (await client.call('/v1/pool/stats')).json()) as { assigned: number }).assigned).toBe(before.assigned);
      const id = freshId('gone');
      await client.call(`/v1/sandbox/${id}/file/workspace/x`, { method: 'PUT', body: 'x' });
      expect((await client.call(`/v1/sandbox/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect(await runIn(client, version, id, 'ls -A /workspace; echo end')).toBe('end\n');
    });

    it('restartContainer wipes the state of an id: the next call gets a fresh, empty container', async () => {
      const id = freshId('restart');
      await client.call(`/v1/sandbox/${id}/file/workspace/marker`, { method: 'PUT', body: 'here' });
      expect(await emulator.restartContainer(id)).toBe(true);
      expect(await emulator.restartContainer(id)).toBe(false);
      expect(await runIn(client, version, id, 'ls -A /workspace; echo end')).toBe('end\n');
    });

    it('serves the restart hook as a route of its own, guarded by the token', async () => {
      const id = freshId('hook');
      await client.call(`/v1/sandbox/${id}/file/workspace/marker`, { method: 'PUT', body: 'here' });
      expect((await fetch(`${emulator.url}/__emulator/sandbox/${id}/restart`, { method: 'POST' })).status).toBe(401);
      const restarted = await client.call(`/__emulator/sandbox/${id}/restart`, { method: 'POST' });
      expect(await restarted.json()).toEqual({ restarted: true });
      expect(await runIn(client, version, id, 'test -e /workspace/marker && echo kept || echo wiped')).toBe('wiped\n');
    });
  });

  describe('files', () => {
    const id = freshId('files');

    it('round-trips binary and empty files byte for byte, makes parents, and answers octet-stream chunked', async () => {
      const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, index) => (index * 7919) % 256));
      const put = await client.call(`/v1/sandbox/${id}/file/workspace/deep/er/blob.bin`, { method: 'PUT', body: bytes });
      expect(put.status).toBe(200);
      expect(await put.json()).toEqual({ ok: true });
      const got = await client.call(`/v1/sandbox/${id}/file/workspace/deep/er/blob.bin`);
      expect(got.status).toBe(200);
      expect(got.headers.get('content-type')).toBe('application/octet-stream');
      expect(got.headers.get('content-length')).toBeNull();
      expect(Buffer.from(await got.arrayBuffer()).equals(bytes)).toBe(true);
      await client.call(`/v1/sandbox/${id}/file/workspace/empty`, { method: 'PUT', body: new Uint8Array(0) });
      expect((await (await client.call(`/v1/sandbox/${id}/file/workspace/empty`)).arrayBuffer()).byteLength).toBe(0);
    });

    it('percent-decodes the path and resolves . and .. inside /workspace', async () => {
      await client.call(`/v1/sandbox/${id}/file/workspace/a%20b.txt`, { method: 'PUT', body: 'spaced' });
      expect(await runIn(client, version, id, 'cat "/workspace/a b.txt"')).toBe('spaced');
      expect(await (await client.call(`/v1/sandbox/${id}/file/workspace/sub/%2E%2E/a%20b.txt`)).text()).toBe('spaced');
    });

    it('refuses paths outside /workspace with 403 (a path without workspace/ included) and an empty path with 400', async () => {
      for (const path of ['a.txt', 'etc/passwd', 'workspace/%2E%2E/etc/passwd', 'workspacex/a']) {
        const response = await client.call(`/v1/sandbox/${id}/file/${path}`);
        expect(response.status, path).toBe(403);
        expect(await response.json()).toEqual({ error: 'path must resolve to a location within /workspace', code: 'invalid_request' });
      }
      const put = await client.call(`/v1/sandbox/${id}/file/tmp/x`, { method: 'PUT', body: 'x' });
      expect(put.status).toBe(403);
      const empty = await client.call(`/v1/sandbox/${id}/file/`);
      expect(empty.status).toBe(400);
      expect(await empty.json()).toEqual({ error: 'file path must not be empty', code: 'invalid_request' });
    });

    it('refuses a body over 32 MiB with 413 payload_too_large and takes exactly 32 MiB', async () => {
      const limit = 32 * 1024 * 1024;
      const over = await client.call(`/v1/sandbox/${id}/file/workspace/big`, { method: 'PUT', body: new Uint8Array(limit + 1) });
      expect(over.status).toBe(413);
      expect(await over.json()).toEqual({
        error: `payload too large: ${limit + 1} bytes exceeds the ${limit}-byte limit`,
        code: 'payload_too_large',
      });
      const exact = await client.call(`/v1/sandbox/${id}/file/workspace/big`, { method: 'PUT', body: new Uint8Array(limit) });
      expect(exact.status).toBe(200);
      expect(await runIn(client, version, id, 'stat -c %s big; rm big')).toBe(`${limit}\n`);
    });

    it('drops the connection with no status line for a missing file or a directory', async () => {
      for (const path of ['workspace/missing.txt', 'workspace', 'workspace/deep']) {
        const error = await client.call(`/v1/sandbox/${id}/file/${path}`).then(
          (response) => new Error(`answered ${response.status}`),
          (thrown: unknown) => thrown,
        );
        expect(error, path).toBeInstanceOf(TypeError);
        expect(String((error as TypeError).cause)).toMatch(/other side closed|socket|ECONNRESET/i);
      }
    });

    it("answers the documented 404 workspace_read_not_found instead with missingFile: '404'", async () => {
      const documented = await startCloudflareBridgeEmulator({ version, missingFile: '404' });
      try {
        const other = bridgeClient(documented);
        const missing = await other.call('/v1/sandbox/abcdefg/file/workspace/missing.txt');
        expect(missing.status).toBe(404);
        expect(await missing.json()).toEqual({ error: 'File not found: /workspace/missing.txt', code: 'workspace_read_not_found' });
        const directory = await other.call('/v1/sandbox/abcdefg/file/workspace');
        expect(directory.status).toBe(502);
        expect(((await directory.json()) as { code: string }).code).toBe('exec_transport_error');
      } finally {
        await documented.close();
      }
    });
  });

  describe('persist and hydrate', () => {
    it('persists /workspace as a tar with ./ entries, honours comma excludes, and hydrates it into another id (merging)', async () => {
      const source = freshId('persist');
      await runIn(
        client,
        version,
        source,
        'mkdir -p sub skip && echo one > sub/one.txt && echo two > two.txt && echo no > skip/x && echo no > drop.txt',
      );
      const persisted = await client.call(`/v1/sandbox/${source}/persist?excludes=skip,./drop.txt`, { method: 'POST' });
      expect(persisted.status).toBe(200);
      expect(persisted.headers.get('content-type')).toBe('application/octet-stream');
      const tar = Buffer.from(await persisted.arrayBuffer());
      const names = new Set<string>();
      for (let offset = 0; offset + 512 <= tar.length; ) {
        const name = tar
          .subarray(offset, offset + 100)
          .toString('latin1')
          .replace(/\0.*$/s, '');
        if (name === '') break;
        names.add(name);
        const size = Number.parseInt(
          tar
            .subarray(offset + 124, offset + 136)
            .toString('latin1')
            .trim() || '0',
          8,
        );
        offset += 512 + Math.ceil(size / 512) * 512;
      }
      expect([...names].sort()).toEqual(['./', './sub/', './sub/one.txt', './two.txt']);

      const target = freshId('hydrate');
      await runIn(client, version, target, 'echo mine > own.txt');
      const hydrated = await client.call(`/v1/sandbox/${target}/hydrate`, { method: 'POST', body: tar });
      expect(hydrated.status).toBe(200);
      expect(await hydrated.json()).toEqual({ ok: true });
      expect(await runIn(client, version, target, 'cat own.txt sub/one.txt two.txt; ls /tmp')).toBe('mine\none\ntwo\n');
    });

    it('refuses excludes with .., an empty tar (400) and a bad tar (502 workspace_archive_write_error)', async () => {
      const id = freshId('badtar');
      const dotted = await client.call(`/v1/sandbox/${id}/persist?excludes=a,../b`, { method: 'POST' });
      expect(dotted.status).toBe(400);
      expect(await dotted.json()).toEqual({ error: 'exclude paths must not contain ".."', code: 'invalid_request' });
      const empty = await client.call(`/v1/sandbox/${id}/hydrate`, { method: 'POST', body: new Uint8Array(0) });
      expect(empty.status).toBe(400);
      expect(await empty.json()).toEqual({ error: 'Empty tar payload', code: 'invalid_request' });
      const bad = await client.call(`/v1/sandbox/${id}/hydrate`, { method: 'POST', body: Buffer.from('not a tar at all') });
      expect(bad.status).toBe(502);
      const body = (await bad.json()) as { error: string; code: string };
      expect(body.code).toBe('workspace_archive_write_error');
      expect(body.error).toMatch(/tar extract failed \(exit 2\): tar: This does not look like a tar archive/);
    });
  });

  describe('the OpenAPI document and unknown routes', () => {
    it(`describes the ${version} surface in paths, so a client can tell the versions apart`, async () => {
      const response = await client.call('/v1/openapi.json');
      expect(response.status).toBe(200);
      const document = (await response.json()) as { openapi: string; info: { version: string }; paths: Record<string, unknown> };
      expect(document.openapi).toBe('3.1.0');
      expect(document.info.version.startsWith(version)).toBe(true);
      const paths = Object.keys(document.paths);
      expect(paths).toEqual(expect.arrayContaining(['/v1/sandbox', '/v1/sandbox/{id}/file/{path}', '/v1/sandbox/{id}/tunnel/{port}']));
      if (version === '0.12') {
        expect(paths).toEqual(expect.arrayContaining(['/v1/sandbox/{id}/exec', '/v1/sandbox/{id}/session']));
        expect(paths).not.toContain('/v1/sandbox/{id}/processes');
      } else {
        expect(paths).toEqual(expect.arrayContaining(['/v1/sandbox/{id}/processes', '/v1/sandbox/{id}/processes/{processId}/kill']));
        expect(paths).not.toContain('/v1/sandbox/{id}/exec');
      }
      const html = await client.call('/v1/openapi');
      expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    });

    it('answers an unknown /v1 route 404 naming the call, and other paths as the template Worker (OK)', async () => {
      const gone = version === '0.12' ? '/v1/sandbox/abcdefg/processes' : '/v1/sandbox/abcdefg/exec';
      const response = await client.call(gone, { method: 'POST', body: { argv: ['true'] } });
      expect(response.status).toBe(404);
      expect(await response.text()).toContain(`POST ${gone}`);
      expect(await (await fetch(`${emulator.url}/anything`)).text()).toBe('OK');
    });

    it('answers bucket mounts 502 mount_error (not emulated)', async () => {
      const response = await client.call('/v1/sandbox/abcdefg/mount', {
        method: 'POST',
        body: { bucket: 'b', mountPath: '/mnt/b', options: {} },
      });
      expect(response.status).toBe(502);
      expect(((await response.json()) as { code: string }).code).toBe('mount_error');
    });
  });
});
