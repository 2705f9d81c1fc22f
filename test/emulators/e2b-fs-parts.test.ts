/**
 * The E2B emulator's filesystem parts that need no sandbox: the streaming multipart reader, the
 * `Accept-Encoding` negotiation, the signature of file URLs (checked against the SDK's own
 * `getSignature`), Go's mode strings, protobuf's JSON timestamps, WalkDir order, envd's path
 * resolution and metadata headers.
 */
import { getSignature } from 'e2b';
import { describe, expect, it } from 'vitest';
import { HttpError } from './e2b/e2b-http.js';
import { fileSignature, negotiateEncoding } from './e2b/e2b-files.js';
import { metadataFromHeaders } from './e2b/e2b-fs-metadata.js';
import { compareWalkOrder, goModeString, timestampJson } from './e2b/e2b-fs-tools.js';
import { PathResolveError, resolveEnvdPath } from './e2b/e2b-fs-users.js';
import { MultipartError, multipartBoundary, multipartParts, parseHeaderParameters } from './e2b/e2b-multipart.js';

async function* chunked(body: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < body.length; offset += size) yield body.subarray(offset, offset + size);
}

async function readParts(body: Buffer, boundary: string, size: number) {
  const parts: Array<{ name?: string; filename?: string; body: string }> = [];
  for await (const part of multipartParts(chunked(body, size), boundary)) {
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk);
    parts.push({ name: part.name, filename: part.filename, body: Buffer.concat(chunks).toString('latin1') });
  }
  return parts;
}

describe('multipart reader', () => {
  it('reads the parts of a FormData body, cut into chunks of any size', async () => {
    const form = new FormData();
    form.append('file', new Blob(['first\r\n--almost a boundary\r\n']), '/home/user/a "quoted".txt');
    form.append('other', 'ignored field');
    form.append('file', new Blob([new Uint8Array([0, 13, 10, 45, 45, 255])]), 'relative/b.bin');
    const request = new Request('http://x/', { method: 'POST', body: form });
    const boundary = multipartBoundary(request.headers.get('content-type')!)!;
    const body = Buffer.from(await request.arrayBuffer());
    for (const size of [1, 7, 64, body.length]) {
      const parts = await readParts(body, boundary, size);
      expect(parts.map(({ name, filename }) => ({ name, filename }))).toEqual([
        // undici escapes a quote in a filename as %22; envd takes the parameter as sent.
        { name: 'file', filename: '/home/user/a %22quoted%22.txt' },
        { name: 'other', filename: undefined },
        { name: 'file', filename: 'relative/b.bin' },
      ]);
      expect(parts[0]!.body).toBe('first\r\n--almost a boundary\r\n');
      expect(parts[1]!.body).toBe('ignored field');
      expect(Buffer.from(parts[2]!.body, 'latin1')).toEqual(Buffer.from([0, 13, 10, 45, 45, 255]));
    }
  });

  it('skips a part its reader left unread', async () => {
    const body = Buffer.from(
      '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nskipped\r\n--b\r\nContent-Disposition: form-data; name="c"\r\n\r\nread\r\n--b--\r\n',
    );
    const names: string[] = [];
    for await (const part of multipartParts(chunked(body, 5), 'b')) {
      names.push(part.name!);
      if (part.name === 'c') for await (const chunk of part.body) expect(chunk.toString()).toBe('read');
    }
    expect(names).toEqual(['a', 'c']);
  });

  it('refuses a truncated body', async () => {
    const body = Buffer.from('--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nno end');
    await expect(readParts(body, 'b', 4)).rejects.toBeInstanceOf(MultipartError);
  });

  it('parses header parameters with quotes and escapes', () => {
    expect(parseHeaderParameters('form-data; name="file"; filename="a\\"b;c.txt"')).toEqual({
      value: 'form-data',
      parameters: { name: 'file', filename: 'a"b;c.txt' },
    });
    expect(multipartBoundary('multipart/form-data; boundary=----x')).toBe('----x');
    expect(multipartBoundary('application/octet-stream')).toBeUndefined();
  });
});

describe('Accept-Encoding', () => {
  it('prefers gzip where offered, as envd does, and identity otherwise', () => {
    expect(negotiateEncoding(undefined)).toBe('identity');
    expect(negotiateEncoding('gzip, deflate')).toBe('gzip');
    expect(negotiateEncoding('br, gzip, deflate')).toBe('gzip');
    expect(negotiateEncoding('identity')).toBe('identity');
    expect(negotiateEncoding('gzip;q=0.5, identity')).toBe('identity');
    expect(negotiateEncoding('br')).toBe('identity');
    expect(negotiateEncoding('*')).toBe('identity');
    expect(negotiateEncoding('identity;q=0, *')).toBe('gzip');
  });

  it('answers 406 when nothing it has is acceptable', () => {
    let refused: unknown;
    try {
      negotiateEncoding('br, identity;q=0');
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(HttpError);
    expect((refused as HttpError).status).toBe(406);
  });
});

describe('file URL signatures', () => {
  it('matches the signature the SDK makes, with and without an expiry', async () => {
    const token = 'tok3n';
    for (const [path, operation, user] of [
      ['/home/user/a.txt', 'read', 'user'],
      ['relative/b', 'write', undefined],
      ['', 'write', 'root'],
    ] as const) {
      const sdk = await getSignature({ path, operation, user, envdAccessToken: token });
      expect(fileSignature(path, operation, user ?? '', token)).toBe(sdk.signature);
      const expiring = await getSignature({ path, operation, user, envdAccessToken: token, expirationInSeconds: 60 });
      expect(fileSignature(path, operation, user ?? '', token, expiring.expiration!)).toBe(expiring.signature);
    }
  });
});

describe('envd entry details', () => {
  it('spells modes as Go does', () => {
    expect(goModeString('f', 0o644)).toBe('-rw-r--r--');
    expect(goModeString('d', 0o755)).toBe('drwxr-xr-x');
    expect(goModeString('l', 0o777)).toBe('Lrwxrwxrwx');
    expect(goModeString('f', 0o4755)).toBe('urwxr-xr-x');
    expect(goModeString('d', 0o1777)).toBe('dtrwxrwxrwx');
    expect(goModeString('f', 0o2755)).toBe('grwxr-xr-x');
    expect(goModeString('p', 0o600)).toBe('prw-------');
    expect(goModeString('s', 0o755)).toBe('Srwxr-xr-x');
    expect(goModeString('b', 0o660)).toBe('Drw-rw----');
    expect(goModeString('c', 0o666)).toBe('Dcrw-rw-rw-');
  });

  it('writes timestamps as protobuf JSON does, without rounding', () => {
    expect(timestampJson('1700000000.1234567890')).toBe('2023-11-14T22:13:20.123456789Z');
    expect(timestampJson('1700000000.5000000000')).toBe('2023-11-14T22:13:20.500Z');
    expect(timestampJson('1700000000.0000000000')).toBe('2023-11-14T22:13:20Z');
    expect(timestampJson('1700000000.1234560000')).toBe('2023-11-14T22:13:20.123456Z');
    expect(timestampJson('0.0000000000')).toBeUndefined();
  });

  it('orders a walk as Go WalkDir does', () => {
    const paths = ['/t/b/x', '/t/a', '/t/b', '/t/B', '/t/a.txt', '/t/b/deeper/y', '/t/b/deeper'];
    expect([...paths].sort(compareWalkOrder)).toEqual(['/t/B', '/t/a', '/t/a.txt', '/t/b', '/t/b/deeper', '/t/b/deeper/y', '/t/b/x']);
  });
});

describe('envd paths and metadata headers', () => {
  const user = { name: 'user', uid: 1000, gid: 1000, home: '/home/user' };

  it('resolves paths for the user as envd does', () => {
    expect(resolveEnvdPath('', user)).toBe('/home/user');
    expect(resolveEnvdPath('', user, '/work')).toBe('/work');
    expect(resolveEnvdPath('a/../b.txt', user)).toBe('/home/user/b.txt');
    expect(resolveEnvdPath('~', user)).toBe('/home/user');
    expect(resolveEnvdPath('~/x', user)).toBe('/home/user/x');
    expect(resolveEnvdPath('/abs/./path', user)).toBe('/abs/./path');
    expect(() => resolveEnvdPath('~root/x', user)).toThrow(PathResolveError);
  });

  it('takes X-Metadata-* headers with lower-cased keys and refuses what envd refuses', () => {
    expect(metadataFromHeaders({ 'x-metadata-purpose': 'test', 'content-type': 'x' })).toEqual({ purpose: 'test' });
    expect(metadataFromHeaders({ accept: '*/*' })).toBeUndefined();
    expect(() => metadataFromHeaders({ 'x-metadata-k': 'caf\u00e9' })).toThrow(HttpError);
    expect(() => metadataFromHeaders({ 'x-metadata-k': 'v'.repeat(5000) })).toThrow(/exceeds 4096/);
  });
});
