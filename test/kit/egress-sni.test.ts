import { createServer } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { maxClientHelloBytes, scanClientHello } from '../../src/kit/egress-sni.js';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);

/** The server_name extension carrying `names` (type 0, host_name). */
function sniExtension(names: string[]): Buffer {
  const list = Buffer.concat(names.map((name) => Buffer.concat([Buffer.from([0]), u16(name.length), Buffer.from(name, 'latin1')])));
  const body = Buffer.concat([u16(list.length), list]);
  return Buffer.concat([u16(0), u16(body.length), body]);
}

/** A ClientHello handshake message (not yet in records), with the given extensions. */
function clientHello(extensions: Buffer[] | undefined): Buffer {
  const parts = [
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0]), // no session id
    Buffer.concat([u16(4), Buffer.from([0x13, 0x01, 0x13, 0x02])]),
    Buffer.from([1, 0]), // null compression
  ];
  if (extensions !== undefined) {
    const all = Buffer.concat(extensions);
    parts.push(u16(all.length), all);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0x01]), u24(body.length), body]);
}

/** Wraps handshake bytes in TLS records of at most `size` bytes each. */
function records(handshake: Buffer, size = 16384): Buffer {
  const out: Buffer[] = [];
  for (let offset = 0; offset < handshake.length; offset += size) {
    const fragment = handshake.subarray(offset, offset + size);
    out.push(Buffer.from([0x16, 0x03, 0x01]), u16(fragment.length), fragment);
  }
  return Buffer.concat(out);
}

const otherExtension = Buffer.concat([u16(0x000a), u16(4), u16(2), u16(0x001d)]);

describe('scanClientHello', () => {
  it('reads the SNI of a ClientHello, lower-case', () => {
    const bytes = records(clientHello([otherExtension, sniExtension(['Allowed.Test'])]));
    expect(scanClientHello(bytes)).toEqual({ kind: 'client-hello', serverName: 'allowed.test' });
  });

  it('reports a ClientHello without SNI, with or without extensions', () => {
    expect(scanClientHello(records(clientHello([otherExtension])))).toEqual({ kind: 'client-hello', serverName: undefined });
    expect(scanClientHello(records(clientHello(undefined)))).toEqual({ kind: 'client-hello', serverName: undefined });
  });

  it('waits for more bytes at every cut of a hello split across TCP chunks', () => {
    const bytes = records(clientHello([sniExtension(['denied.test'])]));
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(scanClientHello(bytes.subarray(0, cut))).toEqual({ kind: 'incomplete' });
    }
    expect(scanClientHello(bytes)).toEqual({ kind: 'client-hello', serverName: 'denied.test' });
  });

  it('joins a hello split across TLS records, and ignores records after it', () => {
    const hello = clientHello([otherExtension, sniExtension(['denied.test'])]);
    const split = records(hello, 10);
    expect(scanClientHello(split)).toEqual({ kind: 'client-hello', serverName: 'denied.test' });
    const changeCipherSpec = Buffer.from([0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    expect(scanClientHello(Buffer.concat([records(hello), changeCipherSpec]))).toEqual({ kind: 'client-hello', serverName: 'denied.test' });
  });

  it('passes bytes that are not TLS', () => {
    expect(scanClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'not-tls' });
    expect(scanClientHello(Buffer.from('SSH-2.0-x\r\n'))).toEqual({ kind: 'not-tls' });
    expect(scanClientHello(Buffer.alloc(0))).toEqual({ kind: 'incomplete' });
  });

  it.each([
    ['a handshake that is not a ClientHello', records(Buffer.concat([Buffer.from([0x02]), u24(4), Buffer.alloc(4)]))],
    ['a record of length zero', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])],
    ['a record longer than TLS allows', Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(0xffff)])],
    [
      'an alert record inside the hello',
      Buffer.concat([records(clientHello([sniExtension(['a.test'])]), 10).subarray(0, 15), Buffer.from([0x15, 3, 3, 0, 2, 2, 40])]),
    ],
    [
      'an extension length past the end',
      (() => {
        const hello = clientHello([sniExtension(['a.test'])]);
        hello.writeUInt16BE(0xfff0, hello.length - sniExtension(['a.test']).length + 2);
        return records(hello);
      })(),
    ],
    ['two host names', records(clientHello([sniExtension(['a.test', 'b.test'])]))],
    ['a server name with control bytes', records(clientHello([sniExtension(['a.test\u0000.evil'])]))],
    ['the server_name extension twice', records(clientHello([sniExtension(['a.test']), sniExtension(['b.test'])]))],
    [
      'a ClientHello claiming more than the limit',
      records(Buffer.concat([Buffer.from([0x01]), u24(maxClientHelloBytes + 1), Buffer.alloc(8)])),
    ],
  ])('calls %s malformed', (_what, bytes) => {
    expect(scanClientHello(bytes).kind).toBe('malformed');
  });

  it('gives up on a hello that never ends within the byte limit', () => {
    const endless = records(Buffer.concat([Buffer.from([0x01]), u24(maxClientHelloBytes - 4), Buffer.alloc(maxClientHelloBytes)]), 16384);
    expect(scanClientHello(endless.subarray(0, maxClientHelloBytes + 10)).kind).toBe('malformed');
  });

  it("reads the SNI of node's own TLS client", async () => {
    // A real ClientHello (TLS 1.3, key shares, GREASE-free but many extensions), caught on a loopback socket.
    const caught = new Promise<Buffer>((resolve) => {
      const server = createServer((socket) => {
        socket.once('data', (data: Buffer) => {
          resolve(data);
          socket.destroy();
          server.close();
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (typeof address !== 'object' || address === null) return;
        const client = connect({ host: '127.0.0.1', port: address.port, servername: 'Real.Example.test' });
        client.on('error', () => client.destroy());
      });
    });
    expect(scanClientHello(await caught)).toEqual({ kind: 'client-hello', serverName: 'real.example.test' });
  });
});
