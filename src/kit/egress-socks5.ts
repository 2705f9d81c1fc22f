/**
 * The SOCKS5 handshake of the egress proxy (RFC 1928), as pure functions over the bytes
 * received so far: the method negotiation (only "no authentication", 0x00: the bridge is the
 * sandbox's own), then one CONNECT request naming a domain, an IPv4 or an IPv6 address. BIND
 * and UDP ASSOCIATE are refused: they would open paths the policy does not see.
 *
 * Hand-written: the SOCKS packages on the registry are clients, or servers that dial by
 * themselves, which would bypass the policy's resolver and dialler.
 */
import { formatAddress } from './egress-policy.js';

/** SOCKS5 reply codes (RFC 1928 §6). */
export const socksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type SocksStep<T> =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'error'; readonly reason: string; readonly reply: Buffer }
  | ({ readonly kind: 'done'; readonly consumed: number } & T);

const noAuthentication = 0x00;
const noAcceptableMethod = 0xff;

/** The server's answer to a greeting: the chosen method, or 0xFF and a close. */
export function parseSocksGreeting(data: Buffer): SocksStep<{ readonly reply: Buffer }> {
  if (data.length < 2) return { kind: 'incomplete' };
  if (data[0] !== 0x05) return { kind: 'error', reason: `SOCKS version ${data[0]} (only SOCKS5 is spoken)`, reply: Buffer.alloc(0) };
  const count = data[1] ?? 0;
  if (data.length < 2 + count) return { kind: 'incomplete' };
  const methods = data.subarray(2, 2 + count);
  if (!methods.includes(noAuthentication)) {
    return {
      kind: 'error',
      reason: 'the SOCKS5 client offers no "no authentication" method',
      reply: Buffer.from([0x05, noAcceptableMethod]),
    };
  }
  return { kind: 'done', consumed: 2 + count, reply: Buffer.from([0x05, noAuthentication]) };
}

/** A reply to a request: `code`, and a zero bound address (the proxy's own is of no use inside the sandbox). */
export function socksResponse(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/** Parses a CONNECT request: the destination as the client named it. */
export function parseSocksRequest(data: Buffer): SocksStep<{ readonly host: string; readonly port: number }> {
  if (data.length < 5) return { kind: 'incomplete' };
  const refuse = (reason: string, code: number) => ({ kind: 'error' as const, reason, reply: socksResponse(code) });
  if (data[0] !== 0x05) return refuse(`a SOCKS request of version ${data[0]}`, socksReply.generalFailure);
  const command = data[1];
  const type = data[3];
  let host: string;
  let end: number;
  if (type === 0x01) {
    end = 4 + 4;
    if (data.length < end + 2) return { kind: 'incomplete' };
    host = formatAddress({ family: 4, value: BigInt(data.readUInt32BE(4)) });
  } else if (type === 0x04) {
    end = 4 + 16;
    if (data.length < end + 2) return { kind: 'incomplete' };
    host = formatAddress({ family: 6, value: BigInt(`0x${data.subarray(4, end).toString('hex')}`) });
  } else if (type === 0x03) {
    const length = data[4] ?? 0;
    end = 5 + length;
    if (data.length < end + 2) return { kind: 'incomplete' };
    if (length === 0) return refuse('an empty SOCKS5 domain name', socksReply.hostUnreachable);
    host = data.subarray(5, end).toString('latin1');
  } else {
    return refuse(`SOCKS5 address type ${type}`, socksReply.addressTypeNotSupported);
  }
  if (command !== 0x01) {
    const name = command === 0x02 ? 'BIND' : command === 0x03 ? 'UDP ASSOCIATE' : `command ${command}`;
    return refuse(`SOCKS5 ${name} (only CONNECT is allowed)`, socksReply.commandNotSupported);
  }
  const port = data.readUInt16BE(end);
  if (port === 0) return refuse('SOCKS5 CONNECT to port 0', socksReply.generalFailure);
  return { kind: 'done', consumed: end + 2, host, port };
}
