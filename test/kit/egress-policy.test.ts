import { describe, expect, it } from 'vitest';
import {
  SandboxInvalidArgumentError,
  compileEgressPolicy,
  decideAddress,
  nameAllowed,
  normalizeAddress,
  parseEgressHost,
} from '../../src/kit/index.js';

const policy = (allowDomains: string[], allowCidrs: string[] = []) => compileEgressPolicy({ allowDomains, allowCidrs });
const reasonOf = (verdict: ReturnType<typeof decideAddress>): string => (verdict.allowed ? 'allowed' : verdict.reason);

describe('compileEgressPolicy', () => {
  it("compiles 'block' to an empty allowlist and refuses 'allow'", () => {
    expect(compileEgressPolicy('block')).toEqual({ domains: [], cidrs: [], blocks: [] });
    expect(() => compileEgressPolicy('allow' as never)).toThrow(SandboxInvalidArgumentError);
  });

  it('lower-cases domains, drops trailing dots, masks and canonicalises blocks', () => {
    const compiled = policy(['Example.COM.', '*.Example.com'], ['10.1.2.3/8', '2001:DB8:0:0::1/32', '::ffff:127.0.0.1/128']);
    expect(compiled.domains).toEqual(['example.com', '*.example.com']);
    expect(compiled.cidrs).toEqual(['10.0.0.0/8', '2001:db8::/32', '127.0.0.1/32']);
  });

  it('names the malformed block', () => {
    expect(() => policy([], ['10.0.0.0/33'])).toThrow(expect.objectContaining({ argument: 'network.allowCidrs.0' }));
  });
});

describe('nameAllowed', () => {
  const compiled = policy(['allowed.test', '*.example.com']);

  it('matches exact names, case-insensitively, with or without a trailing dot', () => {
    expect(nameAllowed(compiled, 'allowed.test')).toBe(true);
    expect(nameAllowed(compiled, 'ALLOWED.Test')).toBe(true);
    expect(nameAllowed(compiled, 'allowed.test.')).toBe(true);
    expect(nameAllowed(compiled, 'other.allowed.test')).toBe(false);
    expect(nameAllowed(compiled, 'allowed.test.evil')).toBe(false);
    expect(nameAllowed(compiled, 'notallowed.test')).toBe(false);
  });

  it('matches a wildcard for names under it at any depth, not the suffix itself', () => {
    expect(nameAllowed(compiled, 'www.example.com')).toBe(true);
    expect(nameAllowed(compiled, 'a.b.EXAMPLE.com.')).toBe(true);
    expect(nameAllowed(compiled, 'example.com')).toBe(false);
    expect(nameAllowed(compiled, 'badexample.com')).toBe(false);
    expect(nameAllowed(compiled, '.example.com')).toBe(false);
  });

  it('never matches an address, whatever its spelling, even when listed as a domain', () => {
    const numeric = policy(['2130706433', '127.1', '0x7f.0.0.1']);
    for (const host of ['2130706433', '127.1', '0x7f.0.0.1', '0177.0.0.1', '127.0.0.1']) {
      expect(nameAllowed(numeric, host)).toBe(false);
    }
  });

  it('denies everything under block', () => {
    expect(nameAllowed(compileEgressPolicy('block'), 'allowed.test')).toBe(false);
  });
});

describe('parseEgressHost', () => {
  it('reads every IPv4 spelling as the address it is', () => {
    for (const spelling of ['127.0.0.1', '2130706433', '0x7f000001', '0x7f.0.0.1', '0177.0.0.1', '127.1', '127.0.1', '127.0.0.1.']) {
      expect(parseEgressHost(spelling)).toEqual({ kind: 'address', address: '127.0.0.1' });
    }
    expect(parseEgressHost('0')).toEqual({ kind: 'address', address: '0.0.0.0' });
  });

  it('reads IPv6 with or without brackets, and IPv4-mapped forms as IPv4', () => {
    expect(parseEgressHost('[::1]')).toEqual({ kind: 'address', address: '::1' });
    expect(parseEgressHost('::1')).toEqual({ kind: 'address', address: '::1' });
    expect(parseEgressHost('[::ffff:127.0.0.1]')).toEqual({ kind: 'address', address: '127.0.0.1' });
    expect(parseEgressHost('::ffff:7f00:1')).toEqual({ kind: 'address', address: '127.0.0.1' });
    expect(parseEgressHost('[2001:DB8:0:0:0:0:0:10]')).toEqual({ kind: 'address', address: '2001:db8::10' });
  });

  it('lower-cases names and refuses what is neither a name nor an address', () => {
    expect(parseEgressHost('Allowed.Test.')).toEqual({ kind: 'name', name: 'allowed.test' });
    for (const bad of ['fe80::1%eth0', '[fe80::1%25eth0]', '[allowed.test]', 'a b', 'host@evil', '1.2.3.4.5', '08.1.2.3', '', 'x.256']) {
      expect(parseEgressHost(bad).kind).toBe('invalid');
    }
  });
});

describe('normalizeAddress', () => {
  it('canonicalises and unmaps', () => {
    expect(normalizeAddress('::FFFF:169.254.169.254')).toBe('169.254.169.254');
    expect(normalizeAddress('2001:0db8:0000:0000:0001:0000:0000:0001')).toBe('2001:db8::1:0:0:1');
    expect(normalizeAddress('0:0:0:0:0:0:0:0')).toBe('::');
    expect(normalizeAddress('allowed.test')).toBeUndefined();
  });
});

describe('decideAddress', () => {
  const open = policy(['allowed.test'], ['198.51.100.0/24', '2001:db8::/32']);

  it('allows an address inside allowCidrs, or reached through an allowed name', () => {
    expect(decideAddress(open, '198.51.100.20', false)).toEqual({ allowed: true });
    expect(decideAddress(open, '203.0.113.5', true)).toEqual({ allowed: true });
    expect(reasonOf(decideAddress(open, '203.0.113.5', false))).toBe('203.0.113.5 is not inside allowCidrs');
    expect(decideAddress(open, '::ffff:198.51.100.20', false)).toEqual({ allowed: true });
    expect(decideAddress(open, '2001:db8::10', false)).toEqual({ allowed: true });
  });

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['169.254.169.254', 'cloud metadata'],
    ['::ffff:169.254.169.254', 'cloud metadata'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['10.0.0.1', 'private'],
    ['172.17.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['fd00:ec2::254', 'unique local'],
    ['2606:4700::1111', 'IPv6'],
    ['::127.0.0.1', 'IPv4-compatible'],
  ])('refuses %s (%s) even through an allowed name', (address, what) => {
    const verdict = decideAddress(open, address, true);
    expect(verdict.allowed).toBe(false);
    expect(reasonOf(verdict)).toContain(what);
  });

  it('admits a special address only with a block no wider than its range', () => {
    const loopback = policy([], ['127.0.0.1/32', '169.254.0.0/16', '::1/128']);
    expect(decideAddress(loopback, '127.0.0.1', false)).toEqual({ allowed: true });
    expect(decideAddress(loopback, '::ffff:127.0.0.1', false)).toEqual({ allowed: true });
    expect(decideAddress(loopback, '::1', false)).toEqual({ allowed: true });
    expect(decideAddress(loopback, '127.0.0.2', true).allowed).toBe(false);
    expect(decideAddress(loopback, '169.254.1.1', false)).toEqual({ allowed: true });
    // The metadata address needs its own /32: a link-local /16 is not an explicit listing of it.
    expect(reasonOf(decideAddress(loopback, '169.254.169.254', false))).toContain('169.254.169.254/32');
    expect(decideAddress(policy([], ['169.254.169.254/32']), '169.254.169.254', false)).toEqual({ allowed: true });

    const everything = policy([], ['0.0.0.0/0', '::/0']);
    expect(decideAddress(everything, '198.51.100.1', false)).toEqual({ allowed: true });
    expect(decideAddress(everything, '2606:4700::1111', false)).toEqual({ allowed: true });
    for (const special of ['127.0.0.1', '169.254.169.254', '10.0.0.1', '::1', 'fe80::1', '::ffff:127.0.0.1']) {
      expect(decideAddress(everything, special, false).allowed).toBe(false);
    }
  });

  it('refuses what is not an address, and everything under block', () => {
    expect(reasonOf(decideAddress(open, 'allowed.test', true))).toContain('not an IP address');
    expect(reasonOf(decideAddress(open, '2130706433', true))).toContain('not an IP address');
    expect(decideAddress(compileEgressPolicy('block'), '198.51.100.10', false).allowed).toBe(false);
  });
});
