/**
 * Reads the server name (SNI) out of the first bytes a client sends through a tunnel, so the
 * egress proxy can refuse a CONNECT to an allowed name whose TLS handshake asks for another.
 *
 * Hand-written on purpose: no maintained package does just this. The TLS libraries on the
 * registry parse a ClientHello only as part of terminating TLS (which the proxy must not do:
 * it never sees plaintext), and the small SNI sniffers there are unmaintained and either
 * throw on a hello split across TCP chunks or give up on one split across TLS records. The
 * format is a handful of length-prefixed fields (RFC 8446 §4.1.2, RFC 6066 §3); every length
 * is checked against what it is inside of.
 */

/** What the bytes so far say. */
export type ClientHelloScan =
  /** Not a TLS handshake record: a plain protocol, which passes. */
  | { readonly kind: 'not-tls' }
  /** A handshake has begun but its ClientHello is not whole yet: wait for more bytes. */
  | { readonly kind: 'incomplete' }
  /** A whole ClientHello; `serverName` is its `host_name` SNI, lower-case, when it has one. */
  | { readonly kind: 'client-hello'; readonly serverName: string | undefined }
  /** TLS that does not parse: refused, since a proxy cannot tell what it asks for. */
  | { readonly kind: 'malformed'; readonly reason: string };

/** The most bytes worth holding back while a ClientHello arrives (a hello is a few KiB at most). */
export const maxClientHelloBytes = 64 * 1024;

const recordHandshake = 0x16;
const handshakeClientHello = 0x01;
const extensionServerName = 0x0000;
const nameTypeHostName = 0x00;
/** The largest TLS record fragment allowed (RFC 8446 §5.1: 2^14, plus room older versions gave). */
const maxRecordLength = 2 ** 14 + 2048;

class Malformed extends Error {}

/** A cursor over bytes that throws `Malformed` rather than read past an end. */
class Reader {
  constructor(
    private readonly bytes: Buffer,
    private offset = 0,
    private readonly end = bytes.length,
  ) {}
  get left(): number {
    return this.end - this.offset;
  }
  u8(): number {
    this.need(1);
    return this.bytes[this.offset++] ?? 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u24(): number {
    return (this.u16() << 8) | this.u8();
  }
  skip(length: number): void {
    this.need(length);
    this.offset += length;
  }
  /** A sub-reader over the next `length` bytes, which this one moves past. */
  sub(length: number): Reader {
    this.need(length);
    const reader = new Reader(this.bytes, this.offset, this.offset + length);
    this.offset += length;
    return reader;
  }
  take(length: number): Buffer {
    this.need(length);
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
  private need(length: number): void {
    if (length > this.left) throw new Malformed('a length runs past its end');
  }
}

/**
 * Joins the handshake bytes of the leading TLS records, up to the end of the first handshake
 * message (what follows it, such as a ChangeCipherSpec or early data, is not looked at).
 * `complete` is false while more records are needed. Throws `Malformed` on a record that is not
 * a handshake before the message's end.
 */
function handshakeBytes(data: Buffer): { bytes: Buffer; complete: boolean } {
  const pieces: Buffer[] = [];
  let joined = 0;
  let offset = 0;
  const wanted = (): number | undefined => {
    if (joined < 4) return undefined;
    const head = Buffer.concat(pieces).subarray(0, 4);
    return 4 + head.readUIntBE(1, 3);
  };
  while (offset < data.length) {
    const total = wanted();
    if (total !== undefined && joined >= total) break;
    if (data.length - offset < 5) return { bytes: Buffer.concat(pieces), complete: false };
    if (data[offset] !== recordHandshake) throw new Malformed(`a TLS record of type ${data[offset]} interrupts the ClientHello`);
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > maxRecordLength) throw new Malformed(`a TLS record of ${length} bytes`);
    const available = Math.min(length, data.length - offset - 5);
    pieces.push(data.subarray(offset + 5, offset + 5 + available));
    joined += available;
    if (available < length) break;
    offset += 5 + length;
  }
  const total = wanted();
  return { bytes: Buffer.concat(pieces), complete: total !== undefined && joined >= total };
}

/**
 * Scans the first bytes of a tunnel (everything received so far, concatenated). Pure: call it
 * again with more bytes after `incomplete`. Past `maxClientHelloBytes` an unfinished hello is
 * `malformed`.
 */
export function scanClientHello(data: Buffer): ClientHelloScan {
  if (data.length === 0) return { kind: 'incomplete' };
  if (data[0] !== recordHandshake) return { kind: 'not-tls' };
  try {
    const { bytes, complete } = handshakeBytes(data);
    if (bytes.length > 0 && bytes[0] !== handshakeClientHello) {
      return { kind: 'malformed', reason: `the first TLS handshake message is type ${bytes[0]}, not a ClientHello` };
    }
    if (bytes.length >= 4 && bytes.readUIntBE(1, 3) > maxClientHelloBytes) {
      return { kind: 'malformed', reason: `a ClientHello of ${bytes.readUIntBE(1, 3)} bytes` };
    }
    if (!complete) return incomplete(data);
    const handshake = new Reader(bytes);
    handshake.skip(1);
    return { kind: 'client-hello', serverName: serverNameOf(handshake.sub(handshake.u24())) };
  } catch (error) {
    if (error instanceof Malformed) return { kind: 'malformed', reason: error.message };
    throw error;
  }
}

function incomplete(data: Buffer): ClientHelloScan {
  if (data.length >= maxClientHelloBytes)
    return { kind: 'malformed', reason: `no whole ClientHello in the first ${maxClientHelloBytes} bytes` };
  return { kind: 'incomplete' };
}

/** The `host_name` of a ClientHello body's server_name extension, if it has one. */
function serverNameOf(hello: Reader): string | undefined {
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  const suites = hello.u16();
  if (suites === 0 || suites % 2 !== 0) throw new Malformed('cipher suites of an odd or zero length');
  hello.skip(suites);
  const compressions = hello.u8();
  if (compressions === 0) throw new Malformed('no compression methods');
  hello.skip(compressions);
  // A hello without extensions (TLS 1.0 era) has no SNI.
  if (hello.left === 0) return undefined;
  const extensions = hello.sub(hello.u16());
  if (hello.left !== 0) throw new Malformed('bytes after the extensions');
  let serverName: string | undefined;
  const seen = new Set<number>();
  while (extensions.left > 0) {
    const type = extensions.u16();
    const body = extensions.sub(extensions.u16());
    if (seen.has(type)) throw new Malformed(`extension ${type} appears twice`);
    seen.add(type);
    if (type === extensionServerName) serverName = hostNameOf(body);
  }
  return serverName;
}

function hostNameOf(extension: Reader): string | undefined {
  const list = extension.sub(extension.u16());
  if (extension.left !== 0) throw new Malformed('bytes after the server name list');
  let name: string | undefined;
  while (list.left > 0) {
    const type = list.u8();
    const value = list.take(list.u16());
    if (type !== nameTypeHostName) continue;
    if (name !== undefined) throw new Malformed('two host names in the server name extension');
    // RFC 6066: ASCII, no trailing dot; anything else is not a name a policy could match.
    if (value.length === 0 || value.some((byte) => byte <= 0x20 || byte >= 0x7f))
      throw new Malformed('a server name that is not ASCII text');
    name = value.toString('latin1').toLowerCase();
  }
  return name;
}
