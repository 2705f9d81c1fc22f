/**
 * The allowlist decision of the egress proxy, as pure functions over a compiled policy, so each
 * rule has a unit test: a name is allowed when it matches `allowDomains` (exact, or `*.suffix`
 * for any name under the suffix but not the suffix itself), an address when it is inside
 * `allowCidrs`. Addresses the sandbox must never reach by accident (loopback, link-local and
 * with it the cloud metadata address, unspecified, multicast, IPv4-mapped forms of these, and
 * every IPv6 address) are refused unless an `allowCidrs` block covers them explicitly, even
 * when an allowed name resolves to them (DNS rebinding).
 *
 * "Explicitly" means a block no wider than the special range the address is in: `127.0.0.1/32`
 * or `127.0.0.0/8` admit the loopback, `0.0.0.0/0` does not, and the metadata address needs
 * `169.254.169.254/32` itself (a `169.254.0.0/16` block admits the rest of link-local). Beyond
 * the ranges above, the private ranges (RFC 1918, carrier-grade NAT, benchmarking, reserved)
 * count as special too: an allowed name resolving to `172.17.0.1` would otherwise reach the
 * Docker host's own services.
 *
 * The address arithmetic is ours (a few lines over bigint) rather than `net.BlockList`, because
 * the decision needs which special range matched and how wide the covering block is, which a
 * block list does not say.
 */
import { isIP } from 'node:net';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { ParsedNetworkPolicy } from '../spec/options.js';

/** An address as a number: 32 bits for IPv4, 128 for IPv6. */
export interface ParsedAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A CIDR block, masked to its prefix. */
export interface CidrBlock extends ParsedAddress {
  readonly prefix: number;
}

/** A policy ready for decisions: `'block'` denies everything. */
export interface EgressPolicy {
  /** `allowDomains`, lower-case, without trailing dots. */
  readonly domains: readonly string[];
  /** `allowCidrs`, in canonical text (IPv4-mapped IPv6 blocks as IPv4). */
  readonly cidrs: readonly string[];
  /** `cidrs`, parsed. */
  readonly blocks: readonly CidrBlock[];
}

/** A decision, with the reason for a person when denied. */
export type EgressVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/** What the program asked to reach, once parsed: a name, or an address however it was spelt. */
export type EgressHost =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'address'; readonly address: string }
  | { readonly kind: 'invalid'; readonly reason: string };

const bits = (family: 4 | 6): number => (family === 4 ? 32 : 128);

/** Parses an IPv4 or IPv6 literal (no brackets, no zone); `undefined` for anything else. */
export function parseAddress(text: string): ParsedAddress | undefined {
  const family = isIP(text);
  if (family === 4) {
    return { family: 4, value: text.split('.').reduce((sum, part) => (sum << 8n) | BigInt(Number(part)), 0n) };
  }
  if (family !== 6 || text.includes('%')) return undefined;
  let head = text;
  let tail: bigint[] = [];
  // An embedded IPv4 tail (`::ffff:127.0.0.1`) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const v4 = parseAddress(dotted[1])?.value ?? 0n;
    tail = [v4 >> 16n, v4 & 0xffffn];
    head = text.slice(0, -dotted[1].length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left = '', right] = head.split('::');
  const groups = (part: string): bigint[] => (part === '' ? [] : part.split(':').map((group) => BigInt(`0x${group}`)));
  const before = groups(left);
  const after = [...(right === undefined ? [] : groups(right)), ...tail];
  const all = right === undefined ? [...before, ...tail] : [...before, ...new Array(8 - before.length - after.length).fill(0n), ...after];
  return { family: 6, value: all.reduce((sum, group) => (sum << 16n) | group, 0n) };
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address; others unchanged. */
function unmap(address: ParsedAddress): ParsedAddress {
  if (address.family === 6 && address.value >> 32n === 0xffffn) return { family: 4, value: address.value & 0xffffffffn };
  return address;
}

/** Canonical text: dotted quad, or RFC 5952 compressed lower-case IPv6. */
export function formatAddress(address: ParsedAddress): string {
  if (address.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((address.value >> shift) & 0xffn)).join('.');
  }
  const groups = [...Array(8).keys()].map((index) => Number((address.value >> BigInt((7 - index) * 16)) & 0xffffn));
  // The longest run of two or more zero groups becomes `::`.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = (list: number[]): string => list.map((group) => group.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/**
 * The address the proxy should dial for `text`: canonical, and an IPv4-mapped IPv6 address as
 * its IPv4 address (the kernel would reach that one anyway). `undefined` when not an address.
 */
export function normalizeAddress(text: string): string | undefined {
  const parsed = parseAddress(text);
  return parsed === undefined ? undefined : formatAddress(unmap(parsed));
}

/**
 * An IPv4 address in any spelling `inet_aton` and URL parsers accept (`2130706433`,
 * `0x7f.1`, `0177.0.0.1`, `127.1`), as a dotted quad; `undefined` when `text` is not one.
 * Such a host is always an address, never a name, so that no spelling slips past the address check.
 */
export function looseIpv4(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length > 4 || parts.some((part) => !/^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$/i.test(part))) return undefined;
  const numbers = parts.map((part) =>
    /^0x/i.test(part)
      ? Number.parseInt(part.slice(2) || '0', 16)
      : part.length > 1 && part.startsWith('0')
        ? Number.parseInt(part, 8)
        : Number(part),
  );
  const last = numbers.pop() ?? 0;
  if (numbers.some((n) => n > 255) || last >= 256 ** (4 - numbers.length)) return undefined;
  const value = numbers.reduce((sum, n, index) => sum + n * 256 ** (3 - index), 0) + last;
  return formatAddress({ family: 4, value: BigInt(value) });
}

const nameShape = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/**
 * Parses the host a program asked for (a CONNECT authority's host, a URL's host, a SOCKS5
 * domain): brackets come off IPv6, any IPv4 spelling becomes an address, a name is lower-cased
 * without its trailing dot. Anything else (a zone id, characters no host name has) is invalid.
 */
export function parseEgressHost(host: string): EgressHost {
  const unbracketed = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (unbracketed.includes('%')) return { kind: 'invalid', reason: `${host} has an IPv6 zone id, which is never allowed` };
  const address = normalizeAddress(unbracketed);
  if (address !== undefined) return { kind: 'address', address };
  if (unbracketed !== host) return { kind: 'invalid', reason: `${host} is not an IPv6 address` };
  const name = host.toLowerCase().replace(/\.$/, '');
  const loose = looseIpv4(name);
  if (loose !== undefined) return { kind: 'address', address: loose };
  // A last label of digits (or hex) is an address to URL parsers: never a name here.
  const lastLabel = name.split('.').pop() ?? '';
  if (/^(0x[0-9a-f]*|[0-9]+)$/.test(lastLabel)) return { kind: 'invalid', reason: `${host} is neither a host name nor an IP address` };
  if (name.length === 0 || name.length > 253 || !nameShape.test(name) || name.split('.').some((label) => label.length > 63)) {
    return { kind: 'invalid', reason: `${JSON.stringify(host)} is not a host name` };
  }
  return { kind: 'name', name };
}

/** Parses `a.b.c.d/n` or `v6/n`, masked; IPv4-mapped IPv6 blocks become IPv4. `undefined` when malformed. */
export function parseCidr(text: string): CidrBlock | undefined {
  const slash = text.lastIndexOf('/');
  if (slash < 0) return undefined;
  const address = parseAddress(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;
  let prefix = Number(prefixText);
  if (prefix > bits(address.family)) return undefined;
  let parsed = address;
  if (address.family === 6 && prefix >= 96 && address.value >> 32n === 0xffffn) {
    parsed = unmap(address);
    prefix -= 96;
  }
  return { ...parsed, prefix, value: mask(parsed, prefix) };
}

function mask(address: ParsedAddress, prefix: number): bigint {
  const width = BigInt(bits(address.family) - prefix);
  return (address.value >> width) << width;
}

function contains(block: CidrBlock, address: ParsedAddress): boolean {
  return block.family === address.family && mask(address, block.prefix) === block.value;
}

interface SpecialRange {
  readonly block: CidrBlock;
  readonly what: string;
}

const special = (cidr: string, what: string): SpecialRange => {
  const block = parseCidr(cidr);
  if (block === undefined) throw new Error(`bad special range ${cidr}`);
  return { block, what };
};

/** Ranges refused unless a block at least as narrow as the range is listed; the most specific match names the reason. */
const specialRanges: readonly SpecialRange[] = [
  special('0.0.0.0/8', 'the unspecified address ("this network")'),
  special('10.0.0.0/8', 'a private address'),
  special('100.64.0.0/10', 'a shared (carrier-grade NAT) address'),
  special('127.0.0.0/8', "a loopback address (the host's own)"),
  special('169.254.0.0/16', 'a link-local address'),
  special('169.254.169.254/32', 'the cloud metadata address'),
  special('172.16.0.0/12', 'a private address'),
  special('192.0.0.0/24', 'an IETF protocol address'),
  special('192.168.0.0/16', 'a private address'),
  special('198.18.0.0/15', 'a benchmarking address'),
  special('224.0.0.0/4', 'a multicast address'),
  special('240.0.0.0/4', 'a reserved address'),
  special('255.255.255.255/32', 'the broadcast address'),
  special('::/0', 'an IPv6 address (IPv6 is refused unless allowCidrs lists it)'),
  special('::/96', 'an IPv4-compatible IPv6 address'),
  special('::/128', 'the unspecified address'),
  special('::1/128', "the loopback address (the host's own)"),
  special('64:ff9b::/96', 'a NAT64 address'),
  special('64:ff9b:1::/48', 'a NAT64 address'),
  special('100::/64', 'a discard address'),
  special('2001::/32', 'a Teredo address'),
  special('2002::/16', 'a 6to4 address'),
  special('fc00::/7', 'a unique local (private) address'),
  special('fe80::/10', 'a link-local address'),
  special('fec0::/10', 'a site-local address'),
  special('ff00::/8', 'a multicast address'),
];

/** The narrowest special range `address` is in, if any. */
function specialRangeOf(address: ParsedAddress): SpecialRange | undefined {
  let best: SpecialRange | undefined;
  for (const range of specialRanges) {
    if (contains(range.block, address) && (best === undefined || range.block.prefix > best.block.prefix)) best = range;
  }
  return best;
}

/**
 * Compiles an allowlist (or `'block'`: nothing allowed). Throws `SandboxInvalidArgumentError`
 * (argument `network`) on `'allow'`, which needs no proxy, and (argument
 * `network.allowCidrs.<index>`) on a malformed block, which `networkSchema` already refuses.
 */
export function compileEgressPolicy(policy: Exclude<ParsedNetworkPolicy, 'allow'>): EgressPolicy {
  if (policy === 'block') return { domains: [], cidrs: [], blocks: [] };
  if (typeof policy !== 'object' || policy === null) {
    throw new SandboxInvalidArgumentError({
      argument: 'network',
      message: `an egress proxy enforces an allowlist or 'block', not ${JSON.stringify(policy)}`,
    });
  }
  const blocks = policy.allowCidrs.map((cidr, index) => {
    const block = parseCidr(cidr);
    if (block === undefined) {
      throw new SandboxInvalidArgumentError({
        argument: `network.allowCidrs.${index}`,
        message: `${JSON.stringify(cidr)} is not an IPv4 or IPv6 CIDR block`,
      });
    }
    return block;
  });
  return {
    domains: [...new Set(policy.allowDomains.map((domain) => domain.toLowerCase().replace(/\.$/, '')))],
    cidrs: blocks.map((block) => `${formatAddress(block)}/${block.prefix}`),
    blocks,
  };
}

/**
 * Whether `hostname` (any case, an optional trailing dot) matches `allowDomains`. An address in
 * any spelling never matches: addresses are judged by `decideAddress` alone.
 */
export function nameAllowed(policy: EgressPolicy, hostname: string): boolean {
  const host = parseEgressHost(hostname);
  if (host.kind !== 'name') return false;
  return policy.domains.some((domain) =>
    domain.startsWith('*.') ? host.name.endsWith(domain.slice(1)) && host.name.length > domain.length - 1 : host.name === domain,
  );
}

/**
 * Whether the proxy may dial `address`: inside `allowCidrs`, or reached through an allowed name
 * (`viaAllowedName`) and not a special address. IPv4-mapped IPv6 counts as its IPv4 address.
 * A special address (see the module comment) needs a listed block no wider than its range.
 */
export function decideAddress(policy: EgressPolicy, address: string, viaAllowedName: boolean): EgressVerdict {
  const raw = parseAddress(address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address);
  if (raw === undefined) return { allowed: false, reason: `${JSON.stringify(address)} is not an IP address` };
  const parsed = unmap(raw);
  const text = formatAddress(parsed);
  const range = specialRangeOf(parsed);
  if (range !== undefined) {
    const listed = policy.blocks.some((block) => contains(block, parsed) && block.prefix >= range.block.prefix);
    if (listed) return { allowed: true };
    const cidr = `${formatAddress(range.block)}/${range.block.prefix}`;
    return {
      allowed: false,
      reason: `${text} is ${range.what}, refused unless allowCidrs lists it (a block inside ${cidr})`,
    };
  }
  if (viaAllowedName || policy.blocks.some((block) => contains(block, parsed))) return { allowed: true };
  return { allowed: false, reason: `${text} is not inside allowCidrs` };
}
