/**
 * Vercel's network policy as the network of the local sandbox that emulates it (pure plans).
 *
 * Vercel's semantics (the SDK's `NetworkPolicy`, sent as `{ mode: 'allow-all' | 'deny-all' }` or
 * `{ allow, subnets: { allow, deny } }`, answered in the legacy `mode: 'custom'` shape):
 * - `allow-all`: open egress; `deny-all`: none at all;
 * - an object: default deny; `allow` lists domains (`*.example.com` wildcards; a record form
 *   carries per-domain transform rules), `subnets.allow` CIDR blocks, and `subnets.deny` takes
 *   precedence over both.
 * The local sandbox takes `'allow'`, `'block'` or an allowlist of domains and CIDR blocks, so:
 * - `allow-all` is the allow-everything list (`openAllowlist`); `deny-all` (and an object that
 *   allows nothing) the empty list: both allowlists, so that a later change can move between them;
 * - an object is the allowlist; a `subnets.deny` block that covers an allowed block removes it, one
 *   that overlaps part of it is a 501 (a local allowlist cannot cut holes); a deny of addresses
 *   that allowed *domains* resolve to is not enforced (the local egress proxy checks names only);
 * - per-domain rules (header transforms, forwards, direct responses) are a 501 naming the domain;
 *   `allow: ['*']` (every domain) without denies is `'allow'`.
 * Live changes (`POST …/network-policy`) map to the local sandbox's `updateNetwork`, which moves
 * between allowlists on a sandbox created with one, which is why every local sandbox here is.
 */
import { isIP } from 'node:net';
import { badRequest, notEmulated } from './vercel-http.js';

/** What the local sandbox is created with or changed to. */
export type LocalNetwork = { allowCidrs: string[]; allowDomains: string[] };

/** The policy in Vercel's answer shape (the SDK's `NetworkPolicyResponseValidator`). */
export type ApiNetworkPolicy =
  | { mode: 'allow-all' }
  | { mode: 'deny-all' }
  | { mode: 'custom'; allowedDomains?: string[]; allowedCIDRs?: string[]; deniedCIDRs?: string[] };

/** An allowlist that lets everything out and can still be narrowed by `updateNetwork`. */
export const openAllowlist = { allowCidrs: ['0.0.0.0/0', '::/0'], allowDomains: [] as string[] };

const hostName = /^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/;

interface Cidr {
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

function parseCidr(text: string, field: string): Cidr {
  const [address = '', prefixText] = text.split('/');
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) {
    throw badRequest(field, `"${text}" is not an IPv4 or IPv6 CIDR block`);
  }
  return { family: family as 4 | 6, bits: addressBits(address, family as 4 | 6), prefix };
}

function addressBits(address: string, family: 4 | 6): bigint {
  if (family === 4) return address.split('.').reduce((sum, part) => (sum << 8n) + BigInt(Number(part)), 0n);
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = address.includes('::') ? groups(tail) : [];
  const all = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return all.reduce((sum, group) => (sum << 16n) + BigInt(parseInt(group, 16)), 0n);
}

/** Whether `outer` contains every address of `inner`. */
function covers(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  const width = BigInt(outer.family === 4 ? 32 : 128);
  const shift = width - BigInt(outer.prefix);
  return outer.bits >> shift === inner.bits >> shift;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return covers(a, b) || covers(b, a);
}

/** The request shape, validated: a mode, or the object form. Throws 400 naming the field. */
export interface RequestedPolicy {
  mode: 'allow-all' | 'deny-all' | 'custom';
  allowDomains: string[];
  allowCidrs: string[];
  denyCidrs: string[];
}

/**
 * Reads a network policy of a request body (`field` names it in errors). Accepts the SDK's forms
 * and the legacy `mode: 'custom'` one. Per-domain rules are a 501.
 */
export function readPolicy(value: unknown, field: string, call: string): RequestedPolicy {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest(field, 'must be an object');
  const policy = value as Record<string, unknown>;
  if (policy.mode === 'allow-all' || policy.mode === 'deny-all') {
    return { mode: policy.mode, allowDomains: [], allowCidrs: [], denyCidrs: [] };
  }
  if (policy.mode === 'custom') {
    return checked(
      {
        mode: 'custom',
        allowDomains: strings(policy.allowedDomains, `${field}.allowedDomains`),
        allowCidrs: strings(policy.allowedCIDRs, `${field}.allowedCIDRs`),
        denyCidrs: strings(policy.deniedCIDRs, `${field}.deniedCIDRs`),
      },
      field,
      rulesOf(policy.injectionRules, policy.forwardRules),
      call,
    );
  }
  if (policy.mode !== undefined) throw badRequest(`${field}.mode`, `"${String(policy.mode)}" is not allow-all, deny-all or custom`);
  const subnets = (policy.subnets ?? {}) as Record<string, unknown>;
  if (typeof subnets !== 'object' || Array.isArray(subnets)) throw badRequest(`${field}.subnets`, 'must be an object');
  let allowDomains: string[] = [];
  let ruled: string[] = [];
  if (Array.isArray(policy.allow)) allowDomains = strings(policy.allow, `${field}.allow`);
  else if (policy.allow !== undefined) {
    if (typeof policy.allow !== 'object' || policy.allow === null) throw badRequest(`${field}.allow`, 'must be an array or an object');
    const record = policy.allow as Record<string, unknown>;
    allowDomains = Object.keys(record);
    ruled = allowDomains.filter((domain) => Array.isArray(record[domain]) && (record[domain] as unknown[]).length > 0);
  }
  return checked(
    {
      mode: 'custom',
      allowDomains,
      allowCidrs: strings(subnets.allow, `${field}.subnets.allow`),
      denyCidrs: strings(subnets.deny, `${field}.subnets.deny`),
    },
    field,
    ruled,
    call,
  );
}

function rulesOf(...lists: unknown[]): string[] {
  return lists.flatMap((list) => (Array.isArray(list) ? list.map((rule) => String((rule as { domain?: unknown }).domain)) : []));
}

function strings(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw badRequest(field, 'must be an array of strings');
  return [...(value as string[])];
}

function checked(policy: RequestedPolicy, field: string, ruled: string[], call: string): RequestedPolicy {
  if (ruled.length > 0) {
    throw notEmulated(
      call,
      `${field}.allow: per-domain rules (header transforms, forwards, direct responses) for ${ruled.join(', ')} are not emulated; the local sandbox's egress proxy allows or refuses connections only`,
    );
  }
  policy.allowDomains.forEach((domain, index) => {
    if (domain !== '*' && (domain.length > 253 || !hostName.test(domain))) {
      throw badRequest(`${field}.allow.${index}`, `"${domain}" is not a domain name (a leading "*." is allowed)`);
    }
  });
  for (const [index, cidr] of policy.allowCidrs.entries()) parseCidr(cidr, `${field}.subnets.allow.${index}`);
  for (const [index, cidr] of policy.denyCidrs.entries()) parseCidr(cidr, `${field}.subnets.deny.${index}`);
  return policy;
}

/** The policy in Vercel's answer shape. */
export function apiPolicy(policy: RequestedPolicy): ApiNetworkPolicy {
  if (policy.mode !== 'custom') return { mode: policy.mode };
  return {
    mode: 'custom',
    ...(policy.allowDomains.length > 0 ? { allowedDomains: policy.allowDomains } : {}),
    ...(policy.allowCidrs.length > 0 ? { allowedCIDRs: policy.allowCidrs } : {}),
    ...(policy.denyCidrs.length > 0 ? { deniedCIDRs: policy.denyCidrs } : {}),
  };
}

/** The requested policy from an answer-shaped one (a sandbox's stored default). */
export function fromApiPolicy(policy: ApiNetworkPolicy): RequestedPolicy {
  if (policy.mode !== 'custom') return { mode: policy.mode, allowDomains: [], allowCidrs: [], denyCidrs: [] };
  return {
    mode: 'custom',
    allowDomains: policy.allowedDomains ?? [],
    allowCidrs: policy.allowedCIDRs ?? [],
    denyCidrs: policy.deniedCIDRs ?? [],
  };
}

/**
 * The local network for a policy (see the file comment). `allow-all` is the open allowlist, so
 * that a later change can narrow it. Throws 501 for a deny the local sandbox cannot honour.
 */
export function planLocalNetwork(policy: RequestedPolicy, call: string): LocalNetwork {
  if (policy.mode === 'allow-all') return { allowCidrs: [...openAllowlist.allowCidrs], allowDomains: [] };
  // An empty allowlist, not 'block': a local sandbox created with 'block' could never be opened.
  if (policy.mode === 'deny-all') return { allowCidrs: [], allowDomains: [] };
  const denies = policy.denyCidrs.map((cidr) => parseCidr(cidr, 'subnets.deny'));
  const allowCidrs = policy.allowCidrs.filter((text) => {
    const allowed = parseCidr(text, 'subnets.allow');
    if (denies.some((deny) => covers(deny, allowed))) return false;
    const partial = denies.find((deny) => overlaps(deny, allowed));
    if (partial) {
      throw notEmulated(
        call,
        `subnets.deny cuts a hole in the allowed block ${text}; the local sandbox allows whole blocks only (deny all of it or none)`,
      );
    }
    return true;
  });
  if (policy.allowDomains.includes('*')) {
    if (denies.length > 0) throw notEmulated(call, 'allowing every domain ("*") together with subnets.deny is not emulated');
    return { allowCidrs: [...openAllowlist.allowCidrs], allowDomains: [] };
  }
  return { allowCidrs, allowDomains: [...policy.allowDomains] };
}
